"""Per-cell statistics and the statistics tables, built from the run table (``runs.csv``).

A *cell* is dataset × backbone × noise pattern × rate × method (seeds and noise seeds are
averaged over); a *block* is a cell without the method (the unit over which methods are ranked
and compared; only noisy blocks, as in the paper's ranking). Formulas: :mod:`lnm.report.stats`.

:func:`write_statistics` writes, through :func:`lnm.checksum.artifact`::

    cells.csv/.md/.tex/.html   mean, std, 95 % CI, test-set resolution, clean-ceiling fraction
    resolution.csv             per dataset: test size, class counts, chance, binomial half-widths
    ranks.csv, friedman.csv, ranks.html          average ranks, Friedman, Nemenyi CD
    wilcoxon.csv, wilcoxon.html                  every method against CE
    variance.csv, variance.html                  noisy-label draw vs training randomness
    imbalance.csv, imbalance.html                accuracy / balanced accuracy / macro-F1
    statistics.md                                all of the above for reading on GitHub
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from lnm.checksum import artifact
from lnm.report import stats
from lnm.report.aggregate import CELL_KEYS, DAGGER_NOTE, HEADLINE, METHODS, _sort, ordered
from lnm.report.render import Table, to_html, to_latex, to_markdown

BLOCK_KEYS = ["dataset", "backbone", "noise", "rate"]
REFERENCE = "ce"
#: A dataset counts as imbalanced when its largest test class is ≥ this many times its smallest.
IMBALANCE_RATIO = 1.5

CHANCE_NOTE = (
    "chance = accuracy of always predicting the test set's majority class "
    "(the best constant predictor; datasets are imbalanced, so this is above 1/C)"
)
CI_NOTE = (
    "[lo, hi] = 95 % confidence interval of the mean over seeds, "
    "mean ± t(0.975, n−1)·s/√n; (n=1) = one run in the cell, no interval ("
    + stats.NEEDS_SEEDS
    + ")."
)
RES_NOTE = (
    "±test = test-set resolution: binomial 95 % half-width 1.96·√(p(1−p)/N) at the "
    "row's best accuracy p with N test images; a gap smaller than this cannot be "
    "resolved by this test set, whatever the number of seeds."
)
TIE_NOTE = (
    "≈ = cannot be told apart from the row's best: the gap is below the test-set "
    "resolution at the best cell's accuracy, or the two 95 % CIs overlap."
)


def _f(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return ("∞" if x > 0 else "−∞") if np.isinf(x) else f"{x:.{digits}f}"


def _pm(x, digits: int = 1) -> str:
    """A ± half-width, or – when there is none."""
    return "–" if x is None or not np.isfinite(x) else f"±{x:.{digits}f}"


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _rate(rate: float, identifiable: bool = True) -> str:
    return f"{rate:g}" + ("" if identifiable else " †")


def _counts(s) -> list[int] | None:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return None
    return json.loads(s) if isinstance(s, str) else list(s)


# ---------------------------------------------------------------- datasets


def dataset_info(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: ``num_test``, ``num_classes``, ``class_counts`` (JSON), ``majority_acc``
    (chance, %), ``imbalance_ratio`` (largest / smallest test class), ``imbalanced``."""
    rows = []
    for dataset, g in runs.groupby("dataset", sort=False):
        counts = next(
            (c for c in map(_counts, g.get("test_class_counts", pd.Series(dtype=object))) if c),
            None,
        )
        n_test = int(g["num_test"].iloc[0])
        ratio = (
            (max(counts) / min(counts) if min(counts) > 0 else float("inf"))
            if counts
            else float("nan")
        )
        rows.append(
            {
                "dataset": dataset,
                "num_test": n_test,
                "num_classes": int(g["num_classes"].iloc[0]),
                "class_counts": json.dumps(counts) if counts else None,
                "majority_acc": 100.0 * max(counts) / sum(counts) if counts else float("nan"),
                "imbalance_ratio": ratio,
                "imbalanced": bool(
                    np.isfinite(ratio) and ratio >= IMBALANCE_RATIO or ratio == float("inf")
                ),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "num_test",
            "num_classes",
            "class_counts",
            "majority_acc",
            "imbalance_ratio",
            "imbalanced",
        ],
    )


# ---------------------------------------------------------------- cells


