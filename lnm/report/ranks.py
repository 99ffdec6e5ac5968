"""Rank statistics over the noisy blocks, from the per-cell table (:func:`lnm.report.cells.cell_table`).

- :func:`rank_analysis` (``ranks.csv``, ``friedman.csv``, ``ranks.html``): average ranks over the
  blocks where every method has a result, the Friedman test (with Iman–Davenport), the Nemenyi
  critical difference and the rank groups (letters) of methods it cannot tell apart — one group
  for all when the Friedman test finds no difference;
- :func:`wilcoxon_table` (``wilcoxon.csv``, ``wilcoxon.html``): every method against CE,
  paired over cells, Holm-adjusted.

The paper's ranking (mean accuracy per noise pattern) is :func:`lnm.report.aggregate.ranking`.
Formulas: :mod:`lnm.report.stats`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lnm.report import stats
from lnm.report.cells import REFERENCE, RESOLUTION_WHY, block_matrix, noisy_rows, pooled_resolution
from lnm.report.fmt import (
    COLLAPSED,
    collapse_note,
    num,
    oracle_label,
    oracle_methods,
    oracle_note,
    p_is,
    pval,
    resolved_digits,
)
from lnm.report.render import Table


def _collapsed_runs(noisy: pd.DataFrame) -> pd.Series:
    """Per method, its collapsed runs among the cells ``noisy``."""
    if noisy is None or "n_collapsed" not in noisy:
        return pd.Series(dtype=float)
    return noisy.groupby("method")["n_collapsed"].sum()


def _rank_table(full: pd.DataFrame, avg: pd.Series, groups: dict, noisy: pd.DataFrame):
    """Per method in order of ``avg``: its average rank over the complete blocks ``full``, its
    rank group, mean accuracy, blocks ranked first, collapsed and all runs."""
    ranks = stats.block_ranks(full)
    flagged = _collapsed_runs(noisy)
    runs = noisy.groupby("method")["n"].sum() if "n" in noisy else pd.Series(dtype=float)
    return pd.DataFrame(
        {
            "method": avg.index,
            "avg_rank": avg.to_numpy(),
            "group": [groups.get(m, "") for m in avg.index],
            "mean_acc": [full[m].mean() for m in avg.index],
            "first_in": [int((ranks[m] == ranks.min(axis=1)).sum()) for m in avg.index],
            "n_cells": full.shape[0],
            "n_collapsed": [int(flagged.get(m, 0)) for m in avg.index],
            "n_runs": [int(runs.get(m, 0)) for m in avg.index],
        }
    )


def rank_analysis(
    cells: pd.DataFrame, alpha: float = stats.ALPHA, value: str = "mean", balanced: bool = True
) -> dict:
    """Average ranks over the complete noisy blocks of ``value`` (the headline ``mean``, as the
    paper ranks), Friedman test, Nemenyi CD — only with a Friedman test behind it: NaN where
    the test is n/a (one cell, fewer than three methods) —, cliques and rank groups
    (``groups``: method -> letters; ``separable``: the Friedman test rejected). With
    ``balanced`` and a ``balanced_acc`` column, the same analysis by balanced accuracy is
    ``balanced`` and its average ranks and groups are columns of ``ranks``
    (``avg_rank_balanced``, ``group_balanced``): accuracy alone rewards predicting the
    majority class."""
    matrix = block_matrix(cells, value)
    full = stats.complete_blocks(matrix)
    avg = (
        stats.block_ranks(full).mean(axis=0).sort_values(kind="mergesort")
        if len(full)
        else pd.Series(dtype=float)
    )
    fr = stats.friedman(matrix)
    k, n = full.shape[1], full.shape[0]
    tested = bool(np.isfinite(fr["pvalue"]))
    cd = stats.nemenyi_cd(k, n, alpha) if tested else float("nan")
    separable = bool(tested and fr["pvalue"] < alpha)
    groups = stats.rank_groups(avg, cd, separable)
    noisy = noisy_rows(cells)
    table = _rank_table(full, avg, groups, noisy)
    bal = None
    if balanced and value != "balanced_acc" and "balanced_acc" in cells:
        bal = rank_analysis(cells, alpha, "balanced_acc", balanced=False)
        by = bal["ranks"].set_index("method")
        table.insert(4, "avg_rank_balanced", table["method"].map(by["avg_rank"]).to_numpy())
        table.insert(5, "group_balanced", table["method"].map(by["group"]).fillna("").to_numpy())
    return {
        "matrix": matrix,
        "value": value,
        "ranks": table,
        "friedman": fr,
        "k": k,
        "n": n,
        "alpha": alpha,
        "q_alpha": stats.nemenyi_q(k, alpha),
        "cd": cd,
        "cliques": stats.nemenyi_cliques(avg, cd) if len(avg) else [],
        "groups": groups,
        "separable": separable,
        "resolution": pooled_resolution(noisy),
        "oracle": oracle_methods(noisy) if len(noisy) else [],
        "collapse_note": collapse_note(noisy) if len(noisy) else "",
        "oracle_note": oracle_note(noisy) if len(noisy) else "",
        "dropped": int(len(matrix) - n),
        "balanced": bal,
    }


def top_methods(ra: dict) -> set[str]:
    """What a rank table bolds: the best-ranked method *without collapsed runs* and every
    method sharing a group letter with it, methods with collapsed runs left out (their rank is
    partly that of predictions without class information, never a success)."""
    t = ra["ranks"]
    if t.empty:
        return set()
    ok = t[t["n_collapsed"] <= 0]
    if ok.empty:
        return set()
    letters = set(ok["group"].iloc[0])
    return {m for m, g in zip(ok["method"], ok["group"]) if letters & set(g)}


#: Why a CD is n/a without a Friedman test (for every note that says so).
CD_NEEDS_TEST = (
    "Nemenyi CD n/a: the Friedman test is n/a, and a post-hoc critical difference needs the "
    "test behind it."
)


def groups_text(ra: dict) -> str:
    """What the rank-group letters mean for this analysis, and what separates the groups."""
    fr = ra["friedman"]
    if not ra["groups"]:
        return "Rank groups n/a: no noisy cell with every method."
    if not ra["separable"]:
        why = (
            f"the Friedman test finds no difference ({p_is(fr['pvalue'])} ≥ {ra['alpha']})"
            if np.isfinite(fr["pvalue"])
            else f"the Friedman test is {fr['note'] or 'n/a'}"
        )
        return (
            f"Group: every method is in group a because {why}: the data cannot order these "
            "methods, whatever their printed order."
        )
    return (
        f"Group: methods sharing a letter are not separable — their average ranks differ by "
        f"less than the Nemenyi critical difference (CD = {ra['cd']:.1f} ranks at α = "
        f"{ra['alpha']}); only methods with no letter in common differ significantly."
    )


def friedman_row(ra: dict) -> pd.DataFrame:
    fr = ra["friedman"]
    return pd.DataFrame(
        [
            {
                "k": ra["k"],
                "n_cells": ra["n"],
                "dropped_incomplete": ra["dropped"],
                "chi2": fr["statistic"],
                "pvalue": fr["pvalue"],
                "iman_davenport_F": fr["iman_davenport"],
                "pvalue_F": fr["pvalue_id"],
                "alpha": ra["alpha"],
                "q_alpha": ra["q_alpha"],
                "cd": ra["cd"],
                "cliques": json.dumps(ra["cliques"]),
                "separable": ra["separable"],
                "groups": json.dumps(ra["groups"]),
                "note": fr["note"],
            }
        ]
    )


def friedman_text(ra: dict) -> str:
    fr = ra["friedman"]
    if fr["note"] and not np.isfinite(fr["statistic"]):
        return f"Friedman test {fr['note']}."
    text = (
        f"Friedman test over {ra['n']} cells and {ra['k']} methods: χ² = "
        f"{fr['statistic']:.2f} (df {ra['k'] - 1}), {p_is(fr['pvalue'])}"
    )
    if np.isfinite(fr["pvalue_id"]):
        text += f"; Iman–Davenport F = {num(fr['iman_davenport'], 2)}, {p_is(fr['pvalue_id'])}"
    text += "."
    return text + (f" ({fr['note']})" if fr["note"] else "")


def _rank_notes(ra: dict, digits: int) -> list[str]:
    """The notes of the rank table: the tests, the groups, the CD and what the marks mean."""
    notes = [friedman_text(ra), groups_text(ra)]
    if np.isfinite(ra["cd"]):
        notes.append(
            f"Nemenyi critical difference (α = {ra['alpha']}): q_α = "
            f"{ra['q_alpha']:.3f}, CD = q_α·√(k(k+1)/(6N)) = {ra['cd']:.2f} ranks; methods "
            "whose average ranks differ by less than CD are not significantly different."
        )
    elif not np.isfinite(ra["friedman"]["pvalue"]):
        notes.append(CD_NEEDS_TEST)
    else:
        notes.append("Nemenyi CD n/a: needs ≥2 methods and ≥1 cell with every method.")
    if ra["dropped"]:
        notes.append(f"{ra['dropped']} cell(s) without every method were left out.")
    notes.append(
        "Cells = noisy dataset × pattern × rate (× backbone) blocks; each method "
        "ranked by its mean over the cell's runs, 1 = best, ties share the mean rank. Average ranks are "
        f"printed to one decimal, mean accuracies to {digits} (the test sets resolve about "
        f"±{num(ra['resolution'])} points: {RESOLUTION_WHY}). Bold = the best-ranked method "
        f"without collapsed runs and every method sharing a group letter with it; {COLLAPSED} "
        "= a method with collapsed runs among these cells, never bold: its rank is partly that "
        "of predictions without class information."
    )
    if ra.get("balanced") is not None:
        notes.append(
            "Ranked by the headline accuracy, as the LNMBench paper ranks. Beside it, the "
            "average rank by balanced accuracy (mean per-class recall) over the same cells with "
            "its own rank groups (" + groups_text(ra["balanced"]).removeprefix("Group: ") + "): a "
            "method that ranks high by accuracy only is gaining it from the majority class."
        )
    return notes + [n for n in (ra["collapse_note"], ra["oracle_note"]) if n]


def rank_render(ra: dict) -> list[Table]:
    """Average ranks with their rank groups, and beside them the average rank by balanced
    accuracy with its groups; bold = the groups of the best-ranked method without collapsed
    runs (:func:`top_methods`), ⊘ = a method with collapsed runs (never bold)."""
    digits = resolved_digits(ra["resolution"])
    top = top_methods(ra)
    bal = ra.get("balanced")
    rows, bold = [], []
    for _, r in ra["ranks"].iterrows():
        mark = f" {COLLAPSED}" if r["n_collapsed"] else ""
        row = [
            oracle_label(r["method"], ra["oracle"]) + mark,
            r["group"],
            num(r["avg_rank"], 1),
            num(r["mean_acc"], digits),
            str(r["first_in"]),
        ]
        if bal is not None:
            row.append(f"{num(r['avg_rank_balanced'], 1)} {r['group_balanced']}".rstrip())
        row.append(f"{COLLAPSED}{r['n_collapsed']}/{r['n_runs']}" if r["n_collapsed"] else "0")
        rows.append(row)
        bold.append([r["method"] in top] * 4 + [False] * (len(row) - 4))
    cols = ["method", "group", "average rank", "mean acc (%)", "ranked first in"]
    cols += ["avg rank by bal. acc [group]"] if bal is not None else []
    cols.append("collapsed")
    return [
        Table(
            "Average rank over cells (1 = best) and rank groups",
            cols,
            rows,
            bold,
            align="ll" + "r" * (len(cols) - 2),
            notes=_rank_notes(ra, digits),
        )
    ]


# ---------------------------------------------------------------- Wilcoxon against CE


def wilcoxon_table(cells: pd.DataFrame) -> pd.DataFrame:
    return stats.wilcoxon_vs(block_matrix(cells), REFERENCE)


WILCOXON_NOTE = (
    "Δ = method − CE, per noisy cell, of the mean over seeds of the headline accuracy; wins = "
    "share of cells where the method is strictly better. Two-sided Wilcoxon signed-rank test "
    "(zero differences dropped), p-values Holm-adjusted over methods; bold = significant at "
    "α = 0.05."
)
WILCOXON_COLUMNS = ["method", "cells", "win/tie/loss", "wins", "mean Δ (pp)", "median Δ (pp)"]
WILCOXON_COLUMNS += ["W", "p", "p (Holm)", "note"]


def _wilcoxon_row(r, oracle: list[str], flagged: pd.Series) -> list[str]:
    wins = f"{int(r.get('wins', 0) or 0)}/{int(r.get('ties', 0) or 0)}/"
    share = r.get("win_share", np.nan)
    return [
        oracle_label(r["method"], oracle)
        + (f" {COLLAPSED}" if flagged.get(r["method"], 0) else ""),
        str(r["n_cells"]),
        wins + f"{int(r.get('losses', 0) or 0)}",
        num(100 * share, 0) + " %" if np.isfinite(share) else "–",
        num(r.get("mean_diff")),
        num(r.get("median_diff")),
        num(r.get("statistic")),
        pval(r.get("pvalue")),
        pval(r.get("pvalue_holm")),
        r.get("note") or "",
    ]


def wilcoxon_render(w: pd.DataFrame, cells: pd.DataFrame | None = None) -> list[Table]:
    """The Wilcoxon table; with ``cells``, methods told the true noise rate get ᵒ and methods
    with collapsed noisy runs ⊘, each explained in a note."""
    noisy = noisy_rows(cells) if cells is not None else None
    oracle = oracle_methods(noisy) if noisy is not None and len(noisy) else []
    flagged = _collapsed_runs(noisy)
    title = "Paired comparison with CE over cells (Wilcoxon signed-rank)"
    if w.empty:
        return [Table.note(title, "n/a: needs CE and at least one other method")]
    rows = [_wilcoxon_row(r, oracle, flagged) for _, r in w.iterrows()]
    sig = [np.isfinite(p) and p < stats.ALPHA for p in w.get("pvalue_holm", [np.nan] * len(w))]
    notes = [WILCOXON_NOTE]
    if (flagged > 0).any():
        notes.append(
            f"{COLLAPSED} = the method has collapsed runs among these cells (see cells.*): "
            "their Δ compares a constant predictor with CE."
        )
    notes += [oracle_note(noisy)] if oracle else []
    bold = [[s] * 9 + [False] for s in sig]
    return [Table(title, WILCOXON_COLUMNS, rows, bold, align="lrrrrrrrrl", notes=notes)]
