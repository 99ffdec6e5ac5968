"""Per-cell statistics and the per-cell grid tables, from the run table (``runs.csv``).

A *cell* is dataset × backbone × noise pattern × rate × method (seeds and noise seeds are
averaged over); a *block* is a cell without the method (:data:`lnm.grid.BLOCK_KEYS`: the unit
over which methods are ranked and compared). Formulas: :mod:`lnm.report.stats`.

- :func:`dataset_info`: test size, class counts, chance (majority class), imbalance ratio;
- :func:`cell_table` (``cells.csv``): mean, std, 95 % CI, test-set resolution, clean-ceiling
  fraction, best and tied cells per block, and why a statistic is n/a;
- :func:`block_matrix`: blocks × methods, the input of the rank statistics;
- :func:`grid_tables`: the layout every per-cell table shares (rows noise × rate, columns
  methods, † for settings that are not identifiable), used for ``cells.*``, ``summary.*``,
  the imbalance and the transition-matrix tables;
- :func:`ci_tables`, :func:`ceiling_tables`, :func:`resolution_table`: the ``cells.*`` tables.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from lnm import grid
from lnm.grid import BLOCK_KEYS, CELL_KEYS, HEADLINE, ordered
from lnm.report import stats
from lnm.report.fmt import num, pm, rate_label, sort_rows
from lnm.report.render import Table

#: The reference method: its clean runs are the ceiling, and every method is compared with it.
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
DAGGER_NOTE = (
    "† Not identifiable: at this noise pattern and rate the true class is no longer "
    "the most likely noisy label for at least one class, so the clean labels cannot "
    "be recovered from the noisy ones even in principle; accuracies there are not "
    "comparable with identifiable rows."
)


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
        balanced_acc=(grid.last_k("balanced_acc"), "mean"),
        macro_f1=(grid.last_k("macro_f1"), "mean"),
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
    return sort_rows(cells[cols], ["dataset", "backbone", "noise", "rate", "method"])


def block_matrix(cells: pd.DataFrame, value: str = "mean", noisy_only: bool = True) -> pd.DataFrame:
    """Blocks (noisy cells, index ``BLOCK_KEYS``) × methods (canonical order) of ``value``."""
    df = cells[cells["noise"] != "none"] if noisy_only else cells
    if df.empty:
        return pd.DataFrame(columns=ordered(cells["method"], grid.methods()), dtype=float)
    m = df.pivot_table(index=BLOCK_KEYS, columns="method", values=value, aggfunc="mean", sort=False)
    m = m[ordered(m.columns, grid.methods())]
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
        methods = ordered(ds["method"], grid.methods())
        rows, bold = [], []
        for (noise, rate), block in ds.groupby(["noise", "rate"], sort=False):
            block = block.set_index("method").reindex(methods)
            texts = [
                fmt(block.loc[m]) if pd.notna(block.loc[m, value]) else ("–", False)
                for m in methods
            ]
            ident = bool(block["identifiable"].dropna().all()) if "identifiable" in block else True
            row = [noise, rate_label(rate, ident)]
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


def ci_tables(cells: pd.DataFrame, k: int) -> list[Table]:
    """Headline mean with its 95 % CI per cell (best bold, ≈ = tied) and the row's test-set
    resolution; ``k`` = the ``last_k`` the headline averages."""

    def fmt(r):
        if r["n"] < 2:
            text = f"{r['mean']:.1f} (n=1)"  # the note explains once, not in every cell
        else:
            text = f"{r['mean']:.1f} [{r['ci_lo']:.1f}, {r['ci_hi']:.1f}]"
        return text + (" ≈" if r["tied"] else ""), bool(r["best"])

    def res(block):
        return pm(block["test_hw"][block["mean"].idxmax()]) if block["mean"].notna().any() else "–"

    return grid_tables(
        cells,
        fmt,
        f"{grid.headline_text(k)}, with 95 % CI over seeds; best per row in bold",
        [CI_NOTE, RES_NOTE, TIE_NOTE],
        extra_col=("±test", res),
    )


def ceiling_tables(cells: pd.DataFrame) -> list[Table]:
    """Per noisy cell: the fraction of the clean ceiling recovered (n/a explained)."""
    noisy = cells[cells["noise"] != "none"]
    if noisy.empty:
        return []

    def fmt(r):
        ok = bool(np.isfinite(r["ceiling_frac"]))
        return (num(r["ceiling_frac"], 2) if ok else "n/a"), ok and bool(r["best"])

    tables = grid_tables(
        noisy,
        fmt,
        "fraction of the clean ceiling recovered, (method − chance) / (clean CE − chance)",
        [CHANCE_NOTE],
    )
    for t, (_, ds) in zip(tables, noisy.groupby(["dataset", "backbone"], sort=False)):
        chance, ce = ds["chance"].iloc[0], ds["clean_ce"].iloc[0]
        t.intro = f"chance = {num(chance)} %, clean CE = " + (
            f"{num(ce)} %." if np.isfinite(ce) else "n/a (no clean CE run)."
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
            num(r["chance"]),
            num(r["one_image"], 2),
            pm(r["hw_at_50"]),
            pm(r["hw_at_clean_ce"]),
            pm(r["hw_at_median"]),
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
