"""Figures for the report (matplotlib Agg canvas, no pyplot state, no seaborn).

Sizes are fixed (``FIGSIZE_* × DPI`` pixels) and every PNG is written through
:func:`lnm.checksum.artifact`. PNG metadata omits the matplotlib version, so a figure's bytes
depend only on its data and the installed fonts/renderer.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lnm.checksum import artifact
from lnm.report.aggregate import HEADLINE, METHODS, NOISES, ordered, ranking

DPI = 120
FIGSIZE_ACC = (12.0, 4.5)     # inches -> 1440 x 540 px
FIGSIZE_RANKING = (8.0, 5.0)  # inches -> 960 x 600 px
# tab10 for the first 10 methods, navy for the 11th, then light colours for unknown names.
_PALETTE = [f"C{i}" for i in range(10)] + ["#000080", "#a6cee3", "#fb9a99", "#fdbf6f", "#cab2d6"]


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """Colour per method, fixed by its position in :data:`METHODS` (unknown names after them),
    so a method has the same colour in every figure whichever methods a figure shows."""
    wanted = set(methods)
    names = ordered(wanted | set(METHODS), METHODS)
    return {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(names) if m in wanted}


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_png: str | os.PathLike) -> Path:
    with artifact(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()  # no pyplot registry is used, so clearing releases everything
    return Path(out_png)


def _mean_std(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = df.groupby(keys)[HEADLINE].agg(["mean", "std"]).reset_index()
    out["std"] = out["std"].fillna(0.0)  # one seed: no band
    return out


def plot_acc_vs_rate(runs: pd.DataFrame, dataset: str, out_png: str | os.PathLike) -> Path:
    """Headline test accuracy vs nominal noise rate for ``dataset``: one panel per noise pattern,
    one line per method (mean over seeds, band ± 1 std), clean ceilings as dashed lines."""
    df = runs[runs["dataset"] == dataset]
    if df["backbone"].nunique() > 1:
        raise ValueError(f"{dataset}: several backbones {sorted(df['backbone'].unique())}; "
                         "filter runs to one backbone first")
    patterns = ordered(df.loc[df["noise"] != "none", "noise"], NOISES)
    if not patterns:
        raise ValueError(f"{dataset}: no runs with label noise to plot")
    colors = method_colors(df["method"])
    noisy = _mean_std(df[df["noise"] != "none"], ["noise", "method", "rate"])
    clean = _mean_std(df[df["noise"] == "none"], ["method"]).set_index("method")["mean"]

    fig = _figure(FIGSIZE_ACC)
    axes = fig.subplots(1, len(patterns), sharey=True, squeeze=False)[0]
    for ax, pattern in zip(axes, patterns):
        for method, g in noisy[noisy["noise"] == pattern].groupby("method", sort=False):
            x, y, s = g["rate"].to_numpy(), g["mean"].to_numpy(), g["std"].to_numpy()
            ax.plot(x, y, "o-", color=colors[method], label=method, ms=4)
            ax.fill_between(x, y - s, y + s, color=colors[method], alpha=0.15, lw=0)
        for method, level in clean.items():
            ax.axhline(level, color="black" if method == "ce" else colors[method],
                       ls="--", lw=1.6 if method == "ce" else 0.8, alpha=0.9)
        ax.set_xticks(sorted(noisy.loc[noisy["noise"] == pattern, "rate"].unique()))
        ax.set(title=f"{pattern} noise", xlabel="nominal noise rate (fraction of labels flipped)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%), mean of last 5 epochs")

    handles = [Line2D([], [], color=colors[m], marker="o", label=m)
               for m in ordered(df["method"], METHODS)]
    if len(clean):
        ce = f"CE {clean['ce']:.1f}%, bold" if "ce" in clean else "per method"
        handles.append(Line2D([], [], color="black", ls="--",
                              label=f"clean ceiling (no noise)\n{ce}; others thin"))
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    fig.suptitle(f"{dataset} ({df['backbone'].iloc[0]}): test accuracy vs noise rate (line = mean over seeds, "
                 "band = ± 1 std)")
    return _save(fig, out_png)


def plot_ranking(runs: pd.DataFrame, pattern: str, out_png: str | os.PathLike) -> Path:
    """Horizontal bar chart of :func:`~lnm.report.aggregate.ranking` for one noise pattern (or
    ``overall``), best method on top, value printed on each bar."""
    table = ranking(runs)
    if pattern not in table.columns:
        raise ValueError(f"no ranking column {pattern!r}; have {list(table.columns)}")
    # Stable sort keeps ranking()'s tie-break; reversed because barh draws bottom-up.
    values = table[pattern].dropna().sort_values(ascending=False, kind="mergesort").iloc[::-1]
    colors = method_colors(values.index)

    fig = _figure(FIGSIZE_RANKING)
    ax = fig.subplots()
    bars = ax.barh(values.index, values.to_numpy(),
                   color=[colors[m] for m in values.index])
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize="small")
    ax.set_xlim(0, max(100.0, float(np.nanmax(values.to_numpy(), initial=0)) * 1.1))
    what = ("unweighted mean over noise patterns" if pattern == "overall"
            else f"mean over all {pattern}-noise runs (datasets × rates × seeds)")
    ax.set(xlabel="test accuracy (%), mean of last 5 epochs", ylabel="method",
           title=f"Method ranking, {pattern}: {what}")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out_png)
