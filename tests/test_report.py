"""Report aggregation and figures on synthetic, checksummed metrics.json files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from lnm.checksum import ChecksumError, verify, write_text
from lnm.grid import TABLES, methods
from lnm.report import aggregate as agg
from lnm.report import figures, tables
from lnm.report.fmt import runs_last_k
from tests.conftest import check_png

# LNMBench fig. 2: method -> (symmetric, instance, real-world) and overall.
PAPER = {
    "coteaching": (60.41, 60.00, 45.31, 55.24),
    "disc": (61.38, 58.37, 43.54, 54.43),
    "cdr": (52.63, 55.48, 52.22, 53.44),
    "sce": (52.43, 53.02, 54.11, 53.19),
    "dividemix": (63.23, 57.27, 38.75, 53.09),
    "codis": (56.95, 58.88, 42.73, 52.86),
    "coteaching_plus": (64.60, 54.55, 39.31, 52.82),
    "ce": (48.82, 53.61, 49.68, 50.70),
    "jocor": (47.10, 53.03, 46.48, 48.87),
    "volminnet": (51.49, 50.16, 43.44, 48.36),
    "trevision": (48.64, 49.17, 43.84, 47.22),
}


def metrics(
    acc,
    dataset="breastmnist",
    noise="symmetric",
    rate=0.2,
    method="ce",
    seed=0,
    noise_seed=0,
    identifiable=True,
    backbone="resnet8",
    last_k=5,
):
    return {
        "run": {
            "dataset": dataset,
            "noise": noise,
            "rate": rate,
            "noise_seed": noise_seed,
            "method": method,
            "backbone": backbone,
            "seed": seed,
            "epochs": 10,
            "size": 28,
        },
        "identifiable": identifiable,
        "last_k": last_k,
        "num_classes": 2,
        "num_test": 156,
        "noise_rate_realised": rate,
        "noise_rate_realised_val": rate,
        "test_acc_last_k": acc,
        "test_acc_best_val": acc - 1,
        "best_val_epoch": 7,
        "balanced_acc_last_k": acc - 10,
        "macro_f1_last_k": acc - 12,
        "auc_last_k": 0.8,
        "ece_last_k": 0.05,
        "nll_last_k": 0.45,
        "per_class_recall_last_k": [55.0, 90.1],
        "selection": {
            "clean_ratio": None,
            "coverage": 80.0,
            "purified_ratio": None,
            "t_error": None,
        },
        "inputs": {
            "data": {"path": "d.h5", "sha256": "a" * 64},
            "noise": {"path": "n.npz", "sha256": "b" * 64},
        },
        "provenance": {},
    }


@pytest.fixture
def make_runs(tmp_path):
    """Write metrics.json files (with sidecars) and return collect_runs over them."""

    def make(specs):
        paths = []
        for i, (acc, kw) in enumerate(specs):
            path = tmp_path / "runs" / f"{i:04d}" / "metrics.json"
            write_text(path, json.dumps(metrics(acc, **kw)))
            paths.append(path)
        return agg.collect_runs(paths)

    return make


def test_collect_runs_columns_and_values(make_runs):
    runs = make_runs(
        [(70.0, dict(method="sce")), (60.0, dict(method="ce", seed=1)), (50.0, dict(method="ce"))]
    )
    assert list(runs.columns) == agg.COLUMNS
    assert list(runs["method"]) == ["ce", "ce", "sce"]  # canonical method order, then seed
    assert list(runs["test_acc_last_k"]) == [50.0, 60.0, 70.0]
    assert runs["coverage"].tolist() == [80.0] * 3 and runs["clean_ratio"].isna().all()
    assert runs["noise_sha256"].iloc[0] == "b" * 64


def test_collect_runs_refuses_tampered_file(tmp_path):
    path = tmp_path / "r" / "metrics.json"
    write_text(path, json.dumps(metrics(80.0)))
    path.write_text(path.read_text().replace("80.0", "99.0"))
    with pytest.raises(ChecksumError, match="metrics.json"):
        agg.collect_runs([path])


def test_collect_runs_refuses_duplicate_runs(make_runs):
    with pytest.raises(ValueError, match="several metrics files"):
        make_runs([(80.0, {}), (81.0, {})])


def test_ranking_reproduces_paper_arithmetic(make_runs):
    # Two seeds per (method, pattern) at value ± d: the pattern mean is the paper's value.
    specs = [
        (v + d, dict(method=m, noise=noise, seed=s))
        for m, vals in PAPER.items()
        for noise, v in zip(["symmetric", "instance", "real"], vals)
        for s, d in enumerate([-2.5, 2.5])
    ]
    specs += [(99.0, dict(method=m, noise="none", rate=0.0)) for m in PAPER]  # clean: ignored
    rank = agg.ranking(make_runs(specs))
    assert list(rank.columns) == ["symmetric", "instance", "real", "overall"]
    assert list(rank.index) == list(PAPER)  # the paper's order
    for m, (sym, inst, real, overall) in PAPER.items():
        assert rank.loc[m, ["symmetric", "instance", "real"]].tolist() == pytest.approx(
            [sym, inst, real]
        )
        assert abs(rank.loc[m, "overall"] - overall) < 0.01


def test_ranking_pattern_mean_is_over_all_cells(make_runs):
    # dataset a: 2 rates x 2 seeds, dataset b: 1 rate x 1 seed -> 5 runs, not a mean of means.
    a = [
        (acc, dict(dataset="a", rate=r, seed=s))
        for (r, s), acc in zip(itertools.product([0.2, 0.4], [0, 1]), [60, 62, 50, 52])
    ]
    b = [(30.0, dict(dataset="b"))]
    inst = [(40.0, dict(dataset="a", noise="instance"))]
    rank = agg.ranking(make_runs(a + b + inst))
    assert rank.loc["ce", "symmetric"] == pytest.approx(254 / 5)  # 50.8, not (56 + 30) / 2
    assert rank.loc["ce", "overall"] == pytest.approx((254 / 5 + 40) / 2)


@pytest.fixture
def grid(make_runs):
    """breastmnist: none/0, symmetric 0.2 & 0.6 (non-identifiable), 2 seeds, ce/sce/dividemix."""
    acc = {
        ("none", 0.0): {"ce": 90, "sce": 91, "dividemix": 92},
        ("symmetric", 0.2): {"ce": 80, "sce": 84, "dividemix": 82},
        ("symmetric", 0.6): {"ce": 40, "sce": 45, "dividemix": 50},
    }
    specs = [
        (v + d, dict(noise=n, rate=r, method=m, seed=s, identifiable=r < 0.5))
        for (n, r), row in acc.items()
        for m, v in row.items()
        for s, d in enumerate([-1.0, 3.0])
    ]
    specs.append((70.0, dict(noise="pairflip", rate=0.2, method="ce")))  # one seed only
    return make_runs(specs)


def test_summarize_mean_std_n(grid):
    s = agg.summarize(grid).set_index(["noise", "rate", "method"])
    cell = s.loc[("symmetric", 0.2, "sce")]
    assert cell["test_acc_last_k_mean"] == pytest.approx(85.0)  # (83 + 87) / 2
    assert cell["test_acc_last_k_std"] == pytest.approx(np.sqrt(8))  # ddof=1: sqrt(2*2^2/1)
    assert cell["test_acc_best_val_mean"] == pytest.approx(84.0)
    assert cell["n"] == 2 and bool(cell["identifiable"])
    assert not s.loc[("symmetric", 0.6, "ce"), "identifiable"]
    one = s.loc[("pairflip", 0.2, "ce")]
    assert one["n"] == 1 and np.isnan(one["test_acc_last_k_std"])
    assert [n for n, _, _ in s.index][:3] == ["none"] * 3 and s.index[0][2] == "ce"


def test_summary_markdown_bold_and_dagger(grid):
    md = agg.summary_markdown(agg.summarize(grid), runs_last_k(grid))
    lines = md.splitlines()
    assert "## breastmnist (resnet8)" in lines
    assert "| noise | rate | ce | sce | dividemix |" in lines
    # accuracy ± std / balanced accuracy; 156 test images resolve ±5.6 points at 85 %, so the
    # three methods of a row (4 points apart at most) are not separable: all bold
    assert (
        "| symmetric | 0.2 | **81.0 ± 2.8 / 71.0** | **85.0 ± 2.8 / 75.0** | **83.0 ± 2.8 / 73.0** |"
        in lines
    )
    assert (
        "| symmetric | 0.6 † | **41.0 ± 2.8 / 31.0** | **46.0 ± 2.8 / 36.0** | **51.0 ± 2.8 / 41.0** |"
        in lines
    )
    assert "| pairflip | 0.2 | **70.0 / 60.0** | – | – |" in lines
    assert sum("†" in line for line in lines) == 2  # the one row + the footnote
    assert "most likely noisy label" in md


def test_write_tables(grid, tmp_path):
    out = tmp_path / "tables"
    paths = agg.write_tables(grid, out)
    assert sorted(paths) == sorted(TABLES["aggregate"])  # exactly the rule's files
    assert {"ranking.csv", "summary.csv", "summary.md"} <= set(paths)
    for p in paths.values():
        verify(p)
    assert pd.read_csv(out / "ranking.csv", index_col="method").index[0] == "dividemix"
    runs_csv = agg.write_runs_csv(grid, tmp_path / "runs.csv")
    verify(runs_csv)
    assert len(pd.read_csv(runs_csv)) == len(grid)


def test_method_colors_are_stable():
    everyone = figures.method_colors(methods())
    assert len(set(everyone.values())) == len(methods())
    assert figures.method_colors(["dividemix", "ce"]) == {
        "ce": everyone["ce"],
        "dividemix": everyone["dividemix"],
    }
    assert "mystery" in figures.method_colors(["mystery", "ce"])


def test_figures(grid, tmp_path):
    check_png(
        figures.plot_acc_vs_rate(grid, "breastmnist", tmp_path / "acc.png"), figures.FIGSIZE_ACC
    )
    for pattern in ("symmetric", "overall"):
        check_png(
            figures.plot_ranking(grid, pattern, tmp_path / f"rank_{pattern}.png"),
            figures.FIGSIZE_RANKING,
        )


def test_acc_vs_rate_one_pattern_one_rate(make_runs, tmp_path):
    runs = make_runs([(80.0, dict(method="ce")), (75.0, dict(method="disc"))])
    check_png(
        figures.plot_acc_vs_rate(runs, "breastmnist", tmp_path / "one.png"), figures.FIGSIZE_ACC
    )


def test_single_method_rows_are_all_bold_whatever_the_float_rounding():
    """Regression (found in the demo): a mean on a .x5 boundary (52.85) was rounded one way for
    the row's best and another way for the cell, leaving the only cell of a row unbolded."""
    from lnm.report.aggregate import summarize, summary_markdown

    rows = [
        dict(
            dataset="d",
            noise="symmetric",
            rate=0.2,
            backbone="b",
            method="ce",
            seed=s,
            noise_seed=0,
            identifiable=True,
            last_k=5,
            realised_rate=0.2,
            test_acc_last_k=v,
            test_acc_best_val=v,
            balanced_acc_last_k=v,
            macro_f1_last_k=v,
        )
        for s, v in enumerate([51.25, 54.45])
    ]
    runs = pd.DataFrame(rows)
    md = summary_markdown(summarize(runs), runs_last_k(runs))
    line = next(ln for ln in md.splitlines() if ln.startswith("| symmetric"))
    assert line.count("**") == 2, line


