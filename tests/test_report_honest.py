"""Tables and figures that never print a guess (issue 20 §3, issue 21): collapse judged by what
the final predictions carry, a collapsed run never bold nor ranked as a success, the ranking by
balanced accuracy beside the paper's, no Nemenyi CD without a Friedman test, intervals inside
0–100, ``identifiable`` n/a without clean labels, the selection figure's 1 − ε at the realised
rate, the estimator's reliability beside every estimate and on the runs told it, the two-class
pairflip note. Every run folder is written like the trainer writes it (with sidecars)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lnm.checksum import verify
from lnm.report import aggregate as agg
from lnm.report import cells as cell_stats
from lnm.report import diagnostics, figures, ranks, stats, tables
from lnm.report import estimation as est
from tests.test_report_estimation import mask, write_estimate
from tests.test_report_tables import hand_runs, html_tables, make_grid, write_run

COLLAPSED, UNRELIABLE = "⊘", "ᵘ"  # the marks (lnm.report.fmt), spelled out
PAIRFLIP_TWO = "pairflip noise (each class flips to the next) is exactly symmetric noise"
BREAST = [42, 114]  # BreastMNIST's test classes: chance 73.1 %, the minority 26.9 %


def predictions(counts, hits, wrong_to=None):
    """Test probabilities with exactly ``hits[c]`` images of class c predicted right; the others
    go to ``wrong_to[c]`` (default: the next class)."""
    rows = []
    for c, (n, h) in enumerate(zip(counts, hits)):
        other = (c + 1) % len(counts) if wrong_to is None else wrong_to[c]
        rows += [c] * h + [other] * (n - h)
    p = np.full((len(rows), len(counts)), 0.01, np.float32)
    p[np.arange(len(rows)), rows] = 0.99
    return p


def balanced(counts, hits) -> float:
    return 100.0 * float(np.mean(np.asarray(hits) / np.asarray(counts)))


def accuracy(counts, hits) -> float:
    return 100.0 * sum(hits) / sum(counts)


def run(root, method, hits, noise="pairflip", rate=0.3, seed=0, extra=None, counts=BREAST):
    """A BreastMNIST run whose final predictions hit ``hits`` images per class and whose
    headline and balanced accuracy are those predictions' (as a run that ended so)."""
    recall = [100.0 * h / n for h, n in zip(hits, counts)]
    m = {
        "balanced_acc_last_k": balanced(counts, hits),
        "per_class_recall_last_k": recall,
        **(extra or {}),
    }
    return write_run(
        root,
        "breastmnist",
        noise,
        rate,
        method,
        0,
        seed,
        accuracy(counts, hits),
        probs=predictions(counts, hits),
        extra=m,
    )


# ---------------------------------------------------------------- collapse by what predictions carry


def test_uninformed_balanced_accuracy_matches_a_simulation():
    """Mean and 95 % half-width of the balanced accuracy of predictions drawn independently of
    the class with shares q: the formula against 20 000 simulated predictors (seed 0). The
    empirical sd over 20 000 draws is within 1 % of the true one (its relative standard error
    is 1/√(2·19 999) = 0.5 %), so 3 % is six standard errors."""
    rng = np.random.default_rng(0)
    counts = np.array([42, 114])
    labels = np.repeat([0, 1], counts)
    q = np.array([0.87, 0.13])
    pred = rng.choice(2, size=len(labels), p=q)
    base, hw = stats.uninformed_balanced(pred, labels, 2)
    share = np.bincount(pred, minlength=2) / len(pred)
    draws = [
        stats.balanced_accuracy(rng.choice(2, size=len(labels), p=share), labels, 2)
        for _ in range(20_000)
    ]
    assert base == pytest.approx(50.0)
    assert np.mean(draws) == pytest.approx(base, abs=0.1)
    assert hw / 1.959964 == pytest.approx(np.std(draws), rel=0.03)


