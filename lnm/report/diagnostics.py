"""The diagnostics rule: the per-epoch curves of every run in one table (``per_epoch.csv``), and
per-cell tables (``selection.*``) of each run's last-k-epoch mean clean ratio, coverage,
purified ratio, GMM AUC and transition-matrix error (k = the run table's ``last_k``).

Definitions (scored by the trainer against the clean mask, see ``lnm.train.trainer``):
clean ratio = |selected ∩ clean| / |selected| (precision), coverage = |selected ∩ clean| /
|clean| (recall), purified ratio = share of relabelled samples whose new label is the clean one,
T error = ‖T̂ − T‖₁ / ‖T‖₁ against the empirical transition matrix of the noise file.
Given the estimation stage's estimates, cleanlab's trusted set (the samples it does not flag as
label issues) is scored the same way and shown as a row of each noisy cell
(:func:`lnm.report.estimation.detection_rows`).

An epoch without a parameter update (the trainer writes a NaN ``train_loss``, or ``updates`` = 0
where it writes that column) is ``no_update`` in ``per_epoch.csv``, never a silent NaN; its
selection diagnostics are NaN because nothing was selected. Runs flagged ``collapsed`` in the
run table carry the flag into ``per_epoch.csv`` and are marked ⊘ in the tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lnm import grid
from lnm.checksum import verify
from lnm.grid import CELL_KEYS, RUN_KEYS
from lnm.report import files
from lnm.report.aggregate import no_update
from lnm.report.cells import grid_tables, joined, mark_best, noisy_rows, run_marks
from lnm.report.estimation import DETECTION_NOTE, detection_rows
from lnm.report.fmt import (
    collapse_mark,
    collapse_note,
    mean_std,
    run_flags,
    runs_last_k,
    sort_rows,
    spread_text,
)
from lnm.report.render import Table, to_html, to_markdown

#: Per-epoch columns kept in ``per_epoch.csv`` (absent ones are NaN for that run).
EPOCH_COLUMNS = [
    "train_loss",
    "no_update",
    "test_acc",
    "val_acc",
    "val_acc_clean",
    "clean_ratio",
    "coverage",
    "selected_frac",
    "purified_ratio",
    "corrected_frac",
    "t_error",
    "gmm_auc",
]
#: Diagnostics in ``runs.csv`` (each run's mean of its last ``last_k`` epochs) summarised per cell.
DIAGNOSTICS = {
    "clean_ratio": "clean ratio (%)",
    "coverage": "coverage (%)",
    "purified_ratio": "purified ratio (%)",
    "gmm_auc": "GMM AUC",
    "t_error": "T error (rel. L1)",
}


def transition_methods(runs: pd.DataFrame) -> set[str]:
    """The methods of ``runs`` (``method_variants`` names included: a variant is its method)
    whose method estimates a transition matrix (its class's trait, ``lnm.grid.method_info``)."""
    pairs = set(zip(runs["method"], runs["base_method"]))
    return {m for m, b in pairs if grid.method_info(b).estimates_transition}


def collect_epochs(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's ``per_epoch.csv`` (next to its ``metrics.json``, verified) with the run keys:
    one row per run and epoch (``epoch`` 1-based), columns :data:`EPOCH_COLUMNS` (``no_update``
    = the epoch made no parameter update, :func:`lnm.report.aggregate.no_update`), the run's
    ``collapsed`` flag, its realised training noise rate (``realised_rate``: NaN without clean
    labels) and the diagnostics that are n/a for want of clean labels (``diagnostics_na``)."""
    frames = []
    flagged = run_flags(runs)
    for _, run in flagged.iterrows():
        path = Path(run["metrics_path"]).with_name("per_epoch.csv")
        verify(path)
        raw = pd.read_csv(path)
        df = raw.reindex(columns=["epoch"] + EPOCH_COLUMNS)
        idle = no_update(raw)  # the run table's rule (no_update_epochs)
        df["no_update"] = idle.to_numpy() if idle is not None else False
        df["epoch"] = df["epoch"].astype(int) + 1
        for k in reversed(RUN_KEYS):
            df.insert(0, k, run[k])
        df["collapsed"] = bool(run["collapsed"])
        df["realised_rate"] = run.get("realised_rate", np.nan)
        df["diagnostics_na"] = run.get("diagnostics_na")
        frames.append(df)
    cols = RUN_KEYS + ["epoch"] + EPOCH_COLUMNS + ["collapsed", "realised_rate", "diagnostics_na"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)[cols]
    for c in EPOCH_COLUMNS:
        if c != "no_update":
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    out["no_update"] = out["no_update"].astype(bool)
    out["collapsed"] = out["collapsed"].astype(bool)
    out["realised_rate"] = pd.to_numeric(out["realised_rate"], errors="coerce").astype(float)
    return sort_rows(out, RUN_KEYS + ["epoch"])


def diagnostic_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per noisy cell and method with any diagnostic: mean, std and n over seeds of each of
    :data:`DIAGNOSTICS` (each run's mean of its last ``last_k`` epochs)."""
    noisy = noisy_rows(runs)
    cols = [c for c in DIAGNOSTICS if c in noisy]
    na = (
        noisy["diagnostics_na"].fillna("").astype(str)
        if "diagnostics_na" in noisy
        else pd.Series("", index=noisy.index)
    )
    has = noisy[noisy[cols].notna().any(axis=1) | na.ne("")] if cols else noisy.iloc[:0]
    if has.empty:
        return pd.DataFrame(
            columns=CELL_KEYS
            + ["n", "na"]
            + [f"{c}_{s}" for c in DIAGNOSTICS for s in ("mean", "std")]
        )
    agg = {f"{c}_{s}": (c, s) for c in cols for s in ("mean", "std")}
    has = has.assign(na=na[has.index])
    out = (
        has.groupby(CELL_KEYS, sort=False)
        .agg(n=("seed", "size"), na=("na", lambda s: joined(s, ",")), **agg)
        .reset_index()
    )
    marks = run_marks(has)[["n_collapsed", "collapse_reason"]]
    out = out.join(marks)
    return sort_rows(out, ["dataset", "backbone", "noise", "rate", "method"])


SELECTION_NOTE = (
    "clean ratio = precision of the selected set against the clean mask; coverage = recall of "
    "the truly clean samples; purified ratio = share of relabelled samples whose new label is "
    "the clean one; GMM AUC = AUC of the clean probability (DivideMix) against the clean mask."
)
NO_CLEAN_NOTE = (
    "n/a: the dataset has no clean training labels (real-world noise, e.g. CheXpert), so the "
    "selected or corrected sets cannot be scored."
)
BELOW_CHANCE_NOTE = (
    "✗ GMM AUC below 0.5 (chance): the clean probability ranks the noisy samples above the "
    "clean ones, so the selection keeps the wrong samples."
)


def _diagnostic_text(r, c: str) -> str:
    if c in str(r.get("na") or "").split(","):
        return "n/a"
    out = mean_std(r[f"{c}_mean"], r[f"{c}_std"], 3 if c == "gmm_auc" else 1)
    return out + (" ✗" if c == "gmm_auc" and r[f"{c}_mean"] < 0.5 else "")


def _selection_table(sel: pd.DataFrame, show: list[str], k: int) -> Table:
    """The diagnostics ``show`` of the cells ``sel``, one row per cell and method."""
    rows = [
        [r["dataset"], r["noise"], f"{r['rate']:g}", r["method"]]
        + [str(r["n"]) + collapse_mark(r.get("n_collapsed", 0), r["n"])]
        + [_diagnostic_text(r, c) for c in show]
        for _, r in sel.iterrows()
    ]
    notes = [SELECTION_NOTE]
    if (sel["na"].fillna("") != "").any():
        notes.append(NO_CLEAN_NOTE)
    if "gmm_auc" in show and (sel["gmm_auc_mean"] < 0.5).any():
        notes.append(BELOW_CHANCE_NOTE)
    notes += [n for n in (collapse_note(sel),) if n]
    notes += [DETECTION_NOTE] if (sel["method"] == grid.DETECTION).any() else []
    return Table(
        f"Sample selection and label correction: each run's {grid.last_k_text(k)}, "
        f"{_spread(sel['n'])}",
        ["dataset", "noise", "rate", "method", "runs"] + [DIAGNOSTICS[c] for c in show],
        rows,
        align="llrlr" + "r" * len(show),
        notes=notes,
    )


def selection_render(diag: pd.DataFrame, k: int, transition=()) -> list[Table]:
    """Long table of the selection diagnostics and the T-error matrix table of the methods
    ``transition`` (:func:`transition_methods`); ``k`` = the ``last_k`` each run's diagnostics
    average."""
    if diag.empty:
        none = (
            "no method in this grid reports selection or transition-matrix diagnostics on a "
            "noisy cell"
        )
        return [Table.note(f"Selection diagnostics ({grid.last_k_text(k)})", none)]
    na = diag["na"].fillna("").astype(str) if "na" in diag else pd.Series("", index=diag.index)
    have = {
        c: diag[f"{c}_mean"].notna() | na.str.split(",").map(lambda v, c=c: c in v)
        for c in DIAGNOSTICS
        if c != "t_error" and f"{c}_mean" in diag
    }
    show = [c for c, h in have.items() if h.any()]
    sel = diag[pd.concat([have[c] for c in show], axis=1).any(axis=1)] if show else diag.iloc[:0]
    tables = [_selection_table(sel, show, k)] if len(sel) else []
    return tables + t_error_render(diag, k, transition)


def t_error_render(diag: pd.DataFrame, k: int, transition=()) -> list[Table]:
    t = diag[diag["method"].isin(transition)] if "t_error_mean" in diag else diag.iloc[:0]
    t = t[t["t_error_mean"].notna()] if len(t) else t
    if t.empty:
        names = ", ".join(m for m, i in grid.method_catalog().items() if i.estimates_transition)
        return [
            Table.note(
                "Transition-matrix estimation error",
                f"n/a: no transition-matrix method ({names}) in this grid",
            )
        ]
    # lower is better; the best as printed (3 decimals), by the rule of every table
    t = t.assign(best=mark_best(t, "t_error_mean", digits=3, lower_is_better=True)["best"])
    return grid_tables(
        t,
        lambda r: (mean_std(r["t_error_mean"], r["t_error_std"], 3), bool(r["best"])),
        f"transition-matrix estimation error ‖T̂ − T‖₁ / ‖T‖₁ ({grid.last_k_text(k)}, "
        f"{_spread(t['n'])}; lower is better)",
        [
            "T = the empirical transition matrix of the training labels (counts of clean → noisy "
            "in the noise file), row-normalised; for instance-dependent noise it is the average "
            "over samples, so a class-conditional T̂ cannot reach 0 there. Bold = the lowest "
            "error as printed (no interval is computed for T̂)."
        ],
        value="t_error_mean",
    )


def _spread(n) -> str:
    """What a diagnostics cell is: "one run per cell" or "mean ± std over the runs"."""
    return spread_text(n).replace("; a lone value = a cell with one run, no std", "")


def with_detection(diag: pd.DataFrame, estimates: pd.DataFrame | None) -> pd.DataFrame:
    """``diag`` (:func:`diagnostic_cells`) with cleanlab's trusted set per noisy cell appended
    (:func:`lnm.report.estimation.detection_rows` of ``estimates``, the estimation stage's
    ``estimates.csv``), in the same row order; ``diag`` itself without estimates."""
    det = detection_rows(estimates) if estimates is not None else None
    if det is None or det.empty:
        return diag
    cols = list(diag.columns) + [c for c in det.columns if c not in diag.columns]
    both = pd.concat([f for f in (diag, det) if len(f)], ignore_index=True).reindex(columns=cols)
    return sort_rows(both, ["dataset", "backbone", "noise", "rate", "method"])


def write_diagnostics(
    runs: pd.DataFrame, out_dir: str | os.PathLike, estimates: pd.DataFrame | None = None
) -> dict[str, Path]:
    """Every table of ``lnm.grid.TABLES["diagnostics"]``: ``per_epoch.csv`` (all curves),
    ``selection.csv`` (per-cell diagnostics), ``selection.md`` and ``selection.html``; with
    ``estimates`` (the estimation stage's ``estimates.csv``) cleanlab's trusted set is a row
    of each noisy cell beside the methods' selected sets (:func:`with_detection`)."""
    k = runs_last_k(runs)
    epochs = collect_epochs(runs)
    diag = with_detection(diagnostic_cells(runs), estimates)
    tables = selection_render(diag, k, transition_methods(runs))
    head = "Selection diagnostics and transition-matrix error"
    return files.write_rule_tables(
        "diagnostics",
        out_dir,
        {
            "per_epoch.csv": files.csv(epochs, float_format="%.6g"),
            "selection.csv": files.csv(diag, float_format="%.6g"),
            "selection.md": to_markdown(tables, head),
            "selection.html": to_html(tables, head),
        },
    )