def test_overall_column_from_the_papers_pattern_columns(make_runs):
    """One run per method and pattern at exactly the paper's per-pattern value: the overall
    column and the order are the paper's (LNMBench fig. 2, reference-protocol.md §5.1)."""
    specs = [
        (v, dict(method=m, noise=noise))
        for m, vals in PAPER.items()
        for noise, v in zip(["symmetric", "instance", "real"], vals)
    ]
    rank = agg.ranking(make_runs(specs))
    assert list(rank.index) == list(PAPER)
    for m, (*_, overall) in PAPER.items():
        assert abs(rank.loc[m, "overall"] - overall) <= 0.01  # the paper rounds to 2 dp
    view, meta = agg.ranking_view(make_runs(specs))
    assert view[list(rank.columns)].equals(rank)  # ranking.csv keeps the paper's numbers
    table = agg.ranking_tables(view, meta)[0]
    # 156 test images resolve about ±7 points: whole points, and with one cell per pattern
    # the Friedman test is n/a, so every method shares group a and every value is bold
    assert table.rows[0][:5] == ["coteaching", "60 a", "60 a", "45 a", "55 a"]
    assert all(b[1:5] == [True] * 4 for b in table.bold)
    assert "Rounded to 0 decimal(s)" in " ".join(table.notes)