def test_near_constant_runs_are_flagged_and_informative_ones_are_not(tmp_path):
    """The issue's two examples are flagged: 96 % of the test images one class at 27.95 %
    accuracy (the minority rate is 26.9 %), and 87 % one class whose minority predictions follow
    no class; an 87 %-one-class run that does follow the class, a balanced predictor and a run
    inverted by non-identifiable noise are not; a constant one keeps its plain reason."""
    cases = {
        # 150 of 156 predicted class 0 (96 %): 40 + 4 right = 28.2 % (the issue: 27.95 %)
        "ninety_six": ([40, 4], True),
        # 136 of 156 predicted class 1 (87 %); of the 20 class-0 predictions 6 are right, as
        # for predictions that ignore the image (42 · 20/156 = 5.4)
        "eighty_seven": ([6, 100], True),
        # 87 % class 1 too, but 18 of its 20 class-0 predictions are right: balanced 70.6 %
        "informative": ([18, 112], False),
        "balanced_guess": ([21, 57], True),  # 50 % of each class right: balanced 50 %
        "inverted": ([6, 14], False),  # balanced 13.3 %: follows the class, inverted
        "constant": ([0, 114], True),
    }
    wrong = {"ninety_six": [1, 0], "eighty_seven": [1, 0], "informative": [1, 0]}
    out = {}
    for name, (hits, _) in cases.items():
        d = tmp_path / name
        probs = predictions(BREAST, hits, wrong_to=wrong.get(name))
        path = write_run(d, "breastmnist", "pairflip", 0.3, "ce", 0, 0, 50.0, probs=probs)
        out[name] = agg.collapse_flags(path, 2)
    share = out["ninety_six"]["top_class_share"]
    assert share == pytest.approx(100 * 150 / 156)
    assert accuracy(BREAST, [40, 4]) == pytest.approx(28.2, abs=0.1)
    assert out["eighty_seven"]["top_class_share"] == pytest.approx(100 * 136 / 156)
    for name, (hits, collapsed) in cases.items():
        assert out[name]["collapsed"] is collapsed, (name, out[name])
        assert out[name]["final_balanced_acc"] == pytest.approx(balanced(BREAST, hits))
    assert out["constant"]["collapse_reason"] == "all test predictions are class 1"
    reason = out["ninety_six"]["collapse_reason"]
    assert reason.startswith("final test predictions carry no class information")
    assert "96 % are class 0" in reason
    # the threshold is the uninformed predictor's resolution, not a fixed number
    hw = out["eighty_seven"]["uninformed_hw"]
    q = 20 / 156
    assert hw == pytest.approx(
        100 * 1.959964 * np.sqrt(q * (1 - q) * (1 / 42 + 1 / 114)) / 2, rel=1e-5
    )


# ---------------------------------------------------------------- the hidden grid's failure modes


@pytest.fixture(scope="module")
def constant_grid(tmp_path_factory):
    """A small two-class grid like the hold-out one: clean + pairflip 0.3, three seeds; four
    methods end as constant majority-class predictors (73.1 %, balanced 50 %), SCE learns
    (71.8 %, balanced 65 %)."""
    root = tmp_path_factory.mktemp("constant")
    paths = []
    for seed in range(3):
        for noise, rate in (("none", 0.0), ("pairflip", 0.3)):
            for m in ("ce", "coteaching", "codis", "jocor"):
                paths.append(run(root, m, [0, 114], noise, rate, seed))
            paths.append(run(root, "sce", [21 + seed, 91 - seed], noise, rate, seed))
    runs = agg.collect_runs(paths)
    out = root / "tables"
    written = {**agg.write_tables(runs, out), **tables.write_statistics(runs, out)}
    return runs, written


def test_a_collapsed_cell_is_never_bold_nor_the_best(constant_grid):
    runs, written = constant_grid
    assert runs.loc[runs["method"] != "sce", "collapsed"].all()
    assert not runs.loc[runs["method"] == "sce", "collapsed"].any()
    summary = pd.read_csv(written["summary.csv"])
    flip = summary[summary["noise"] == "pairflip"].set_index("method")
    assert flip.loc["sce", "best_group"] and not flip.drop("sce")["best_group"].any()
    md = written["summary.md"].read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| pairflip"))
    assert "**73.1" not in row and "**71.8" in row and row.count(COLLAPSED) == 4
    cells = pd.read_csv(written["cells.csv"])
    assert not cells.loc[cells["method"] != "sce", "best_group"].any()


