"""Statistics tables, selection diagnostics, run metadata and the new figures on synthetic,
checksummed run folders (metrics.json + per_epoch.csv + test_probs.npz)."""

from __future__ import annotations

import io
import itertools
import json
import re
from pathlib import Path

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
    probs=None,
    train_loss=None,
    extra=None,
):
    """One run folder as the trainer writes it (all files with sidecars). Test predictions are
    right for about ``acc`` % of the images unless ``probs`` is given; ``train_loss`` (per
    epoch, NaN = no update) and ``extra`` (metrics.json keys) override the defaults."""
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
            "train_loss": 1.0 if train_loss is None else train_loss,
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
    m.update(extra or {})
    write_text(d / "metrics.json", json.dumps(m))
    buf = io.StringIO()
    ep.to_csv(buf, index=False)
    write_text(d / "per_epoch.csv", buf.getvalue())
    labels = np.repeat(np.arange(c), counts)
    if probs is None:  # its own generator: the grid's draws do not depend on it
        right = np.random.default_rng(int(acc * 1000)).random(n) < acc / 100
        pred = np.where(right, labels, (labels + 1) % c)
        probs = np.full((n, c), 0.1 / c, np.float32)
        probs[np.arange(n), pred] += 0.9
    npz = io.BytesIO()
    np.savez_compressed(npz, probs=np.asarray(probs, np.float32), labels=labels)
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
    assert "one run per cell, so no CI" in md and "(n=1)" not in md  # said once, in the title
    assert md.count(NEEDS_SEEDS) == 1  # explained once, in the CI note
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
    # breastmnist's row first: two classes at rate 0.6, every cell has runs whose predictions
    # carry no class information (⊘), so nothing is bold; retinamnist's row has a bold cell
    first, row = [line for line in tex.splitlines() if line.startswith("symmetric & 0.6")]
    assert r"\oslash" in first and r"\textbf{" not in first
    assert r"$^\dagger$" in first and r"$\pm$" in row and row.count(r"\textbf{") >= 1
    assert r"\textbf{" in next(ln for ln in tex.splitlines() if ln.startswith("none"))
    md_row = [
        line
        for line in agg.summary_markdown(agg.summarize(runs), 2).splitlines()
        if line.startswith("| symmetric | 0.6")
    ][-1]
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


# ---------------------------------------------------------------- one rule for "best", everywhere


