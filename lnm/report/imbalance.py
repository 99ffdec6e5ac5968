"""The imbalance view (``imbalance.csv``, ``imbalance.html``): on the imbalanced datasets
(largest test class ≥ :data:`lnm.report.cells.IMBALANCE_RATIO` × the smallest), accuracy next
to balanced accuracy and macro-F1 per method, with the rank under each."""

from __future__ import annotations

import pandas as pd

from lnm import grid
from lnm.grid import ordered
from lnm.report.cells import IMBALANCE_RATIO, grid_tables
from lnm.report.fmt import num
from lnm.report.render import Table


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
        agg = agg.reindex(ordered(agg.index, grid.methods()))
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


def imbalance_render(
    imb: pd.DataFrame, info: pd.DataFrame, cells: pd.DataFrame, k: int
) -> list[Table]:
    """Per imbalanced dataset: the method table and the per-cell grid of the three metrics;
    ``k`` = the ``last_k`` they average."""
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
                    num(r["acc"]),
                    num(r["balanced_acc"]),
                    num(r["macro_f1"]),
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
                    f"per-class F1; each a {grid.last_k_text(k)}. A method that ranks high on "
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
