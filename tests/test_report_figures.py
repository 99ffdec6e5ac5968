"""Every figure of the report, rendered on small synthetic inputs, keeps its text inside the
figure and has a visible mark for every legend entry (issue 21: the CD diagram's third title
line was clipped at both edges; ranking_overall.png listed a line that lay off its x-axis).

Text: every text matplotlib draws (titles, labels, tick labels, notes, legend texts) is
recorded with its window extent while the figure is drawn, and must lie within the figure's
extent (1 px of tolerance). Legends: each entry's handle is either a drawn artist of an axes
(then some of its data lies within that axes' view), a proxy whose ``gid`` names the artists it
stands for (the proxy's ``:``-separated parts are a subset of theirs; at least one of them lies
within its axes), or a text-only note (an invisible patch)."""

from __future__ import annotations

import contextlib
import itertools

import matplotlib.text as mtext
import numpy as np
import pytest
from matplotlib.collections import Collection
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lnm.report import aggregate as agg
from lnm.report import diagnostics, figures
from lnm.report import estimation as est
from tests.test_report_estimation import estimate_files
from tests.test_report_tables import write_run

BIAS = {"ce": 0.0, "coteaching": 4.0, "disc": 6.0, "trevision": -2.0, "coteaching_plus": 1.0}
SETTINGS = (("none", 0.0), ("symmetric", 0.2), ("symmetric", 0.6), ("pairflip", 0.4))


@contextlib.contextmanager
def drawn_texts():
    """Record (text, window extent) of every non-empty text drawn inside the block."""
    seen = []
    draw = mtext.Text.draw

    def record(self, renderer):
        draw(self, renderer)
        if self.get_visible() and self.get_text().strip():
            seen.append((self.get_text(), self.get_window_extent(renderer)))

    mtext.Text.draw = record
    try:
        yield seen
    finally:
        mtext.Text.draw = draw


def display_points(artist) -> np.ndarray:
    """The artist's data points in display coordinates."""
    if isinstance(artist, Line2D):
        xy = np.column_stack([np.asarray(artist.get_xdata(), float), artist.get_ydata()])
        pts = artist.get_transform().transform(xy) if len(xy) else np.empty((0, 2))
    elif isinstance(artist, Collection):
        paths = [p.vertices for p in artist.get_paths() if len(p.vertices)]
        pts = artist.get_transform().transform(np.vstack(paths)) if paths else np.empty((0, 2))
    else:
        return np.empty((0, 2))
    return pts[np.isfinite(pts).all(axis=1)]


def inside(artist, ax) -> bool:
    """Some point of ``artist`` lies within ``ax`` (its view, in display coordinates)."""
    box = ax.bbox
    pts = display_points(artist)
    return bool(
        (
            (pts[:, 0] >= box.x0 - 1)
            & (pts[:, 0] <= box.x1 + 1)
            & (pts[:, 1] >= box.y0 - 1)
            & (pts[:, 1] <= box.y1 + 1)
        ).any()
    )


def check(fig, name):
    with drawn_texts() as texts:
        fig.canvas.draw()
    frame = fig.bbox
    clipped = [
        (text[:50], [round(v) for v in box.extents])
        for text, box in texts
        if box.x0 < frame.x0 - 1
        or box.y0 < frame.y0 - 1
        or box.x1 > frame.x1 + 1
        or box.y1 > frame.y1 + 1
    ]
    assert not clipped, (
        f"{name}: text outside the figure {[round(v) for v in frame.extents]}: {clipped}"
    )
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    artists = [
        (a, ax)
        for ax in fig.axes
        for a in ax.get_children()
        if isinstance(a, Line2D | Collection) and a.get_gid()
    ]
    for legend in legends:
        for handle, text in zip(legend.originals, legend.get_texts()):
            label = text.get_text()
            if handle.axes is not None:  # the drawn artist itself
                assert inside(handle, handle.axes), f"{name}: {label!r} drawn off its axes"
                continue
            if isinstance(handle, Patch) and handle.get_facecolor()[3] == 0:
                continue  # a note in the legend, not a mark
            gid = handle.get_gid()
            assert gid, f"{name}: legend entry {label!r} names no artist (gid)"
            want = set(str(gid).split(":"))
            matches = [(a, ax) for a, ax in artists if want <= set(str(a.get_gid()).split(":"))]
            assert matches, f"{name}: legend entry {label!r} ({gid}) has no mark in the figure"
            assert any(inside(a, ax) for a, ax in matches), (
                f"{name}: legend entry {label!r} ({gid}): every mark lies off its axes"
            )


