"""Figures for the report (matplotlib Agg canvas, no pyplot state, no seaborn).

Each figure answers one question, stated in its title and caption; ``<name>_figure`` builds it
(a :class:`~matplotlib.figure.Figure`, for tests) and ``plot_<name>`` saves it. Every figure
marks collapsed runs (⊘, a black ×) and methods told the true noise rate (ᵒ), draws an error
band or bar only where one exists, and says when there is one run per cell.

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
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from lnm import grid
from lnm.checksum import artifact
from lnm.grid import HEADLINE, ordered
from lnm.report import stats
from lnm.report.aggregate import ranking_view
from lnm.report.cells import REFERENCE, cell_table, noisy_rows
from lnm.report.fmt import (
    COLLAPSED,
    ORACLE,
    oracle_label,
    oracle_methods,
    p_is,
    run_flags,
    runs_last_k,
    sort_rows,
    spread_text,
)
from lnm.report.ranks import friedman_text, rank_analysis

DPI = 120
FIGSIZE_ACC = (13.0, 9.0)  # inches -> 1560 x 1080 px
FIGSIZE_RANKING = (12.0, 6.0)  # inches -> 1440 x 720 px
# tab10 for the first 10 methods, navy for the 11th, five dark colours for the next five, then
# light colours for further and unknown names.
_PALETTE = [f"C{i}" for i in range(10)] + ["#000080", "#b15928", "#6a3d9a", "#33a02c", "#e7298a"]
_PALETTE += ["#66a61e", "#a6cee3", "#fb9a99", "#fdbf6f", "#cab2d6"]
#: Colour and marker per noise pattern (acc_vs_rate panels are per method, lines per pattern).
_PATTERN_STYLE = {
    "symmetric": ("#1f77b4", "o"),
    "pairflip": ("#d62728", "s"),
    "instance": ("#2ca02c", "^"),
}
_EXTRA_PATTERN_STYLE = [("#9467bd", "D"), ("#8c564b", "v"), ("#e377c2", "P")]
CHANCE_STYLE = {"color": "0.25", "ls": "--", "lw": 1.1}
COLLAPSE_STYLE = {"marker": "X", "color": "black", "ms": 9, "ls": "none", "zorder": 5}


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """Colour per method, fixed by its position in :func:`lnm.grid.methods` (unknown names after
    them), so a method has the same colour in every figure whichever methods a figure shows."""
    wanted = set(methods)
    names = ordered(wanted | set(grid.methods()), grid.methods())
    return {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(names) if m in wanted}


def pattern_styles(patterns: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per noise pattern, fixed for the known patterns."""
    out, extra = {}, iter(_EXTRA_PATTERN_STYLE * 4)
    for p in patterns:
        out[p] = _PATTERN_STYLE.get(p) or next(extra)
    return out


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def fit_lines(fig: Figure, text: str, fontsize="medium", width: float = 0.96) -> str:
    """``text`` with every line wrapped at spaces so that, drawn at ``fontsize``, it fits
    ``width`` of the figure's width (measured with the figure's renderer): a title never runs
    off the figure's edges."""
    renderer = fig.canvas.get_renderer()
    probe = fig.text(0, 0, "", fontsize=fontsize)
    limit = width * fig.bbox.width
    out = []
    for line in text.split("\n"):
        current = ""
        for word in line.split(" "):
            trial = f"{current} {word}" if current else word
            probe.set_text(trial)
            if not current or probe.get_window_extent(renderer).width <= limit:
                current = trial
            else:
                out.append(current)
                current = word
        out.append(current)
    probe.remove()
    return "\n".join(out)


def _suptitle(fig: Figure, text: str, fontsize="medium") -> None:
    """The figure's title, wrapped to its width (:func:`fit_lines`)."""
    fig.suptitle(fit_lines(fig, text, fontsize), fontsize=fontsize)


def _band(y, s, low: float = 0.0, high: float = 100.0):
    """A ± ``s`` band around ``y`` clipped to [``low``, ``high``] (percent by default): the
    value lies there, so the band never shows an impossible accuracy or share."""
    return np.clip(y - s, low, high), np.clip(y + s, low, high)


