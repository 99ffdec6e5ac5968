"""The aggregate rule: per-run ``metrics.json`` files into the run table, the per-cell summary
and the paper's ranking, with their renderings.

- :func:`collect_runs` (``runs.csv``): one tidy row per run (:data:`COLUMNS`), with its
  ``last_k`` (every ``*_last_k`` metric averages that many epochs; one table, one k), whether
  it collapsed and why (:func:`collapse_flags`, from ``test_probs.npz`` and ``per_epoch.csv``)
  and what its number assumed (``uses_true_noise_rate``, ``eval_view``);
- :func:`summarize` (``summary.csv``) and :func:`summary_tables` (``summary.md``/``.tex``/
  ``.html``): headline mean ± std over seeds per cell beside balanced accuracy, the paper's
  table, bold = the best group (:func:`lnm.report.cells.mark_best`, as in every table);
- :func:`ranking` (the paper's arithmetic), :func:`ranking_view` (``ranking.csv``: plus
  balanced accuracy, rank groups, collapsed runs, oracle marks) and :func:`ranking_tables`
  (``ranking.html``);
- :func:`write_tables`: every file :data:`lnm.grid.TABLES` lists for the rule.

Every input is checked with :func:`lnm.checksum.verify` before it is read and every output is
written through :func:`lnm.checksum.artifact` (atomic, with a SHA-256 sidecar).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from lnm import grid
from lnm.checksum import verify
from lnm.collapse import prediction_collapse
from lnm.grid import CELL_KEYS, HEADLINE, RUN_KEYS, ordered
from lnm.noise.io import load_noise
from lnm.noise.reliability import file_reliability
from lnm.report import files, stats
from lnm.report.cells import (
    BOLD_NOTE,
    PAIRFLIP_TWO_NOTE,
    RESOLUTION_WHY,
    all_known,
    cell_table,
    grid_tables,
    mark_best,
    noisy_rows,
    pooled_resolution,
    run_marks,
    two_class_pairflip,
    uncertainty,
)
from lnm.report.fmt import (
    COLLAPSED,
    collapse_note,
    mean_std,
    na_text,
    num,
    oracle_label,
    oracle_methods,
    oracle_note,
    p_is,
    resolved_digits,
    run_flags,
    runs_last_k,
    sentence,
    shown,
    sort_rows,
    spread_text,
    unreliable_note,
    view_note,
)
from lnm.report.ranks import rank_analysis
from lnm.report.render import Table, to_html, to_latex, to_markdown

#: Metrics summarised per cell as ``<metric>_mean`` / ``<metric>_std``.
SUMMARY_METRICS = [
    HEADLINE,
    "test_acc_best_val",
    grid.last_k("balanced_acc"),
    grid.last_k("macro_f1"),
]

_SCALARS = ["identifiable", "num_classes", "num_test", "last_k"]
_METRICS = [
    HEADLINE,
    "test_acc_best_val",
    "best_val_epoch",
    *(grid.last_k(m) for m in ("balanced_acc", "macro_f1", "auc", "ece", "nll")),
]
_SELECTION = ["clean_ratio", "coverage", "purified_ratio", "t_error", "gmm_auc"]
#: Class-level columns: per-class test recall (JSON list, %, last-k mean), test-set class counts
#: (JSON list, from the labels in the run's ``test_probs.npz``) and the majority-class rate (%).
_CLASSES = ["per_class_recall", "test_class_counts", "majority_acc"]
#: Collapse flags (:func:`collapse_flags`): classes the final-epoch test predictions use, the
#: share of the most predicted one, their balanced accuracy and the half-width of a predictor that
#: ignores the image, epochs without a parameter update, ``collapsed`` and ``collapse_reason``.
_COLLAPSE = [
    "predicted_classes",
    "top_class_share",
    "final_balanced_acc",
    "uninformed_hw",
    "no_update_epochs",
    "collapsed",
    "collapse_reason",
]
#: What the run's number assumed: told the true noise rate (bool; None = the method assumes no
#: rate), where its rate came from and its value, for a run told its cell's estimated rate the
#: estimator's out-of-fold accuracy and whether the estimate is unreliable
#: (:func:`lnm.noise.estimate.estimator_reliability`; None for other runs), the method a variant
#: runs, and how its test predictions were made (metrics.json ``eval_view``; None = not
#: recorded).
_ASSUMED = [
    "uses_true_noise_rate",
    "noise_rate_source",
    "assumed_noise_rate",
    "estimate_oof_accuracy",
    "estimate_unreliable",
    "base_method",
    "eval_view",
]
COLUMNS = (
    RUN_KEYS
    + _SCALARS
    + ["realised_rate", "realised_rate_val", "annotator_disagreement"]
    + _METRICS
    + _SELECTION
    + ["diagnostics_na"]
    + _CLASSES
    + _COLLAPSE
    + _ASSUMED
    + ["data_sha256", "noise_sha256", "metrics_path"]
)


def test_class_counts(metrics_path: Path, num_classes: int) -> list[int] | None:
    """Test-set class counts from the labels stored next to ``metrics.json`` in
    ``test_probs.npz`` (verified against its sidecar); None when the file is absent."""
    probs = Path(metrics_path).with_name("test_probs.npz")
    if not probs.exists():
        return None
    verify(probs)
    with np.load(probs) as npz:
        labels = np.asarray(npz["labels"]).astype(int).ravel()
    return np.bincount(labels, minlength=int(num_classes)).tolist()


def no_update(per_epoch: pd.DataFrame) -> pd.Series | None:
    """Per epoch of a run's ``per_epoch.csv``: True where the method made no parameter update —
    ``updates == 0`` where the trainer writes an ``updates`` column, else a NaN ``train_loss``
    (what the trainer writes for an epoch without an update); None when the table has
    neither column."""
    if "updates" in per_epoch:
        return pd.to_numeric(per_epoch["updates"], errors="coerce") == 0
    if "train_loss" in per_epoch:
        return pd.to_numeric(per_epoch["train_loss"], errors="coerce").isna()
    return None


def no_update_epochs(per_epoch: pd.DataFrame) -> int | None:
    """How many epochs made no parameter update (:func:`no_update`); None when unknown."""
    idle = no_update(per_epoch)
    return None if idle is None else int(idle.sum())


def _prediction_flags(probs: Path, num_classes: int) -> tuple[dict, str | None]:
    """What the final test predictions (``test_probs.npz``, verified) say about a collapse:
    the columns of :func:`collapse_flags` they give, and the reason when they carry no class
    information (None otherwise)."""
    verify(probs)
    with np.load(probs) as npz:
        p = np.asarray(npz["probs"], dtype=float)
        labels = np.asarray(npz["labels"]).astype(int).ravel()
    pred = p.reshape(len(p), -1).argmax(1) if p.size else np.empty(0, int)
    classes, counts = np.unique(pred, return_counts=True)
    out = {"predicted_classes": int(len(classes))}
    if not len(pred) or int(num_classes) <= 1:
        return out, None
    top = int(classes[counts.argmax()])
    share = 100.0 * counts.max() / len(pred)
    bal = stats.balanced_accuracy(pred, labels, int(num_classes))
    base, hw = stats.uninformed_balanced(pred, labels, int(num_classes))
    out.update(top_class_share=share, final_balanced_acc=bal, uninformed_hw=hw)
    if len(classes) == 1:
        return out, f"all test predictions are class {top}"
    if prediction_collapse(pred, labels, int(num_classes)) is not None:
        return out, (
            f"final test predictions carry no class information: balanced accuracy "
            f"{bal:.1f} % is within ±{hw:.1f} of the {base:.1f} % of predictions that "
            f"ignore the image ({share:.0f} % are class {top})"
        )
    return out, None


def collapse_flags(metrics_path: str | os.PathLike, num_classes: int) -> dict:
    """Whether a run collapsed, from the files next to its ``metrics.json`` (each verified
    against its sidecar before it is read; an absent file gives no evidence). Computed here, by
    the report, from the run's stored predictions: the training outputs say nothing about it.

    - from the final-epoch test probabilities (``test_probs.npz``, with their labels):
      ``predicted_classes`` (distinct argmax classes), ``top_class_share`` (% of the test images
      given the most predicted class), ``final_balanced_acc`` (%) and ``uninformed_hw``: the
      half-width of the balanced accuracy of a predictor that ignores the image
      (:func:`lnm.report.stats.uninformed_balanced`). The predictions carry no class information
      — collapsed — when their balanced accuracy is within that half-width of that predictor's
      mean (``|BA − b₀| ≤ hw``; :mod:`lnm.report.stats`, "Collapse"): a constant predictor
      (every test image one class) is the limit, a run predicting one class for 96 % of the
      images at a balanced accuracy of 51 % is another. (A balanced accuracy resolved *below* b₀
      is not a collapse: the predictions follow the class, inverted, as a model that learned
      non-identifiable noise does);
    - ``no_update_epochs``: epochs without a parameter update (:func:`no_update_epochs` of
      ``per_epoch.csv``); no update in most (more than half) of the epochs = collapsed;
    - ``collapsed`` and ``collapse_reason`` (e.g. "all test predictions are class 1; no update
      in 6 of 8 epochs"; None when it did not collapse)."""
    out = dict.fromkeys(
        ("predicted_classes", "top_class_share", "final_balanced_acc", "uninformed_hw")
    )
    out.update(no_update_epochs=None, collapsed=False)
    reasons = []
    probs = Path(metrics_path).with_name("test_probs.npz")
    if probs.exists():
        flags, why = _prediction_flags(probs, num_classes)
        out.update(flags)
        reasons += [why] if why else []
    epochs = Path(metrics_path).with_name("per_epoch.csv")
    if epochs.exists():
        verify(epochs)
        table = pd.read_csv(epochs)
        idle = no_update_epochs(table)
        out["no_update_epochs"] = idle
        if idle is not None and 2 * idle > len(table):
            reasons.append(f"no update in {idle} of {len(table)} epochs")
    out["collapsed"] = bool(reasons)
    out["collapse_reason"] = "; ".join(reasons) or None
    return out


def estimate_reliabilities(paths: Iterable[str | os.PathLike]) -> dict[str, dict]:
    """SHA-256 -> :func:`lnm.noise.estimate.file_reliability` of each estimate file (verified
    against its sidecar): what a run told an estimated noise rate is marked with."""
    out = {}
    for p in paths:
        sha = verify(p)
        out[sha] = file_reliability(load_noise(p, check=False))
    return out


def _estimate_columns(m: dict, path: Path, reliabilities: dict | None) -> dict:
    """``estimate_oof_accuracy`` and ``estimate_unreliable`` of a run told its cell's estimated
    noise rate (metrics.json ``inputs.estimate``); None for the others. The estimate comes from
    ``reliabilities`` (the files the caller gives, by SHA-256) or, when the caller gives none
    (``lnm aggregate``), from the path the run recorded, verified to be the file it read."""
    told = (m.get("inputs") or {}).get("estimate") or {}
    sha = told.get("sha256")
    if sha is None:
        return {"estimate_oof_accuracy": None, "estimate_unreliable": None}
    if reliabilities is None and told.get("path") and Path(told["path"]).exists():
        recorded = Path(told["path"])
        if verify(recorded) == sha:
            reliabilities = estimate_reliabilities([recorded])
    if reliabilities is None or sha not in reliabilities:
        raise ValueError(
            f"{path}: the run was told the noise estimate {told.get('path')} with SHA-256 {sha}, "
            "which is not among the estimate files given to the report (aggregate rule input "
            "'estimates') nor at that path with that hash; give it every estimate file a run "
            "reads"
        )
    rel = reliabilities[sha]
    return {
        "estimate_oof_accuracy": rel["oof_accuracy"],
        "estimate_unreliable": bool(rel["unreliable"]),
    }


def _row(path: Path, reliabilities: dict | None = None) -> dict:
    verify(path)
    m = json.loads(path.read_text())
    sel, inputs = m.get("selection") or {}, m.get("inputs") or {}
    row = {k: m["run"][k] for k in RUN_KEYS}
    row.update({k: m[k] for k in _SCALARS + _METRICS})
    row["realised_rate"] = m["noise_rate_realised"]
    row["realised_rate_val"] = m.get("noise_rate_realised_val")
    row["annotator_disagreement"] = m.get("annotator_disagreement")
    # "n/a": the method reported the set, but the data has no clean labels to score it
    na = [k for k in _SELECTION if sel.get(k) == "n/a"]
    row.update({k: None if k in na else sel.get(k) for k in _SELECTION})
    row["diagnostics_na"] = ",".join(na) or None
    recall = m.get(grid.last_k("per_class_recall"))
    row["per_class_recall"] = json.dumps([round(float(r), 4) for r in recall]) if recall else None
    counts = test_class_counts(path, m["num_classes"])
    row["test_class_counts"] = json.dumps(counts) if counts else None
    row["majority_acc"] = 100.0 * max(counts) / sum(counts) if counts else None
    row.update(collapse_flags(path, m["num_classes"]))
    oracle = m.get("uses_true_noise_rate")
    row["uses_true_noise_rate"] = None if oracle is None else bool(oracle)
    # where the method's noise rate came from (lnm.grid.RATE_SOURCES; None: it needs none)
    row["noise_rate_source"] = m.get("noise_rate_source")
    row["assumed_noise_rate"] = m.get("assumed_noise_rate")
    row["base_method"] = (m.get("spec") or {}).get("base_method") or m["run"]["method"]
    row["eval_view"] = m.get("eval_view")
    row.update(_estimate_columns(m, path, reliabilities))
    for name in ("data", "noise"):
        row[f"{name}_sha256"] = (inputs.get(name) or {}).get("sha256")
    row["metrics_path"] = str(path)
    return row


def collect_runs(
    metrics_paths: Iterable[str | os.PathLike],
    estimates: Iterable[str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """One tidy row per run (columns :data:`COLUMNS`), from checksum-verified ``metrics.json``;
    ``estimates``: the estimate files the runs told an estimated noise rate read (each run's
    ``estimate_unreliable`` comes from its file; a run whose file is not given is refused);
    None: each such run's recorded estimate path, verified against its recorded hash."""
    rel = estimate_reliabilities(estimates) if estimates is not None else None
    df = pd.DataFrame([_row(Path(p), rel) for p in metrics_paths], columns=COLUMNS)
    floats = _SELECTION + ["realised_rate_val", "majority_acc", "estimate_oof_accuracy"]
    for col in floats + ["top_class_share", "final_balanced_acc", "uninformed_hw"]:
        df[col] = pd.to_numeric(df[col]).astype(float)
    df["estimate_unreliable"] = pd.array(
        [pd.NA if v is None or v != v else bool(v) for v in df["estimate_unreliable"]],
        dtype="boolean",
    )
    # unknown (a real-world set without clean labels): NA, never a dagger
    df["identifiable"] = pd.array(
        [pd.NA if v is None or v != v else bool(v) for v in df["identifiable"]], dtype="boolean"
    )
    df["collapsed"] = df["collapsed"].astype(bool)
    for col in ("predicted_classes", "no_update_epochs"):
        df[col] = pd.to_numeric(df[col]).astype("Int64")
    if len(df):
        grid.single_last_k(df["last_k"])  # one table, one k
    dup = df[df.duplicated(RUN_KEYS, keep=False)]
    if len(dup):
        raise ValueError(
            "the same run appears in several metrics files: " + ", ".join(dup["metrics_path"])
        )
    return sort_rows(df, RUN_KEYS + ["metrics_path"])


def write_runs_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """``runs.csv`` alone (:func:`write_tables` writes it with the rest of the rule's tables)."""
    return files.write(path, files.csv(df))


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell (:data:`CELL_KEYS`): mean, std (ddof=1; NaN for one run) and ``n`` over all
    (noise_seed, seed) runs of :data:`SUMMARY_METRICS`; ``identifiable`` = all runs identifiable
    (NA, printed n/a, when a run's data has no clean labels to say);
    ``realised_rate`` = mean realised training noise rate; ``best_group`` = bold (the row's best
    as printed and every method not separable from it, :func:`lnm.report.cells.mark_best`, the
    rule of every table); ``n_collapsed``, ``collapse_reason``, ``uses_true_noise_rate`` and
    ``eval_view`` from the runs (:func:`lnm.report.cells.run_marks`)."""
    agg = {f"{m}_{s}": (m, s) for m in SUMMARY_METRICS for s in ("mean", "std")}
    agg.update(
        n=(HEADLINE, "size"),
        identifiable=("identifiable", all_known),
        realised_rate=("realised_rate", "mean"),
    )
    for col in ("num_test", "num_classes"):
        if col in runs:
            agg[col] = (col, "first")
    out = runs.groupby(CELL_KEYS, sort=False).agg(**agg).reset_index()
    out["identifiable"] = out["identifiable"].astype("boolean")
    out = out.join(run_marks(runs))
    mean, std = f"{HEADLINE}_mean", f"{HEADLINE}_std"
    probe = uncertainty(out.rename(columns={mean: "mean", std: "std"}))
    out["best_group"] = mark_best(probe)["best_group"]
    out = out.drop(columns=["num_test"], errors="ignore")
    return sort_rows(out, ["dataset", "backbone", "noise", "rate", "method"])


def ranking(runs: pd.DataFrame, metric: str = HEADLINE) -> pd.DataFrame:
    """The paper's aggregation: per method (index), the mean headline accuracy (or ``metric``)
    over *all* runs (datasets × rates × seeds) of each noise pattern except ``none`` (one column
    per pattern), and ``overall`` = unweighted mean of the pattern columns; sorted by
    ``overall`` descending."""
    noisy = noisy_rows(runs)
    table = noisy.pivot_table(index="method", columns="noise", values=metric, aggfunc="mean")
    table = table[ordered(table.columns, grid.PATTERNS)]
    table["overall"] = table.mean(axis=1)
    table.columns.name = None
    table = table.reset_index()
    table = table.sort_values(["overall", "method"], ascending=[False, True], kind="mergesort")
    return table.set_index("method")


def _run_columns(view: pd.DataFrame, flagged: pd.DataFrame, cols: list[str]) -> None:
    """``collapsed_<column>`` per column and the noisy runs' ``n_runs``, ``n_collapsed``,
    ``uses_true_noise_rate`` and ``eval_view`` of each method, added to ``view``."""
    g = flagged.groupby("method")
    per = flagged.groupby(["method", "noise"])["collapsed"].sum()
    for c in cols:
        if c == "overall":
            hit = g["collapsed"].sum()
        else:
            hit = per.xs(c, level="noise") if c in per.index.get_level_values("noise") else None
        view[f"collapsed_{c}"] = (
            hit.reindex(view.index).fillna(0).astype(int) if hit is not None else 0
        )
    bal_order = view["balanced_overall"].rank(ascending=False, method="min")
    view["rank_overall"] = np.arange(1, len(view) + 1)
    view["rank_balanced_overall"] = bal_order.astype("Int64")
    view["n_runs"] = g.size().reindex(view.index).fillna(0).astype(int)
    view["n_collapsed"] = g["collapsed"].sum().reindex(view.index).fillna(0).astype(int)
    view["uses_true_noise_rate"] = g["uses_true_noise_rate"].any().reindex(view.index)
    view["eval_view"] = (
        g["eval_view"]
        .agg(lambda v: " / ".join(sorted({str(x) for x in v.dropna()})) or None)
        .reindex(view.index)
    )


def ranking_view(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``ranking.csv``: the paper's ranking (:func:`ranking`, numbers and order unchanged) with,
    per pattern column and overall, the balanced accuracy by the same arithmetic
    (``balanced_<column>``), the rank group (``group_<column>``: letters from
    :func:`lnm.report.ranks.rank_analysis` over that pattern's noisy cells — methods sharing a
    letter are not separable), the collapsed runs among that column's runs
    (``collapsed_<column>``), the position by the headline and by balanced accuracy overall
    (``rank_overall``, ``rank_balanced_overall``; 1 = best, ties share the best position), the
    noisy runs and how many collapsed (``n_runs``, ``n_collapsed``), ``uses_true_noise_rate``
    (any noisy run) and ``eval_view``. Also returns what the rendering says: the resolution,
    its decimals and the per-column rank analyses."""
    rank = ranking(runs)
    cols = list(rank.columns)
    bal = ranking(runs, grid.last_k("balanced_acc")).reindex(rank.index)
    view = rank.copy()
    for c in cols:
        view[f"balanced_{c}"] = bal[c] if c in bal else np.nan
    cells = cell_table(runs)
    analyses = {}
    for c in cols:
        sub = cells if c == "overall" else cells[cells["noise"] == c]
        analyses[c] = rank_analysis(sub)
        view[f"group_{c}"] = [analyses[c]["groups"].get(m, "") for m in view.index]
    flagged = run_flags(noisy_rows(runs))
    _run_columns(view, flagged, cols)
    noisy_cells = noisy_rows(cells)
    res = pooled_resolution(noisy_cells)
    meta = {
        "columns": cols,
        "resolution": res,
        "digits": resolved_digits(res),
        "analyses": analyses,
        "chance": noisy_cells.groupby("dataset", sort=False)["chance"].first(),
        "runs": flagged,
    }
    return view, meta


# ---------------------------------------------------------------- renderings


def summary_title(k: int, n=(2,)) -> str:
    """What the per-cell summary shows; ``k`` = the ``last_k`` its headline averages, ``n`` =
    the runs per cell (one run: no "± std")."""
    return (
        f"{grid.headline_text(k)} / balanced accuracy (%), {spread_text(n)}; bold = best and "
        "not separable from it"
    )


def summary_tables(summary: pd.DataFrame, title: str) -> list[Table]:
    """The per-cell summary (:func:`summarize`) as :class:`Table` objects, one per dataset and
    backbone: rows (noise, rate), columns methods, each cell ``accuracy [± std] / balanced
    accuracy``, bold = ``best_group`` (the rule of every table), † = not identifiable, ⊘ =
    collapsed runs, ᵒ = oracle noise rate."""
    mean, std = f"{HEADLINE}_mean", f"{HEADLINE}_std"
    bal = f"{grid.last_k('balanced_acc')}_mean"
    cells = summary.rename(columns={mean: "mean", std: "std"})
    if "best_group" not in cells:
        cells["best_group"] = mark_best(uncertainty(cells))["best_group"]

    def fmt(r):
        b = r[bal] if bal in r else np.nan
        return f"{mean_std(r['mean'], r['std'])} / {num(b)}", bool(r["best_group"])

    notes = [
        "Each cell: test accuracy [± std] / balanced accuracy (mean per-class recall): a method "
        "that gains accuracy by predicting the majority class loses balanced accuracy.",
        BOLD_NOTE.replace(" (±test)", " (±test in cells.*)"),
    ]
    return grid_tables(cells, fmt, title, notes, view=True)


def summary_markdown(summary: pd.DataFrame, k: int) -> str:
    """``summary.md``: :func:`summary_tables` in Markdown, under a heading that says what the
    cells show (``k`` = the headline's ``last_k``; "± std" only where cells have several runs)."""
    heading = (
        sentence(grid.headline_text(k)) + f" / balanced accuracy (%), {spread_text(summary['n'])}"
    )
    return to_markdown(summary_tables(summary, title=""), heading)


def ranking_bold(view: pd.DataFrame, column: str, digits: int) -> pd.Series:
    """Per method, whether the ranking table bolds its value in ``column``: the column's best
    as printed among the methods without collapsed runs in that column, and every such method
    sharing a group letter with it. A method with collapsed runs there (``collapsed_<column>``)
    is never bold: its mean is partly that of predictions without class information."""
    vals = view[column]
    ok = (view.get(f"collapsed_{column}", pd.Series(0, index=view.index)) <= 0) & vals.notna()
    if not ok.any():
        return pd.Series(False, index=view.index)
    printed = vals.map(lambda v: shown(v, digits)).where(ok)
    best = printed == printed.max()
    letters = set("".join(view.loc[best, f"group_{column}"]))
    shares = pd.Series([bool(letters & set(g)) for g in view[f"group_{column}"]], view.index)
    return (best | shares) & ok


def _ranking_row(m: str, r, meta: dict, tops: dict) -> tuple[list[str], list[bool]]:
    """One method's row of the ranking table and its bold flags."""
    cols, digits = meta["columns"], meta["digits"]
    row = [
        oracle_label(m, oracle_methods(meta["runs"]))
        + (f" {COLLAPSED}" if r["n_collapsed"] else "")
    ]
    b = [False]
    for c in cols:
        mark = f" {COLLAPSED}" if r.get(f"collapsed_{c}", 0) else ""
        row.append(f"{num(r[c], digits)} {r[f'group_{c}']}".rstrip() + mark)
        b.append(bool(np.isfinite(r[c]) and tops[c][m]))
    row += [num(r[f"balanced_{c}"], digits) for c in cols]
    rank_bal = r["rank_balanced_overall"]
    row.append(f"{int(r['rank_overall'])} / " + ("–" if pd.isna(rank_bal) else f"{rank_bal}"))
    row.append(f"{COLLAPSED}{r['n_collapsed']}/{r['n_runs']}" if r["n_collapsed"] else "0")
    return row, b + [False] * (len(cols) + 2)


def _ranking_notes(meta: dict) -> list[str]:
    res, digits, runs = meta["resolution"], meta["digits"], meta["runs"]
    chance = ", ".join(f"{d} {num(v)} %" for d, v in meta["chance"].items())
    notes = [
        "Per pattern: mean headline accuracy (%) over all runs (datasets × rates × seeds) of that "
        "pattern; overall = unweighted mean of the pattern columns present; sorted by overall "
        "(the LNMBench paper's arithmetic, ranking.csv keeps every digit). Balanced accuracy "
        "(mean per-class recall) by the same arithmetic beside it, and the position by overall "
        "accuracy / by overall balanced accuracy: accuracy alone rewards a method that predicts "
        "the majority class.",
        f"Rounded to {digits} decimal(s): the test sets resolve about ±{num(res)} points "
        f"({RESOLUTION_WHY}); smaller differences are not resolved by these data."
        if np.isfinite(res)
        else "Test-set resolution unknown (no test size): printed to two decimals.",
        "Letters = rank groups per column (average ranks over that pattern's noisy cells): "
        "methods sharing a letter are not separable. " + _groups_summary(meta["analyses"]),
        "Bold = the column's best as printed among the methods without collapsed runs in that "
        f"column, and every such method sharing a group letter with it. {COLLAPSED} after a "
        "value = the method has collapsed runs among that column's runs: its position there is "
        "partly that of predictions without class information, never a success.",
        f"The datasets averaged here have different chance levels (majority class: {chance}); "
        "the ranking figures show each dataset separately.",
    ]
    if two_class_pairflip(runs) and "pairflip" in meta["columns"]:
        notes.append(PAIRFLIP_TWO_NOTE)
    marks = (collapse_note(runs), oracle_note(runs), unreliable_note(runs), view_note(runs))
    return notes + [n for n in marks if n]


def ranking_tables(view: pd.DataFrame, meta: dict) -> list[Table]:
    """The paper's ranking (:func:`ranking_view`) as a :class:`Table`: per column the mean
    accuracy with its rank-group letters (⊘ where the method has collapsed runs among that
    column's runs), then balanced accuracy and the position by it, collapsed runs; numbers
    rounded to what the test sets resolve; bold = :func:`ranking_bold`."""
    cols = meta["columns"]
    tops = {c: ranking_bold(view, c, meta["digits"]) for c in cols}
    rows, bold = [], []
    for m, r in view.iterrows():
        row, b = _ranking_row(m, r, meta, tops)
        rows.append(row)
        bold.append(b)
    head = ["method", *cols, *(f"bal. acc {c}" for c in cols), "position acc / bal. acc"]
    return [
        Table(
            "Ranking per noise pattern (the paper's figure 2), with balanced accuracy and rank "
            "groups",
            head + ["collapsed runs"],
            rows,
            bold,
            align="l" + "r" * (2 * len(cols) + 2),
            notes=_ranking_notes(meta),
        )
    ]


def _groups_summary(analyses: dict) -> str:
    """Per column, what separates the groups: the Friedman p and the Nemenyi CD."""
    parts = []
    for c, ra in analyses.items():
        fr = ra["friedman"]
        if not ra["groups"]:
            parts.append(f"{c}: n/a (no cell with every method)")
        elif not ra["separable"]:
            p = p_is(fr["pvalue"]) if np.isfinite(fr["pvalue"]) else (fr["note"] or "n/a")
            parts.append(f"{c}: Friedman {p}, so one group (a): not separable")
        else:
            parts.append(
                f"{c}: Friedman {p_is(fr['pvalue'])}, Nemenyi CD = {ra['cd']:.1f} ranks over "
                f"{ra['n']} cells"
            )
    return "; ".join(parts) + "."


def write_tables(runs: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write every table of the aggregate rule (``lnm.grid.TABLES["aggregate"]``) into
    ``out_dir``: ``runs.csv``, ``summary.csv``/``.md``/``.tex``/``.html``, ``ranking.csv``/
    ``.html``; return name -> path."""
    k = runs_last_k(runs)
    summary = summarize(runs)
    view, meta = ranking_view(runs)
    title = summary_title(k, summary["n"])
    tables = summary_tables(summary, title)
    head = "Per-cell results: " + title
    return files.write_rule_tables(
        "aggregate",
        out_dir,
        {
            "runs.csv": files.csv(na_text(runs, ["identifiable", "estimate_unreliable"])),
            "summary.csv": files.csv(na_text(summary, ["identifiable"])),
            "summary.md": summary_markdown(summary, k),
            "summary.tex": to_latex(tables, "summary"),
            "summary.html": to_html(tables, head),
            "ranking.csv": files.csv(view, index=True),
            "ranking.html": to_html(ranking_tables(view, meta), "Method ranking"),
        },
    )
