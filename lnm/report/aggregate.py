"""The aggregate rule: per-run ``metrics.json`` files into the run table, the per-cell summary
and the paper's ranking, with their renderings.

- :func:`collect_runs` (``runs.csv``): one tidy row per run (:data:`COLUMNS`), with its
  ``last_k`` (every ``*_last_k`` metric averages that many epochs; one table, one k);
- :func:`summarize` (``summary.csv``) and :func:`summary_tables` (``summary.md``/``.tex``/
  ``.html``): headline mean ± std over seeds per cell, the paper's table;
- :func:`ranking` (``ranking.csv``) and :func:`ranking_tables` (``ranking.html``): the paper's
  ranking, mean headline per noise pattern and overall;
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
from lnm.grid import CELL_KEYS, HEADLINE, RUN_KEYS, ordered
from lnm.report import files
from lnm.report.cells import grid_tables
from lnm.report.fmt import num, runs_last_k, sentence, sort_rows
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
COLUMNS = (
    RUN_KEYS
    + _SCALARS
    + ["realised_rate", "realised_rate_val"]
    + _METRICS
    + _SELECTION
    + _CLASSES
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


def _row(path: Path) -> dict:
    verify(path)
    m = json.loads(path.read_text())
    sel, inputs = m.get("selection") or {}, m.get("inputs") or {}
    row = {k: m["run"][k] for k in RUN_KEYS}
    row.update({k: m[k] for k in _SCALARS + _METRICS})
    row["realised_rate"] = m["noise_rate_realised"]
    row["realised_rate_val"] = m.get("noise_rate_realised_val")
    row.update({k: sel.get(k) for k in _SELECTION})
    recall = m.get(grid.last_k("per_class_recall"))
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
    return sort_rows(df, RUN_KEYS + ["metrics_path"])


def write_runs_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """``runs.csv`` alone (:func:`write_tables` writes it with the rest of the rule's tables)."""
    return files.write(path, files.csv(df))


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
    return sort_rows(out, ["dataset", "backbone", "noise", "rate", "method"])


def ranking(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper's aggregation: per method (index), the mean headline accuracy over *all* runs
    (datasets × rates × seeds) of each noise pattern except ``none`` (one column per pattern),
    and ``overall`` = unweighted mean of the pattern columns; sorted by ``overall`` descending."""
    noisy = runs[runs["noise"] != "none"]
    table = noisy.pivot_table(index="method", columns="noise", values=HEADLINE, aggfunc="mean")
    table = table[ordered(table.columns, grid.PATTERNS)]
    table["overall"] = table.mean(axis=1)
    table.columns.name = None
    table = table.reset_index()
    table = table.sort_values(["overall", "method"], ascending=[False, True], kind="mergesort")
    return table.set_index("method")


# ---------------------------------------------------------------- renderings


def summary_title(k: int) -> str:
    """What the per-cell summary shows; ``k`` = the ``last_k`` its headline averages."""
    return f"{grid.headline_text(k)}, mean ± std over seeds; best per row in bold"


def summary_tables(summary: pd.DataFrame, title: str) -> list[Table]:
    """The per-cell summary (:func:`summarize`) as :class:`Table` objects, one per dataset and
    backbone: rows (noise, rate), columns methods, headline ``mean ± std`` over seeds, best mean
    per row in bold (compared at the printed precision), † = not identifiable."""
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


def summary_markdown(summary: pd.DataFrame, k: int) -> str:
    """``summary.md``: :func:`summary_tables` in Markdown, under a heading that says what the
    headline averages (``k`` = its ``last_k``)."""
    heading = sentence(grid.headline_text(k)) + ", mean ± std over seeds"
    return to_markdown(summary_tables(summary, title=""), heading)


def ranking_tables(rank: pd.DataFrame) -> list[Table]:
    """The paper's ranking (:func:`ranking`) as a :class:`Table`."""
    cols = list(rank.columns)
    rows = [[m] + [num(v, 2) for v in r] for m, r in zip(rank.index, rank.to_numpy())]
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


def write_tables(runs: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write every table of the aggregate rule (``lnm.grid.TABLES["aggregate"]``) into
    ``out_dir``: ``runs.csv``, ``summary.csv``/``.md``/``.tex``/``.html``, ``ranking.csv``/
    ``.html``; return name -> path."""
    k = runs_last_k(runs)
    summary, rank = summarize(runs), ranking(runs)
    tables = summary_tables(summary, summary_title(k))
    head = "Per-cell results: " + summary_title(k)
    return files.write_rule_tables(
        "aggregate",
        out_dir,
        {
            "runs.csv": files.csv(runs),
            "summary.csv": files.csv(summary),
            "summary.md": summary_markdown(summary, k),
            "summary.tex": to_latex(tables, "summary"),
            "summary.html": to_html(tables, head),
            "ranking.csv": files.csv(rank, index=True),
            "ranking.html": to_html(ranking_tables(rank), "Method ranking"),
        },
    )
