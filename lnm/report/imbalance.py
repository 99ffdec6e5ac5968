"""The imbalance view (``imbalance.csv``, ``imbalance.html``): on the imbalanced datasets
(largest test class ≥ :data:`lnm.report.cells.IMBALANCE_RATIO` × the smallest), accuracy next
to balanced accuracy and macro-F1 per method, with the rank under each."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lnm import grid
from lnm.grid import ordered
from lnm.report import stats
from lnm.report.cells import IMBALANCE_RATIO, grid_tables, mark_best, noisy_rows
from lnm.report.fmt import collapse_mark, collapse_note, num, oracle_label, oracle_methods
from lnm.report.render import Table

_METRICS = ("acc", "balanced_acc", "macro_f1")


IMBALANCE_COLUMNS = ["dataset", "backbone", "method", "cells", "n_cells", "acc", "balanced_acc"]
IMBALANCE_COLUMNS += ["macro_f1", "rank_acc", "rank_balanced_acc", "rank_macro_f1", "num_test"]
IMBALANCE_COLUMNS += ["n_runs", "n_collapsed", "min_predicted_classes", "uses_true_noise_rate"]


def _method_means(dataset: str, backbone: str, ds: pd.DataFrame) -> list[dict]:
    """The rows of :func:`imbalance_table` of one dataset and backbone (cells ``ds``)."""
    noisy = noisy_rows(ds)
    use = noisy if len(noisy) else ds
    agg = use.groupby("method", sort=False)[["mean", "balanced_acc", "macro_f1"]].mean()
    agg = agg.reindex(ordered(agg.index, grid.methods()))
    extra = (
        use.groupby("method", sort=False).agg(
            n_runs=("n", "sum"),
            n_collapsed=("n_collapsed", "sum"),
            min_predicted_classes=("min_predicted_classes", "min"),
        )
        if {"n_collapsed", "min_predicted_classes"} <= set(use)
        else None
    )
    for metric in ("mean", "balanced_acc", "macro_f1"):
        agg[f"rank_{metric}"] = agg[metric].rank(ascending=False, method="average")
    rows = []
    for method, r in agg.iterrows():
        mine = use[use["method"] == method]
        row = dict(dataset=dataset, backbone=backbone, method=method)
        row.update(cells="noisy" if len(noisy) else "all", n_cells=len(mine), acc=r["mean"])
        row.update(balanced_acc=r["balanced_acc"], macro_f1=r["macro_f1"], rank_acc=r["rank_mean"])
        row.update(rank_balanced_acc=r["rank_balanced_acc"], rank_macro_f1=r["rank_macro_f1"])
        row["num_test"] = int(use["num_test"].iloc[0]) if "num_test" in use else np.nan
        row["n_runs"] = int(extra.loc[method, "n_runs"]) if extra is not None else np.nan
        row["n_collapsed"] = int(extra.loc[method, "n_collapsed"]) if extra is not None else 0
        row["min_predicted_classes"] = (
            extra.loc[method, "min_predicted_classes"] if extra is not None else np.nan
        )
        told = "uses_true_noise_rate" in use and mine["uses_true_noise_rate"].any()
        rows.append({**row, "uses_true_noise_rate": bool(told)})
    return rows


def imbalance_table(cells: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Imbalanced datasets only: per method, accuracy / balanced accuracy / macro-F1 averaged
    over the noisy cells (all cells if a dataset has none), with the rank under each metric."""
    imb = info[info["imbalanced"]]["dataset"]
    rows = []
    for (dataset, backbone), ds in cells[cells["dataset"].isin(imb)].groupby(
        ["dataset", "backbone"], sort=False
    ):
        rows += _method_means(dataset, backbone, ds)
    return pd.DataFrame(rows, columns=IMBALANCE_COLUMNS)


def _used(ds: pd.DataFrame) -> pd.DataFrame:
    """The cells a dataset's method table averages: the noisy ones, all if there is none."""
    noisy = noisy_rows(ds)
    return noisy if len(noisy) else ds


