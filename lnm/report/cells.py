"""Per-cell statistics and the per-cell grid tables, from the run table (``runs.csv``).

A *cell* is dataset × backbone × noise pattern × rate × method (seeds and noise seeds are
averaged over); a *block* is a cell without the method (:data:`lnm.grid.BLOCK_KEYS`: the unit
over which methods are ranked and compared). Formulas: :mod:`lnm.report.stats`.

- :func:`dataset_info`: test size, class counts, chance (majority class), imbalance ratio;
- :func:`cell_table` (``cells.csv``): mean, std, 95 % CI, test-set resolution, clean-ceiling
  fraction, the best group per block (:func:`mark_best`, the one rule for every bold),
  collapsed runs and what a number assumed (oracle noise rate, evaluation view), and why a
  statistic is n/a;
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
from lnm.report.fmt import (
    REAL_NOTE,
    collapse_mark,
    collapse_note,
    num,
    oracle_label,
    oracle_methods,
    oracle_note,
    pm,
    rate_label,
    resolved_digits,
    run_flags,
    shown,
    sort_rows,
    unreliable_mark,
    unreliable_note,
    view_note,
)
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
    "mean ± t(0.975, n−1)·s/√n, clipped to [0, 100] (the mean accuracy lies there, so the "
    "clipped interval covers it as often); (n=1) = one run in the cell, no interval ("
    + stats.NEEDS_SEEDS
    + ")."
)
RES_NOTE = (
    "±test = test-set resolution: binomial 95 % half-width 1.96·√(p(1−p)/N) at the "
    "row's best accuracy p with N test images; a gap smaller than this cannot be "
    "resolved by this test set, whatever the number of seeds."
)
BOLD_NOTE = (
    "Bold = the row's best as printed, together with every method the data cannot tell apart "
    "from it: its printed gap to the best is below the test-set resolution at the best's "
    "accuracy (±test), or its 95 % CI overlaps the best's. A cell with collapsed runs (⊘) is "
    "never bold, nor the best the others are compared with: its number is (partly) that of "
    "predictions without class information. One rounding and one rule in every table and "
    "rendering (cells.csv and summary.csv: best_group)."
)
#: The note of every per-cell table with pairflip rows of a two-class dataset.
PAIRFLIP_TWO_NOTE = (
    "With two classes pairflip noise (each class flips to the next) is exactly symmetric noise "
    "(each class flips to the other): its rows test the same structure as the symmetric ones, "
    "not a second one."
)
DAGGER_NOTE = (
    "† Not identifiable: at this noise pattern and rate the true class is no longer "
    "the most likely noisy label for at least one class, so the clean labels cannot "
    "be recovered from the noisy ones even in principle; accuracies there are not "
    "comparable with identifiable rows."
)


def noisy_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` with label noise (every pattern but the clean ceiling)."""
    return df[df["noise"] != grid.CLEAN]


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


