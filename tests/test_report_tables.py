"""Statistics tables, selection diagnostics, run metadata and the new figures on synthetic,
checksummed run folders (metrics.json + per_epoch.csv + test_probs.npz)."""

from __future__ import annotations

import io
import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from lnm.checksum import verify, write_bytes, write_text
from lnm.report import aggregate as agg
from lnm.report import cells as cell_stats
from lnm.report import diagnostics, figures, metadata, tables
from lnm.report.stats import NEEDS_SEEDS
from tests.conftest import check_png

DATASETS = {"breastmnist": [42, 114], "retinamnist": [174, 46, 92, 68, 20]}
BIAS = {"ce": 0.0, "coteaching": 4.0, "disc": 6.0, "trevision": -2.0, "coteaching_plus": 1.0}


def write_run(
    root,
    dataset,
    noise,
    rate,
    method,
    noise_seed,
    seed,
    acc,
    epochs=4,
    identifiable=True,
    rng=None,
    last_k=2,
):
    """One run folder as the trainer writes it (all files with sidecars)."""
    rng = rng or np.random.default_rng(0)
    counts = DATASETS[dataset]
    c, n = len(counts), sum(counts)
    d = (
        root
        / "runs"
        / dataset
        / f"{noise}-{rate:g}-n{noise_seed}"
        / method
        / "resnet8"
        / f"s{seed}"
    )
    recall = [float(v) for v in np.clip(acc + rng.normal(0, 15, c), 0, 100)]
    ep = pd.DataFrame(
        {
            "epoch": range(epochs),
            "train_loss": 1.0,
            "val_acc": acc,
            "val_acc_clean": acc,
            "test_acc": acc + rng.normal(0, 1, epochs),
            "test_per_class_recall": [json.dumps(recall)] * epochs,
        }
    )
    sel = dict.fromkeys(["clean_ratio", "coverage", "purified_ratio", "t_error", "gmm_auc"])
    if method in ("coteaching", "coteaching_plus", "disc"):
        ep["clean_ratio"] = 100 - 50 * rate + np.arange(epochs)
        ep["coverage"] = 90 - 5.0 * np.arange(epochs)
    if method == "disc":
        ep["purified_ratio"] = 70 + np.arange(epochs)
    if method == "trevision":
        ep["stage"] = "revision"
        ep["t_error"] = 0.5 - 0.05 * np.arange(epochs) + rate
    for k in sel:
        if k in ep:
            sel[k] = float(ep[k].iloc[-last_k:].mean())
    m = {
        "run": {
            "dataset": dataset,
            "noise": noise,
            "rate": rate,
            "noise_seed": noise_seed,
            "method": method,
            "backbone": "resnet8",
            "seed": seed,
            "epochs": epochs,
            "size": 28,
        },
        "identifiable": identifiable,
        "last_k": last_k,
        "num_classes": c,
        "num_test": n,
        "noise_rate_realised": rate,
        "noise_rate_realised_val": rate,
        "test_acc_last_k": acc,
        "test_acc_best_val": acc - 1,
        "best_val_epoch": 2,
        "balanced_acc_last_k": float(np.mean(recall)),
        "macro_f1_last_k": acc - 15,
        "auc_last_k": 0.8,
        "ece_last_k": 0.05,
        "nll_last_k": 0.5,
        "per_class_recall_last_k": recall,
        "selection": sel,
        "inputs": {
            "data": {"path": "d.h5", "sha256": "a" * 64},
            "noise": {"path": "n.npz", "sha256": "b" * 64},
        },
        "provenance": {
            "git_commit": "abc123",
            "device": "cpu",
            "python": "3.11.7",
            "packages": {"torch": "2.14.1", "numpy": "2.4.6"},
        },
    }
    write_text(d / "metrics.json", json.dumps(m))
    buf = io.StringIO()
    ep.to_csv(buf, index=False)
    write_text(d / "per_epoch.csv", buf.getvalue())
    labels = np.repeat(np.arange(c), counts)
    npz = io.BytesIO()
    np.savez_compressed(npz, probs=np.full((n, c), 1.0 / c, np.float32), labels=labels)
    write_bytes(d / "test_probs.npz", npz.getvalue())
    return d / "metrics.json"