def hand_runs(rows, seeds=(0,)):
    """A run table built by hand: rows of (dataset, num_test, noise, rate, method, acc); two
    balanced test classes, so chance is 50 %."""
    out = []
    for (dataset, n_test, noise, rate, method, acc), seed in itertools.product(rows, seeds):
        out.append(
            {
                "dataset": dataset,
                "noise": noise,
                "rate": rate,
                "noise_seed": 0,
                "method": method,
                "backbone": "b",
                "seed": seed,
                "epochs": 4,
                "size": 28,
                "identifiable": True,
                "num_classes": 2,
                "num_test": n_test,
                "last_k": 2,
                "realised_rate": rate,
                "test_acc_last_k": acc + seed,
                "test_acc_best_val": acc,
                "balanced_acc_last_k": acc - 1,
                "macro_f1_last_k": acc - 2,
                "test_class_counts": json.dumps([n_test // 2, n_test - n_test // 2]),
                "majority_acc": 100.0 * (n_test - n_test // 2) / n_test,
                "metrics_path": "by-hand",
            }
        )
    return pd.DataFrame(out)


#: Means on .x5 boundaries: Python prints 51.55 as 51.5 while numpy/pandas round it to 51.6
#: (and 53.85 / 52.85 to 53.8 / 52.8 while Python prints 53.9 / 52.9). With a million test
#: images the resolution (±0.1) separates 0.1-point gaps; with 100 it does not (±9.6).
X5_ROWS = [
    ("d", 1_000_000, "symmetric", 0.2, "ce", 40.0),
    ("d", 1_000_000, "symmetric", 0.2, "volminnet", 51.55),
    ("d", 1_000_000, "symmetric", 0.2, "jocor", 51.6),
    ("d", 1_000_000, "symmetric", 0.4, "ce", 50.0),
    ("d", 1_000_000, "symmetric", 0.4, "cdr", 53.85),
    ("d", 1_000_000, "instance", 0.4, "ce", 40.0),
    ("d", 1_000_000, "instance", 0.4, "codis", 52.85),
    ("d", 1_000_000, "instance", 0.4, "disc", 52.9),
    ("small", 100, "symmetric", 0.2, "ce", 60.0),
    ("small", 100, "symmetric", 0.2, "sce", 57.0),
    ("small", 100, "symmetric", 0.2, "trevision", 30.0),
]
#: dataset, noise, rate label -> the bold methods: the best as printed, with every method
#: not separable from it (a printed tie, or a gap below the test-set resolution).
X5_BOLD = {
    ("d", "symmetric", "0.2"): {"jocor"},  # 51.6, not the 51.55 printed as 51.5
    ("d", "symmetric", "0.4"): {"cdr"},  # the row's only best is bold (53.85 -> 53.9)
    ("d", "instance", "0.4"): {"codis", "disc"},  # both print 52.9: tied
    ("small", "symmetric", "0.2"): {"ce", "sce"},  # 3 points < ±9.6: not separable
}


def md_tables(text):
    out = []
    for sec in text.split("\n## ")[1:]:
        lines = sec.splitlines()
        rows = [ln for ln in lines if ln.startswith("|") and not ln.startswith("|---")]
        cells = [[c.strip() for c in r.strip().strip("|").split(" | ")] for r in rows]
        if cells:
            body = [[(c.strip("*"), c.startswith("**")) for c in r] for r in cells[1:]]
            out.append((lines[0], [c.strip() for c in cells[0]], body))
    return out


def tex_tables(text):
    out = []
    for env in text.split(r"\begin{table}")[1:]:
        title = next(ln for ln in env.splitlines() if ln.startswith(r"\caption{"))[9:]
        head = env.split(r"\toprule")[1].split(r"\midrule")[0].strip().rstrip("\\ ").split(" & ")
        body = []
        for ln in env.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines():
            cells = ln.rstrip().removesuffix(r"\\").strip().split(" & ")
            body.append(
                [
                    (c.removeprefix(r"\textbf{").removesuffix("}"), c.startswith(r"\textbf{"))
                    for c in cells
                ]
            )
        out.append((title, head, body))
    return out


def html_tables(text):
    out = []
    for title, table in re.findall(r"<h2>(.*?)</h2>.*?<table>(.*?)</table>", text, re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
        cells = [re.findall(r"<t[dh] class=\"[lr]\">(.*?)</t[dh]>", r) for r in rows]
        body = [[(re.sub("</?b>", "", c), c.startswith("<b>")) for c in r] for r in cells[1:]]
        out.append((title, cells[0], body))
    return out


def bold_methods(tables, dataset, noise, rate):
    """Per accuracy table of ``dataset``: the set of methods bold in the row (noise, rate)."""
    found = []
    for title, head, body in tables:
        if not title.startswith(f"{dataset} (b)") or "fraction" in title:
            continue
        for row in body:
            if row[0][0] == noise and row[1][0] == rate:
                found.append(
                    {h.split(" ")[0] for h, (_, b) in zip(head[2:], row[2:]) if b and h != "±test"}
                )
    return found


def test_displayed_best_is_bold_in_every_rendering(tmp_path):
    """One rounding and one rule for the bold in summary.* and cells.* (Markdown, LaTeX, HTML)
    and the best_group columns of summary.csv / cells.csv, on means that sit on .x5
    boundaries: the bold is the best as printed plus the methods tied with it."""
    runs = hand_runs(X5_ROWS)
    out = {**agg.write_tables(runs, tmp_path), **tables.write_statistics(runs, tmp_path)}
    parse = {".md": md_tables, ".tex": tex_tables, ".html": html_tables}
    renderings = [
        (name, parse[ext](out[name].read_text()))
        for name in ("summary.md", "summary.tex", "summary.html", "cells.md", "cells.tex")
        + ("cells.html", "statistics.md")
        for ext in [name[name.rindex(".") :]]
    ]
    for (dataset, noise, rate), bold in X5_BOLD.items():
        for name, parsed in renderings:
            found = bold_methods(parsed, dataset, noise, rate)
            assert found and all(f == bold for f in found), (name, dataset, noise, rate, found)
        for csv in ("summary.csv", "cells.csv"):
            df = pd.read_csv(out[csv])
            row = df[
                (df["dataset"] == dataset) & (df["noise"] == noise) & (df["rate"] == float(rate))
            ]
            assert set(row.loc[row["best_group"], "method"]) == bold, (csv, dataset, noise, rate)
    md = out["summary.md"].read_text()
    assert "| symmetric | 0.2 | 40.0 / 39.0 | 51.5 / 50.5 | – | – | **51.6 / 50.6** | – |" in md
    cells = pd.read_csv(out["cells.csv"]).set_index(["dataset", "noise", "rate", "method"])
    assert cells.loc[("d", "symmetric", 0.4, "cdr"), "best"]  # the true best is not "tied"
    assert not cells["tied"][cells["best"]].any()
    assert "≈" not in out["cells.md"].read_text()


def test_one_seed_headings_say_what_is_shown(tmp_path):
    """With one run per cell no heading, title or caption promises a std or a band."""
    runs = agg.collect_runs(
        make_grid(
            tmp_path / "runs",
            methods=("ce", "disc", "coteaching"),
            settings=(("none", 0.0), ("symmetric", 0.4)),
            noise_seeds=(0,),
            seeds=(0,),
            datasets=("retinamnist",),
        )
    )
    out = tmp_path / "tables"
    written = {
        **agg.write_tables(runs, out),
        **tables.write_statistics(runs, out),
        **diagnostics.write_diagnostics(runs, out),
    }
    for name in ("summary.md", "summary.html", "summary.tex", "cells.md", "selection.md"):
        text = written[name].read_text()
        assert "over seeds" not in text and "± std over" not in text, name
        assert "one run per cell" in text, name
    assert written["summary.md"].read_text().splitlines()[0].endswith("one run per cell, so no std")
    fig = figures.acc_vs_rate_figure(runs, "retinamnist")
    assert "no error band" in fig._suptitle.get_text() and "± 1 std" not in fig._suptitle.get_text()


def test_ceiling_fraction_na_within_the_resolution(tmp_path):
    """BreastMNIST: chance 73.1 %, clean CE about 79 %, 156 test images (±6.4 points): the
    ceiling is within the test-set resolution of chance, so every fraction is n/a, with why."""
    rows = [("breastmnist", "none", 0.0, 79.1), ("breastmnist", "symmetric", 0.4, 28.0)]
    paths = [
        write_run(tmp_path, ds, noise, rate, m, 0, 0, acc)
        for ds, noise, rate, acc in rows
        for m in ("ce", "sce")
    ]
    runs = agg.collect_runs(paths)
    out = tables.write_statistics(runs, tmp_path / "t")
    cells = pd.read_csv(out["cells.csv"])
    noisy = cells[cells["noise"] != "none"]
    assert noisy["ceiling_frac"].isna().all()
    assert noisy["note"].str.contains("within the test-set resolution").all()
    md = out["cells.md"].read_text()
    section = md.split("fraction of the clean ceiling recovered")[1]
    assert "| symmetric | 0.4 | n/a | n/a |" in section
    assert "n/a: clean CE (" in section and "within the test-set resolution (±" in section
    assert "-0.00" not in md and "−7.5" not in md


# ---------------------------------------------------------------- collapsed runs


def test_collapsed_runs_are_flagged_and_marked(tmp_path):
    """A run whose test predictions are all one class, and one that made no update in 6 of 8
    epochs (NaN loss), are flagged in runs.csv with the reason and marked ⊘ in the tables;
    an explicit ``updates`` column wins over the loss; 3 idle epochs of 8 is not a collapse."""
    counts = DATASETS["breastmnist"]
    one_class = np.zeros((sum(counts), 2), np.float32)
    one_class[:, 1] = 1.0  # every test image predicted as class 1
    idle = [0.9, 0.8] + [float("nan")] * 6
    paths = [
        write_run(tmp_path, "breastmnist", "symmetric", 0.2, "ce", 0, 0, 73.1, probs=one_class),
        write_run(
            tmp_path, "breastmnist", "symmetric", 0.2, "sce", 0, 0, 70.0, epochs=8, train_loss=idle
        ),
        write_run(
            tmp_path,
            "breastmnist",
            "symmetric",
            0.2,
            "disc",
            0,
            0,
            80.0,
            epochs=8,
            train_loss=[1.0] * 5 + [float("nan")] * 3,
        ),
        write_run(tmp_path, "breastmnist", "none", 0.0, "ce", 0, 0, 90.0),
    ]
    runs = agg.collect_runs(paths).set_index(["noise", "method"])
    ce, sce, disc = (runs.loc[("symmetric", m)] for m in ("ce", "sce", "disc"))
    assert ce["collapsed"] and ce["collapse_reason"] == "all test predictions are class 1"
    assert ce["predicted_classes"] == 1
    assert sce["collapsed"] and sce["collapse_reason"] == "no update in 6 of 8 epochs"
    assert sce["no_update_epochs"] == 6 and sce["predicted_classes"] == 2
    assert not disc["collapsed"] and disc["no_update_epochs"] == 3
    assert not runs.loc[("none", "ce"), "collapsed"]

    # an explicit per-epoch `updates` column is used instead of the loss
    path = Path(paths[1]).with_name("per_epoch.csv")
    ep = pd.read_csv(path).assign(updates=[5] * 8)
    buf = io.StringIO()
    ep.to_csv(buf, index=False)
    write_text(path, buf.getvalue())
    assert not agg.collapse_flags(paths[1], 2)["collapsed"]

    again = write_run(
        tmp_path / "b",
        "breastmnist",
        "symmetric",
        0.2,
        "sce",
        0,
        0,
        70.0,
        epochs=8,
        train_loss=idle,
    )
    runs = agg.collect_runs(paths[:1] + paths[2:] + [again])
    out = tmp_path / "tables"
    written = {**agg.write_tables(runs, out), **tables.write_statistics(runs, out)}
    csv = pd.read_csv(written["runs.csv"])
    assert {"collapsed", "collapse_reason", "predicted_classes", "no_update_epochs"} <= set(csv)
    assert csv["collapsed"].sum() == 2
    for name in ("summary.md", "summary.html", "summary.tex", "cells.md", "ranking.html"):
        text = written[name].read_text()
        assert "⊘" in text or r"\oslash" in text, name
        assert "collapsed" in text, name
    summary = written["summary.md"].read_text()
    row = next(ln for ln in summary.splitlines() if ln.startswith("| symmetric"))
    assert row.count("⊘") == 2 and "ce: 1 of 2 runs (all test predictions one class)" in summary
    assert "sce: 1 of 1 runs (no update in most epochs)" in summary
    epochs = diagnostics.collect_epochs(runs)
    s = epochs[epochs["method"] == "sce"]
    assert s["no_update"].tolist() == [False, False] + [True] * 6 and s["collapsed"].all()
    fig = figures.acc_vs_rate_figure(runs, "breastmnist")
    assert any(ln.get_gid() == "collapsed" for ax in fig.axes for ln in ax.get_lines())


def test_oracle_and_eval_view_are_said(tmp_path):
    paths = [
        write_run(
            tmp_path,
            "breastmnist",
            noise,
            rate,
            m,
            0,
            0,
            80.0,
            extra={"uses_true_noise_rate": m == "coteaching", "eval_view": view},
        )
        for noise, rate in (("none", 0.0), ("symmetric", 0.2))
        for m, view in (("ce", "single network"), ("coteaching", "ensemble softmax mean"))
    ]
    runs = agg.collect_runs(paths)
    assert runs["eval_view"].notna().all() and runs["uses_true_noise_rate"].sum() == 2
    out = agg.write_tables(runs, tmp_path / "t")
    for name in ("summary.md", "ranking.html"):
        text = out[name].read_text()
        assert "coteaching ᵒ" in text and "oracle noise rate" in text, name
        assert "coteaching: ensemble softmax mean" in text and "ce: single network" in text, name


# ---------------------------------------------------------------- figures, built before saving


def test_acc_vs_rate_clean_point_chance_line_and_bands(tmp_path):
    kw = dict(
        methods=("ce", "disc"),
        settings=(("none", 0.0), ("symmetric", 0.2), ("symmetric", 0.6)),
        noise_seeds=(0,),
        datasets=("breastmnist",),
    )
    one = agg.collect_runs(make_grid(tmp_path / "one", seeds=(0,), **kw))
    fig = figures.acc_vs_rate_figure(one, "breastmnist")
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()}
    x = lines["disc:symmetric"].get_xdata()
    assert list(x) == [0.0, 0.2, 0.6]  # the clean run is the rate-0 point of the curve
    clean = one.query("noise == 'none' and method == 'disc'")["test_acc_last_k"].mean()
    assert lines["disc:symmetric"].get_ydata()[0] == pytest.approx(clean)
    chance = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "chance"]
    assert chance and chance[0].get_ydata()[0] == pytest.approx(100 * 114 / 156)
    assert "ce" in {ln.get_gid() for ln in fig.axes[1].get_lines()}  # CE drawn beside disc
    assert not any(ax.collections for ax in fig.axes)  # one seed: no std band
    two = agg.collect_runs(make_grid(tmp_path / "two", seeds=(0, 1), **kw))
    assert any(ax.collections for ax in figures.acc_vs_rate_figure(two, "breastmnist").axes)


def test_ranking_figure_is_per_dataset_focused_with_intervals(grid):
    runs, _ = grid
    fig = figures.ranking_figure(runs, "symmetric")
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert len(axes) == len(DATASETS)  # one panel per dataset, not an average of them
    for ax in axes:
        lo, hi = ax.get_xlim()
        assert lo > 0 and hi - lo < 60  # focused, not 0-100
        assert any(ln.get_gid() == "chance" for ln in ax.get_lines())
        assert ax.collections  # error bars: the test-set resolution
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    # rank-group letters, then the position by balanced accuracy
    assert all(re.search(r"\[[a-z]+\]  bal\. #\d+$", t) for t in labels)
    assert "which methods can the data tell apart" in fig._suptitle.get_text()


def test_selection_figure_has_the_random_selection_line(grid):
    runs, _ = grid
    ep = diagnostics.collect_epochs(runs)
    fig = figures.selection_figure(ep, "retinamnist", "symmetric", 0.2)
    ref = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "one-minus-rate"]
    assert ref and ref[0].get_ydata()[0] == pytest.approx(80.0)


def test_annotator_disagreement_is_reported_for_the_sets_that_have_annotators(tmp_path):
    runs = agg.collect_runs(make_grid(tmp_path / "g"))
    runs["annotator_disagreement"] = np.where(runs["dataset"] == "breastmnist", 0.123, np.nan)
    tables.write_statistics(runs, tmp_path / "t")
    text = (tmp_path / "t" / "cells.md").read_text()
    blocks = {b.split("\n", 1)[0]: b for b in text.split("\n## ")}
    bm = [b for h, b in blocks.items() if h.startswith("breastmnist")]
    rm = [b for h, b in blocks.items() if h.startswith("retinamnist")]
    assert bm and all("disagree on 12.3 % of the votes" in b for b in bm)
    assert rm and not any("Annotators" in b for b in rm)
    cells = pd.read_csv(tmp_path / "t" / "cells.csv")
    assert cells.query("dataset == 'breastmnist'").annotator_disagreement.eq(0.123).all()