def test_runs_mixing_last_k_are_refused(make_runs, tmp_path):
    """Two runs averaging different numbers of epochs cannot share one table: collect_runs,
    and every writer handed such a run table, refuse it naming both values."""
    with pytest.raises(ValueError, match=r"different last_k \[3, 5\]"):
        make_runs([(80.0, dict(last_k=3)), (70.0, dict(last_k=5, seed=1))])
    runs = make_runs([(80.0, dict(last_k=5)), (70.0, dict(last_k=5, seed=1))])
    runs.loc[0, "last_k"] = 3  # a hand-edited runs.csv
    for write in (agg.write_tables, tables.write_statistics):
        with pytest.raises(ValueError, match=r"different last_k \[3, 5\]"):
            write(runs, tmp_path / "t")
    with pytest.raises(ValueError, match=r"different last_k \[3, 5\]"):
        figures.plot_ranking(runs, "overall", tmp_path / "r.png")
    assert not (tmp_path / "t").exists()  # refused before anything was written


def test_summary_says_the_runs_last_k(make_runs, tmp_path):
    runs = make_runs(
        [(80.0 + s, dict(method=m, seed=s, last_k=3)) for m in ("ce", "sce") for s in (0, 1)]
    )
    md = agg.summary_markdown(agg.summarize(runs), runs_last_k(runs))
    assert md.splitlines()[0] == (
        "# Test accuracy (%), mean of the last 3 epochs / balanced accuracy (%), mean ± std over "
        "the 2 runs of each cell (training seeds × noise seeds)"
    )
    paths = agg.write_tables(runs, tmp_path)
    assert paths["summary.md"].read_text() == md
    for name in ("summary.md", "summary.tex", "summary.html"):
        text = paths[name].read_text()
        assert "mean of the last 3 epochs" in text, name
        assert "5 epoch" not in text and "last 5" not in text and "last-5" not in text, name
