"""Display conventions shared by every report table and figure.

- row order: methods and noise patterns in their canonical (display) order, not alphabetical
  (:func:`sort_rows`);
- the one ``last_k`` of a run table, for every label that says what a ``*_last_k`` number
  averages (:func:`runs_last_k`; the texts themselves come from :mod:`lnm.grid`);
- numbers as text: ``–`` for n/a, ``±`` half-widths, p-values, rates with the † mark, mean ± std;
  one rounding for what is printed and what is compared (:func:`shown`), never a ``-0.0``;
- what a table shows (:func:`spread_text`: "one run per cell" vs "mean ± std over n runs"), the
  decimals the test sets resolve (:func:`resolved_digits`);
- the marks every table and figure shares: ⊘ collapsed runs, ᵒ oracle noise rate, and the
  notes that explain them (:func:`collapse_note`, :func:`oracle_note`, :func:`view_note`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lnm import grid


def sort_rows(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort by ``by`` with methods and noise patterns in canonical (not alphabetical) order;
    unknown names after the known ones, alphabetically."""

    canonical = {"method": grid.methods(), "noise": grid.PATTERNS}

    def key(col: pd.Series) -> pd.Series:
        if col.name in canonical:
            return col.map({v: i for i, v in enumerate(grid.ordered(col, canonical[col.name]))})
        return col

    return df.sort_values(by, key=key, kind="mergesort").reset_index(drop=True)


def runs_last_k(runs: pd.DataFrame) -> int:
    """The number of epochs every ``*_last_k`` metric of ``runs`` averages (its ``last_k``
    column); raises when the runs mix different k (:func:`lnm.grid.single_last_k`) or when
    there is no run to say."""
    if "last_k" not in runs:
        raise ValueError(
            "the run table has no last_k column, so its labels cannot say how many epochs its "
            "*_last_k metrics average; rebuild runs.csv with lnm.report.aggregate.collect_runs"
        )
    if not len(runs):
        raise ValueError("no runs: last_k is undefined for an empty run table")
    return grid.single_last_k(runs["last_k"])


def sentence(text: str) -> str:
    """``text`` with a capital first letter, for a heading."""
    return text[:1].upper() + text[1:]