@pytest.fixture(autouse=True)
def legend_originals(monkeypatch):
    """Keep each legend's original handles (matplotlib keeps only copies without their gid)."""
    init = Legend.__init__

    def keep(self, parent, handles, labels, *args, **kwargs):
        init(self, parent, handles, labels, *args, **kwargs)
        self.originals = list(handles)

    monkeypatch.setattr(Legend, "__init__", keep)


def grid_runs(root, methods, oracle=()):
    paths = []
    rng = np.random.default_rng(0)
    for ds, (noise, rate), m, s in itertools.product(
        ("breastmnist", "retinamnist"), SETTINGS, methods, (0, 1)
    ):
        acc = float(np.clip(85 - 60 * rate + BIAS[m] + rng.normal(0, 1), 0, 100))
        extra = {"uses_true_noise_rate": m in oracle and noise != "none"}
        ident = not (ds == "breastmnist" and rate >= 0.5)
        probs = None
        if not ident:  # BreastMNIST at rate 0.6 collapses to the majority class
            probs = np.tile(np.float32([0.1, 0.9]), (156, 1))
            acc = 100 * 114 / 156
        paths.append(
            write_run(
                root,
                ds,
                noise,
                rate,
                m,
                0,
                s,
                acc,
                identifiable=ident,
                rng=rng,
                extra=extra,
                probs=probs,
            )
        )
    return agg.collect_runs(paths)


def every_figure(runs, name):
    """Each figure function once or twice: the inputs make the long texts (the CD diagram and
    the ranking first: the two the issue found at fault)."""
    yield f"{name} cd_diagram", figures.cd_diagram_figure(runs)
    for pattern in ("pairflip", "overall"):
        yield f"{name} ranking {pattern}", figures.ranking_figure(runs, pattern)
    for ds in ("breastmnist", "retinamnist"):
        yield f"{name} acc_vs_rate {ds}", figures.acc_vs_rate_figure(runs, ds)
    yield f"{name} recall", figures.recall_figure(runs, "retinamnist")
    ep = diagnostics.collect_epochs(runs)
    for ds, (noise, rate) in (("breastmnist", SETTINGS[2]), ("retinamnist", SETTINGS[1])):
        yield f"{name} selection {ds} {noise} {rate}", figures.selection_figure(ep, ds, noise, rate)


@pytest.mark.parametrize(
    "methods, oracle",
    [
        # five methods, two told the true rate: the longest titles, legends and tick labels;
        # BreastMNIST at rate 0.6 collapses (its predictions carry no class information)
        (
            ("ce", "trevision", "coteaching", "coteaching_plus", "disc"),
            ("coteaching", "coteaching_plus"),
        ),
        # no CE: no clean-CE line, so no legend entry for it either
        (("coteaching", "disc"), ()),
        # two methods: Friedman n/a, one group; collapsed and oracle marks (the demo's CD
        # diagram had its third title line clipped at both edges)
        (("ce", "trevision"), ("trevision",)),
    ],
)
def test_every_figure_keeps_its_text_inside_and_its_legend_visible(tmp_path, methods, oracle):
    runs = grid_runs(tmp_path, methods, oracle)
    for name, fig in every_figure(runs, "+".join(methods)):
        check(fig, name)


def test_the_estimation_figure_keeps_its_text_inside_and_its_legend_visible(tmp_path):
    estimates = est.collect_estimates(estimate_files(tmp_path / "res"))
    check(est.estimated_vs_true_figure(estimates), "estimated_vs_true")
    real = estimates[estimates["dataset"] == "chexpert"]
    check(est.estimated_vs_true_figure(real), "estimated_vs_true without a true rate")


def test_the_ranking_legend_lists_no_line_it_does_not_draw(tmp_path):
    """Without CE there is no clean-CE line, so no "clean CE" in the legend (the old figure
    listed it, and chance, whether drawn or not)."""
    runs = grid_runs(tmp_path, ("coteaching", "disc"))
    fig = figures.ranking_figure(runs, "overall")
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    drawn = {ln.get_gid() for ax in fig.axes for ln in ax.get_lines()}
    assert "clean-ce" not in drawn and not any("clean CE" in label for label in labels)
