"""Rank statistics over the noisy blocks, from the per-cell table (:func:`lnm.report.cells.cell_table`).

- :func:`rank_analysis` (``ranks.csv``, ``friedman.csv``, ``ranks.html``): average ranks over the
  blocks where every method has a result, the Friedman test (with Iman–Davenport), the Nemenyi
  critical difference and the groups of methods it cannot tell apart;
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
from lnm.report.cells import REFERENCE, block_matrix
from lnm.report.fmt import num, pval
from lnm.report.render import Table


def rank_analysis(cells: pd.DataFrame, alpha: float = stats.ALPHA) -> dict:
    """Average ranks over the complete noisy blocks, Friedman test, Nemenyi CD and cliques."""
    matrix = block_matrix(cells)
    full = stats.complete_blocks(matrix)
    ranks = stats.block_ranks(full)
    avg = ranks.mean(axis=0).sort_values(kind="mergesort") if len(full) else pd.Series(dtype=float)
    fr = stats.friedman(matrix)
    k, n = full.shape[1], full.shape[0]
    cd = stats.nemenyi_cd(k, n, alpha)
    table = pd.DataFrame(
        {
            "method": avg.index,
            "avg_rank": avg.to_numpy(),
            "mean_acc": [full[m].mean() for m in avg.index],
            "first_in": [int((ranks[m] == ranks.min(axis=1)).sum()) for m in avg.index],
            "n_cells": n,
        }
    )
    return {
        "matrix": matrix,
        "ranks": table,
        "friedman": fr,
        "k": k,
        "n": n,
        "alpha": alpha,
        "q_alpha": stats.nemenyi_q(k, alpha),
        "cd": cd,
        "cliques": stats.nemenyi_cliques(avg, cd) if len(avg) else [],
        "dropped": int(len(matrix) - n),
    }


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
        f"{fr['statistic']:.2f} (df {ra['k'] - 1}), p = {pval(fr['pvalue'])}"
    )
    if np.isfinite(fr["pvalue_id"]):
        text += f"; Iman–Davenport F = {num(fr['iman_davenport'], 2)}, p = {pval(fr['pvalue_id'])}"
    text += "."
    return text + (f" ({fr['note']})" if fr["note"] else "")


def rank_render(ra: dict) -> list[Table]:
    rows = [
        [r["method"], num(r["avg_rank"], 2), num(r["mean_acc"]), str(r["first_in"])]
        for _, r in ra["ranks"].iterrows()
    ]
    bold = [[i == 0] * 4 for i in range(len(rows))]
    cd = ra["cd"]
    notes = [friedman_text(ra)]
    if np.isfinite(cd):
        notes.append(
            f"Nemenyi critical difference (α = {ra['alpha']}): q_α = "
            f"{ra['q_alpha']:.3f}, CD = q_α·√(k(k+1)/(6N)) = {cd:.2f} ranks; methods "
            "whose average ranks differ by less than CD are not significantly different."
        )
        groups = "; ".join("{" + ", ".join(g) + "}" for g in ra["cliques"]) or "none"
        notes.append(f"Groups not significantly different: {groups}.")
    else:
        notes.append("Nemenyi CD n/a: needs ≥2 methods and ≥1 cell with every method.")
    if ra["dropped"]:
        notes.append(f"{ra['dropped']} cell(s) without every method were left out.")
    notes.append(
        "Cells = noisy dataset × pattern × rate (× backbone) blocks; each method "
        "ranked by its mean over seeds, 1 = best, ties share the mean rank."
    )
    return [
        Table(
            "Average rank over cells (1 = best)",
            ["method", "average rank", "mean acc (%)", "ranked first in"],
            rows,
            bold,
            align="lrrr",
            notes=notes,
        )
    ]


# ---------------------------------------------------------------- Wilcoxon against CE


def wilcoxon_table(cells: pd.DataFrame) -> pd.DataFrame:
    return stats.wilcoxon_vs(block_matrix(cells), REFERENCE)


def wilcoxon_render(w: pd.DataFrame) -> list[Table]:
    rows, bold = [], []
    if w.empty:
        return [
            Table(
                "Paired comparison with CE over cells (Wilcoxon signed-rank)",
                ["result"],
                [["n/a: needs CE and at least one other method"]],
                align="l",
            )
        ]
    for _, r in w.iterrows():
        n = r["n_cells"]
        rows.append(
            [
                r["method"],
                str(n),
                f"{int(r.get('wins', 0) or 0)}/"
                f"{int(r.get('ties', 0) or 0)}/{int(r.get('losses', 0) or 0)}",
                num(100 * r["win_share"], 0) + " %"
                if np.isfinite(r.get("win_share", np.nan))
                else "–",
                num(r.get("mean_diff")),
                num(r.get("median_diff")),
                num(r.get("statistic")),
                pval(r.get("pvalue")),
                pval(r.get("pvalue_holm")),
                r.get("note") or "",
            ]
        )
        sig = np.isfinite(r.get("pvalue_holm", np.nan)) and r["pvalue_holm"] < stats.ALPHA
        bold.append([sig] * 9 + [False])
    return [
        Table(
            "Paired comparison with CE over cells (Wilcoxon signed-rank)",
            [
                "method",
                "cells",
                "win/tie/loss",
                "wins",
                "mean Δ (pp)",
                "median Δ (pp)",
                "W",
                "p",
                "p (Holm)",
                "note",
            ],
            rows,
            bold,
            align="lrrrrrrrrl",
            notes=[
                "Δ = method − CE, per noisy cell, of the mean over seeds of the headline "
                "accuracy; wins = share of cells where the method is strictly better. "
                "Two-sided Wilcoxon signed-rank test (zero differences dropped), "
                "p-values Holm-adjusted over methods; bold = significant at α = 0.05."
            ],
        )
    ]