def _fixed(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals as Python prints it (correct rounding of the binary value),
    without the sign of a value that prints as zero ("-0.00" -> "0.00")."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def shown(x, digits: int = 1) -> float:
    """``x`` as it is printed with ``digits`` decimals, as a float: the one rounding every
    comparison of printed numbers uses (best per row, ties), so what is compared is what is
    shown (``f"{51.55:.1f}"`` is ``51.5``, while numpy/pandas ``round`` give ``51.6``)."""
    if x is None or not np.isfinite(x):
        return float("nan")
    return float(_fixed(float(x), digits))


def num(x, digits: int = 1) -> str:
    """A number with ``digits`` decimals; ``–`` for None/NaN, ``±∞`` for infinities."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return ("∞" if x > 0 else "−∞") if np.isinf(x) else _fixed(float(x), digits)


def pm(x, digits: int = 1) -> str:
    """A ± half-width, or – when there is none."""
    return "–" if x is None or not np.isfinite(x) else f"±{_fixed(float(x), digits)}"


def resolved_digits(halfwidth: float, most: int = 2) -> int:
    """Decimals worth printing for numbers resolved to ± ``halfwidth`` points: the last digit
    printed is the first significant digit of the resolution (±4.9 -> 0 decimals, ±0.6 -> 1,
    ±0.05 -> 2), at most ``most``; ``most`` when the resolution is unknown."""
    if halfwidth is None or not np.isfinite(halfwidth) or halfwidth <= 0:
        return most
    return int(min(most, max(0, -np.floor(np.log10(halfwidth)))))


def pval(p: float) -> str:
    """A p-value: three decimals, ``<0.001`` below that, ``–`` when there is none."""
    if p is None or not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float) -> str:
    """``p = 0.003``, ``p < 0.001``, or ``p = –`` when there is none (never ``p = <0.001``)."""
    text = pval(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def rate_label(rate: float, identifiable: bool = True, noise: str | None = None) -> str:
    """A noise rate as a row label, with † when the setting is not identifiable; for real-world
    noise the rate is the one methods were told (``assumed``), not a noise level."""
    if noise == grid.REAL:
        return f"{rate:g} (assumed)"
    return f"{rate:g}" + ("" if identifiable else " †")


#: The note of every table with real-world rows.
REAL_NOTE = (
    "real = the labels as the dataset gives them; its rate (assumed) names the cell "
    "(real_world.<name>.assumed_rates) and is not a measured noise level: methods that need a "
    "rate are told the cell's estimated rate (estimation.*; noise_rate_source in runs.csv), or "
    "the assumed one under rate_source: assumed. The realised rate, where the data has clean "
    "labels, is in cells.* (realised_rate); without clean labels every noise diagnostic is n/a."
)


def mean_std(mean, std, digits: int = 1) -> str:
    """``mean ± std``; the mean alone when there is no std (one run), ``–`` without a mean."""
    if mean is None or not np.isfinite(mean):
        return "–"
    return num(mean, digits) + (
        "" if std is None or not np.isfinite(std) else f" ± {num(std, digits)}"
    )


def spread_text(
    n,
    one: str = "one run per cell",
    many: str = "runs of each cell (training seeds × noise seeds)",
    lone: str = "a cell with one run",
) -> str:
    """What a per-cell number is, given the values per cell ``n`` (runs by default; ``one``,
    ``many`` and ``lone`` name them otherwise): never "± std" where a cell has one value."""
    n = pd.Series(n, dtype=float).dropna()
    if not len(n) or n.max() < 2:
        return f"{one}, so no std"
    span = f"{int(n.min())}" if n.min() == n.max() else f"{int(n.min())}–{int(n.max())}"
    text = f"mean ± std over the {span} {many}"
    return text if n.min() >= 2 else text + f"; a lone value = {lone}, no std"


# ---------------------------------------------------------------- marks shared by every table

COLLAPSED = "⊘"  #: a cell (or method) with collapsed runs
ORACLE = "ᵒ"  #: a method that was told the cell's true noise rate
UNRELIABLE = "ᵘ"  #: runs told a noise-rate estimate whose estimator is not above the majority class
FLAG_COLUMNS = (
    "collapsed",
    "collapse_reason",
    "uses_true_noise_rate",
    "estimate_unreliable",
    "eval_view",
)
#: What ⊘ means, in every note that explains it.
COLLAPSE_WHAT = (
    "the run's final test predictions carry no class information — their balanced accuracy is "
    "within the test set's resolution of that of predictions that ignore the image (1/C for a "
    "constant predictor; runs.csv final_balanced_acc, uninformed_hw) — or it made no parameter "
    "update in most epochs; its accuracy is that of a predictor that ignores the image, not of "
    "the method"
)


def flag(values) -> pd.Series:
    """A boolean column of ``runs.csv`` (``collapsed``, ``uses_true_noise_rate``) as bools:
    True only for a true value; NaN/None/empty (not recorded) -> False."""
    s = pd.Series(values)
    return s.map(lambda v: v is True or str(v).strip().lower() in ("true", "1", "1.0")).astype(bool)


def run_flags(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the flag columns of :data:`FLAG_COLUMNS` present and typed (a run table
    written before they existed says nothing was flagged or recorded)."""
    out = runs.copy()
    for col in ("collapsed", "uses_true_noise_rate", "estimate_unreliable"):
        out[col] = flag(out[col]).to_numpy() if col in out else False
    for col in ("collapse_reason", "eval_view"):
        out[col] = out[col].where(out[col].notna(), None) if col in out else None
    return out


def collapse_mark(n_collapsed, n_runs) -> str:
    """`` ⊘`` (every run of the cell collapsed) or `` ⊘k/n`` (some did); empty if none."""
    if not n_collapsed or not np.isfinite(n_collapsed) or n_collapsed <= 0:
        return ""
    k, n = int(n_collapsed), int(n_runs)
    return f" {COLLAPSED}" if k >= n else f" {COLLAPSED}{k}/{n}"


def collapse_note(df: pd.DataFrame) -> str:
    """The note under a table that shows ⊘: what it means and, per method, how many runs
    collapsed and why. ``df`` = runs (``collapsed``, ``collapse_reason``) or cells
    (``n_collapsed``, ``n``, ``collapse_reason``); empty when nothing collapsed."""
    if "n_collapsed" in df:
        count = pd.to_numeric(df["n_collapsed"], errors="coerce").fillna(0).astype(int)
        total = pd.to_numeric(df["n"], errors="coerce").fillna(0).astype(int)
    else:
        has = "collapsed" in df
        count = pd.Series(flag(df["collapsed"]).to_numpy() if has else False, df.index)
        count, total = count.astype(int), pd.Series(1, index=df.index)
    reasons = df["collapse_reason"] if "collapse_reason" in df else pd.Series(None, df.index)
    if not int(count.sum()):
        return ""
    parts = []
    for method in grid.ordered(df["method"], grid.methods()):
        sel = (df["method"] == method).to_numpy()
        k = int(count[sel].sum())
        if not k:
            continue
        kinds = sorted(
            {
                _reason_kind(r)
                for rs in reasons[sel].dropna()
                for r in str(rs).split("; ")
                if r.strip()
            }
        )
        n = int(total[sel].sum())
        parts.append(f"{method}: {k} of {n} runs" + (f" ({', '.join(kinds)})" if kinds else ""))
    return (
        f"{COLLAPSED} collapsed (⊘k/n: k of the cell's n runs): {COLLAPSE_WHAT} (runs.csv: "
        "collapsed, collapse_reason). Never bold, and ranked with its mark. "
        + "; ".join(parts)
        + "."
    )


def _reason_kind(reason: str) -> str:
    """A collapse reason without its numbers, for counting ("no update in 6 of 8 epochs" ->
    "no update in most epochs")."""
    if reason.startswith("no update"):
        return "no update in most epochs"
    if reason.startswith("all test predictions"):
        return "all test predictions one class"
    if reason.startswith("final test predictions carry no class information"):
        return "predictions without class information"
    return reason


def unreliable_mark(n_unreliable, n_runs) -> str:
    """`` ᵘ`` (every run of the cell was told an unreliable estimate) or `` ᵘk/n``; empty if
    none."""
    if not n_unreliable or not np.isfinite(n_unreliable) or n_unreliable <= 0:
        return ""
    k, n = int(n_unreliable), int(n_runs)
    return f" {UNRELIABLE}" if k >= n else f" {UNRELIABLE}{k}/{n}"


def unreliable_note(df: pd.DataFrame) -> str:
    """The note under a table that shows ᵘ; ``df`` = runs (``estimate_unreliable``) or cells
    (``n_unreliable_estimate``); empty when no run was told an unreliable estimate."""
    if "n_unreliable_estimate" in df:
        count = pd.to_numeric(df["n_unreliable_estimate"], errors="coerce").fillna(0)
    elif "estimate_unreliable" in df:
        count = run_flags(df)["estimate_unreliable"].astype(int)
    else:
        return ""
    if not int(count.sum()):
        return ""
    methods = grid.ordered(df.loc[count.to_numpy() > 0, "method"], grid.methods())
    return (
        f"{UNRELIABLE} told an unreliable noise-rate estimate (ᵘk/n: k of the cell's n runs): "
        f"{', '.join(methods)} took their noise rate from the cell's estimate, whose estimator "
        "cannot be told from always predicting the majority class of the noisy labels (its "
        "out-of-fold accuracy's 95 % interval reaches the majority-class share; estimation.*, "
        "runs.csv estimate_unreliable), so the rate they were told measures the estimator, "
        "not the labels."
    )


def na_text(df: pd.DataFrame, columns) -> pd.DataFrame:
    """``df`` with each of ``columns`` (nullable booleans) written as True / False / ``n/a`` for
    a CSV: unknown is said, not left blank (``pd.read_csv`` reads ``n/a`` back as NA)."""
    out = df.copy()
    for col in columns:
        if col in out:
            out[col] = [
                "n/a" if v is None or v is pd.NA or (isinstance(v, float) and v != v) else bool(v)
                for v in out[col]
            ]
    return out


def oracle_methods(runs: pd.DataFrame) -> list[str]:
    """Methods with at least one run told the cell's true noise rate (uses_true_noise_rate)."""
    runs = run_flags(runs)
    return grid.ordered(runs.loc[runs["uses_true_noise_rate"], "method"], grid.methods())


def oracle_label(method: str, oracle) -> str:
    """A method's name with ᵒ when it was told the true noise rate."""
    return f"{method} {ORACLE}" if method in set(oracle) else method


def oracle_note(runs: pd.DataFrame) -> str:
    """What ᵒ means, naming the methods; empty when no run used the true noise rate."""
    methods = oracle_methods(runs)
    if not methods:
        return ""
    return (
        f"{ORACLE} oracle noise rate: {', '.join(methods)} were told the cell's true noise rate "
        "(metrics.json uses_true_noise_rate; e.g. a forget rate equal to the injected rate), "
        "knowledge a practitioner does not have."
    )


def view_note(runs: pd.DataFrame) -> str:
    """How each method's test predictions were made (metrics.json ``eval_view``: ensemble of the
    two networks or one network), per method; says so where it was not recorded."""
    runs = run_flags(runs)
    views: dict[str, list[str]] = {}
    unknown = []
    for method in grid.ordered(runs["method"], grid.methods()):
        v = sorted({str(x) for x in runs.loc[runs["method"] == method, "eval_view"].dropna()})
        if v:
            views.setdefault(" / ".join(v), []).append(method)
        else:
            unknown.append(method)
    if not views:
        return (
            "Evaluation view (ensemble of the networks or one network): not recorded in "
            "metrics.json (eval_view) for any run."
        )
    parts = [f"{', '.join(ms)}: {v}" for v, ms in views.items()]
    if unknown:
        parts.append(f"{', '.join(unknown)}: not recorded in metrics.json (eval_view)")
    return "Evaluation view (how the test predictions were made): " + "; ".join(parts) + "."