def cell_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: headline ``mean``/``std``/``n`` over runs, 95 % t interval
    (``ci_lo``/``ci_hi``/``ci_hw``), ``test_hw`` (binomial half-width at ``mean``), ``chance``,
    ``clean_ce`` and ``ceiling_frac``, ``best``/``tied`` within the block, secondary means and a
    ``note`` naming every statistic that is n/a and why."""
    info = dataset_info(runs).set_index("dataset")
    g = runs.groupby(CELL_KEYS, sort=False)
    cells = g.agg(
        n=(HEADLINE, "size"),
        n_noise_seeds=("noise_seed", "nunique"),
        n_seeds=("seed", "nunique"),
        mean=(HEADLINE, "mean"),
        std=(HEADLINE, "std"),
        identifiable=("identifiable", "all"),
        balanced_acc=("balanced_acc_last_k", "mean"),
        macro_f1=("macro_f1_last_k", "mean"),
        num_test=("num_test", "first"),
        realised_rate=("realised_rate", "mean"),
    ).reset_index()
    cells["ci_hw"] = [stats.t_halfwidth(s, n) for s, n in zip(cells["std"], cells["n"])]
    cells["ci_lo"], cells["ci_hi"] = cells["mean"] - cells["ci_hw"], cells["mean"] + cells["ci_hw"]
    cells["test_hw"] = [
        stats.binomial_halfwidth(m, n) for m, n in zip(cells["mean"], cells["num_test"])
    ]
    cells["chance"] = cells["dataset"].map(info["majority_acc"])
    clean = runs[(runs["noise"] == "none") & (runs["method"] == REFERENCE)]
    clean_ce = clean.groupby(["dataset", "backbone"])[HEADLINE].mean()
    cells["clean_ce"] = [
        clean_ce.get((d, b), float("nan")) for d, b in zip(cells["dataset"], cells["backbone"])
    ]
    cells["ceiling_frac"] = [
        stats.ceiling_fraction(m, c, ce)
        for m, c, ce in zip(cells["mean"], cells["chance"], cells["clean_ce"])
    ]
    best, tied = [], []
    for _, block in cells.groupby(BLOCK_KEYS, sort=False):
        if block["mean"].isna().all():
            best += [(i, False) for i in block.index]
            tied += [(i, False) for i in block.index]
            continue
        top = block.loc[block["mean"].idxmax()]
        for i, row in block.iterrows():
            is_best = round(row["mean"], 1) == block["mean"].round(1).max()
            gap = top["mean"] - row["mean"]
            overlap = (
                np.isfinite(row["ci_hi"])
                and np.isfinite(top["ci_lo"])
                and row["ci_hi"] >= top["ci_lo"]
            )
            best.append((i, bool(is_best)))
            tied.append((i, bool(not is_best and (gap < top["test_hw"] or overlap))))
    cells["best"] = pd.Series(dict(best))
    cells["tied"] = pd.Series(dict(tied))
    notes = []
    for _, r in cells.iterrows():
        why = []
        if r["n"] < 2:
            why.append(f"CI {stats.NEEDS_SEEDS}")
        if not np.isfinite(r["ceiling_frac"]):
            if not np.isfinite(r["chance"]):
                why.append("ceiling fraction n/a: test class counts unknown")
            elif not np.isfinite(r["clean_ce"]):
                why.append("ceiling fraction n/a: no clean CE run")
            else:
                why.append(
                    f"ceiling fraction n/a: clean CE ({r['clean_ce']:.1f}) not above "
                    f"chance ({r['chance']:.1f})"
                )
        notes.append("; ".join(why))
    cells["note"] = notes
    cols = CELL_KEYS + [
        "n",
        "n_noise_seeds",
        "n_seeds",
        "identifiable",
        "realised_rate",
        "mean",
        "std",
        "ci_lo",
        "ci_hi",
        "ci_hw",
        "num_test",
        "test_hw",
        "best",
        "tied",
        "chance",
        "clean_ce",
        "ceiling_frac",
        "balanced_acc",
        "macro_f1",
        "note",
    ]
    return _sort(cells[cols], ["dataset", "backbone", "noise", "rate", "method"])


def block_matrix(cells: pd.DataFrame, value: str = "mean", noisy_only: bool = True) -> pd.DataFrame:
    """Blocks (noisy cells, index ``BLOCK_KEYS``) × methods (canonical order) of ``value``."""
    df = cells[cells["noise"] != "none"] if noisy_only else cells
    if df.empty:
        return pd.DataFrame(columns=ordered(cells["method"], METHODS), dtype=float)
    m = df.pivot_table(index=BLOCK_KEYS, columns="method", values=value, aggfunc="mean", sort=False)
    m = m[ordered(m.columns, METHODS)]
    m.columns.name = None
    return m


def grid_tables(
    cells: pd.DataFrame, fmt, title: str, notes, extra_col=None, value: str = "mean"
) -> list[Table]:
    """Per dataset and backbone: rows (noise, rate), columns methods, ``fmt(cell_row)`` ->
    (text, bold) where ``cell_row[value]`` is set (else "–"); ``extra_col`` = (name,
    fn(block_df) -> text) appended on the right. Rows get † where an ``identifiable`` column
    says the setting is not identifiable."""
    tables = []
    for (dataset, backbone), ds in cells.groupby(["dataset", "backbone"], sort=False):
        methods = ordered(ds["method"], METHODS)
        rows, bold = [], []
        for (noise, rate), block in ds.groupby(["noise", "rate"], sort=False):
            block = block.set_index("method").reindex(methods)
            texts = [
                fmt(block.loc[m]) if pd.notna(block.loc[m, value]) else ("–", False)
                for m in methods
            ]
            ident = bool(block["identifiable"].dropna().all()) if "identifiable" in block else True
            row = [noise, _rate(rate, ident)]
            row += [t for t, _ in texts]
            b = [False, False] + [x for _, x in texts]
            if extra_col:
                row.append(extra_col[1](block))
                b.append(False)
            rows.append(row)
            bold.append(b)
        cols = ["noise", "rate", *methods] + ([extra_col[0]] if extra_col else [])
        t_notes = list(notes)
        if "identifiable" in ds and not ds["identifiable"].all():
            t_notes.append(DAGGER_NOTE)
        name = f"{dataset} ({backbone})" + (f": {title}" if title else "")
        tables.append(
            Table(name, cols, rows, bold, align="lr" + "r" * (len(cols) - 2), notes=t_notes)
        )
    return tables


def ci_tables(cells: pd.DataFrame) -> list[Table]:
    def fmt(r):
        if r["n"] < 2:
            text = f"{r['mean']:.1f} (n=1)"  # the note explains once, not in every cell
        else:
            text = f"{r['mean']:.1f} [{r['ci_lo']:.1f}, {r['ci_hi']:.1f}]"
        return text + (" ≈" if r["tied"] else ""), bool(r["best"])

    def res(block):
        return _pm(block["test_hw"][block["mean"].idxmax()]) if block["mean"].notna().any() else "–"

    return grid_tables(
        cells,
        fmt,
        "test accuracy (%), mean of the last 5 epochs, with 95 % CI "
        "over seeds; best per row in bold",
        [CI_NOTE, RES_NOTE, TIE_NOTE],
        extra_col=("±test", res),
    )


def ceiling_tables(cells: pd.DataFrame) -> list[Table]:
    noisy = cells[cells["noise"] != "none"]
    if noisy.empty:
        return []

    def fmt(r):
        ok = bool(np.isfinite(r["ceiling_frac"]))
        return (_f(r["ceiling_frac"], 2) if ok else "n/a"), ok and bool(r["best"])

    tables = grid_tables(
        noisy,
        fmt,
        "fraction of the clean ceiling recovered, (method − chance) / (clean CE − chance)",
        [CHANCE_NOTE],
    )
    for t, (_, ds) in zip(tables, noisy.groupby(["dataset", "backbone"], sort=False)):
        chance, ce = ds["chance"].iloc[0], ds["clean_ce"].iloc[0]
        t.intro = f"chance = {_f(chance)} %, clean CE = " + (
            f"{_f(ce)} %." if np.isfinite(ce) else "n/a (no clean CE run)."
        )
        if not (np.isfinite(chance) and np.isfinite(ce) and ce > chance):
            t.notes.insert(
                0, "n/a: " + (ds["note"].iloc[0].split("ceiling fraction n/a: ")[-1] or "undefined")
            )
    return tables


def resolution_table(cells: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: test size, chance, 100/N (one image), binomial half-widths at 50 %, at the
    clean CE accuracy and at the median cell accuracy."""
    rows = []
    for _, d in info.iterrows():
        c = cells[cells["dataset"] == d["dataset"]]
        ce = c["clean_ce"].dropna()
        med = float(c["mean"].median())
        rows.append(
            {
                "dataset": d["dataset"],
                "num_test": d["num_test"],
                "num_classes": d["num_classes"],
                "class_counts": d["class_counts"],
                "chance": d["majority_acc"],
                "imbalance_ratio": d["imbalance_ratio"],
                "one_image": 100.0 / d["num_test"],
                "hw_at_50": stats.binomial_halfwidth(50.0, d["num_test"]),
                "clean_ce": float(ce.iloc[0]) if len(ce) else float("nan"),
                "hw_at_clean_ce": stats.binomial_halfwidth(
                    float(ce.iloc[0]) if len(ce) else float("nan"), d["num_test"]
                ),
                "median_acc": med,
                "hw_at_median": stats.binomial_halfwidth(med, d["num_test"]),
            }
        )
    return pd.DataFrame(rows)