def test_the_ranking_says_what_balanced_accuracy_says_and_marks_collapse(constant_grid):
    runs, written = constant_grid
    view = pd.read_csv(written["ranking.csv"], index_col=0)
    assert set(view.index[:4]) == {"ce", "coteaching", "codis", "jocor"}  # the paper's order
    assert view.loc["sce", "rank_overall"] == 5 and view.loc["sce", "rank_balanced_overall"] == 1
    assert (view.drop("sce")["rank_balanced_overall"] == 2).all()  # tied at 50 %
    html = written["ranking.html"].read_text()
    ((_, head, body),) = html_tables(html)
    rows = {r[0][0].split(" ")[0]: dict(zip(head, r)) for r in body}
    for col in ("pairflip", "overall"):
        assert rows["sce"][col][1], col  # bold: the only method that learned
        for m in ("ce", "coteaching", "codis", "jocor"):
            text, bold = rows[m][col]
            assert not bold and text.endswith(COLLAPSED), (m, col, text)
    assert rows["sce"]["position acc / bal. acc"][0] == "5 / 1"
    rk = pd.read_csv(written["ranks.csv"]).set_index("method")
    assert rk.loc["sce", "avg_rank"] == 5 and rk.loc["sce", "avg_rank_balanced"] == 1
    ranks_html = written["ranks.html"].read_text()
    assert "<b>sce</b>" in ranks_html and f"<b>ce {COLLAPSED}</b>" not in ranks_html
    assert f"ce {COLLAPSED}" in ranks_html
    # the figures: the ranking's y labels and the CD diagram's balanced-accuracy panel
    fig = figures.ranking_figure(runs, "pairflip")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "sce  [a]  bal. #1" and all(COLLAPSED in t for t in labels[:4])
    diamonds = [ln for ln in fig.axes[0].get_lines() if str(ln.get_gid()).startswith("balanced:")]
    assert len(diamonds) == 5
    cd = figures.cd_diagram_figure(runs)
    top, bottom = cd.axes
    assert "balanced accuracy" in bottom.get_title()
    assert any(t.get_text().startswith("sce [a]  1.0") for t in bottom.texts)
    assert any(t.get_text().endswith("5.0  sce [a]") for t in top.texts)


def test_no_nemenyi_cd_without_a_friedman_test(constant_grid):
    """One noisy cell: Friedman is n/a, so is the CD (the issue saw CD = 7.54 printed)."""
    runs, written = constant_grid
    fr = pd.read_csv(written["friedman.csv"]).iloc[0]
    assert fr["n_cells"] == 1 and np.isnan(fr["chi2"]) and np.isnan(fr["cd"])
    assert "Nemenyi CD n/a: the Friedman test is n/a" in written["ranks.html"].read_text()
    ra = ranks.rank_analysis(cell_stats.cell_table(runs))
    assert np.isnan(ra["cd"]) and ra["cliques"] == []
    fig = figures.cd_diagram_figure(runs)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "Nemenyi CD n/a: no Friedman test behind it" in texts
    assert not any(t.startswith("CD = ") for t in texts)


def test_two_class_pairflip_is_said_to_be_symmetric(constant_grid, tmp_path):
    _, written = constant_grid
    for name in ("summary.md", "cells.md", "ranking.html"):
        assert PAIRFLIP_TWO in written[name].read_text(), name
    five = agg.collect_runs(
        make_grid(
            tmp_path,
            methods=("ce",),
            settings=(("pairflip", 0.2),),
            datasets=("retinamnist",),
            noise_seeds=(0,),
            seeds=(0,),
        )
    )
    assert PAIRFLIP_TWO not in agg.summary_markdown(agg.summarize(five), 2)


# ---------------------------------------------------------------- oracle vs estimated, estimates


def reliable_estimate(root, noise, rate, oof):
    """An estimate file of 546 BreastMNIST-like training labels (214 / 332: majority share
    0.608) whose estimator's out-of-fold accuracy is ``oof``."""
    n = 546
    joint = np.diag([214.0, 332.0]) / n
    return write_estimate(
        root,
        "breastmnist",
        noise,
        rate,
        0,
        noisy=mask(n, range(117)),
        flagged=mask(n, range(0, 200)),
        estimated_rate=0.397,
        oof_accuracy=oof,
        joint=joint,
    )


def test_estimator_reliability_fires_where_it_must_and_not_where_it_must_not():
    """The demo's BreastMNIST estimator (out-of-fold 0.606 over 546 labels against a majority
    share of 0.608) cannot be told from a constant predictor; one at 0.85 can. The interval is
    Wilson's (scipy's binomtest agrees)."""
    from scipy.stats import binomtest

    from lnm.noise.reliability import estimator_reliability, wilson_interval

    bad = estimator_reliability(0.6062, [214, 332])
    good = estimator_reliability(0.85, [214, 332])
    assert bad["unreliable"] and not good["unreliable"]
    assert bad["majority_rate"] == pytest.approx(332 / 546)
    ci = binomtest(331, 546).proportion_ci(0.95, method="wilson")
    assert wilson_interval(331 / 546, 546) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # an estimator well below the majority share is not trusted either
    assert estimator_reliability(0.3, [214, 332])["unreliable"]