def make_grid(
    root,
    methods=("ce", "coteaching", "disc", "trevision"),
    settings=(("none", 0.0), ("symmetric", 0.2), ("symmetric", 0.6), ("instance", 0.4)),
    noise_seeds=(0, 1),
    seeds=(0, 1),
    datasets=tuple(DATASETS),
    seed=0,
    last_k=2,
):
    rng = np.random.default_rng(seed)
    paths = []
    for ds, (noise, rate), m, ns, s in itertools.product(
        datasets, settings, methods, noise_seeds, seeds
    ):
        acc = float(np.clip(85 - 60 * rate + BIAS[m] + 2 * ns - 1 + rng.normal(0, 1), 0, 100))
        ident = not (len(DATASETS[ds]) == 2 and rate >= 0.5)
        paths.append(
            write_run(
                root, ds, noise, rate, m, ns, s, acc, identifiable=ident, rng=rng, last_k=last_k
            )
        )
    return paths


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    return agg.collect_runs(make_grid(root)), root


# ---------------------------------------------------------------- run table


def test_runs_carry_class_counts_and_recall(grid):
    runs, _ = grid
    r = runs[runs["dataset"] == "retinamnist"].iloc[0]
    assert json.loads(r["test_class_counts"]) == DATASETS["retinamnist"]
    assert r["majority_acc"] == pytest.approx(100 * 174 / 400)
    assert len(json.loads(r["per_class_recall"])) == 5
    assert set(agg.COLUMNS) >= {"per_class_recall", "test_class_counts", "majority_acc"}


def test_runs_without_test_probs_have_no_counts(tmp_path):
    path = write_run(tmp_path, "breastmnist", "symmetric", 0.2, "ce", 0, 0, 70.0)
    path.with_name("test_probs.npz").unlink()
    runs = agg.collect_runs([path])
    assert runs["test_class_counts"].isna().all() and runs["majority_acc"].isna().all()
    cells = cell_stats.cell_table(runs)
    assert "test class counts unknown" in cells["note"].iloc[0]


# ---------------------------------------------------------------- cells


def test_cell_table_statistics(grid):
    runs, _ = grid
    cells = cell_stats.cell_table(runs).set_index(["dataset", "noise", "rate", "method"])
    sel = runs.query(
        "dataset == 'retinamnist' and noise == 'symmetric' and rate == 0.2 and method == 'disc'"
    )["test_acc_last_k"]
    c = cells.loc[("retinamnist", "symmetric", 0.2, "disc")]
    assert c["n"] == 4 and c["n_noise_seeds"] == 2 and c["n_seeds"] == 2
    assert c["mean"] == pytest.approx(sel.mean())
    from scipy import stats as sps

    lo, hi = sps.t.interval(0.95, 3, loc=sel.mean(), scale=sps.sem(sel))
    assert (c["ci_lo"], c["ci_hi"]) == pytest.approx((lo, hi))
    p = sel.mean() / 100
    assert c["test_hw"] == pytest.approx(100 * 1.959964 * np.sqrt(p * (1 - p) / 400), rel=1e-5)
    chance = 100 * 174 / 400
    clean = runs.query("dataset == 'retinamnist' and noise == 'none' and method == 'ce'")
    assert c["chance"] == pytest.approx(chance)
    assert c["clean_ce"] == pytest.approx(clean["test_acc_last_k"].mean())
    assert c["ceiling_frac"] == pytest.approx((c["mean"] - chance) / (c["clean_ce"] - chance))
    block = cells.sort_index().loc[("retinamnist", "symmetric", 0.2)]
    assert block["best"].sum() == 1 and bool(block.loc["disc", "best"])
    assert not block.loc["disc", "tied"]
    assert not cells.loc[("breastmnist", "symmetric", 0.6, "ce"), "identifiable"]


def test_one_seed_cells_say_na(tmp_path):
    paths = make_grid(
        tmp_path,
        methods=("ce", "disc"),
        noise_seeds=(0,),
        seeds=(0,),
        settings=(("none", 0.0), ("symmetric", 0.4)),
        datasets=("breastmnist",),
    )
    runs = agg.collect_runs(paths)
    out = tables.write_statistics(runs, tmp_path / "tables")
    md = (tmp_path / "tables" / "cells.md").read_text()
    assert "(n=1)" in md and md.count(NEEDS_SEEDS) == 1  # explained once, in the CI note
    cells = pd.read_csv(out["cells.csv"])
    assert cells["ci_hw"].isna().all() and cells["note"].str.contains(NEEDS_SEEDS).all()
    stats_md = (tmp_path / "tables" / "statistics.md").read_text()
    assert "Friedman test n/a: needs ≥3 methods" in stats_md
    assert "n/a: needs ≥2 cells" in stats_md  # Wilcoxon, one noisy cell
    assert "n/a: needs ≥2 noise seeds × ≥2 training seeds" in stats_md