def uncertainty(cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` (``mean``, ``std``, ``n`` and, when known, ``num_test``) with the 95 % t
    interval over runs (``ci_hw``, and ``ci_lo``, ``ci_hi`` clipped to [0, 100]: an accuracy
    lies there, so the clipped interval keeps its coverage; NaN for one run) and the test-set
    resolution at the mean (``test_hw``; NaN without ``num_test``)."""
    out = cells.copy()
    out["ci_hw"] = [stats.t_halfwidth(s, n) for s, n in zip(out["std"], out["n"])]
    out["ci_lo"], out["ci_hi"] = stats.clip_percent(
        out["mean"] - out["ci_hw"], out["mean"] + out["ci_hw"]
    )
    n_test = out["num_test"] if "num_test" in out else pd.Series(np.nan, index=out.index)
    out["test_hw"] = [stats.binomial_halfwidth(m, n) for m, n in zip(out["mean"], n_test)]
    return out


def _units(x, digits: int) -> float:
    """A printed value in units of its last digit (51.6 -> 516 at one decimal), for exact
    comparisons of printed numbers; NaN stays NaN."""
    v = shown(x, digits)
    return round(v * 10**digits) if np.isfinite(v) else float("nan")


def _block_best(u: pd.Series, hw_u, lo_u, hi_u, lower_is_better: bool):
    """(best, tied) of one block's printed values ``u`` (in units of the last digit, the
    better the higher; NaN = not eligible), see :func:`mark_best`."""
    top = u.max()
    best = u == top
    tops = u.index[best]
    hw = hw_u[tops].max()
    none = pd.Series(False, index=u.index)
    by_res = (top - u < hw) if np.isfinite(hw) else none
    if lower_is_better:  # a worse (higher) value whose interval reaches the best's
        edge = hi_u[tops].max()
        by_ci = lo_u[u.index] <= edge if np.isfinite(edge) else none
    else:
        edge = lo_u[tops].min()
        by_ci = hi_u[u.index] >= edge if np.isfinite(edge) else none
    return best, ~best & u.notna() & (by_res | by_ci)


def mark_best(
    cells: pd.DataFrame,
    value: str = "mean",
    digits: int = 1,
    keys: list[str] | None = None,
    lower_is_better: bool = False,
    eligible: pd.Series | None = None,
) -> pd.DataFrame:
    """The one rule for every bold of the report, per block (``keys``, default the block keys
    present). Only ``eligible`` cells take part (default: the cells without collapsed runs,
    ``n_collapsed`` = 0, when the frame has that column; else all): a cell whose number is
    (partly) a collapsed run's is never bold and never the best the others are compared with.
    ``best`` = the block's best eligible value *as printed* with ``digits`` decimals
    (:func:`lnm.report.fmt.shown`; several cells when they print the same), ``tied`` = not
    best but not separable from it — its printed gap to the best is below the printed
    test-set resolution at the best's accuracy (``test_hw``) or its 95 % CI (``ci_lo``,
    ``ci_hi``) overlaps a best cell's —, ``best_group`` = best or tied (what is bold).
    Columns the frame lacks (no ``test_hw``, no CI) give no tie by that criterion."""
    keys = [k for k in (BLOCK_KEYS if keys is None else keys) if k in cells]
    out = pd.DataFrame(False, index=cells.index, columns=["best", "tied", "best_group"])
    if eligible is None:
        eligible = (
            pd.to_numeric(cells["n_collapsed"], errors="coerce").fillna(0) <= 0
            if "n_collapsed" in cells
            else pd.Series(True, index=cells.index)
        )

    def units(values):
        return pd.Series([_units(v, digits) for v in values], index=cells.index)

    def optional(c):
        return units(cells[c] if c in cells else pd.Series(np.nan, index=cells.index))

    printed = units(cells[value]) * (-1 if lower_is_better else 1)
    printed = printed.where(pd.Series(eligible, index=cells.index).astype(bool))
    hw_u, lo_u, hi_u = optional("test_hw"), optional("ci_lo"), optional("ci_hi")
    groups = cells.groupby(keys, sort=False).groups.values() if keys else [cells.index]
    for idx in groups:
        if printed[idx].isna().all():
            continue
        best, tied = _block_best(printed[idx], hw_u, lo_u, hi_u, lower_is_better)
        out.loc[idx, "best"] = best.to_numpy()
        out.loc[idx, "tied"] = tied.to_numpy()
        out.loc[idx, "best_group"] = (best | tied).to_numpy()
    return out.astype(bool)


#: The columns of ``cells.csv``, in order.
CELL_COLUMNS = CELL_KEYS + [
    "n",
    "n_noise_seeds",
    "n_seeds",
    "num_classes",
    "identifiable",
    "realised_rate",
    "annotator_disagreement",
    "mean",
    "std",
    "ci_lo",
    "ci_hi",
    "ci_hw",
    "num_test",
    "test_hw",
    "best",
    "tied",
    "best_group",
    "chance",
    "clean_ce",
    "ceiling_frac",
    "balanced_acc",
    "macro_f1",
    "n_collapsed",
    "collapse_reason",
    "min_predicted_classes",
    "uses_true_noise_rate",
    "n_unreliable_estimate",
    "eval_view",
    "note",
]


def _ceiling(cells: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with ``clean_ce`` (the block's clean CE accuracy), ``ceiling_frac`` (the
    fraction of the clean ceiling above chance recovered) and ``ceiling_note`` (why n/a)."""
    clean = runs[(runs["noise"] == grid.CLEAN) & (runs["method"] == REFERENCE)]
    clean_ce = clean.groupby(["dataset", "backbone"])[HEADLINE].mean()
    cells["clean_ce"] = [
        clean_ce.get((d, b), float("nan")) for d, b in zip(cells["dataset"], cells["backbone"])
    ]
    ceiling_hw = [
        stats.binomial_halfwidth(ce, n) for ce, n in zip(cells["clean_ce"], cells["num_test"])
    ]
    cells["ceiling_frac"] = [
        stats.ceiling_fraction(m, c, ce, hw)
        for m, c, ce, hw in zip(cells["mean"], cells["chance"], cells["clean_ce"], ceiling_hw)
    ]
    cells = cells.join(mark_best(cells))
    cells["ceiling_note"] = [
        ceiling_na(c, ce, hw) for c, ce, hw in zip(cells["chance"], cells["clean_ce"], ceiling_hw)
    ]
    return cells


def _cell_note(r) -> str:
    """Every statistic of a cell that is n/a, and why."""
    why = [f"CI {stats.NEEDS_SEEDS}"] if r["n"] < 2 else []
    if r["ceiling_note"]:
        why.append(f"ceiling fraction n/a: {r['ceiling_note']}")
    return "; ".join(why)


def cell_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: headline ``mean``/``std``/``n`` over runs, ``num_classes``,
    ``identifiable`` (NA when some run's data has no clean labels to say), 95 % t interval
    (``ci_lo``/``ci_hi``/``ci_hw``, clipped to [0, 100]), ``test_hw`` (binomial half-width at ``mean``), ``chance``,
    ``clean_ce`` and ``ceiling_frac`` (n/a when clean CE is within the test-set resolution of
    chance), ``best``/``tied``/``best_group`` within the block (:func:`mark_best`), secondary
    means, the run marks of :func:`run_marks` and a ``note`` naming every statistic that is n/a
    and why."""
    info = dataset_info(runs).set_index("dataset")
    runs = run_flags(runs)
    if "annotator_disagreement" not in runs:  # a runs.csv written before the column existed
        runs["annotator_disagreement"] = np.nan
    g = runs.groupby(CELL_KEYS, sort=False)
    cells = g.agg(
        n=(HEADLINE, "size"),
        n_noise_seeds=("noise_seed", "nunique"),
        n_seeds=("seed", "nunique"),
        mean=(HEADLINE, "mean"),
        std=(HEADLINE, "std"),
        identifiable=("identifiable", all_known),
        num_classes=("num_classes", "first"),
        balanced_acc=(grid.last_k("balanced_acc"), "mean"),
        macro_f1=(grid.last_k("macro_f1"), "mean"),
        num_test=("num_test", "first"),
        realised_rate=("realised_rate", "mean"),
        annotator_disagreement=("annotator_disagreement", "mean"),
    ).reset_index()
    cells["identifiable"] = cells["identifiable"].astype("boolean")
    cells = uncertainty(cells).join(run_marks(runs))
    cells["chance"] = cells["dataset"].map(info["majority_acc"])
    cells = _ceiling(cells, runs)
    cells["note"] = [_cell_note(r) for _, r in cells.iterrows()]
    return sort_rows(cells[CELL_COLUMNS], ["dataset", "backbone", "noise", "rate", "method"])


def joined(values, sep: str) -> str:
    """The distinct parts of ``values`` (each ``sep``-joined; NaN skipped), sorted and
    ``sep``-joined ("" when there is none)."""
    return sep.join(sorted({p for v in values.dropna() for p in str(v).split(sep) if p}))


def run_marks(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell (rows in ``runs.groupby(CELL_KEYS, sort=False)`` order): ``n_collapsed`` (runs
    flagged collapsed), ``collapse_reason`` (their distinct reasons, "; "-joined),
    ``uses_true_noise_rate`` (any run told the true noise rate), ``eval_view`` (the
    distinct views recorded, " / "-joined; None when none was) and ``min_predicted_classes``
    (fewest distinct classes a run's final test predictions used; NaN when unknown) and
    ``n_unreliable_estimate`` (runs told an estimated noise rate marked unreliable,
    runs.csv ``estimate_unreliable``)."""
    runs = run_flags(runs)
    if "predicted_classes" not in runs:
        runs["predicted_classes"] = np.nan
    runs["predicted_classes"] = pd.to_numeric(runs["predicted_classes"], errors="coerce")

    g = runs.groupby(CELL_KEYS, sort=False)
    return pd.DataFrame(
        {
            "n_collapsed": g["collapsed"].sum().astype(int).to_numpy(),
            "collapse_reason": g["collapse_reason"]
            .agg(lambda v: joined(v, "; ") or None)
            .to_numpy(),
            "uses_true_noise_rate": g["uses_true_noise_rate"].any().astype(bool).to_numpy(),
            "eval_view": g["eval_view"].agg(lambda v: joined(v, " / ") or None).to_numpy(),
            "min_predicted_classes": g["predicted_classes"].min().astype(float).to_numpy(),
            "n_unreliable_estimate": g["estimate_unreliable"].sum().astype(int).to_numpy(),
        }
    )


def two_class_pairflip(cells: pd.DataFrame) -> bool:
    """Whether ``cells`` (runs or cells, with ``num_classes``) have pairflip rows of a
    two-class dataset, where pairflip is symmetric noise (:data:`PAIRFLIP_TWO_NOTE`)."""
    if "num_classes" not in cells or "noise" not in cells:
        return False
    classes = pd.to_numeric(cells["num_classes"], errors="coerce")
    return bool(((cells["noise"] == "pairflip") & (classes == 2)).any())


def all_known(values) -> object:
    """``all(values)`` of a boolean column where NA means unknown: NA when any value is unknown
    (pandas' ``all`` skips NA, so an all-NA column would say True)."""
    s = pd.Series(values, dtype="boolean")
    return pd.NA if s.isna().any() else bool(s.all())


def ceiling_na(chance: float, clean_ce: float, resolution: float) -> str:
    """Why the clean-ceiling fraction of a dataset is n/a, or "" when it is defined: unknown
    chance, no clean CE run, or a clean CE not resolved above chance by the test set."""
    if not np.isfinite(chance):
        return "test class counts unknown"
    if not np.isfinite(clean_ce):
        return "no clean CE run"
    if clean_ce <= chance:
        return f"clean CE ({clean_ce:.1f}) not above chance ({chance:.1f})"
    if np.isfinite(resolution) and clean_ce - chance <= resolution:
        return (
            f"clean CE ({clean_ce:.1f}) is only {clean_ce - chance:.1f} points above chance "
            f"({chance:.1f}), within the test-set resolution (±{resolution:.1f}), so the "
            "fraction would divide by noise"
        )
    return ""


#: How :func:`pooled_resolution` is computed (for the notes that print it).
RESOLUTION_WHY = (
    "binomial 95 % half-width at each dataset's median noisy-cell accuracy, combined over the "
    "datasets' independent test sets; rates share a test set, so averaging them does not "
    "shrink it"
)


def pooled_resolution(cells: pd.DataFrame) -> float:
    """The test-set resolution (points) of a mean over the cells of several datasets: per
    dataset (and backbone) the binomial half-width at its median cell accuracy, combined as
    √(Σ hw²) / D over the D datasets (independent test sets); NaN when unknown."""
    if cells.empty or "num_test" not in cells:
        return float("nan")
    hws = [
        stats.binomial_halfwidth(float(g["mean"].median()), int(g["num_test"].iloc[0]))
        for _, g in cells.groupby(["dataset", "backbone"], sort=False)
        if g["mean"].notna().any() and pd.notna(g["num_test"].iloc[0])
    ]
    hws = [h for h in hws if np.isfinite(h)]
    return float(np.sqrt(np.sum(np.square(hws))) / len(hws)) if hws else float("nan")


def block_matrix(cells: pd.DataFrame, value: str = "mean", noisy_only: bool = True) -> pd.DataFrame:
    """Blocks (noisy cells, index ``BLOCK_KEYS``) × methods (canonical order) of ``value``."""
    df = noisy_rows(cells) if noisy_only else cells
    if df.empty:
        return pd.DataFrame(columns=ordered(cells["method"], grid.methods()), dtype=float)
    m = df.pivot_table(index=BLOCK_KEYS, columns="method", values=value, aggfunc="mean", sort=False)
    m = m[ordered(m.columns, grid.methods())]
    m.columns.name = None
    return m


def _grid_row(noise, rate, block: pd.DataFrame, fmt, value: str, extra_col):
    """One (noise, rate) row of a grid table (``block``: its cells by method) and its bold
    flags; every cell with its run marks (⊘, ᵘ), the rate with † when not identifiable."""
    texts = []
    for m in block.index:
        r = block.loc[m]
        if pd.isna(r[value]):
            texts.append(("–", False))
            continue
        text, b = fmt(r)
        if "n_collapsed" in block:
            text += collapse_mark(r["n_collapsed"], r.get("n", r["n_collapsed"]))
        if "n_unreliable_estimate" in block:
            text += unreliable_mark(r["n_unreliable_estimate"], r.get("n", 1))
        texts.append((text, b))
    ident = bool(block["identifiable"].dropna().all()) if "identifiable" in block else True
    row = [noise, rate_label(rate, ident, noise)] + [t for t, _ in texts]
    bold = [False, False] + [x for _, x in texts]
    if extra_col:
        row.append(extra_col[1](block))
        bold.append(False)
    return row, bold


def _grid_notes(ds: pd.DataFrame, notes, view: bool) -> list[str]:
    """``notes`` and the notes of every mark one dataset's grid table shows."""
    out = list(notes)
    if "identifiable" in ds and not ds["identifiable"].dropna().all():
        out.append(DAGGER_NOTE)
    if (ds["noise"] == grid.REAL).any():
        out.append(REAL_NOTE)
    if two_class_pairflip(ds):
        out.append(PAIRFLIP_TWO_NOTE)
    if "annotator_disagreement" in ds and ds["annotator_disagreement"].notna().any():
        out.append(
            "Annotators: each training image has several labels; they disagree on "
            f"{100 * float(ds['annotator_disagreement'].dropna().iloc[0]):.1f} % of the votes "
            "(1 − mean share of votes agreeing with the majority vote, the clean label)."
        )
    marks = (collapse_note(ds), oracle_note(ds), unreliable_note(ds), view_note(ds) if view else "")
    return out + [note for note in marks if note]


def grid_tables(
    cells: pd.DataFrame,
    fmt,
    title: str,
    notes,
    extra_col=None,
    value: str = "mean",
    view: bool = False,
) -> list[Table]:
    """Per dataset and backbone: rows (noise, rate), columns methods, ``fmt(cell_row)`` ->
    (text, bold) where ``cell_row[value]`` is set (else "–"); ``extra_col`` = (name,
    fn(block_df) -> text) appended on the right. The marks every per-cell table shares are
    added here: † on rows whose setting is not identifiable, ⊘ on cells with collapsed runs
    (``n_collapsed`` of ``n``), ᵒ on methods told the true noise rate
    (``uses_true_noise_rate``), each explained in a note; ``view`` adds the evaluation view of
    each method (``eval_view``)."""
    tables = []
    for (dataset, backbone), ds in cells.groupby(["dataset", "backbone"], sort=False):
        methods = ordered(ds["method"], grid.methods())
        rows, bold = [], []
        for (noise, rate), block in ds.groupby(["noise", "rate"], sort=False):
            block = block.set_index("method").reindex(methods)
            row, b = _grid_row(noise, rate, block, fmt, value, extra_col)
            rows.append(row)
            bold.append(b)
        oracle = oracle_methods(ds)
        cols = ["noise", "rate", *(oracle_label(m, oracle) for m in methods)]
        cols += [extra_col[0]] if extra_col else []
        name = f"{dataset} ({backbone})" + (f": {title}" if title else "")
        align = "lr" + "r" * (len(cols) - 2)
        tables.append(
            Table(name, cols, rows, bold, align=align, notes=_grid_notes(ds, notes, view))
        )
    return tables


def ci_tables(cells: pd.DataFrame, k: int) -> list[Table]:
    """Headline mean with its 95 % CI per cell and the row's test-set resolution, bold = the
    best group (:func:`mark_best`); ``k`` = the ``last_k`` the headline averages. With one run
    in every cell the title says so and the cells show the mean alone."""
    several = bool((cells["n"] >= 2).any())

    def fmt(r):
        if r["n"] >= 2:
            text = f"{num(r['mean'])} [{num(r['ci_lo'])}, {num(r['ci_hi'])}]"
        else:  # the note explains once, not in every cell
            text = f"{num(r['mean'])}" + (" (n=1)" if several else "")
        return text, bool(r["best_group"])

    def res(block):
        if not block["mean"].notna().any():
            return "–"
        return pm(block.loc[block["best"].fillna(False).astype(bool), "test_hw"].max())

    if several:
        what, ci_note = "with its 95 % CI over the runs of each cell", CI_NOTE
    else:
        what = "one run per cell, so no CI"
        ci_note = f"No confidence interval: every cell has one run ({stats.NEEDS_SEEDS})."
    return grid_tables(
        cells,
        fmt,
        f"{grid.headline_text(k)}, {what}; bold = best and not separable from it",
        [ci_note, RES_NOTE, BOLD_NOTE],
        extra_col=("±test", res),
        view=True,
    )


def ceiling_tables(cells: pd.DataFrame) -> list[Table]:
    """Per noisy cell: the fraction of the clean ceiling recovered, printed to the decimals the
    test set resolves (its resolution at clean CE over the ceiling's height); n/a, with the
    reason, where the clean ceiling is not resolved above chance. Bold = the accuracy table's
    best group, plus any fraction that prints as the row's best."""
    noisy = noisy_rows(cells)
    if noisy.empty:
        return []
    tables = []
    for _, ds in noisy.groupby(["dataset", "backbone"], sort=False):
        chance, ce = ds["chance"].iloc[0], ds["clean_ce"].iloc[0]
        hw = stats.binomial_halfwidth(ce, ds["num_test"].iloc[0])
        why = ceiling_na(chance, ce, hw)
        digits = 2 if why else resolved_digits(hw / (ce - chance))
        printed = pd.Series([shown(v, digits) for v in ds["ceiling_frac"]], index=ds.index)
        top = printed.groupby([ds[k] for k in BLOCK_KEYS], sort=False).transform("max")

        def fmt(r, digits=digits, printed=printed, top=top):
            ok = bool(np.isfinite(r["ceiling_frac"]))
            printed_top = ok and printed[r["_row"]] == top[r["_row"]]
            text = num(r["ceiling_frac"], digits) if ok else "n/a"
            return text, ok and (bool(r["best_group"]) or printed_top)

        notes = [CHANCE_NOTE, "Bold = " + BOLD_NOTE.split("Bold = ", 1)[1]]
        if why:
            notes.insert(0, f"n/a: {why}.")
        elif np.isfinite(hw):
            notes.insert(
                0,
                f"Printed to {digits} decimal(s): the clean CE accuracy is resolved to ±{hw:.1f} "
                f"points over a ceiling {ce - chance:.1f} points above chance, so fractions are "
                f"resolved to about ±{hw / (ce - chance):.2f}.",
            )
        (t,) = grid_tables(
            ds.assign(_row=ds.index),
            fmt,
            "fraction of the clean ceiling recovered, (method − chance) / (clean CE − chance)",
            notes,
        )
        t.intro = f"chance = {num(chance)} %, clean CE = " + (
            f"{num(ce)} %." if np.isfinite(ce) else "n/a (no clean CE run)."
        )
        tables.append(t)
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