def test_estimates_and_the_runs_told_them_carry_the_reliability(tmp_path):
    """estimation.* prints the estimator's accuracies beside the estimate and marks an
    unreliable one ᵘ; runs told it carry estimate_unreliable and ᵘ; oracle_vs_estimated marks
    the variant's collapsed runs ⊘ and prints their balanced accuracy beside."""
    res = tmp_path / "res"
    bad = reliable_estimate(res, "pairflip", 0.3, 0.6062)
    good = reliable_estimate(res, "none", 0.0, 0.85)
    sha = {p: verify(p) for p in (bad, good)}
    paths = []
    for seed in range(3):
        for noise, rate, path in (("pairflip", 0.3, bad), ("none", 0.0, good)):
            told = {
                "noise_rate_source": "estimated",
                "assumed_noise_rate": 0.397,
                "spec": {"base_method": "coteaching"},
                "inputs": {
                    "data": {"path": "d.h5", "sha256": "a" * 64},
                    "noise": {"path": "n.npz", "sha256": "b" * 64},
                    "estimate": {"path": str(path), "sha256": sha[path]},
                },
            }
            oracle = {"noise_rate_source": "oracle", "assumed_noise_rate": rate}
            oracle["uses_true_noise_rate"] = True
            paths.append(run(tmp_path, "coteaching", [24, 88], noise, rate, seed, oracle))
            paths.append(run(tmp_path, "coteaching_est", [0, 114], noise, rate, seed, told))
    with pytest.raises(ValueError, match="not among the estimate files"):
        agg.collect_runs(paths, [good])
    runs = agg.collect_runs(paths, [bad, good])
    # without a list (lnm aggregate): the recorded path, verified against the recorded hash
    alone = agg.collect_runs(paths)
    pd.testing.assert_series_equal(alone["estimate_unreliable"], runs["estimate_unreliable"])
    told = runs[runs["method"] == "coteaching_est"].set_index("noise")
    assert told.loc["pairflip", "estimate_unreliable"].all()
    assert not told.loc["none", "estimate_unreliable"].any()
    assert runs.loc[runs["method"] == "coteaching", "estimate_unreliable"].isna().all()
    out = agg.write_tables(runs, tmp_path / "t")
    csv = pd.read_csv(out["runs.csv"])
    assert set(csv.loc[csv["method"] == "coteaching", "estimate_unreliable"].isna()) == {True}
    md = out["summary.md"].read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| pairflip"))
    assert f"{COLLAPSED} {UNRELIABLE}" in row and "told an unreliable noise-rate estimate" in md
    clean_row = next(ln for ln in md.splitlines() if ln.startswith("| none"))
    assert UNRELIABLE not in clean_row

    # the estimation table: accuracies beside every estimate, the unreliable one marked
    estimates = est.collect_estimates([bad, good])
    assert estimates.set_index("noise")["unreliable"].to_dict() == {
        "none": False,
        "pairflip": True,
    }
    written = est.write_estimation(estimates, runs, tmp_path / "e")
    table = written["estimation.md"].read_text()
    line = next(ln for ln in table.splitlines() if "| pairflip |" in ln)
    assert f"0.397 {UNRELIABLE}" in line and "| 0.606 | 0.608 | 0.556 |" in line
    assert "0.397 |" in next(ln for ln in table.splitlines() if "| none |" in ln)
    assert "cannot be told from a constant predictor" in table
    fig = est.estimated_vs_true_figure(estimates)
    gids = {str(a.get_gid()) for a in fig.axes[0].get_children()}
    assert "breastmnist:pairflip:0.3:unreliable" in gids and "breastmnist:none:0" in gids

    # oracle vs estimated: ⊘ on the collapsed arm, balanced accuracies beside, never bold
    ove = est.oracle_vs_estimated(runs).set_index("noise")
    flip = ove.loc["pairflip"]
    assert flip["n_collapsed_estimated"] == 3 and flip["n_collapsed_reference"] == 0
    assert flip["balanced_estimated_mean"] == pytest.approx(50.0)
    assert flip["balanced_reference_mean"] == pytest.approx(balanced(BREAST, [24, 88]))
    assert not flip["estimated_best_group"] and flip["reference_best_group"]
    text = written["oracle_vs_estimated.md"].read_text()
    line = next(ln for ln in text.splitlines() if "| pairflip |" in ln)
    bal = balanced(BREAST, [24, 88])
    assert f"| **71.8 ± 0.0** | 73.1 ± 0.0 {COLLAPSED} {UNRELIABLE} | {bal:.1f} / 50.0 |" in line
    assert "compares a predictor that ignores the image" in text


# ---------------------------------------------------------------- n/a where nothing is known


