"""The estimation rule: cleanlab's noise-rate estimates against the truth, what the oracle noise
rate is worth to the methods that need one, and cleanlab's label-issue detection scored beside
the methods' own selection.

Files (``lnm.grid.TABLES["estimation"]``, written by :func:`write_estimation`):

    estimates.csv                      one row per estimate file (:func:`collect_estimates`)
    estimation.csv/.md/.html           per cell (dataset, noise, rate): mean ± std over the noise
                                       seeds of the true and the estimated rate, the error, the
                                       T̂ error, detection precision/recall and the trusted set's
                                       clean ratio/coverage (:func:`estimation_cells`)
    oracle_vs_estimated.csv/.md/.html  per cell and method run both with the oracle rate and
                                       with the estimate: both accuracies and the accuracy lost
                                       without the oracle, with a paired 95 % CI
                                       (:func:`oracle_vs_estimated`)

plus the figure ``estimated_vs_true.png`` (:func:`plot_estimated_vs_true`) and the detection
rows of the selection table (:func:`detection_rows`, used by
:func:`lnm.report.diagnostics.write_diagnostics`).

Definitions (each estimate file is written by :mod:`lnm.noise.estimate`): true rate = the noise
file's realised share of wrong training labels; estimated rate = cleanlab's confident-learning
estimate (1 − trace of the calibrated joint of noisy and true labels) from k-fold out-of-fold
probabilities of a CE model trained on the noisy labels; error = estimated − true; T̂ error =
‖T̂ − T‖₁ / ‖T‖₁ against the noise file's empirical transition matrix; flagged = share of the
training samples cleanlab flags as label issues; issue precision = share of the flagged samples
that are mislabelled, issue recall = share of the mislabelled samples flagged; the *trusted set*
= the samples not flagged, scored like a method's selected set
(:func:`lnm.train.metrics.selection_scores`): clean ratio = its precision against the clean mask,
coverage = its recall of the clean samples. All percentages are 0–100; rates are fractions.
Without clean labels (real-world noise) every score against the truth is n/a.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lnm import grid
from lnm.grid import CELL_KEYS, HEADLINE, RUN_KEYS
from lnm.noise.io import load_noise
from lnm.noise.reliability import file_reliability
from lnm.report import files, stats
from lnm.report.cells import BOLD_NOTE, joined, mark_best, noisy_rows, uncertainty
from lnm.report.figures import (
    _figure,
    _legend_entries,
    _note,
    _save,
    _suptitle,
    pattern_styles,
)
from lnm.report.fmt import (
    COLLAPSE_WHAT,
    COLLAPSED,
    REAL_NOTE,
    UNRELIABLE,
    collapse_mark,
    flag,
    mean_std,
    num,
    rate_label,
    run_flags,
    runs_last_k,
    sort_rows,
    spread_text,
    unreliable_mark,
)
from lnm.report.render import Table, to_html, to_markdown

# ---------------------------------------------------------------- the estimate files

#: Scalars of an estimate file, as ``estimates.csv`` columns (rates are fractions, scores %).
ESTIMATE_VALUES = [
    "true_rate",
    "estimated_rate",
    "rate_error",
    "transition_error",
    "num_label_issues",
    "issue_precision",
    "issue_recall",
    "clean_ratio",
    "coverage",
]
#: How good the estimator is (:func:`lnm.noise.reliability.file_reliability`): its out-of-fold
#: accuracy on the noisy labels with its Wilson 95 % interval, on the clean labels (NaN without
#: them), the noisy labels' majority-class share and whether the estimate is ``unreliable``
#: (the interval reaches the majority share).
RELIABILITY_VALUES = [
    "oof_accuracy",
    "oof_accuracy_lo",
    "oof_accuracy_hi",
    "oof_clean_accuracy",
    "majority_rate",
]
#: The columns of :func:`collect_estimates` (``flagged`` = 100 · num_label_issues / num_train;
#: ``backbone`` = the estimator's backbone, from the file).
ESTIMATE_COLUMNS = (
    ["dataset", "noise", "rate", "noise_seed", "backbone", "num_train", "has_clean"]
    + ESTIMATE_VALUES
    + ["flagged"]
    + RELIABILITY_VALUES
    + ["unreliable", "noise_sha256", "estimate_path"]
)
#: Values scored against the clean labels: n/a where the dataset has none.
TRUTH_VALUES = (*grid.ESTIMATE_TRUTH_KEYS, "oof_clean_accuracy")
#: What the estimation table shows per cell (column label, decimals), in order.
SHOWN = {
    "true_rate": ("true rate", 3),
    "estimated_rate": ("estimated rate", 3),
    "oof_accuracy": ("estimator OOF acc. (noisy labels)", 3),
    "majority_rate": ("majority share (noisy labels)", 3),
    "oof_clean_accuracy": ("estimator OOF acc. (clean labels)", 3),
    "rate_error": ("error (est. − true)", 3),
    "transition_error": ("T̂ error (rel. L1)", 3),
    "flagged": ("flagged (%)", 1),
    "issue_precision": ("issue precision (%)", 1),
    "issue_recall": ("issue recall (%)", 1),
    "clean_ratio": ("trusted clean ratio (%)", 1),
    "coverage": ("trusted coverage (%)", 1),
}
#: One estimation cell: the noise setting of a dataset (noise seeds are averaged over).
ESTIMATION_KEYS = ["dataset", "noise", "rate"]
_FIELDS = {"dataset": r"[^/]+", "noise": r"[^/-]+", "rate": r"[^/]+", "noise_seed": r"\d+"}


def _path_regex() -> re.Pattern:
    """:data:`lnm.grid.ESTIMATE_FILE` as a regex matching the end of a POSIX path."""
    parts = re.split(r"\{(\w+)\}", grid.ESTIMATE_FILE)
    rx = "".join(
        re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_FIELDS[p]})" for i, p in enumerate(parts)
    )
    return re.compile(rf"(?:^|/){rx}$")


_ESTIMATE_PATH = _path_regex()


def parse_estimate_path(path: str | os.PathLike) -> dict:
    """``dataset``, ``noise``, ``rate`` (float) and ``noise_seed`` (int) of an estimate file,
    from its path (:data:`lnm.grid.ESTIMATE_FILE` below the results folder)."""
    m = _ESTIMATE_PATH.search(Path(path).as_posix())
    if m is None:
        raise ValueError(
            f"{path}: not an estimate file; expected {grid.ESTIMATE_FILE} below the results folder"
        )
    return {
        "dataset": m["dataset"],
        "noise": m["noise"],
        "rate": float(m["rate"]),
        "noise_seed": int(m["noise_seed"]),
    }


def _scalar(est: dict, key: str) -> float:
    v = est.get(key)
    return float("nan") if v is None else float(v)


def _row(path: Path) -> dict:
    est = load_noise(path)  # verified against its sidecar
    row = parse_estimate_path(path)
    issues = est.get("label_issues")
    row["num_train"] = int(np.asarray(issues).size) if issues is not None else None
    row["backbone"] = est.get("backbone")
    row["has_clean"] = bool(est.get("has_clean", False))
    row.update({k: _scalar(est, k) for k in ESTIMATE_VALUES})
    n = row["num_train"]
    row["flagged"] = 100.0 * row["num_label_issues"] / n if n else float("nan")
    rel = file_reliability(est)
    row.update({k: rel[k] for k in RELIABILITY_VALUES})
    row["unreliable"] = bool(rel["unreliable"])
    row["noise_sha256"] = est.get("noise_sha256")
    row["estimate_path"] = str(path)
    return row


def collect_estimates(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per estimate file (columns :data:`ESTIMATE_COLUMNS`), each verified against its
    SHA-256 sidecar, in canonical order; the cell comes from the path."""
    df = pd.DataFrame([_row(Path(p)) for p in paths], columns=ESTIMATE_COLUMNS)
    for col in ESTIMATE_VALUES + ["flagged"] + RELIABILITY_VALUES:
        df[col] = pd.to_numeric(df[col]).astype(float)
    df["has_clean"] = df["has_clean"].astype(bool)
    df["unreliable"] = df["unreliable"].astype(bool)
    keys = ESTIMATION_KEYS + ["noise_seed"]
    dup = df[df.duplicated(keys, keep=False)]
    if len(dup):
        raise ValueError(
            "the same noise file has several estimates: " + ", ".join(dup["estimate_path"])
        )
    return sort_rows(df, keys)