def _save(fig: Figure, out_png: str | os.PathLike) -> Path:
    with artifact(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()  # no pyplot registry is used, so clearing releases everything
    return Path(out_png)


def _cell_means(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys``: headline ``mean``, ``std`` (NaN with one run: no band is drawn), ``n`` and
    ``collapsed`` (any run of the group flagged collapsed)."""
    df = run_flags(df)
    return (
        df.groupby(keys, sort=False)
        .agg(
            mean=(HEADLINE, "mean"),
            std=(HEADLINE, "std"),
            n=(HEADLINE, "size"),
            collapsed=("collapsed", "any"),
        )
        .reset_index()
    )


def _chance(df: pd.DataFrame) -> float:
    """Accuracy of always predicting the test set's majority class (%), NaN when unknown."""
    values = pd.to_numeric(df.get("majority_acc", pd.Series(dtype=float)), errors="coerce")
    return float(values.dropna().iloc[0]) if values.notna().any() else float("nan")


def _grid_shape(n: int, most_cols: int = 4) -> tuple[int, int]:
    cols = min(most_cols, max(n, 1))
    return -(-max(n, 1) // cols), cols


def _legend_entries(entries: list[tuple[str, object]], drawn: set[str]) -> list:
    """The legend handles of ``entries`` (gid, handle) whose gid is in ``drawn`` (only marks
    the figure draws), each tagged with its gid, in the order of ``entries``."""
    handles = []
    for gid, h in entries:
        if gid in drawn:
            h.set_gid(gid)
            handles.append(h)
    return handles


def _fill_band(ax, x, y, s, color, high: float = 100.0, gid: str | None = None) -> bool:
    """A ± ``s`` band around ``y`` where ``s`` is finite (clipped to [0, ``high``]); whether
    there is one."""
    ok = np.isfinite(s)
    if ok.any():
        lo, hi = _band(y[ok], s[ok], 0.0, high)
        ax.fill_between(x[ok], lo, hi, color=color, alpha=0.15, lw=0, gid=gid)
    return bool(ok.any())


def _curve(cells: pd.DataFrame, method: str, pattern: str) -> pd.DataFrame:
    """The cells of ``method`` under ``pattern`` by rate, its clean cell as the rate-0 point."""
    clean = cells[cells["noise"] == grid.CLEAN].set_index("method")
    c = cells[(cells["method"] == method) & (cells["noise"] == pattern)]
    if method in clean.index:  # the clean cell is every pattern's rate-0 point
        c = pd.concat([clean.loc[[method]].reset_index().assign(noise=pattern), c])
    return c.sort_values("rate", kind="mergesort")


def _acc_panel(ax, cells: pd.DataFrame, method: str, styles: dict, chance: float, ce: bool):
    """One method's panel: the chance line, a line per pattern (CE's dotted beside it when
    ``ce``), its ± 1 std band where there is one, ⊘ on collapsed cells."""
    if not np.isnan(chance):
        ax.axhline(chance, **CHANCE_STYLE, gid="chance")
    for pattern, (color, marker) in styles.items():
        if ce:
            ref = _curve(cells, REFERENCE, pattern)
            ax.plot(ref["rate"], ref["mean"], ":", color=color, lw=1.2, alpha=0.7, gid="ce")
        c = _curve(cells, method, pattern)
        x, y, s = (c[col].to_numpy(dtype=float) for col in ("rate", "mean", "std"))
        ax.plot(x, y, "-", marker=marker, color=color, ms=5, lw=1.8, gid=f"{method}:{pattern}")
        _fill_band(ax, x, y, s, color, gid=f"band:{method}:{pattern}")
        bad = c["collapsed"].to_numpy(dtype=bool)
        if bad.any():
            ax.plot(x[bad], y[bad], **COLLAPSE_STYLE, gid="collapsed")


def _label_panels(axes, n: int, ncols: int, xlabel: str, ylabel: str) -> None:
    """Axis labels on the left column and on the lowest panel of each column of a grid of
    ``n`` panels; the slots after them hidden."""
    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_axis_off()
            continue
        if i % ncols == 0:
            ax.set_ylabel(ylabel)
        if i + ncols >= n:  # no panel below: label this one's axis
            ax.set_xlabel(xlabel)
            ax.xaxis.set_tick_params(labelbottom=True)


def _acc_legend(styles: dict, cells: pd.DataFrame, chance: float, ce: bool, oracle) -> list:
    """The acc_vs_rate legend: the patterns, then each mark the figure draws."""
    handles = [
        Line2D([], [], color=c, marker=m, lw=1.8, label=f"{p} noise", gid=p)
        for p, (c, m) in styles.items()
    ]
    entries = [
        ("ce", Line2D([], [], color="0.3", ls=":", lw=1.2, label="CE, same pattern")),
        ("chance", Line2D([], [], **CHANCE_STYLE, label=f"chance (majority class) {chance:.1f} %")),
        ("collapsed", Line2D([], [], **COLLAPSE_STYLE, label="⊘ collapsed run(s)")),
        ("band", Patch(color="0.5", alpha=0.3, label="± 1 std over the cell's runs")),
        ("oracle", Patch(color="none", label=f"{ORACLE} told the true noise rate")),
    ]
    drawn = {
        "ce": ce,
        "chance": not np.isnan(chance),
        "collapsed": bool(cells["collapsed"].any()),
        "band": bool(cells["std"].notna().any()),
        "oracle": bool(oracle),
    }
    return handles + _legend_entries(entries, {gid for gid, on in drawn.items() if on})


def acc_vs_rate_figure(runs: pd.DataFrame, dataset: str) -> Figure:
    """The figure of :func:`plot_acc_vs_rate`, not saved (for tests and notebooks)."""
    k = runs_last_k(runs)
    df = run_flags(runs[runs["dataset"] == dataset])
    backbone = _one_backbone(df, dataset)
    patterns = ordered(noisy_rows(df)["noise"], grid.PATTERNS)
    if not patterns:
        raise ValueError(f"{dataset}: no runs with label noise to plot")
    methods = ordered(df["method"], grid.methods())
    colors, styles = method_colors(methods), pattern_styles(patterns)
    cells = _cell_means(df, ["method", "noise", "rate"])
    chance, oracle = _chance(df), oracle_methods(df)
    rates = sorted({0.0, *noisy_rows(cells)["rate"].astype(float)})
    banded = bool(cells["std"].notna().any())
    fig = _figure(FIGSIZE_ACC)
    nrows, ncols = _grid_shape(len(methods) + 1)  # one slot for the legend
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, method in zip(axes, methods):
        _acc_panel(ax, cells, method, styles, chance, method != REFERENCE and REFERENCE in methods)
        ax.set_title(
            oracle_label(method, oracle), color=colors[method], fontweight="bold", fontsize="large"
        )
        ax.grid(alpha=0.3)
        ax.set_xticks(rates, [f"{r:g}" if r else "0\n(clean)" for r in rates])
    _label_panels(axes, len(methods), ncols, "noise rate", "test accuracy (%)")
    ce = REFERENCE in methods and len(methods) > 1
    handles = _acc_legend(styles, cells, chance, ce, oracle)
    axes[len(methods)].legend(handles=handles, loc="center", fontsize="medium", frameon=False)
    what = (
        "mean over the runs of each cell, band = ± 1 std (clipped to 0–100)"
        if banded
        else "one run per cell, so no error band"
    )
    _suptitle(
        fig,
        f"{dataset} ({backbone}): how fast does each method lose accuracy as label noise grows, "
        f"against CE and chance?\n{grid.headline_text(k)}; {what}; rate 0 = the "
        "clean run",
        fontsize="large",
    )
    return fig


def plot_acc_vs_rate(runs: pd.DataFrame, dataset: str, out_png: str | os.PathLike) -> Path:
    """Headline test accuracy vs noise rate for ``dataset``, one panel per method (each method
    visible on its own), one line per noise pattern starting at the clean run (rate 0), CE's
    lines dotted in every panel for reference, the chance (majority-class) line dashed, a ± 1 std
    band only where a cell has several runs, ⊘ = collapsed runs."""
    return _save(acc_vs_rate_figure(runs, dataset), out_png)


def _dataset_values(runs: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """Per dataset and method, the ranking's value on that dataset alone: the mean headline over
    the pattern's runs (``overall``: the unweighted mean of the pattern means, as the paper
    averages patterns), the balanced accuracy by the same arithmetic (``balanced``), with
    ``collapsed`` = any of those runs collapsed."""
    noisy = run_flags(noisy_rows(runs))
    sub = noisy if pattern == "overall" else noisy[noisy["noise"] == pattern]
    bal = grid.last_k("balanced_acc")
    sub = sub.assign(_bal=pd.to_numeric(sub[bal], errors="coerce") if bal in sub else np.nan)
    per = (
        sub.groupby(["dataset", "method", "noise"], sort=False)
        .agg(value=(HEADLINE, "mean"), balanced=("_bal", "mean"), collapsed=("collapsed", "any"))
        .reset_index()
    )
    return (
        per.groupby(["dataset", "method"], sort=False)
        .agg(value=("value", "mean"), balanced=("balanced", "mean"), collapsed=("collapsed", "any"))
        .reset_index()
    )


def _balanced_chance(df: pd.DataFrame) -> float:
    """Balanced accuracy of a predictor that ignores the image: 100 / the number of classes
    present in the test set (from ``test_class_counts``, else ``num_classes``); NaN if unknown."""
    for c in df.get("test_class_counts", pd.Series(dtype=object)):
        if isinstance(c, str):
            return 100.0 / max(1, sum(1 for v in json.loads(c) if v > 0))
    n = pd.to_numeric(df.get("num_classes", pd.Series(dtype=float)), errors="coerce").dropna()
    return 100.0 / float(n.iloc[0]) if len(n) else float("nan")


BALANCED_STYLE = {"marker": "D", "mfc": "white", "ms": 6, "ls": "none", "mew": 1.5}
BALANCED_CHANCE_STYLE = {"color": "0.45", "ls": "-.", "lw": 1.1}


def _ranking_dots(ax, d: pd.DataFrame, hw, colors: dict, dataset: str) -> set[str]:
    """Per method of ``d`` (in its order, best on top): its accuracy dot with the ± test-set
    resolution bar ``hw``, its balanced accuracy as an open diamond joined to it, ⊘ when it
    collapsed; the marks drawn besides the dots."""
    drawn = set()
    for y, (m, v, b, h, bad) in enumerate(
        zip(d.index, d["value"], d["balanced"], hw, d["collapsed"].fillna(False))
    ):
        if not np.isfinite(v):
            continue
        if np.isfinite(b):  # balanced accuracy: an open diamond joined to the dot
            ax.plot([b, v], [y, y], color=colors[m], lw=0.8, alpha=0.5)
            ax.plot([b], [y], color=colors[m], **BALANCED_STYLE, gid=f"balanced:{m}")
            drawn.add("balanced")
        lo, hi = _band(v, h) if np.isfinite(h) else (v, v)
        ax.errorbar(
            v,
            y,
            xerr=[[v - lo], [hi - v]] if np.isfinite(h) else None,
            fmt="o",
            color=colors[m],
            ms=7,
            capsize=3,
            lw=1.5,
            gid=f"accuracy:{m}:{dataset}",
        )
        if bad:
            ax.plot([v], [y], **COLLAPSE_STYLE, gid="collapsed")
            drawn.add("collapsed")
    return drawn


def _ranking_lines(ax, d: pd.DataFrame, hw, lines: dict) -> set[str]:
    """A focused accuracy axis (the values and ``lines``, within 0–100) and the reference
    ``lines`` (gid -> (x, style)) that fall inside it; their gids."""
    ends = [d["value"] - np.nan_to_num(hw), d["value"] + np.nan_to_num(hw), d["balanced"]]
    ends += [pd.Series([lines["chance"][0], lines["clean-ce"][0]])]
    every = pd.concat(ends).dropna()
    if len(every):
        lo_v, hi_v = float(every.min()), float(every.max())
        pad = max(1.0, 0.06 * (hi_v - lo_v))
        # focused: the values, chance and clean CE, within 0-100; the 100/C line only
        # where it falls inside (a balanced accuracy near it brings it in)
        ax.set_xlim(max(lo_v - pad, -1.0), min(hi_v + pad, 101.0))
    left, right = ax.get_xlim()
    drawn = set()
    for gid, (x, style) in lines.items():
        if np.isfinite(x) and left <= x <= right:
            ax.axvline(x, **style, gid=gid)
            drawn.add(gid)
    return drawn


def _ranking_panel(ax, runs: pd.DataFrame, d: pd.DataFrame, colors: dict, dataset: str):
    """One dataset's panel of the ranking figure (``d``: its values per method, in ranking
    order); the marks drawn."""
    drun = runs[runs["dataset"] == dataset]
    n_test = int(drun["num_test"].iloc[0]) if "num_test" in drun else 0
    hw = np.array([stats.binomial_halfwidth(v, n_test) for v in d["value"]])
    chance, bal_chance = _chance(drun), _balanced_chance(drun)
    ce = drun[(drun["noise"] == grid.CLEAN) & (drun["method"] == REFERENCE)][HEADLINE].mean()
    drawn = _ranking_dots(ax, d, hw, colors, dataset)
    lines = {
        "chance": (chance, CHANCE_STYLE),
        "balanced-chance": (bal_chance, BALANCED_CHANCE_STYLE),
        "clean-ce": (ce, {"color": "0.25", "ls": ":", "lw": 1.3}),
    }
    drawn |= _ranking_lines(ax, d, hw, lines)
    ax.set_title(
        f"{dataset}\nchance {chance:.1f} % (balanced {bal_chance:.0f} %), clean CE "
        + (f"{ce:.1f} %" if np.isfinite(ce) else "n/a"),
        fontsize="medium",
    )
    ax.set_xlabel("test accuracy / balanced accuracy (%)")
    ax.grid(axis="x", alpha=0.3)
    return drawn


def _ranking_methods(ax, view: pd.DataFrame, meta: dict, pattern: str, order, colors) -> None:
    """The method axis: ``order`` from the top, each method with its rank group and its
    position by balanced accuracy."""
    groups = view[f"group_{pattern}"]
    # the position by balanced accuracy in this column, beside the paper's order
    bal_pos = view[f"balanced_{pattern}"].rank(ascending=False, method="min")
    flagged = view.get(f"collapsed_{pattern}", pd.Series(0, index=view.index))
    oracle = oracle_methods(meta["runs"])

    def label(m):
        pos = bal_pos.get(m)
        bal = "–" if pos is None or not np.isfinite(pos) else f"{int(pos)}"
        mark = f" {COLLAPSED}" if flagged.get(m, 0) else ""
        return f"{oracle_label(m, oracle)}{mark}  [{groups.get(m, '')}]  bal. #{bal}"

    ax.set_yticks(range(len(order)), [label(m) for m in order])
    for tick, m in zip(ax.get_yticklabels(), order):
        tick.set_color(colors[m])
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_ylabel("method  [rank group]  bal. # = position by balanced accuracy")


RANKING_LEGEND = [  # gid, legend handle (only those the figure draws are shown)
    ("accuracy", dict(color="0.3", marker="o", ls="-", label="accuracy ± test-set resolution")),
    ("balanced", dict(color="0.3", **BALANCED_STYLE, label="balanced accuracy")),
    ("chance", dict(**CHANCE_STYLE, label="chance (majority class)")),
    ("balanced-chance", dict(**BALANCED_CHANCE_STYLE, label="100/C (balanced acc. of a constant)")),
    ("clean-ce", dict(color="0.25", ls=":", lw=1.3, label="clean CE")),
    ("collapsed", dict(**COLLAPSE_STYLE, label="⊘ collapsed run(s)")),
]


def _ranking_title(pattern: str, k: int, ra: dict) -> str:
    if ra["separable"]:
        sep = f"Friedman {p_is(ra['friedman']['pvalue'])}, Nemenyi CD {ra['cd']:.1f} ranks"
    else:
        fr = ra["friedman"]
        p = p_is(fr["pvalue"]) if np.isfinite(fr["pvalue"]) else (fr["note"] or "n/a")
        sep = f"Friedman {p}: one group, the data cannot order these methods"
    what = (
        "unweighted mean of the pattern means"
        if pattern == "overall"
        else f"mean over the {pattern}-noise rates and seeds"
    )
    return (
        f"Ranking, {pattern}{'' if pattern == 'overall' else ' noise'}: which methods can the "
        f"data tell apart?\ndot = {what} on each dataset ({grid.headline_text(k)}), diamond = "
        "balanced accuracy; order = the paper's ranking (mean accuracy over datasets), bal. # = "
        f"position by balanced accuracy; {COLLAPSED} = collapsed runs, never a success\n"
        f"[letter] = rank group, same letter = not separable ({sep})"
    )


def ranking_figure(runs: pd.DataFrame, pattern: str) -> Figure:
    """The figure of :func:`plot_ranking`, not saved (for tests and notebooks)."""
    k = runs_last_k(runs)
    view, meta = ranking_view(runs)
    if pattern not in meta["columns"]:
        raise ValueError(f"no ranking column {pattern!r}; have {meta['columns']}")
    order = view[pattern].dropna().sort_values(ascending=False, kind="mergesort").index
    values = _dataset_values(runs, pattern)
    datasets = list(dict.fromkeys(values["dataset"]))
    colors = method_colors(order)
    fig = _figure(FIGSIZE_RANKING)
    axes = fig.subplots(1, max(len(datasets), 1), sharey=True, squeeze=False)[0]
    drawn = {"accuracy"}
    for ax, dataset in zip(axes, datasets):
        d = values[values["dataset"] == dataset].set_index("method").reindex(order)
        drawn |= _ranking_panel(ax, runs, d, colors, dataset)
    _ranking_methods(axes[0], view, meta, pattern, order, colors)
    entries = [(gid, Line2D([], [], **style)) for gid, style in RANKING_LEGEND]
    handles = _legend_entries(entries, drawn)
    fig.legend(
        handles=handles, loc="outside lower center", ncols=min(3, len(handles)), frameon=False
    )
    _suptitle(fig, _ranking_title(pattern, k, meta["analyses"][pattern]), fontsize="medium")
    return fig


def plot_ranking(runs: pd.DataFrame, pattern: str, out_png: str | os.PathLike) -> Path:
    """The paper's ranking for one noise pattern (or ``overall``), best on top, shown per
    dataset on a focused axis (each dataset has its own chance level and test-set resolution):
    a dot per method with a ± test-set-resolution bar (clipped to 0–100), its balanced accuracy
    as an open diamond beside it, chance, 100/C and clean-CE lines, the rank-group letters and
    the position by balanced accuracy beside each method (same letter = not separable),
    ⊘ = collapsed runs."""
    return _save(ranking_figure(runs, pattern), out_png)


# ---------------------------------------------------------------- selection diagnostics

FIGSIZE_SELECTION = (12.0, 7.5)  # inches -> 1440 x 900 px
FIGSIZE_CD = (10.0, 8.5)  # inches -> 1200 x 1020 px: by accuracy above, by balanced accuracy
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


def _selection_truth(df: pd.DataFrame) -> tuple[float, bool]:
    """(realised training noise rate, mean over the setting's runs; whether the data has clean
    training labels) of a setting's per-epoch rows: no clean labels where every run's realised
    rate is unknown or its diagnostics were n/a for want of them (``per_epoch.csv``
    ``realised_rate``, ``diagnostics_na``)."""
    if df.empty or "realised_rate" not in df:
        return float("nan"), True
    per_run = df.groupby(["noise_seed", "seed", "method"])
    realised = pd.to_numeric(per_run["realised_rate"].first(), errors="coerce")
    na = df["diagnostics_na"].fillna("").astype(str) if "diagnostics_na" in df else None
    unscored = bool(na is not None and na.str.contains("clean_ratio|coverage").all())
    clean = bool(realised.notna().any()) and not unscored
    return (float(realised.mean()) if clean else float("nan")), clean


def _selection_panel(ax, df: pd.DataFrame, panel: tuple, colors: dict, truth: tuple) -> bool:
    """One diagnostic of ``_SELECTION_PANELS`` per epoch, a line per method (a ± 1 std band
    where there is one; whether there is), the 1 − ε line of random selection in the clean-ratio
    panel, a dotted line where a method stopped updating; a panel without data says why."""
    col, ylabel, title, what = panel
    realised, has_clean = truth
    idle, banded = _idle_epochs(df), False
    have = df[df[col].notna()] if col in df else df.iloc[:0]
    if col == "clean_ratio" and has_clean and 0 < realised < 1:
        ax.axhline(
            100 * (1 - realised),
            **CHANCE_STYLE,
            gid="one-minus-rate",
            label=f"1 − ε = {100 * (1 - realised):.1f} % (random selection; ε = realised "
            f"noise rate {realised:.3f})",
        )
    for method in ordered(have["method"], grid.methods()):
        g = have[have["method"] == method].groupby("epoch")[col].agg(["mean", "std"])
        x, y, s = g.index.to_numpy(), g["mean"].to_numpy(), g["std"].to_numpy()
        label = method + (f" ({idle[method]})" if method in idle else "")
        ax.plot(x, y, "o-", ms=3, color=colors[method], label=label, gid=f"{method}:{col}")
        banded |= _fill_band(ax, x, y, s, colors[method], np.inf if col == "t_error" else 100.0)
        stop = _first_idle(df, method)
        if stop is not None and col in ("clean_ratio", "coverage"):
            ax.axvline(stop - 0.5, color=colors[method], ls=":", lw=1.2, gid=f"{method}:idle")
    if have.empty:
        why = (
            f"n/a: no method in this grid\nreports {what}"
            if has_clean
            else f"n/a: the dataset has no clean\ntraining labels to score {what}"
        )
        _note(ax, why)
    else:
        ax.legend(fontsize="small", loc="best")
    if col != "t_error":
        ax.set_ylim(-2, 102)
    ax.set(title=title, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return banded


def _selection_subtitle(df: pd.DataFrame, banded: bool, has_clean: bool) -> str:
    runs_per = df.groupby("method")["seed"].size() / df.groupby("method")["epoch"].nunique()
    n = runs_per.round().astype(int) if len(runs_per) else pd.Series(dtype=int)
    what = (
        "mean over the runs, band = ± 1 std (clipped to the possible range)"
        if banded
        else spread_text(n).replace(", so no std", ", so no band")
    )
    if not has_clean:
        what += "; no clean training labels, so nothing can be scored and there is no 1 − ε line"
    stopped = any(_first_idle(df, m) is not None for m in _idle_epochs(df))
    return what + (
        "; a dotted vertical line = the epoch from which a method made no parameter update "
        "(its line stops: nothing was selected)"
        if stopped
        else ""
    )


def selection_figure(epochs: pd.DataFrame, dataset: str, noise: str, rate: float) -> Figure:
    """The figure of :func:`plot_selection`, not saved (for tests and notebooks)."""
    df = epochs[
        (epochs["dataset"] == dataset)
        & (epochs["noise"] == noise)
        & np.isclose(epochs["rate"].astype(float), float(rate))
    ]
    backbone = _one_backbone(df, f"{dataset} {noise}-{rate}")
    colors = method_colors(df["method"]) if len(df) else {}
    truth = _selection_truth(df)
    fig = _figure(FIGSIZE_SELECTION)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    banded = False
    for ax, panel in zip(axes, _SELECTION_PANELS):
        banded |= _selection_panel(ax, df, panel, colors, truth)
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _suptitle(
        fig,
        f"{dataset} ({backbone}), {noise} noise at rate {float(rate):g}: does each method train "
        f"on clean samples, and how many of them?\n{_selection_subtitle(df, banded, truth[1])}",
        fontsize="medium",
    )
    return fig


def _idle_epochs(df: pd.DataFrame) -> dict[str, str]:
    """Per method with epochs without a parameter update (``no_update``) or collapsed runs:
    a legend note, e.g. "no update from epoch 4 in 7/10 runs; ⊘ 7/10"."""
    out = {}
    if df.empty:
        return out
    keys = ["noise_seed", "seed"]
    for method, g in df.groupby("method", sort=False):
        runs = g.groupby(keys)
        n = runs.ngroups
        parts = []
        if "no_update" in g and g["no_update"].astype(bool).any():
            idle = runs["no_update"].any()
            first = g[g["no_update"].astype(bool)]["epoch"].min()
            parts.append(f"no update from epoch {int(first)} in {int(idle.sum())}/{n} runs")
        if "collapsed" in g and g["collapsed"].astype(bool).any():
            parts.append(f"{COLLAPSED} {int(runs['collapsed'].any().sum())}/{n}")
        if parts:
            out[method] = "; ".join(parts)
    return out


def _first_idle(df: pd.DataFrame, method: str) -> int | None:
    """The first epoch in which some run of ``method`` made no parameter update, or None."""
    if "no_update" not in df:
        return None
    g = df[(df["method"] == method) & df["no_update"].astype(bool)]
    return int(g["epoch"].min()) if len(g) else None


def plot_selection(
    epochs: pd.DataFrame, dataset: str, noise: str, rate: float, out_png: str | os.PathLike
) -> Path:
    """Per-epoch selection diagnostics of one noisy setting: clean ratio (with the 1 − ε line of
    random selection at the realised noise rate ε; no line, and the true reason for every n/a
    panel, where the data has no clean training labels), coverage, purified ratio and transition-matrix error, one line per
    method (mean over seeds and noise seeds, a ± 1 std band only where there are several runs);
    epochs without a parameter update and collapsed runs are named in the legend, and a dotted
    line marks where a method stopped updating; a panel no method reports says so."""
    return _save(selection_figure(epochs, dataset, noise, rate), out_png)


# ---------------------------------------------------------------- critical-difference diagram


def plot_cd_diagram(runs: pd.DataFrame, out_png: str | os.PathLike, alpha: float = 0.05) -> Path:
    """Demšar's critical-difference diagram, twice: average rank of each method over the noisy
    cells by the headline accuracy (the paper's ranking, top) and by balanced accuracy (bottom),
    1 = best on the left, the Nemenyi CD as a scale bar (only with a Friedman test behind it),
    thick bars joining the methods of each rank group (one bar over all when the Friedman test
    finds no difference); each panel's Friedman result in its title; ⊘ = methods with collapsed
    runs, ᵒ = told the true noise rate."""
    return _save(cd_diagram_figure(runs, alpha), out_png)


def _cd_panel(ax, ra: dict, colors: dict, what: str) -> None:
    """One critical-difference diagram of the rank analysis ``ra`` in ``ax``."""
    avg = ra["ranks"].set_index("method")["avg_rank"]
    ax.set_axis_off()
    k = len(avg)
    ax.set_title(fit_lines(ax.figure, f"{what}: {friedman_text(ra)}", "medium"), fontsize="medium")
    if k < 2:
        if k:
            why = "n/a: needs ≥2 methods with results on a common noisy cell"
        elif len(ra["matrix"]):
            why = "n/a: no noisy cell has a result of every method"
        else:
            why = "n/a: no noisy cells"
        _note(ax, why)
        return
    lo, hi = 1, k
    span = hi - lo
    left_n = (k + 1) // 2
    letters = sorted({c for g in ra["groups"].values() for c in g})
    cliques = [[m for m in avg.index if c in ra["groups"].get(m, "")] for c in letters]
    cliques = [c for c in cliques if len(c) > 1]  # the bars: groups of several methods
    top = -0.6 - 0.35 * len(cliques)  # first label row, below the clique bars
    rows = max(left_n, k - left_n)
    ax.set_xlim(lo - 0.55 * span, hi + 0.55 * span)
    ax.set_ylim(top - rows - 0.5, 2.4)
    ax.plot([lo, hi], [0, 0], color="black", lw=1.2)
    for r in range(lo, hi + 1):
        ax.plot([r, r], [0, 0.18], color="black", lw=1.0)
        ax.text(r, 0.3, str(r), ha="center", va="bottom", fontsize="medium")
    ax.text((lo + hi) / 2, 0.95, "average rank", ha="center", va="bottom", fontsize="small")
    _cd_methods(ax, ra, colors, top)
    for j, group in enumerate(cliques):
        y = -0.45 - 0.35 * j
        a, b = avg[group].min(), avg[group].max()
        ax.plot(
            [a - 0.03 * span, b + 0.03 * span], [y, y], color="black", lw=4, solid_capstyle="round"
        )
    _cd_scale(ax, ra, lo, hi)


def _cd_methods(ax, ra: dict, colors: dict, top: float) -> None:
    """Each method's name, rank group and average rank, joined to its place on the rank axis:
    the better half on the left, the others on the right, one row each from ``top`` down."""
    ranks = ra["ranks"].set_index("method")
    avg, flagged = ranks["avg_rank"], ranks["n_collapsed"]
    k = len(avg)
    lo, hi, span, left_n = 1, k, k - 1, (k + 1) // 2
    for i, (method, r) in enumerate(avg.items()):
        name = oracle_label(method, ra["oracle"])
        name += f" {COLLAPSED}" if flagged.get(method, 0) else ""
        name += f" [{ra['groups'].get(method, '')}]"
        left = i < left_n
        y = top - (i if left else k - 1 - i)
        edge = lo - 0.08 * span if left else hi + 0.08 * span
        ax.plot([r, r, edge], [0, y, y], color=colors[method], lw=1.4)
        ax.plot([r], [0], "o", color=colors[method], ms=5)
        ax.text(
            edge + (-0.02 if left else 0.02) * span,
            y,
            f"{name}  {r:.1f}" if left else f"{r:.1f}  {name}",
            ha="right" if left else "left",
            va="center",
            color=colors[method],
            fontsize="medium",
            fontweight="bold",
        )


def _cd_scale(ax, ra: dict, lo: int, hi: int) -> None:
    """The Nemenyi CD as a scale bar above the rank axis (an arrow where it is wider than the
    rank range), or why there is none."""
    cd, span = ra["cd"], hi - lo
    if np.isfinite(cd):
        end = min(lo + cd, hi)
        ax.plot([lo, end], [1.9, 1.9], color="black", lw=1.4)
        for x in (lo, end) if lo + cd <= hi else (lo,):
            ax.plot([x, x], [1.8, 2.0], color="black", lw=1.4)
        label = f"CD = {cd:.2f} (Nemenyi, α = {ra['alpha']:g})"
        if lo + cd > hi:
            ax.annotate(
                "",
                xy=(hi + 0.04 * span, 1.9),
                xytext=(end, 1.9),
                arrowprops={"arrowstyle": "->", "lw": 1.4},
            )
            label += ": wider than the rank range, no difference can be significant"
        ax.text((lo + end) / 2, 2.05, label, ha="center", va="bottom", fontsize="small")
    elif not np.isfinite(ra["friedman"]["pvalue"]):
        ax.text(lo, 1.9, "Nemenyi CD n/a: no Friedman test behind it", fontsize="small")
    else:
        ax.text(lo, 1.9, "Nemenyi CD n/a", fontsize="small")


def cd_diagram_figure(runs: pd.DataFrame, alpha: float = 0.05) -> Figure:
    """The figure of :func:`plot_cd_diagram`, not saved (for tests and notebooks)."""
    cells = cell_table(runs)
    ra = rank_analysis(cells, alpha)
    bal = ra["balanced"]
    fig = _figure(FIGSIZE_CD)
    panels = [(ra, "by test accuracy (the paper's ranking)")]
    if bal is not None:
        panels.append((bal, "by balanced accuracy (mean per-class recall)"))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    colors = method_colors(ra["ranks"]["method"])
    for ax, (analysis, what) in zip(axes, panels):
        _cd_panel(ax, analysis, colors, what)
    k = len(ra["ranks"])
    flagged = ra["ranks"]["n_collapsed"]
    note = (
        "bars = rank groups (average ranks within the CD); one bar over all where the Friedman "
        "test finds no difference or is n/a: the data cannot order them"
    )
    marks = [f"[letters] = rank group; {note}"]
    if (flagged > 0).any():
        marks.append(f"{COLLAPSED} = some runs collapsed: never a success, whatever the rank")
    if ra["oracle"]:
        marks.append(f"{ORACLE} = told the true noise rate")
    _suptitle(
        fig,
        f"Which methods rank differently over the noisy cells? Average rank of {k} method(s) "
        f"over {ra['n']} noisy cell(s) (dataset × pattern × rate; 1 = best)\n" + "; ".join(marks),
        fontsize="medium",
    )
    return fig


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
    return _save(recall_figure(runs, dataset), out_png)


def _recall_panel(ax, g: pd.DataFrame, xlabels: list[str]):
    """The heat map of one method's runs ``g``: mean per-class recall per noise setting (rows,
    ⊘ where a run collapsed) and class (columns); the image."""
    g = g.assign(recall=g["per_class_recall"].map(lambda s: np.asarray(json.loads(s), float)))
    settings = sort_rows(g[["noise", "rate"]].drop_duplicates(), ["noise", "rate"])
    mat = np.vstack(
        [
            np.mean(np.vstack(g[(g["noise"] == n) & (g["rate"] == r)]["recall"]), axis=0)
            for n, r in settings.itertuples(index=False)
        ]
    )
    image = ax.imshow(mat, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(mat):
        color = "white" if v < 60 else "black"
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize="small", color=color)
    wide = len(xlabels) > 4
    ax.set_xticks(
        range(len(xlabels)),
        xlabels,
        fontsize="small",
        rotation=30 if wide else 0,
        ha="right" if wide else "center",
    )
    bad = g.groupby(["noise", "rate"])["collapsed"].any()
    ax.set_yticks(
        range(len(settings)),
        [
            (f"{n} {r:g}" if n != grid.CLEAN else "clean")
            + (f" {COLLAPSED}" if bad.get((n, r), False) else "")
            for n, r in settings.itertuples(index=False)
        ],
    )
    ax.set_xlabel("true class (test count)")
    return image


def _recall_subtitle(shown_runs: pd.DataFrame) -> str:
    marks = (
        f"; {COLLAPSED} = a setting with collapsed runs" if shown_runs["collapsed"].any() else ""
    )
    n = shown_runs.groupby(["method", "noise", "rate"]).size()
    what = (
        "one run per cell"
        if n.max() < 2
        else f"mean over the {n.min() if n.min() == n.max() else f'{n.min()}–{n.max()}'} runs "
        "of each cell"
    )
    return f"per-class test recall (%), {what}{marks}"


def recall_figure(runs: pd.DataFrame, dataset: str) -> Figure:
    """The figure of :func:`plot_recall`, not saved (for tests and notebooks)."""
    k = runs_last_k(runs)
    df = run_flags(runs[runs["dataset"] == dataset])
    backbone = _one_backbone(df, dataset)
    oracle = oracle_methods(df)
    df = df[df["per_class_recall"].notna()]
    if df.empty:
        raise ValueError(f"{dataset}: no per-class recall in the run table")
    noisy = noisy_rows(df)
    score = (noisy if len(noisy) else df).groupby("method")[HEADLINE].mean()
    order = ordered(score.index, grid.methods())
    score = score.reindex(order).sort_values(ascending=False, kind="mergesort")
    picks = [("best", score.index[0]), ("worst", score.index[-1])]
    counts = next(
        (json.loads(c) for c in df.get("test_class_counts", []) if isinstance(c, str)), None
    )
    names = _class_names(dataset, int(df["num_classes"].iloc[0]))
    xlabels = [f"{nm}\n(n={counts[i]})" if counts else nm for i, nm in enumerate(names)]
    colors = method_colors(score.index)
    fig = _figure(FIGSIZE_RECALL)
    axes = fig.subplots(1, 2)
    for ax, (which, method) in zip(axes, picks):
        image = _recall_panel(ax, df[df["method"] == method], xlabels)
        tag = "best = worst (only one method)" if picks[0][1] == picks[1][1] else which
        ax.set_title(
            f"{tag}: {oracle_label(method, oracle)} (mean {score[method]:.1f} % over "
            f"{'noisy' if len(noisy) else 'all'} runs)",
            color=colors[method],
            fontweight="bold",
        )
    axes[0].set_ylabel("noise pattern and rate")
    fig.colorbar(image, ax=list(axes), label=f"per-class test recall (%), {grid.last_k_text(k)}")
    shown_runs = df[df["method"].isin([m for _, m in picks])]
    fig.suptitle(
        f"{dataset} ({backbone}): which classes do the best and the worst method (by mean "
        f"accuracy) get right?\n{_recall_subtitle(shown_runs)}"
    )
    return fig