def test_identifiable_is_na_without_clean_labels(tmp_path):
    """A real-world set without clean labels: identifiable is unknown, printed n/a (pandas'
    all() of an all-NA column would say True)."""
    nan = float("nan")
    unknown = {"identifiable": None, "noise_rate_realised": nan, "noise_rate_realised_val": nan}
    paths = [
        write_run(tmp_path, "breastmnist", "real", 0.2, m, 0, s, 70.0, extra=unknown)
        for m in ("ce", "coteaching")
        for s in (0, 1)
    ]
    paths.append(write_run(tmp_path, "retinamnist", "symmetric", 0.2, "ce", 0, 0, 60.0))
    runs = agg.collect_runs(paths)
    summary = agg.summarize(runs).set_index("dataset")
    assert summary.loc["breastmnist", "identifiable"].isna().all()
    assert bool(summary.loc["retinamnist", "identifiable"]) is True
    out = {
        **agg.write_tables(runs, tmp_path / "t"),
        **tables.write_statistics(runs, tmp_path / "t"),
    }
    for name in ("summary.csv", "cells.csv"):
        lines = out[name].read_text().splitlines()
        col = lines[0].split(",").index("identifiable")
        values = {ln.split(",")[0]: ln.split(",")[col] for ln in lines[1:]}
        assert values == {"breastmnist": "n/a", "retinamnist": "True"}, name
        back = pd.read_csv(out[name])
        assert back.loc[back["dataset"] == "breastmnist", "identifiable"].isna().all()


def test_selection_line_at_the_realised_rate_and_none_without_clean_labels(tmp_path):
    """DRTiD-like: rate 0.6 names the cell (assumed) but 34.3 % of the labels are wrong, so
    random selection keeps 65.7 % clean samples; CheXpert-like: no clean labels, no line, and
    every panel says why. Bands stay within 0–100."""
    nan = float("nan")
    paths = [
        write_run(
            tmp_path,
            "breastmnist",
            "real",
            0.6,
            "coteaching",
            0,
            s,
            70.0,
            extra={"noise_rate_realised": 0.343},
        )
        for s in (0, 1)
    ]
    unscored = {"identifiable": None, "noise_rate_realised": nan}
    unscored["selection"] = dict.fromkeys(["clean_ratio", "coverage"], "n/a")
    paths += [
        write_run(tmp_path, "retinamnist", "real", 0.2, "coteaching", 0, 0, 60.0, extra=unscored)
    ]
    runs = agg.collect_runs(paths)
    ep = diagnostics.collect_epochs(runs)
    fig = figures.selection_figure(ep, "breastmnist", "real", 0.6)
    (line,) = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "one-minus-rate"]
    assert line.get_ydata()[0] == pytest.approx(65.7)
    assert "realised noise rate 0.343" in line.get_label()
    # no clean labels: the per-epoch diagnostics are NaN, as the trainer writes them then
    none = ep[ep["dataset"] == "retinamnist"].copy()
    none[["clean_ratio", "coverage", "purified_ratio"]] = nan
    fig = figures.selection_figure(none, "retinamnist", "real", 0.2)
    assert not [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "one-minus-rate"]
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert notes and all("no clean\ntraining labels" in t for t in notes)
    assert "no 1 − ε line" in fig._suptitle.get_text()
    # a band around 95 ± 7 stops at 100
    two = ep[ep["dataset"] == "breastmnist"].copy()
    two["clean_ratio"] = np.where(two["seed"] == 0, 100.0, 90.0)
    fig = figures.selection_figure(two, "breastmnist", "real", 0.6)
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx(100.0) and band.min() >= 0


def test_confidence_intervals_stay_within_0_and_100():
    rows = [("d", 100, "symmetric", 0.2, "ce", 60.0), ("d", 100, "symmetric", 0.2, "sce", 60.0)]
    runs = hand_runs(rows, seeds=(0, 1, 2))
    sce = runs["method"] == "sce"
    runs.loc[sce, "test_acc_last_k"] = [40.0, 99.0, 100.0]
    runs.loc[~sce, "test_acc_last_k"] = [1.0, 0.0, 30.0]
    cells = cell_stats.cell_table(runs).set_index("method")
    assert cells.loc["sce", "ci_hi"] == 100.0 and cells.loc["ce", "ci_lo"] == 0.0
    assert cells.loc["sce", "ci_hw"] > 40  # the half-width itself is the t interval's
    (table,) = [t for t in cell_stats.ci_tables(cell_stats.cell_table(runs), 2)]
    text = " ".join(c for row in table.rows for c in row)
    assert "[0.0, " in text and ", 100.0]" in text and "−" not in text and "-" not in text