def resolution_render(res: pd.DataFrame) -> Table:
    rows = [
        [
            r["dataset"],
            str(r["num_test"]),
            str(r["num_classes"]),
            r["class_counts"] or "–",
            _f(r["chance"]),
            _f(r["one_image"], 2),
            _pm(r["hw_at_50"]),
            _pm(r["hw_at_clean_ce"]),
            _pm(r["hw_at_median"]),
        ]
        for _, r in res.iterrows()
    ]
    return Table(
        "Test-set resolution per dataset",
        [
            "dataset",
            "N test",
            "classes",
            "test class counts",
            "chance (%)",
            "1 image (pp)",
            "±95 % at 50 %",
            "±95 % at clean CE",
            "±95 % at median cell",
        ],
        rows,
        align="lrrlrrrrr",
        notes=[
            CHANCE_NOTE + ".",
            "±95 % = binomial half-width 1.96·√(p(1−p)/N) in "
            "percentage points: the smallest accuracy difference this test set can "
            "resolve at accuracy p.",
        ],
    )


# ---------------------------------------------------------------- ranks, Friedman, Nemenyi


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
        f"{fr['statistic']:.2f} (df {ra['k'] - 1}), p = {_p(fr['pvalue'])}"
    )
    if np.isfinite(fr["pvalue_id"]):
        text += f"; Iman–Davenport F = {_f(fr['iman_davenport'], 2)}, p = {_p(fr['pvalue_id'])}"
    text += "."
    return text + (f" ({fr['note']})" if fr["note"] else "")


