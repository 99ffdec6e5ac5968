"""Figures for the report (matplotlib Agg canvas, no pyplot state, no seaborn).

Sizes are fixed (``FIGSIZE_* × DPI`` pixels) and every PNG is written through
:func:`lnm.checksum.artifact`. PNG metadata omits the matplotlib version, so a figure's bytes
depend only on its data and the installed fonts/renderer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from lnm import grid
from lnm.checksum import artifact
from lnm.grid import HEADLINE, ordered
from lnm.report.aggregate import ranking
from lnm.report.cells import cell_table
from lnm.report.fmt import runs_last_k, sort_rows
from lnm.report.ranks import friedman_text, rank_analysis

DPI = 120
FIGSIZE_ACC = (12.0, 4.5)  # inches -> 1440 x 540 px
FIGSIZE_RANKING = (8.0, 5.0)  # inches -> 960 x 600 px
# tab10 for the first 10 methods, navy for the 11th, then light colours for unknown names.
_PALETTE = [f"C{i}" for i in range(10)] + ["#000080", "#a6cee3", "#fb9a99", "#fdbf6f", "#cab2d6"]


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """Colour per method, fixed by its position in :func:`lnm.grid.methods` (unknown names after
    them), so a method has the same colour in every figure whichever methods a figure shows."""
    wanted = set(methods)
    names = ordered(wanted | set(grid.methods()), grid.methods())
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
    k = runs_last_k(runs)
    df = runs[runs["dataset"] == dataset]
    if df["backbone"].nunique() > 1:
        raise ValueError(
            f"{dataset}: several backbones {sorted(df['backbone'].unique())}; "
            "filter runs to one backbone first"
        )
    patterns = ordered(df.loc[df["noise"] != "none", "noise"], grid.PATTERNS)
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
            ax.axhline(
                level,
                color="black" if method == "ce" else colors[method],
                ls="--",
                lw=1.6 if method == "ce" else 0.8,
                alpha=0.9,
            )
        ax.set_xticks(sorted(noisy.loc[noisy["noise"] == pattern, "rate"].unique()))
        ax.set(title=f"{pattern} noise", xlabel="nominal noise rate (fraction of labels flipped)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(grid.headline_text(k))

    handles = [
        Line2D([], [], color=colors[m], marker="o", label=m)
        for m in ordered(df["method"], grid.methods())
    ]
    if len(clean):
        ce = f"CE {clean['ce']:.1f}%, bold" if "ce" in clean else "per method"
        handles.append(
            Line2D(
                [], [], color="black", ls="--", label=f"clean ceiling (no noise)\n{ce}; others thin"
            )
        )
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    fig.suptitle(
        f"{dataset} ({df['backbone'].iloc[0]}): test accuracy vs noise rate (line = mean over seeds, "
        "band = ± 1 std)"
    )
    return _save(fig, out_png)


def plot_ranking(runs: pd.DataFrame, pattern: str, out_png: str | os.PathLike) -> Path:
    """Horizontal bar chart of :func:`~lnm.report.aggregate.ranking` for one noise pattern (or
    ``overall``), best method on top, value printed on each bar."""
    k = runs_last_k(runs)
    table = ranking(runs)
    if pattern not in table.columns:
        raise ValueError(f"no ranking column {pattern!r}; have {list(table.columns)}")
    # Stable sort keeps ranking()'s tie-break; reversed because barh draws bottom-up.
    values = table[pattern].dropna().sort_values(ascending=False, kind="mergesort").iloc[::-1]
    colors = method_colors(values.index)

    fig = _figure(FIGSIZE_RANKING)
    ax = fig.subplots()
    bars = ax.barh(values.index, values.to_numpy(), color=[colors[m] for m in values.index])
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize="small")
    ax.set_xlim(0, max(100.0, float(np.nanmax(values.to_numpy(), initial=0)) * 1.1))
    noisy = runs[runs["noise"] != "none"]
    sub = noisy if pattern == "overall" else noisy[noisy["noise"] == pattern]
    per_method = sub.groupby("method").size()
    n = (
        (
            f"{per_method.min()}"
            if per_method.min() == per_method.max()
            else f"{per_method.min()}–{per_method.max()}"
        )
        if len(per_method)
        else "0"
    )
    what = (
        f"unweighted mean over noise patterns ({n} noisy runs per method)"
        if pattern == "overall"
        else f"mean over all {pattern}-noise runs ({n} per method: datasets × rates × seeds)"
    )
    ax.set(
        xlabel=grid.headline_text(k),
        ylabel="method",
        title=f"Method ranking, {pattern}{'' if pattern == 'overall' else ' noise'}\n{what}",
    )
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out_png)


# ---------------------------------------------------------------- selection diagnostics

FIGSIZE_SELECTION = (12.0, 7.5)  # inches -> 1440 x 900 px
FIGSIZE_CD = (10.0, 5.0)  # inches -> 1200 x 600 px
FIGSIZE_RECALL = (13.0, 5.5)  # inches -> 1560 x 660 px

_SELECTION_PANELS = [  # column, y label, panel title, what (for the n/a note)
    (
        "clean_ratio",
        "clean ratio (%)",
        "clean ratio: precision of the selected set",
        "a clean ratio",
    ),
    ("coverage", "coverage (%)", "coverage: recall of the truly clean samples", "a coverage"),
    (
        "purified_ratio",
        "purified ratio (%)",
        "purified ratio: relabelled samples now correct",
        "a purified ratio (label correction)",
    ),
    (
        "t_error",
        "‖T̂ − T‖₁ / ‖T‖₁ (relative L1)",
        "transition-matrix estimation error",
        "a transition-matrix estimate",
    ),
]


def _one_backbone(df: pd.DataFrame, what: str) -> str:
    if df["backbone"].nunique() > 1:
        raise ValueError(
            f"{what}: several backbones {sorted(df['backbone'].unique())}; "
            "filter runs to one backbone first"
        )
    return str(df["backbone"].iloc[0]) if len(df) else "?"


def _note(ax, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        wrap=True,
        color="0.35",
        fontsize="medium",
    )


def plot_selection(
    epochs: pd.DataFrame, dataset: str, noise: str, rate: float, out_png: str | os.PathLike
) -> Path:
    """Per-epoch selection diagnostics of one noisy setting: clean ratio, coverage, purified
    ratio and transition-matrix error, one line per method (mean over seeds and noise seeds,
    band ± 1 std); a panel no method reports says so."""
    df = epochs[
        (epochs["dataset"] == dataset)
        & (epochs["noise"] == noise)
        & np.isclose(epochs["rate"].astype(float), float(rate))
    ]
    backbone = _one_backbone(df, f"{dataset} {noise}-{rate}")
    colors = method_colors(df["method"]) if len(df) else {}
    fig = _figure(FIGSIZE_SELECTION)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    for ax, (col, ylabel, title, what) in zip(axes, _SELECTION_PANELS):
        have = df[df[col].notna()] if col in df else df.iloc[:0]
        for method in ordered(have["method"], grid.methods()):
            g = have[have["method"] == method].groupby("epoch")[col].agg(["mean", "std"])
            x, y, s = g.index.to_numpy(), g["mean"].to_numpy(), g["std"].fillna(0).to_numpy()
            ax.plot(x, y, "o-", ms=3, color=colors[method], label=method)
            ax.fill_between(x, y - s, y + s, color=colors[method], alpha=0.15, lw=0)
        if have.empty:
            _note(ax, f"n/a: no method in this grid\nreports {what}")
        else:
            ax.legend(fontsize="small", loc="best")
        if col != "t_error":
            ax.set_ylim(-2, 102)
        ax.set(title=title, ylabel=ylabel)
        ax.grid(alpha=0.3)
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(
        f"{dataset} ({backbone}), {noise} noise at rate {float(rate):g}: selection "
        "diagnostics per epoch (line = mean over seeds, band = ± 1 std)"
    )
    return _save(fig, out_png)


# ---------------------------------------------------------------- critical-difference diagram


def plot_cd_diagram(runs: pd.DataFrame, out_png: str | os.PathLike, alpha: float = 0.05) -> Path:
    """Demšar's critical-difference diagram: average rank of each method over the noisy cells
    (1 = best, on the left), the Nemenyi CD as a scale bar, thick bars joining methods that are
    not significantly different; the Friedman result in the title."""
    ra = rank_analysis(cell_table(runs), alpha)
    avg = ra["ranks"].set_index("method")["avg_rank"]
    fig = _figure(FIGSIZE_CD)
    ax = fig.subplots()
    ax.set_axis_off()
    k, cd = len(avg), ra["cd"]
    title = (
        f"Critical-difference diagram: average rank of {k} method(s) over {ra['n']} noisy "
        "cell(s) (dataset × pattern × rate; 1 = best)"
    )
    if k < 2:
        _note(
            ax,
            "n/a: needs ≥2 methods with results on a common noisy cell"
            if k
            else "n/a: no noisy cells",
        )
        fig.suptitle(title)
        return _save(fig, out_png)
    colors = method_colors(avg.index)
    lo, hi = 1, k
    span = hi - lo
    left_n = (k + 1) // 2
    step = 1.0
    cliques = ra["cliques"]
    top = -0.6 - 0.35 * len(cliques)  # first label row, below the clique bars
    rows = max(left_n, k - left_n)
    ax.set_xlim(lo - 0.55 * span, hi + 0.55 * span)
    ax.set_ylim(top - step * rows - 0.5, 2.4)
    ax.plot([lo, hi], [0, 0], color="black", lw=1.2)
    for r in range(lo, hi + 1):
        ax.plot([r, r], [0, 0.18], color="black", lw=1.0)
        ax.text(r, 0.3, str(r), ha="center", va="bottom", fontsize="medium")
    ax.text((lo + hi) / 2, 0.95, "average rank", ha="center", va="bottom", fontsize="small")
    for i, (method, r) in enumerate(avg.items()):
        left = i < left_n
        row = i if left else k - 1 - i
        y = top - step * row
        edge = lo - 0.08 * span if left else hi + 0.08 * span
        ax.plot([r, r, edge], [0, y, y], color=colors[method], lw=1.4)
        ax.plot([r], [0], "o", color=colors[method], ms=5)
        ax.text(
            edge + (-0.02 if left else 0.02) * span,
            y,
            f"{method}  {r:.2f}" if left else f"{r:.2f}  {method}",
            ha="right" if left else "left",
            va="center",
            color=colors[method],
            fontsize="medium",
            fontweight="bold",
        )
    for j, group in enumerate(cliques):
        y = -0.45 - 0.35 * j
        a, b = avg[group].min(), avg[group].max()
        ax.plot(
            [a - 0.03 * span, b + 0.03 * span], [y, y], color="black", lw=4, solid_capstyle="round"
        )
    if np.isfinite(cd):
        end = min(lo + cd, hi)
        ax.plot([lo, end], [1.9, 1.9], color="black", lw=1.4)
        for x in (lo, end) if lo + cd <= hi else (lo,):
            ax.plot([x, x], [1.8, 2.0], color="black", lw=1.4)
        label = f"CD = {cd:.2f} (Nemenyi, α = {alpha:g})"
        if lo + cd > hi:
            ax.annotate(
                "",
                xy=(hi + 0.04 * span, 1.9),
                xytext=(end, 1.9),
                arrowprops={"arrowstyle": "->", "lw": 1.4},
            )
            label += ": wider than the rank range, no difference can be significant"
        ax.text((lo + end) / 2, 2.05, label, ha="center", va="bottom", fontsize="small")
    else:
        ax.text(lo, 1.9, "Nemenyi CD n/a", fontsize="small")
    fig.suptitle(title + "\n" + friedman_text(ra), fontsize="medium")
    return _save(fig, out_png)


# ---------------------------------------------------------------- per-class recall


def _class_names(dataset: str, n: int) -> list[str]:
    try:  # MedMNIST's own class names, when the package is there
        from medmnist.info import INFO

        labels = INFO[dataset]["label"]
        names = [labels[str(i)] for i in range(n)]
        return [nm if len(nm) <= 18 else nm[:17] + "…" for nm in names]
    except Exception:
        return [f"class {i}" for i in range(n)]


def plot_recall(runs: pd.DataFrame, dataset: str, out_png: str | os.PathLike) -> Path:
    """Per-class test recall heat maps (rows = noise settings, columns = classes with their test
    counts) for the best and the worst method of ``dataset`` by mean headline accuracy over its
    noisy runs (all runs when there is no noisy one)."""
    k = runs_last_k(runs)
    df = runs[runs["dataset"] == dataset].copy()
    backbone = _one_backbone(df, dataset)
    df = df[df["per_class_recall"].notna()]
    if df.empty:
        raise ValueError(f"{dataset}: no per-class recall in the run table")
    noisy = df[df["noise"] != "none"]
    score = (noisy if len(noisy) else df).groupby("method")[HEADLINE].mean()
    order = ordered(score.index, grid.methods())
    score = score.reindex(order).sort_values(ascending=False, kind="mergesort")
    picks = [("best", score.index[0]), ("worst", score.index[-1])]
    counts = next(
        (json.loads(c) for c in df.get("test_class_counts", []) if isinstance(c, str)), None
    )
    n_cls = int(df["num_classes"].iloc[0])
    names = _class_names(dataset, n_cls)
    xlabels = [f"{nm}\n(n={counts[i]})" if counts else nm for i, nm in enumerate(names)]
    colors = method_colors(score.index)

    fig = _figure(FIGSIZE_RECALL)
    axes = fig.subplots(1, 2, sharey=True)
    image = None
    for ax, (which, method) in zip(axes, picks):
        g = df[df["method"] == method].copy()
        g["recall"] = g["per_class_recall"].map(lambda s: np.asarray(json.loads(s), float))
        settings = sort_rows(g[["noise", "rate"]].drop_duplicates(), ["noise", "rate"])
        mat = np.vstack(
            [
                np.mean(np.vstack(g[(g["noise"] == n) & (g["rate"] == r)]["recall"]), axis=0)
                for n, r in settings.itertuples(index=False)
            ]
        )
        image = ax.imshow(mat, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(mat):
            ax.text(
                j,
                i,
                f"{v:.0f}",
                ha="center",
                va="center",
                fontsize="small",
                color="white" if v < 60 else "black",
            )
        ax.set_xticks(
            range(n_cls),
            xlabels,
            fontsize="small",
            rotation=30 if n_cls > 4 else 0,
            ha="right" if n_cls > 4 else "center",
        )
        ax.set_yticks(
            range(len(settings)),
            [f"{n} {r:g}" if n != "none" else "clean" for n, r in settings.itertuples(index=False)],
        )
        tag = "best = worst (only one method)" if picks[0][1] == picks[1][1] else which
        ax.set_title(
            f"{tag}: {method} (mean {score[method]:.1f} % over "
            f"{'noisy' if len(noisy) else 'all'} runs)",
            color=colors[method],
            fontweight="bold",
        )
        ax.set_xlabel("true class (test count)")
    axes[0].set_ylabel("noise pattern and rate")
    fig.colorbar(image, ax=list(axes), label=f"per-class test recall (%), {grid.last_k_text(k)}")
    fig.suptitle(
        f"{dataset} ({backbone}): per-class test recall (%), mean over seeds, of the "
        "best and the worst method by mean accuracy"
    )
    return _save(fig, out_png)