def _typed(estimates: pd.DataFrame) -> pd.DataFrame:
    """``estimates`` as :func:`collect_estimates` returns it, also when read back from
    ``estimates.csv`` (``has_clean`` as text, an unknown backbone as NaN)."""
    out = estimates.copy()
    out["has_clean"] = flag(out["has_clean"]).to_numpy() if "has_clean" in out else False
    out["unreliable"] = flag(out["unreliable"]).to_numpy() if "unreliable" in out else False
    for col in RELIABILITY_VALUES:
        if col not in out:  # an estimates.csv written before these columns existed: unknown
            out[col] = np.nan
    if "backbone" not in out:
        out["backbone"] = None
    out["backbone"] = out["backbone"].where(out["backbone"].notna(), "unknown").astype(str)
    out["rate"] = out["rate"].astype(float)
    return out


def _joined(values) -> str:
    return " / ".join(sorted({str(v) for v in values}))


def estimation_cells(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per cell (dataset, noise, rate): ``n`` (noise seeds = estimate files), ``has_clean``,
    ``n_unreliable`` (estimates whose estimator cannot be told from the majority class), the
    estimator's ``backbone`` and the mean and std over the noise seeds of every value of
    :data:`SHOWN` (std NaN with one noise seed)."""
    cols = (
        ESTIMATION_KEYS
        + ["backbone", "n", "has_clean", "n_unreliable"]
        + [f"{c}_{s}" for c in SHOWN for s in ("mean", "std")]
    )
    if estimates.empty:
        return pd.DataFrame(columns=cols)
    df = _typed(estimates)
    agg = {f"{c}_{s}": (c, s) for c in SHOWN for s in ("mean", "std")}
    out = (
        df.groupby(ESTIMATION_KEYS, sort=False)
        .agg(
            backbone=("backbone", _joined),
            n=("noise_seed", "size"),
            has_clean=("has_clean", "all"),
            n_unreliable=("unreliable", "sum"),
            **agg,
        )
        .reset_index()
    )
    out["n_unreliable"] = out["n_unreliable"].astype(int)
    return sort_rows(out[cols], ESTIMATION_KEYS)


def _seeds_text(n) -> str:
    """What a per-cell number of the estimation table is, given the noise seeds per cell."""
    return spread_text(
        n,
        one="one noise file per cell",
        many="noise seeds of each cell (one estimate per noise file)",
        lone="one noise file",
    )


#: What the estimation table's numbers are.
ESTIMATION_NOTE = (
    "true rate = the realised share of wrong training labels in the noise file; estimated rate "
    "= cleanlab's confident-learning estimate (1 − trace of the calibrated joint of noisy and "
    "true labels) from k-fold out-of-fold probabilities of a CE model trained on the noisy "
    "labels only; error = estimated − true; T̂ error = ‖T̂ − T‖₁ / ‖T‖₁ against the noise "
    "file's empirical transition matrix; flagged = share of the training samples cleanlab flags "
    "as label issues (find_label_issues); issue precision = share of the flagged samples that "
    "are mislabelled, issue recall = share of the mislabelled samples that are flagged; trusted "
    "= the samples not flagged, scored like the methods' selected sets (clean ratio = precision "
    "against the clean mask, coverage = recall of the clean samples; see selection.*)."
)
#: How the estimation table says whether an estimator can be trusted.
RELIABILITY_NOTE = (
    "estimator OOF acc. = accuracy of the estimator's out-of-fold predictions on the noisy "
    "labels it was trained on (and, where the data has them, on the clean labels); majority "
    "share = the largest class's share of the noisy labels, what always predicting one class "
    f"scores. {UNRELIABLE} after an estimated rate (ᵘk/n: k of the cell's n noise files) = "
    "unreliable: the Wilson 95 % interval of the out-of-fold accuracy over the training labels "
    "reaches the majority share, so the estimator cannot be told from a constant predictor and "
    "confident learning counts its errors as label noise (the estimate measures the estimator, "
    "not the labels). Runs told such an estimate carry the mark in every table. The test is "
    "necessary, not sufficient: an estimator above the majority share can still misestimate, "
    "so compare its accuracies with the rate it estimates (docs/reading-the-report.md)."
)
#: What n/a and – mean in the estimation tables.
NA_NOTE = (
    "n/a: the dataset has no clean training labels (real-world noise, e.g. CheXpert), so the "
    "true rate and every score against the truth are unknown; the estimated rate is the only "
    "rate there is. – = undefined (e.g. the precision of an empty flagged set)."
)
#: The selection table's note on the detection rows (:func:`detection_rows`).
DETECTION_NOTE = (
    f"{grid.DETECTION} = label-issue detection without training a method: the trusted set is "
    "every training sample cleanlab does not flag (confident learning on k-fold out-of-fold "
    "probabilities of a CE model trained on the noisy labels; the estimation stage), scored "
    "exactly like the methods' selected sets; its runs = estimate files (one per noise seed), "
    "and its numbers are not averaged over epochs. Its precision and recall as a detector of "
    "the wrong labels are in estimation.*."
)


def estimation_render(cells: pd.DataFrame) -> list[Table]:
    """The estimation table: one row per cell of :func:`estimation_cells`."""
    if cells.empty:
        why = "n/a: no estimate file (no noisy cell, or estimation is disabled)"
        return [Table.note("Noise-rate estimation", why)]

    def text(r, c):
        if c in TRUTH_VALUES and not bool(r["has_clean"]):
            return "n/a"
        out = mean_std(r[f"{c}_mean"], r[f"{c}_std"], SHOWN[c][1])
        if c == "estimated_rate":
            out += unreliable_mark(r.get("n_unreliable", 0), r["n"])
        return out

    rows = [
        [r["dataset"], r["noise"], rate_label(r["rate"], True, r["noise"]), str(r["n"])]
        + [text(r, c) for c in SHOWN]
        for _, r in cells.iterrows()
    ]
    notes = [ESTIMATION_NOTE, RELIABILITY_NOTE]
    if not cells["has_clean"].astype(bool).all() or cells.filter(like="_mean").isna().any().any():
        notes.append(NA_NOTE)
    if (cells["noise"] == grid.REAL).any():
        notes.append(REAL_NOTE)
    return [
        Table(
            f"Noise-rate estimation and label-issue detection (cleanlab), {_seeds_text(cells['n'])}",
            ["dataset", "noise", "rate", "noise seeds"] + [label for label, _ in SHOWN.values()],
            rows,
            align="llrr" + "r" * len(SHOWN),
            notes=notes,
            intro="Estimator backbone: " + _joined(cells["backbone"]) + ".",
        )
    ]


# ---------------------------------------------------------------- detection rows


def detection_rows(estimates: pd.DataFrame) -> pd.DataFrame:
    """cleanlab's trusted set (the samples not flagged) per noisy cell, in the shape of
    :func:`lnm.report.diagnostics.diagnostic_cells` rows: :data:`lnm.grid.CELL_KEYS` (method =
    :data:`lnm.grid.DETECTION`, backbone = the estimator's), ``n`` (estimate files), ``na``
    ("clean_ratio,coverage" without clean labels), ``clean_ratio_mean/std``,
    ``coverage_mean/std`` over the noise seeds, ``n_collapsed`` (0) and ``collapse_reason``."""
    cols = CELL_KEYS + ["n", "na"]
    cols += [f"{c}_{s}" for c in ("clean_ratio", "coverage") for s in ("mean", "std")]
    cols += ["n_collapsed", "collapse_reason"]
    noisy = noisy_rows(estimates) if len(estimates) else estimates
    if noisy.empty:
        return pd.DataFrame(columns=cols)
    df = _typed(noisy).assign(method=grid.DETECTION)
    df["na"] = np.where(df["has_clean"], "", "clean_ratio,coverage")
    out = (
        df.groupby(CELL_KEYS, sort=False)
        .agg(
            n=("noise_seed", "size"),
            na=("na", lambda s: joined(s, ",")),
            clean_ratio_mean=("clean_ratio", "mean"),
            clean_ratio_std=("clean_ratio", "std"),
            coverage_mean=("coverage", "mean"),
            coverage_std=("coverage", "std"),
        )
        .reset_index()
    )
    out["n_collapsed"], out["collapse_reason"] = 0, None
    return sort_rows(out[cols], ["dataset", "backbone", "noise", "rate", "method"])


# ---------------------------------------------------------------- oracle vs estimated rate

#: Rate sources a method's estimated-rate variant is compared with: the true rate (synthetic
#: noise) or, in a real-world cell, the assumed one (``real_world.<name>.assumed_rates``).
REFERENCE_SOURCES = ("oracle", "assumed")
#: Two runs are paired when they share these (same noise file, training seed, budget).
PAIR_KEYS = [k for k in RUN_KEYS if k != "method"]
OVE_COLUMNS = [
    "dataset",
    "backbone",
    "noise",
    "rate",
    "base_method",
    "reference",
    "method",
    "estimated_method",
    "n_pairs",
    "rate_reference",
    "rate_estimated_mean",
    "rate_estimated_std",
    "acc_reference_mean",
    "acc_reference_std",
    "acc_estimated_mean",
    "acc_estimated_std",
    "balanced_reference_mean",
    "balanced_estimated_mean",
    "lost_mean",
    "lost_lo",
    "lost_hi",
    "lost_hw",
    "lost_balanced_mean",
    "n_collapsed_reference",
    "n_collapsed_estimated",
    "n_unreliable_estimate",
    "num_test",
    "reference_best_group",
    "estimated_best_group",
    "note",
]
_NEEDS = ("noise_rate_source", "base_method")


def _pairs(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run told a reference rate beside its estimated-rate twin (same noise file, seed and
    budget, same ``base_method``): columns ``*_ref`` and ``*_est``."""
    runs = run_flags(runs)
    bal = grid.last_k("balanced_acc")
    nan = pd.Series(np.nan, index=runs.index)
    df = runs.assign(
        _bal=pd.to_numeric(runs.get(bal, nan), errors="coerce").astype(float),
        _src=runs["noise_rate_source"].fillna("").astype(str),
        base_method=runs["base_method"].where(runs["base_method"].notna(), runs["method"]),
        assumed_noise_rate=pd.to_numeric(runs.get("assumed_noise_rate", nan), errors="coerce"),
        num_test=runs.get("num_test", nan),
    )
    keep = PAIR_KEYS + ["base_method", "method", "_src", HEADLINE, "assumed_noise_rate"]
    keep += ["_bal", "collapsed", "estimate_unreliable"]
    ref = df[df["_src"].isin(REFERENCE_SOURCES)][keep + ["num_test"]]
    est = df[df["_src"] == "estimated"][keep]
    return ref.merge(est, on=PAIR_KEYS + ["base_method"], suffixes=("_ref", "_est"))


def _pair_row(g: pd.DataFrame) -> dict:
    """The accuracies and rates of one cell's pairs ``g`` and the accuracy ``lost`` without the
    reference rate (mean with its 95 % t interval, clipped to ±100 points)."""
    a_ref, a_est = g[f"{HEADLINE}_ref"], g[f"{HEADLINE}_est"]
    lost, lo, hi = stats.t_interval(a_ref - a_est)
    lo, hi = stats.clip_percent(lo, hi, -100.0, 100.0)  # a difference of accuracies
    n = len(g)
    per_file = g.groupby("noise_seed")["assumed_noise_rate_est"].mean()  # one per estimate
    return {
        "n_pairs": n,
        "rate_reference": g["assumed_noise_rate_ref"].mean(),
        "rate_estimated_mean": per_file.mean(),
        "rate_estimated_std": per_file.std(),
        "acc_reference_mean": a_ref.mean(),
        "acc_reference_std": a_ref.std(),
        "acc_estimated_mean": a_est.mean(),
        "acc_estimated_std": a_est.std(),
        "balanced_reference_mean": g["_bal_ref"].mean(),
        "balanced_estimated_mean": g["_bal_est"].mean(),
        "lost_mean": lost,
        "lost_lo": lo,
        "lost_hi": hi,
        "lost_hw": (hi - lo) / 2,
        "lost_balanced_mean": (g["_bal_ref"] - g["_bal_est"]).mean(),
        "n_collapsed_reference": int(g["collapsed_ref"].sum()),
        "n_collapsed_estimated": int(g["collapsed_est"].sum()),
        "n_unreliable_estimate": int(g["estimate_unreliable_est"].sum()),
        "num_test": g["num_test"].iloc[0],
        "note": "" if n >= 2 else f"CI {stats.NEEDS_SEEDS}",
    }


def _mark_arms(out: pd.DataFrame) -> None:
    """``reference_best_group``/``estimated_best_group``: the two accuracies of each row, each
    with its CI and test-set resolution, bold by the rule of every table."""
    arms = [
        pd.DataFrame(
            {
                "dataset": out["dataset"],
                "row": out.index,
                "arm": arm,
                "mean": out[f"acc_{arm}_mean"],
                "std": out[f"acc_{arm}_std"],
                "n": out["n_pairs"],
                "num_test": pd.to_numeric(out["num_test"], errors="coerce"),
                "n_collapsed": out[f"n_collapsed_{arm}"],
            }
        )
        for arm in ("reference", "estimated")
    ]
    long = uncertainty(pd.concat(arms, ignore_index=True))
    long["best_group"] = mark_best(long, keys=["dataset", "row"])["best_group"]
    for arm in ("reference", "estimated"):
        sel = long[long["arm"] == arm].set_index("row")["best_group"]
        out[f"{arm}_best_group"] = sel.reindex(out.index).astype(bool).to_numpy()


def oracle_vs_estimated(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell and method run both with a reference rate (:data:`REFERENCE_SOURCES`, runs.csv
    ``noise_rate_source``) and with the estimated rate (a variant with the same
    ``base_method``): the paired runs' accuracies (headline, mean and std), the accuracy lost
    without the reference ``lost`` = reference − estimated (points; mean with its 95 % t
    interval over the pairs, ``lost_lo``/``lost_hi``/``lost_hw``, NaN with one pair), the rates
    the runs were told (``assumed_noise_rate``; the estimated one as mean and std over the
    noise files, each with its own estimate), and which accuracy is bold
    (:func:`lnm.report.cells.mark_best`, the rule of every table). Empty when runs.csv has no
    ``noise_rate_source``/``base_method`` columns or no such pair."""
    if runs is None or not set(_NEEDS) <= set(runs.columns) or runs.empty:
        return pd.DataFrame(columns=OVE_COLUMNS)
    pairs = _pairs(runs)
    if pairs.empty:
        return pd.DataFrame(columns=OVE_COLUMNS)
    group = ["dataset", "backbone", "noise", "rate", "base_method", "_src_ref", "method_ref"]
    rows = [
        {
            **dict(zip(group[:5], key[:5])),
            "reference": key[5],
            "method": key[6],
            "estimated_method": key[7],
            **_pair_row(g),
        }
        for key, g in pairs.groupby(group + ["method_est"], sort=False)
    ]
    out = pd.DataFrame(rows)
    _mark_arms(out)
    out = sort_rows(out, ["dataset", "backbone", "noise", "rate", "method", "estimated_method"])
    return out[OVE_COLUMNS]


#: What the oracle table's numbers are.
OVE_NOTE = (
    "Each row pairs a method told the cell's true noise rate (oracle: e.g. Co-teaching's forget "
    "rate = the injected rate) with the same method told cleanlab's estimate of the cell's "
    "rate (a method_variants entry with forget_rate: estimated); pairs = the runs present in "
    "both, on the same noise file (noise seed) and training seed, and both accuracies are over "
    "those runs. rate told = the rate the runs were given (metrics.json assumed_noise_rate; "
    "the estimated one: mean ± std over the noise files, each with its own estimate). lost = accuracy with the oracle − with the "
    "estimate, in points (positive: not knowing the rate cost accuracy); [lo, hi] = 95 % t "
    "interval of the mean paired difference, mean ± t(0.975, n−1)·s_d/√n (clipped to "
    "[−100, 100]); (n=1) = one pair, no interval "
    f"({stats.NEEDS_SEEDS}). bal. acc. = balanced accuracy (mean per-class recall) of the same "
    "runs, with the rate told / with the estimate."
)
OVE_COLLAPSE_NOTE = (
    f"{COLLAPSED} = collapsed runs among the pairs (⊘k/n: k of the n pairs): "
    f"{COLLAPSE_WHAT}. Such an accuracy is never bold, and its 'lost' compares a predictor "
    "that ignores the image, not the method with and without the oracle: read the balanced "
    "accuracies (mean per-class recall; 100/C for such a predictor) beside it."
)
ASSUMED_NOTE = (
    "assumed: a real-world cell has no oracle; its reference is the rate the config assumes "
    "(real_world.<name>.assumed_rates)."
)


def _ove_row(r, multi: bool, several: bool) -> tuple[list[str], list[bool]]:
    """One row of the oracle-vs-estimated table and its bold flags (the two accuracies)."""
    n = r["n_pairs"]
    if n >= 2:
        lost = f"{num(r['lost_mean'])} [{num(r['lost_lo'])}, {num(r['lost_hi'])}]"
    else:
        lost = num(r["lost_mean"]) + (" (n=1)" if several else "")
    row = [r["dataset"]] + ([r["backbone"]] if multi else [])
    row += [r["noise"], rate_label(r["rate"], True, r["noise"]), r["method"]]
    row += [r["estimated_method"], str(n)]
    row += [f"{num(r['rate_reference'], 3)} ({r['reference']})"]
    row += [mean_std(r["rate_estimated_mean"], r["rate_estimated_std"], 3)]
    row += [
        mean_std(r["acc_reference_mean"], r["acc_reference_std"])
        + collapse_mark(r["n_collapsed_reference"], n)
    ]
    row += [
        mean_std(r["acc_estimated_mean"], r["acc_estimated_std"])
        + collapse_mark(r["n_collapsed_estimated"], n)
        + unreliable_mark(r["n_unreliable_estimate"], n)
    ]
    row += [f"{num(r['balanced_reference_mean'])} / {num(r['balanced_estimated_mean'])}", lost]
    bold = [False] * (len(row) - 4) + [bool(r["reference_best_group"])]
    return row, bold + [bool(r["estimated_best_group"]), False, False]


def _ove_notes(ove: pd.DataFrame) -> list[str]:
    notes = [OVE_NOTE, BOLD_NOTE]
    if (ove[["n_collapsed_reference", "n_collapsed_estimated"]].to_numpy() > 0).any():
        notes.append(OVE_COLLAPSE_NOTE)
    if (ove["n_unreliable_estimate"] > 0).any():
        notes.append(
            f"{UNRELIABLE} = runs told an unreliable estimate (ᵘk/n: k of the n pairs): its "
            "estimator cannot be told from always predicting the majority class of the noisy "
            "labels (estimation.*)."
        )
    if (ove["reference"] == "assumed").any():
        notes.append(ASSUMED_NOTE)
    if (ove["noise"] == grid.REAL).any():
        notes.append(REAL_NOTE)
    return notes


def oracle_render(ove: pd.DataFrame, k: int | None) -> list[Table]:
    """The oracle-vs-estimated table; ``k`` = the ``last_k`` the headline averages."""
    title = "Accuracy lost without the oracle noise rate"
    if ove.empty:
        why = (
            "n/a: no method was run both with the oracle noise rate and with the estimated one "
            "in the same cell (add a method_variants entry with forget_rate: estimated)"
        )
        return [Table.note(title, why)]
    several = bool((ove["n_pairs"] >= 2).any())
    multi = ove["backbone"].nunique() > 1
    rows, bold = zip(*(_ove_row(r, multi, several) for _, r in ove.iterrows()))
    head = ["dataset"] + (["backbone"] if multi else []) + ["noise", "rate", "method"]
    head += ["with estimate", "pairs", "rate told", "estimated rate told"]
    head += ["acc. with rate told (%)", "acc. with estimate (%)"]
    head += ["bal. acc. told / estimate (%)"]
    head += ["lost [95 % CI]" if several else "lost (points)"]
    what = "mean ± std over the pairs" if several else "one pair per row, so no std and no CI"
    title += f" ({grid.headline_text(k)}; {what})"
    align = "l" + ("l" if multi else "") + "lrllr" + "r" * 6
    return [Table(title, head, list(rows), list(bold), align=align, notes=_ove_notes(ove))]


# ---------------------------------------------------------------- figure

FIGSIZE_ESTIMATION = (11.0, 7.0)  # inches -> 1320 x 840 px


def _rate_bar(v, sd):
    """± 1 std around ``v``, clipped to the rates' range [0, 1] (None: no std)."""
    if not np.isfinite(sd):
        return None
    lo, hi = stats.clip_percent(v - sd, v + sd, 0.0, 1.0)
    return [[v - lo], [hi - v]]


def _estimate_points(ax, known: pd.DataFrame, colors: dict, markers: dict) -> None:
    """A point per cell with a true rate (open: an unreliable estimate), the identity line."""
    for _, r in known.iterrows():
        x, y = r["true_rate_mean"], r["estimated_rate_mean"]
        bad = int(r.get("n_unreliable", 0)) > 0
        ax.errorbar(
            x,
            y,
            xerr=_rate_bar(x, r["true_rate_std"]),
            yerr=_rate_bar(y, r["estimated_rate_std"]),
            fmt=markers.get(r["noise"], "o"),
            color=colors[r["dataset"]],
            mfc="white" if bad else colors[r["dataset"]],
            mew=1.8,
            ms=8,
            capsize=3,
            lw=1.2,
            gid=f"{r['dataset']}:{r['noise']}:{r['rate']:g}" + (":unreliable" if bad else ""),
        )
    if known.empty:
        _note(ax, "n/a: no cell has a true noise rate\n(no clean training labels)")
    else:
        top = float(np.nanmax(known[["true_rate_mean", "estimated_rate_mean"]].to_numpy()))
        top = max(0.05, 1.1 * top)
        ax.plot([0, top], [0, top], color="0.3", ls="--", lw=1.1, gid="identity")
        ax.set_xlim(-0.02 * top, top)
        ax.set_ylim(-0.02 * top, top)
        ax.set_aspect("equal", adjustable="box")
    ax.set(xlabel="true noise rate (realised share of wrong training labels)")
    ax.set(ylabel="estimated noise rate (cleanlab)")
    ax.grid(alpha=0.3)


def _estimate_legend(known: pd.DataFrame, colors: dict, markers: dict) -> list:
    """The datasets and patterns plotted, the identity line, the open marker if drawn."""
    handles = [
        Line2D([], [], color=c, marker="o", ls="none", label=d, gid=d)
        for d, c in colors.items()
        if d in set(known["dataset"])
    ]
    handles += [
        Line2D(
            [],
            [],
            color="0.4",
            marker=markers.get(p, "o"),
            ls="none",
            label="no noise (clean labels)" if p == grid.CLEAN else f"{p} noise",
            gid=p,
        )
        for p in markers
        if p in set(known["noise"])
    ]
    open_ = f"open = {UNRELIABLE} unreliable: estimator not\nabove the majority class"
    entries = [
        ("identity", Line2D([], [], color="0.3", ls="--", label="identity (perfect estimate)")),
        (
            "unreliable",
            Line2D([], [], color="0.4", marker="o", mfc="white", mew=1.8, ls="none", label=open_),
        ),
    ]
    drawn = {"identity"} if not known.empty else set()
    if (known.get("n_unreliable", pd.Series(0, index=known.index)) > 0).any():
        drawn.add("unreliable")
    return handles + _legend_entries(entries, drawn)


def _unplotted(side, unknown: pd.DataFrame) -> None:
    """The estimated rates of the cells without a true rate, listed beside the plot."""
    lines = [
        f"{r['dataset']} {r['noise']} {rate_label(r['rate'], True, r['noise'])}: "
        f"{mean_std(r['estimated_rate_mean'], r['estimated_rate_std'], 3)}"
        + unreliable_mark(r.get("n_unreliable", 0), r["n"])
        + f" (estimator {num(r['oof_accuracy_mean'], 3)} vs majority "
        f"{num(r['majority_rate_mean'], 3)})"
        for _, r in unknown.iterrows()
    ]
    side.text(
        0.0,
        0.02,
        "Not plotted (no clean labels, so no true rate);\ntheir estimated rates:\n"
        + "\n".join(lines),
        transform=side.transAxes,
        va="bottom",
        ha="left",
        fontsize="small",
        color="0.25",
        gid="unplotted",
    )


def estimated_vs_true_figure(estimates: pd.DataFrame) -> Figure:
    """The figure of :func:`plot_estimated_vs_true`, not saved (for tests and notebooks)."""
    cells = estimation_cells(estimates)
    noisy = cells[cells["estimated_rate_mean"].notna()]
    known = noisy[noisy["true_rate_mean"].notna() & noisy["has_clean"].astype(bool)]
    unknown = noisy.drop(known.index)
    datasets = list(dict.fromkeys(cells["dataset"]))
    colors = {d: f"C{i % 10}" for i, d in enumerate(datasets)}
    patterns = grid.ordered(cells["noise"], grid.PATTERNS)
    markers = {p: m for p, (_, m) in pattern_styles(patterns).items()}
    fig = _figure(FIGSIZE_ESTIMATION)
    ax, side = fig.subplots(1, 2, width_ratios=[2.6, 1])
    side.set_axis_off()
    _estimate_points(ax, known, colors, markers)
    side.legend(
        handles=_estimate_legend(known, colors, markers),
        loc="upper left",
        frameon=False,
        fontsize="medium",
    )
    if len(unknown):
        _unplotted(side, unknown)
    what = (
        "mean over the noise seeds, bars = ± 1 std (clipped to 0–1)"
        if bool((known["n"] >= 2).any())
        else "one noise file per cell, so no error bar"
    )
    _suptitle(
        fig,
        "How close is cleanlab's estimated noise rate to the true one?\n"
        f"one point per cell (dataset × pattern × rate): {what}; dashed = identity; open marker "
        "= unreliable (the estimator cannot be told from always predicting the majority class)",
        fontsize="large",
    )
    return fig


def plot_estimated_vs_true(estimates: pd.DataFrame, out_png: str | os.PathLike) -> Path:
    """Estimated vs true noise rate per cell (``estimates`` = :func:`collect_estimates` or
    ``estimates.csv``): one point per cell, colour = dataset, marker = noise pattern, ± 1 std
    bars over the noise seeds where a cell has several, the identity line; cells without a
    true rate (no clean labels) are listed with their estimate in a note beside the plot."""
    return _save(estimated_vs_true_figure(estimates), out_png)


# ---------------------------------------------------------------- the rule


def _csv(df: pd.DataFrame) -> files.Content:
    return files.csv(df, float_format="%.6g")  # six significant digits, as every table


def write_estimation(
    estimates: pd.DataFrame, runs: pd.DataFrame, out_dir: str | os.PathLike
) -> dict[str, Path]:
    """Every table of ``lnm.grid.TABLES["estimation"]`` into ``out_dir``; return name -> path.
    ``estimates`` = :func:`collect_estimates` (or ``estimates.csv``), ``runs`` = runs.csv."""
    cells = estimation_cells(estimates)
    ove = oracle_vs_estimated(runs)
    est_t = estimation_render(cells)
    ove_t = oracle_render(ove, runs_last_k(runs) if len(ove) else None)
    head_e = "Noise-rate estimation and label-issue detection"
    head_o = "Oracle vs estimated noise rate"
    return files.write_rule_tables(
        "estimation",
        out_dir,
        {
            "estimates.csv": _csv(estimates),
            "estimation.csv": _csv(cells),
            "estimation.md": to_markdown(est_t, head_e),
            "estimation.html": to_html(est_t, head_e),
            "oracle_vs_estimated.csv": _csv(ove),
            "oracle_vs_estimated.md": to_markdown(ove_t, head_o),
            "oracle_vs_estimated.html": to_html(ove_t, head_o),
        },
    )