def rank_render(ra: dict) -> list[Table]:
    rows = [
        [r["method"], _f(r["avg_rank"], 2), _f(r["mean_acc"]), str(r["first_in"])]
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
                _f(100 * r["win_share"], 0) + " %"
                if np.isfinite(r.get("win_share", np.nan))
                else "–",
                _f(r.get("mean_diff")),
                _f(r.get("median_diff")),
                _f(r.get("statistic")),
                _p(r.get("pvalue")),
                _p(r.get("pvalue_holm")),
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


# ---------------------------------------------------------------- variance split


def variance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell (noisy or clean): the one-way random-effects split of the headline accuracy
    into the noisy-label draw (noise seed) and training randomness (seed), plus a pooled
    ``all`` row per method and overall (components averaged over cells)."""
    rows = []
    for key, g in runs.groupby(CELL_KEYS, sort=False):
        vc = stats.variance_components(g[HEADLINE], g["noise_seed"])
        rows.append({**dict(zip(CELL_KEYS, key)), "n_seeds": int(g["seed"].nunique()), **vc})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = _sort(out, ["dataset", "backbone", "noise", "rate", "method"])
    ok = out[out["share_noise"].notna()]
    pooled = []
    for method, g in list(ok.groupby("method", sort=False)) + ([("all", ok)] if len(ok) else []):
        vn, vt = g["var_noise"].mean(), g["var_train"].mean()
        pooled.append(
            {
                "dataset": "all",
                "backbone": "all",
                "noise": "all",
                "rate": float("nan"),
                "method": method,
                "n_noise_seeds": int(g["n_noise_seeds"].max()),
                "n_runs": int(g["n_runs"].sum()),
                "n_seeds": int(g["n_seeds"].max()),
                "var_noise": vn,
                "var_train": vt,
                "share_noise": vn / (vn + vt) if vn + vt > 0 else float("nan"),
                "share_train": vt / (vn + vt) if vn + vt > 0 else float("nan"),
                "note": f"mean components over {len(g)} cells",
            }
        )
    return pd.concat([out, pd.DataFrame(pooled)], ignore_index=True) if pooled else out


def variance_render(v: pd.DataFrame, runs: pd.DataFrame) -> list[Table]:
    n_noise, n_seed = runs["noise_seed"].nunique(), runs["seed"].nunique()
    intro = f"This grid has {n_noise} noise seed(s) and {n_seed} training seed(s) per cell."
    notes = [
        "σ²_noise = spread of the noisy-label draw (between noise seeds), σ²_train = "
        "training randomness (between seeds with the same noisy labels), from a one-way "
        "random-effects ANOVA per cell: σ²_train = MSW, σ²_noise = max(0, (MSB − MSW)/n0). "
        "Shares = component / (σ²_noise + σ²_train); 'all' rows average the components "
        "over cells first. σ = √σ², in percentage points."
    ]
    ok = v[v["share_noise"].notna()] if len(v) else v
    if ok.empty:
        sd = v["var_train"].dropna() if len(v) else pd.Series(dtype=float)
        row = [
            stats.NEEDS_VARIANCE + f" (this grid: {n_noise} noise seed(s), {n_seed} "
            "training seed(s))"
        ]
        if len(sd):
            row[0] += (
                f"; training-seed std alone, median over cells: "
                f"{math.sqrt(float(sd.median())):.2f} pp"
            )
        return [
            Table(
                "Variance split: noisy-label draw vs training randomness",
                ["result"],
                [row],
                align="l",
                intro=intro,
                notes=notes,
            )
        ]

    def row(r):
        return [
            r["dataset"],
            r["backbone"],
            r["noise"],
            _f(r["rate"], 2) if np.isfinite(r["rate"]) else "all",
            r["method"],
            str(r["n_runs"]),
            _f(math.sqrt(r["var_noise"]), 2),
            _f(math.sqrt(r["var_train"]), 2),
            _f(100 * r["share_noise"], 0) + " %",
            _f(100 * r["share_train"], 0) + " %",
        ]

    cols = [
        "dataset",
        "backbone",
        "noise",
        "rate",
        "method",
        "runs",
        "σ_noise (pp)",
        "σ_train (pp)",
        "share noise",
        "share train",
    ]
    pooled, per_cell = ok[ok["dataset"] == "all"], ok[ok["dataset"] != "all"]
    return [
        Table(
            "Variance split per method, averaged over cells",
            cols,
            [row(r) for _, r in pooled.iterrows()],
            align="lllrlrrrrr",
            intro=intro,
        ),
        Table(
            "Variance split per cell",
            cols,
            [row(r) for _, r in per_cell.iterrows()],
            align="lllrlrrrrr",
            notes=notes,
        ),
    ]


# ---------------------------------------------------------------- imbalance


def imbalance_table(cells: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Imbalanced datasets only: per method, accuracy / balanced accuracy / macro-F1 averaged
    over the noisy cells (all cells if a dataset has none), with the rank under each metric."""
    imb = info[info["imbalanced"]]["dataset"]
    rows = []
    for (dataset, backbone), ds in cells[cells["dataset"].isin(imb)].groupby(
        ["dataset", "backbone"], sort=False
    ):
        noisy = ds[ds["noise"] != "none"]
        use = noisy if len(noisy) else ds
        agg = use.groupby("method", sort=False)[["mean", "balanced_acc", "macro_f1"]].mean()
        agg = agg.reindex(ordered(agg.index, METHODS))
        for metric in ("mean", "balanced_acc", "macro_f1"):
            agg[f"rank_{metric}"] = agg[metric].rank(ascending=False, method="average")
        for method, r in agg.iterrows():
            rows.append(
                {
                    "dataset": dataset,
                    "backbone": backbone,
                    "method": method,
                    "cells": "noisy" if len(noisy) else "all",
                    "n_cells": int((use["method"] == method).sum()),
                    "acc": r["mean"],
                    "balanced_acc": r["balanced_acc"],
                    "macro_f1": r["macro_f1"],
                    "rank_acc": r["rank_mean"],
                    "rank_balanced_acc": r["rank_balanced_acc"],
                    "rank_macro_f1": r["rank_macro_f1"],
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "backbone",
            "method",
            "cells",
            "n_cells",
            "acc",
            "balanced_acc",
            "macro_f1",
            "rank_acc",
            "rank_balanced_acc",
            "rank_macro_f1",
        ],
    )


def imbalance_render(imb: pd.DataFrame, info: pd.DataFrame, cells: pd.DataFrame) -> list[Table]:
    tables = []
    if imb.empty:
        return [
            Table(
                "Imbalance view",
                ["result"],
                [
                    [
                        f"no dataset is imbalanced (largest/smallest test class ≥ {IMBALANCE_RATIO}) or "
                        "test class counts are unknown"
                    ]
                ],
                align="l",
            )
        ]
    for (dataset, backbone), g in imb.groupby(["dataset", "backbone"], sort=False):
        d = info.set_index("dataset").loc[dataset]
        rows, bold = [], []
        for _, r in g.iterrows():
            rows.append(
                [
                    r["method"],
                    _f(r["acc"]),
                    _f(r["balanced_acc"]),
                    _f(r["macro_f1"]),
                    f"{r['rank_acc']:g} / {r['rank_balanced_acc']:g} / {r['rank_macro_f1']:g}",
                ]
            )
            bold.append(
                [False]
                + [r[c] == g[c].max() for c in ("acc", "balanced_acc", "macro_f1")]
                + [False]
            )
        tables.append(
            Table(
                f"{dataset} ({backbone}): accuracy vs balanced accuracy vs macro-F1 (%), mean over "
                f"{g['cells'].iloc[0]} cells",
                ["method", "accuracy", "balanced acc", "macro-F1", "rank acc / bal / F1"],
                rows,
                bold,
                align="lrrrr",
                intro=f"Test class counts {d['class_counts']}, largest/smallest = "
                f"{d['imbalance_ratio']:.1f}, chance (majority class) = "
                f"{d['majority_acc']:.1f} %.",
                notes=[
                    "Balanced accuracy = mean per-class recall; macro-F1 = unweighted mean of "
                    "per-class F1; all means of the last 5 epochs. A method that ranks high on "
                    "accuracy but low on balanced accuracy is favouring the majority class."
                ],
            )
        )
        ds = cells[(cells["dataset"] == dataset) & (cells["backbone"] == backbone)]
        tables += grid_tables(
            ds,
            lambda r: (f"{r['mean']:.1f} / {r['balanced_acc']:.1f} / {r['macro_f1']:.1f}", False),
            "per cell, accuracy / balanced accuracy / macro-F1 (%)",
            [],
        )
    return tables


# ---------------------------------------------------------------- the paper's tables

SUMMARY_TITLE = (
    "test accuracy (%), mean of the last 5 epochs, mean ± std over seeds; best per row in bold"
)


def summary_tables(summary: pd.DataFrame, title: str = SUMMARY_TITLE) -> list[Table]:
    """The per-cell table of :func:`lnm.report.aggregate.summary_markdown` (same rounding, bold
    and †) as :class:`Table` objects, for the LaTeX and HTML renderings."""
    mean, std = f"{HEADLINE}_mean", f"{HEADLINE}_std"
    cells = summary.rename(columns={mean: "mean", std: "std"})

    def fmt(r):
        text = (
            f"{r['mean']:.1f}" if not np.isfinite(r["std"]) else f"{r['mean']:.1f} ± {r['std']:.1f}"
        )
        return text, bool(r["best"])

    best = cells.groupby(["dataset", "backbone", "noise", "rate"], sort=False)["mean"].transform(
        lambda s: s.round(1).max()
    )
    cells["best"] = cells["mean"].round(1) == best
    return grid_tables(cells, fmt, title, [])


def ranking_tables(rank: pd.DataFrame) -> list[Table]:
    """The paper's ranking (:func:`lnm.report.aggregate.ranking`) as a :class:`Table`."""
    cols = list(rank.columns)
    rows = [[m] + [_f(v, 2) for v in r] for m, r in zip(rank.index, rank.to_numpy())]
    bold = [
        [False] + [bool(np.isfinite(v) and v == rank[c].max()) for c, v in zip(cols, r)]
        for r in rank.to_numpy()
    ]
    return [
        Table(
            "Ranking per noise pattern (the paper's figure 2)",
            ["method", *cols],
            rows,
            bold,
            align="l" + "r" * len(cols),
            notes=[
                "Per pattern: mean headline accuracy (%) over all runs (datasets × "
                "rates × seeds) of that pattern; overall = unweighted mean of the "
                "pattern columns present; sorted by overall. Best per column in bold."
            ],
        )
    ]


def write_summary_renderings(runs: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``summary.tex`` (booktabs), ``summary.html`` and ``ranking.html`` next to the tables of
    :func:`lnm.report.aggregate.write_tables`."""
    from lnm.report.aggregate import ranking, summarize

    out = Path(out_dir)
    tables = summary_tables(summarize(runs))
    head = "Per-cell results: " + SUMMARY_TITLE
    return {
        "summary.tex": _text(to_latex(tables, "summary"), out / "summary.tex"),
        "summary.html": _text(to_html(tables, head), out / "summary.html"),
        "ranking.html": _text(
            to_html(ranking_tables(ranking(runs)), "Method ranking"), out / "ranking.html"
        ),
    }


# ---------------------------------------------------------------- writing


def _csv(df: pd.DataFrame, path: Path) -> Path:
    with artifact(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    return path


def _text(text: str, path: Path) -> Path:
    with artifact(path) as tmp:
        tmp.write_text(text)
    return path


STAT_FILES = (
    "cells.csv",
    "cells.md",
    "cells.tex",
    "cells.html",
    "resolution.csv",
    "ranks.csv",
    "friedman.csv",
    "ranks.html",
    "wilcoxon.csv",
    "wilcoxon.html",
    "variance.csv",
    "variance.html",
    "imbalance.csv",
    "imbalance.html",
    "statistics.md",
)


def write_statistics(runs: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write every file of :data:`STAT_FILES` into ``out_dir``; return name -> path."""
    out = Path(out_dir)
    info = dataset_info(runs)
    cells = cell_table(runs)
    res = resolution_table(cells, info)
    ra = rank_analysis(cells)
    wil = wilcoxon_table(cells)
    var = variance_table(runs)
    imb = imbalance_table(cells, info)

    cell_t = [resolution_render(res)] + ci_tables(cells) + ceiling_tables(cells)
    rank_t, wil_t = rank_render(ra), wilcoxon_render(wil)
    var_t, imb_t = variance_render(var, runs), imbalance_render(imb, info, cells)
    head = "Per-cell statistics: 95 % confidence intervals, test-set resolution, clean ceiling"
    p = {}
    p["cells.csv"] = _csv(cells, out / "cells.csv")
    p["cells.md"] = _text(to_markdown(cell_t, head), out / "cells.md")
    p["cells.tex"] = _text(to_latex(cell_t, "cells"), out / "cells.tex")
    p["cells.html"] = _text(to_html(cell_t, head), out / "cells.html")
    p["resolution.csv"] = _csv(res, out / "resolution.csv")
    p["ranks.csv"] = _csv(ra["ranks"], out / "ranks.csv")
    p["friedman.csv"] = _csv(friedman_row(ra), out / "friedman.csv")
    p["ranks.html"] = _text(
        to_html(rank_t, "Average ranks, Friedman test and Nemenyi critical difference"),
        out / "ranks.html",
    )
    p["wilcoxon.csv"] = _csv(wil, out / "wilcoxon.csv")
    p["wilcoxon.html"] = _text(to_html(wil_t, "Every method against CE"), out / "wilcoxon.html")
    p["variance.csv"] = _csv(var, out / "variance.csv")
    p["variance.html"] = _text(to_html(var_t, "Where the spread comes from"), out / "variance.html")
    p["imbalance.csv"] = _csv(imb, out / "imbalance.csv")
    p["imbalance.html"] = _text(to_html(imb_t, "Imbalance view"), out / "imbalance.html")
    p["statistics.md"] = _text(
        to_markdown(cell_t + rank_t + wil_t + var_t + imb_t, "Statistics"), out / "statistics.md"
    )
    return p
