"""Collect per-run ``metrics.json`` files into tidy tables: runs, per-cell summary, ranking.

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
from lnm.checksum import artifact, verify
from lnm.grid import ordered

#: Canonical method order (display order from lnm.grid); unknown names sort after these.
METHODS = grid.methods()
#: Canonical noise-pattern order; ``none`` is the clean ceiling.
NOISES = grid.PATTERNS
RUN_KEYS, CELL_KEYS, HEADLINE = grid.RUN_KEYS, grid.CELL_KEYS, grid.HEADLINE
#: Metrics summarised per cell as ``<metric>_mean`` / ``<metric>_std``.
SUMMARY_METRICS = [HEADLINE, "test_acc_best_val", "balanced_acc_last_k", "macro_f1_last_k"]

_SCALARS = ["identifiable", "num_classes", "num_test", "last_k"]
_METRICS = [
    HEADLINE,
    "test_acc_best_val",
    "best_val_epoch",
    "balanced_acc_last_k",
    "macro_f1_last_k",
    "auc_last_k",
    "ece_last_k",
    "nll_last_k",
]
_SELECTION = ["clean_ratio", "coverage", "purified_ratio", "t_error", "gmm_auc"]
#: Class-level columns: per-class test recall (JSON list, %, last-k mean), test-set class counts
#: (JSON list, from the labels in the run's ``test_probs.npz``) and the majority-class rate (%).
_CLASSES = ["per_class_recall", "test_class_counts", "majority_acc"]
COLUMNS = (
    RUN_KEYS
    + _SCALARS
    + ["realised_rate", "realised_rate_val"]
    + _METRICS
    + _SELECTION
    + _CLASSES
    + ["data_sha256", "noise_sha256", "metrics_path"]
)

DAGGER_NOTE = (
    "† Not identifiable: at this noise pattern and rate the true class is no longer "
    "the most likely noisy label for at least one class, so the clean labels cannot "
    "be recovered from the noisy ones even in principle; accuracies there are not "
    "comparable with identifiable rows."
)


def _sort(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort by ``by`` with methods and noise patterns in canonical (not alphabetical) order."""
    rank = {"method": METHODS, "noise": NOISES}

    def key(col: pd.Series) -> pd.Series:
        if col.name in rank:
            return col.map({v: i for i, v in enumerate(ordered(col, rank[col.name]))})
        return col

    return df.sort_values(by, key=key, kind="mergesort").reset_index(drop=True)


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


def _row(path: Path) -> dict:
    verify(path)
    m = json.loads(path.read_text())
    sel, inputs = m.get("selection") or {}, m.get("inputs") or {}
    row = {k: m["run"][k] for k in RUN_KEYS}
    row.update({k: m[k] for k in _SCALARS + _METRICS})
    row["realised_rate"] = m["noise_rate_realised"]
    row["realised_rate_val"] = m.get("noise_rate_realised_val")
    row.update({k: sel.get(k) for k in _SELECTION})
    recall = m.get("per_class_recall_last_k")
    row["per_class_recall"] = json.dumps([round(float(r), 4) for r in recall]) if recall else None
    counts = test_class_counts(path, m["num_classes"])
    row["test_class_counts"] = json.dumps(counts) if counts else None
    row["majority_acc"] = 100.0 * max(counts) / sum(counts) if counts else None
    for name in ("data", "noise"):
        row[f"{name}_sha256"] = (inputs.get(name) or {}).get("sha256")
    row["metrics_path"] = str(path)
    return row


def collect_runs(metrics_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One tidy row per run (columns :data:`COLUMNS`), from checksum-verified ``metrics.json``."""
    df = pd.DataFrame([_row(Path(p)) for p in metrics_paths], columns=COLUMNS)
    for col in _SELECTION + ["realised_rate_val", "majority_acc"]:
        df[col] = pd.to_numeric(df[col]).astype(float)
    df["identifiable"] = df["identifiable"].astype(bool)
    if len(df):
        grid.single_last_k(df["last_k"])  # one table, one k
    dup = df[df.duplicated(RUN_KEYS, keep=False)]
    if len(dup):
        raise ValueError(
            "the same run appears in several metrics files: " + ", ".join(dup["metrics_path"])
        )
    return _sort(df, RUN_KEYS + ["metrics_path"])


def _write_csv(df: pd.DataFrame, path: str | os.PathLike, index: bool = False) -> Path:
    with artifact(path) as tmp:
        df.to_csv(tmp, index=index)
    return Path(path)


def write_runs_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    return _write_csv(df, path)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell (:data:`CELL_KEYS`): mean, std (ddof=1; NaN for one run) and ``n`` over all
    (noise_seed, seed) runs of :data:`SUMMARY_METRICS`; ``identifiable`` = all runs identifiable;
    ``realised_rate`` = mean realised training noise rate."""
    agg = {f"{m}_{s}": (m, s) for m in SUMMARY_METRICS for s in ("mean", "std")}
    agg.update(
        n=(HEADLINE, "size"),
        identifiable=("identifiable", "all"),
        realised_rate=("realised_rate", "mean"),
    )
    out = runs.groupby(CELL_KEYS, sort=False).agg(**agg).reset_index()
    return _sort(out, ["dataset", "backbone", "noise", "rate", "method"])


def summary_markdown(summary: pd.DataFrame) -> str:
    """Markdown tables (one per dataset and backbone) of headline ``mean ± std`` over seeds:
    rows = (noise, rate), columns = methods, best mean per row in bold, † = not identifiable.
    The same tables as ``summary.tex``/``summary.html`` (:func:`lnm.report.tables.summary_tables`)."""
    from lnm.report.render import to_markdown
    from lnm.report.tables import summary_tables  # tables builds on this module

    return to_markdown(
        summary_tables(summary, title=""),
        "Test accuracy (%), mean of the last 5 epochs, mean ± std over seeds",
    )


def ranking(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper's aggregation: per method (index), the mean headline accuracy over *all* runs
    (datasets × rates × seeds) of each noise pattern except ``none`` (one column per pattern),
    and ``overall`` = unweighted mean of the pattern columns; sorted by ``overall`` descending."""
    noisy = runs[runs["noise"] != "none"]
    table = noisy.pivot_table(index="method", columns="noise", values=HEADLINE, aggfunc="mean")
    table = table[ordered(table.columns, NOISES)]
    table["overall"] = table.mean(axis=1)
    table.columns.name = None
    table = table.reset_index()
    table = table.sort_values(["overall", "method"], ascending=[False, True], kind="mergesort")
    return table.set_index("method")


def write_tables(runs: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``summary.csv``, ``summary.md`` and ``ranking.csv`` into ``out_dir``."""
    out = Path(out_dir)
    summary = summarize(runs)
    paths = {
        "summary.csv": _write_csv(summary, out / "summary.csv"),
        "ranking.csv": _write_csv(ranking(runs), out / "ranking.csv", index=True),
    }
    with artifact(out / "summary.md") as tmp:
        tmp.write_text(summary_markdown(summary))
    paths["summary.md"] = out / "summary.md"
    return paths