def _bold(g: pd.DataFrame) -> pd.DataFrame:
    """Per metric column of one dataset's method table: the best as printed and every method
    within the test-set resolution at the best value (the binomial half-width over the test
    images: a lower bound for balanced accuracy and macro-F1, whose small classes are noisier),
    by the rule of every table (:func:`lnm.report.cells.mark_best`): a method with collapsed
    runs is never bold."""
    out = pd.DataFrame(index=g.index)
    for metric in _METRICS:
        probe = pd.DataFrame({"mean": g[metric]})
        if "n_collapsed" in g:
            probe["n_collapsed"] = g["n_collapsed"]
        n_test = g["num_test"] if "num_test" in g else np.nan
        probe["test_hw"] = [
            stats.binomial_halfwidth(v, n) for v, n in zip(g[metric], pd.Series(n_test, g.index))
        ]
        out[metric] = mark_best(probe, keys=[])["best_group"]
    return out


def _imbalance_notes(k: int, ds: pd.DataFrame) -> list[str]:
    notes = [
        "Balanced accuracy = mean per-class recall; macro-F1 = unweighted mean of per-class F1; "
        f"each a {grid.last_k_text(k)}. A method that ranks high on accuracy but low on balanced "
        "accuracy is favouring the majority class.",
        "Fewest classes predicted = the fewest distinct classes any of the method's runs "
        "predicted for the test images (final epoch): fewer than the classes present means "
        "whole classes are never predicted.",
        "Bold = the best per column as printed and every method within the test-set resolution "
        "at the best value (binomial 95 % half-width over the test images), among the methods "
        "without collapsed runs (⊘: never bold).",
    ]
    return notes + [n for n in (collapse_note(_used(ds)),) if n]


def _method_table(g: pd.DataFrame, d: pd.Series, ds: pd.DataFrame, k: int) -> Table:
    """One imbalanced dataset's method table (``g``: its rows of :func:`imbalance_table`,
    ``d``: its :func:`lnm.report.cells.dataset_info`, ``ds``: its cells)."""
    oracle = oracle_methods(ds)
    marks = _bold(g)
    rows, bold = [], []
    for i, r in g.iterrows():
        classes = r.get("min_predicted_classes", np.nan)
        rows.append(
            [
                oracle_label(r["method"], oracle)
                + collapse_mark(r.get("n_collapsed", 0), r.get("n_runs", 0)),
                num(r["acc"]),
                num(r["balanced_acc"]),
                num(r["macro_f1"]),
                f"{r['rank_acc']:g} / {r['rank_balanced_acc']:g} / {r['rank_macro_f1']:g}",
                f"{int(classes)} of {int(d['num_classes'])}" if np.isfinite(classes) else "–",
            ]
        )
        bold.append([False] + [bool(marks.loc[i, c]) for c in _METRICS] + [False, False])
    head = ["method", "accuracy", "balanced acc", "macro-F1", "rank acc / bal / F1"]
    return Table(
        f"{d.name} ({g['backbone'].iloc[0]}): accuracy vs balanced accuracy vs macro-F1 (%), "
        f"mean over {g['cells'].iloc[0]} cells",
        head + ["fewest classes predicted"],
        rows,
        bold,
        align="lrrrrr",
        intro=f"Test class counts {d['class_counts']}, largest/smallest = "
        f"{d['imbalance_ratio']:.1f}, chance (majority class) = {d['majority_acc']:.1f} %.",
        notes=_imbalance_notes(k, ds),
    )


def imbalance_render(
    imb: pd.DataFrame, info: pd.DataFrame, cells: pd.DataFrame, k: int
) -> list[Table]:
    """Per imbalanced dataset: the method table and the per-cell grid of the three metrics;
    ``k`` = the ``last_k`` they average."""
    if imb.empty:
        why = (
            f"no dataset is imbalanced (largest/smallest test class ≥ {IMBALANCE_RATIO}) or test "
            "class counts are unknown"
        )
        return [Table.note("Imbalance view", why)]
    tables = []
    for (dataset, backbone), g in imb.groupby(["dataset", "backbone"], sort=False):
        ds = cells[(cells["dataset"] == dataset) & (cells["backbone"] == backbone)]
        tables.append(_method_table(g, info.set_index("dataset").loc[dataset], ds, k))
        tables += grid_tables(
            ds,
            lambda r: (f"{r['mean']:.1f} / {r['balanced_acc']:.1f} / {r['macro_f1']:.1f}", False),
            "per cell, accuracy / balanced accuracy / macro-F1 (%)",
            [],
        )
    return tables