def test_write_statistics_files_and_content(grid, tmp_path):
    runs, _ = grid
    out = tables.write_statistics(runs, tmp_path)
    assert sorted(out) == sorted(tables.STAT_FILES)
    for p in out.values():
        verify(p)
    ranks = pd.read_csv(out["ranks.csv"])
    assert ranks["method"].iloc[0] == "disc" and ranks["n_cells"].iloc[0] == 6
    fr = pd.read_csv(out["friedman.csv"]).iloc[0]
    matrix = cell_stats.block_matrix(cell_stats.cell_table(runs))
    from scipy import stats as sps

    ref = sps.friedmanchisquare(*(matrix[c] for c in matrix))
    assert fr["chi2"] == pytest.approx(ref.statistic) and fr["k"] == 4
    assert fr["cd"] == pytest.approx(2.569 * np.sqrt(4 * 5 / (6 * 6)), abs=1e-3)
    wil = pd.read_csv(out["wilcoxon.csv"]).set_index("method")
    assert list(wil.index) == ["trevision", "coteaching", "disc"]
    assert wil.loc["disc", "win_share"] == 1.0 and wil.loc["disc", "n_cells"] == 6
    var = pd.read_csv(out["variance.csv"])
    assert var["share_noise"].between(0, 1).all() and "all" in set(var["method"])
    imb = pd.read_csv(out["imbalance.csv"])
    assert set(imb["dataset"]) == {"breastmnist", "retinamnist"}  # both are imbalanced
    html = (tmp_path / "ranks.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and "Friedman" in html
    cells_md = (tmp_path / "cells.md").read_text()
    assert re.search(r"\*\*\d+\.\d \[\d+\.\d, \d+\.\d\]\*\*", cells_md)  # best bold, with CI
    assert "±test" in cells_md and "† Not identifiable" in cells_md


def test_summary_latex_booktabs_bold_dagger(grid, tmp_path):
    runs, _ = grid
    out = agg.write_tables(runs, tmp_path)
    tex = out["summary.tex"].read_text()
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{lrrrrr}"):
        assert token in tex
    row = next(line for line in tex.splitlines() if line.startswith("symmetric & 0.6"))
    assert r"$^\dagger$" in row and row.count(r"\textbf{") == 1 and r"$\pm$" in row
    assert r"\textbf{" in next(ln for ln in tex.splitlines() if ln.startswith("none"))
    md_row = next(
        line
        for line in agg.summary_markdown(agg.summarize(runs), 2).splitlines()
        if line.startswith("| symmetric | 0.6")
    )
    # the same cell is bold in Markdown and in LaTeX
    bold_md = [i for i, c in enumerate(md_row.split("|")[3:-1]) if "**" in c]
    bold_tex = [i for i, c in enumerate(row.rstrip(" \\").split(" & ")[2:]) if r"\textbf" in c]
    assert bold_md == bold_tex
    assert "<b>" in out["summary.html"].read_text()
    assert "overall" in out["ranking.html"].read_text()


def test_tex_escape():
    from lnm.report.render import tex_escape

    assert tex_escape("coteaching_plus 50 % ± 1") == r"coteaching\_plus 50 \% $\pm$ 1"


def test_every_label_says_the_runs_last_k(tmp_path):
    """Headings, captions and notes say how many epochs the *_last_k numbers average: the
    runs' last_k (3 here), never a fixed 5."""
    paths = make_grid(
        tmp_path / "runs",
        methods=("ce", "disc", "trevision"),
        settings=(("none", 0.0), ("symmetric", 0.4)),
        noise_seeds=(0,),
        datasets=("retinamnist",),
        last_k=3,
    )
    runs = agg.collect_runs(paths)
    out = tmp_path / "tables"
    written = {
        **agg.write_tables(runs, out),
        **tables.write_statistics(runs, out),
        **diagnostics.write_diagnostics(runs, out),
    }
    says = {n: p.read_text() for n, p in written.items() if n.endswith((".md", ".html", ".tex"))}
    for name, text in says.items():
        assert not re.search(r"last.5|5.epoch", text), name
    for name in ("summary.md", "cells.md", "imbalance.html", "selection.md", "statistics.md"):
        assert "mean of the last 3 epochs" in says[name], name


# ---------------------------------------------------------------- diagnostics


def test_diagnostics(grid, tmp_path):
    runs, _ = grid
    ep = diagnostics.collect_epochs(runs)
    assert len(ep) == len(runs) * 4 and ep["epoch"].min() == 1
    assert ep.query("method == 'ce'")["clean_ratio"].isna().all()
    assert ep.query("method == 'trevision'")["t_error"].notna().all()
    out = diagnostics.write_diagnostics(runs, tmp_path)
    for p in out.values():
        verify(p)
    sel = pd.read_csv(out["selection.csv"])
    assert set(sel["method"]) == {"coteaching", "disc", "trevision"}
    assert (sel["noise"] != "none").all()
    md = out["selection.md"].read_text()
    assert "transition-matrix estimation error" in md and "purified ratio" in md


def test_diagnostics_without_diagnostic_methods(tmp_path):
    paths = make_grid(
        tmp_path,
        methods=("ce",),
        noise_seeds=(0,),
        seeds=(0,),
        settings=(("symmetric", 0.4),),
        datasets=("breastmnist",),
    )
    out = diagnostics.write_diagnostics(agg.collect_runs(paths), tmp_path / "t")
    assert "no method in this grid reports" in out["selection.md"].read_text()


# ---------------------------------------------------------------- metadata


def test_metadata(grid, tmp_path):
    runs, _ = grid
    cfg = {"datasets": ["breastmnist"], "train": {"epochs": 4}}
    out = metadata.write_metadata(cfg, runs["metrics_path"], tmp_path)
    for p in out.values():
        verify(p)
    assert yaml.safe_load(out["config.yaml"].read_text()) == cfg
    v = pd.read_csv(out["versions.csv"])
    torch = v.query("package == 'torch' and scope == 'training runs'").iloc[0]
    assert torch["version"] == "2.14.1" and torch["runs"] == len(runs)
    assert "scipy" in set(v["package"])
    html = out["run_metadata.html"].read_text()
    assert "abc123" in html and "Effective configuration" in html


# ---------------------------------------------------------------- figures


def test_new_figures_have_the_expected_size(grid, tmp_path):
    runs, _ = grid
    ep = diagnostics.collect_epochs(runs)
    check_png(
        figures.plot_selection(ep, "retinamnist", "symmetric", 0.2, tmp_path / "s.png"),
        figures.FIGSIZE_SELECTION,
    )
    check_png(figures.plot_cd_diagram(runs, tmp_path / "cd.png"), figures.FIGSIZE_CD)
    for ds in DATASETS:
        check_png(figures.plot_recall(runs, ds, tmp_path / f"r_{ds}.png"), figures.FIGSIZE_RECALL)


def test_figures_on_a_minimal_grid(tmp_path):
    """One method, one dataset, one seed, no diagnostics: every figure still draws."""
    paths = make_grid(
        tmp_path,
        methods=("ce",),
        noise_seeds=(0,),
        seeds=(0,),
        settings=(("none", 0.0), ("symmetric", 0.4)),
        datasets=("breastmnist",),
    )
    runs = agg.collect_runs(paths)
    ep = diagnostics.collect_epochs(runs)
    check_png(
        figures.plot_selection(ep, "breastmnist", "symmetric", 0.4, tmp_path / "s.png"),
        figures.FIGSIZE_SELECTION,
    )
    check_png(figures.plot_cd_diagram(runs, tmp_path / "cd.png"), figures.FIGSIZE_CD)
    check_png(figures.plot_recall(runs, "breastmnist", tmp_path / "r.png"), figures.FIGSIZE_RECALL)
    check_png(figures.plot_ranking(runs, "overall", tmp_path / "rank.png"), figures.FIGSIZE_RANKING)
    check_png(
        figures.plot_acc_vs_rate(runs, "breastmnist", tmp_path / "acc.png"), figures.FIGSIZE_ACC
    )
