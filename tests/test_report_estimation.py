"""The estimation report: estimate files -> estimates.csv, the per-cell estimation table, the
oracle-vs-estimated table (paired differences with t intervals), cleanlab's detection rows in
the selection table and the estimated-vs-true figure, on hand-built estimate files and runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lnm import grid
from lnm.checksum import ChecksumError, verify
from lnm.noise.io import save_noise
from lnm.report import aggregate as agg
from lnm.report import diagnostics
from lnm.report import estimation as est
from lnm.report.stats import NEEDS_SEEDS
from lnm.train.metrics import selection_scores
from tests.conftest import check_png
from tests.test_report_tables import make_grid

FILES = grid.TABLES["estimation"]


def mask(n, idx):
    out = np.zeros(n, bool)
    out[list(idx)] = True
    return out


def write_estimate(
    root,
    dataset,
    noise,
    rate,
    noise_seed,
    *,
    noisy,
    flagged,
    estimated_rate,
    has_clean=True,
    transition_error=0.1,
    backbone="resnet8",
    oof_accuracy=0.9,
    joint=None,
):
    """An estimate file as lnm.noise.estimate writes it: ``noisy`` = the mislabelled samples
    (the truth), ``flagged`` = cleanlab's label issues; the scores are computed here the way
    the design defines them (the trusted set with the trainer's selection_scores)."""
    n = len(flagged)
    nan = float("nan")
    if has_clean:
        hits = int((flagged & noisy).sum())
        trusted = selection_scores(~flagged, np.ones(n, bool), ~noisy)
        true = float(noisy.mean())
        truth = {
            "true_rate": true,
            "rate_error": estimated_rate - true,
            "transition_error": transition_error,
            "issue_precision": 100.0 * hits / flagged.sum() if flagged.sum() else nan,
            "issue_recall": 100.0 * hits / noisy.sum() if noisy.sum() else nan,
            "clean_ratio": trusted["clean_ratio"],
            "coverage": trusted["coverage"],
        }
    else:
        truth = dict.fromkeys(est.TRUTH_VALUES, nan)
    result = {
        "oof_probs": np.full((n, 2), 0.5, np.float32),
        "fold": np.arange(n, dtype=np.int64) % 2,
        "estimated_rate": estimated_rate,
        "estimated_joint": np.eye(2) / 2 if joint is None else joint,
        "oof_accuracy": oof_accuracy,
        "oof_clean_accuracy": oof_accuracy - 0.05 if has_clean else nan,
        "estimated_transition": np.eye(2),
        "label_issues": flagged,
        "num_label_issues": int(flagged.sum()),
        "has_clean": has_clean,
        "backbone": backbone,
        "noise_sha256": "b" * 64,
        **truth,
    }
    path = root / grid.ESTIMATE_FILE.format(
        dataset=dataset, noise=noise, rate=grid.fmt_rate(rate), noise_seed=noise_seed
    )
    save_noise(path, result)
    return path


N = 10
NOISY = mask(N, range(4))  # samples 0-3 are mislabelled, 4-9 clean


def estimate_files(root):
    """retinamnist symmetric 0.2 (two noise seeds), its clean cell, and a real-world cell
    without clean labels."""
    return [
        # flagged {0, 1, 5}: precision 2/3, recall 2/4; trusted {2,3,4,6,7,8,9}: 5 clean of 7
        # (clean ratio 5/7), 5 of the 6 clean samples (coverage 5/6)
        write_estimate(
            root,
            "retinamnist",
            "symmetric",
            0.2,
            0,
            noisy=NOISY,
            flagged=mask(N, (0, 1, 5)),
            estimated_rate=0.37,
            transition_error=0.2,
        ),
        # flagged {0, 1, 2, 3}: precision 1, recall 1; trusted = the 6 clean: 6/6, 6/6
        write_estimate(
            root,
            "retinamnist",
            "symmetric",
            0.2,
            1,
            noisy=NOISY,
            flagged=mask(N, range(4)),
            estimated_rate=0.41,
            transition_error=0.4,
        ),
        write_estimate(
            root,
            "retinamnist",
            "none",
            0.0,
            0,
            noisy=mask(N, ()),
            flagged=mask(N, ()),
            estimated_rate=0.0,
        ),
        write_estimate(
            root,
            "chexpert",
            "real",
            0.2,
            0,
            noisy=NOISY,
            flagged=mask(N, (0, 1)),
            estimated_rate=0.153,
            has_clean=False,
        ),
    ]


@pytest.fixture
def estimates(tmp_path):
    return est.collect_estimates(estimate_files(tmp_path / "res"))


# ---------------------------------------------------------------- collecting


def test_parse_estimate_path():
    p = "results/estimates/pathmnist/instance_classifier-0.4-n3.npz"
    assert est.parse_estimate_path(p) == {
        "dataset": "pathmnist",
        "noise": "instance_classifier",
        "rate": 0.4,
        "noise_seed": 3,
    }
    with pytest.raises(ValueError, match="not an estimate file"):
        est.parse_estimate_path("results/noise/pathmnist/symmetric-0.4-n0.npz")


def test_collect_estimates(estimates):
    e = estimates.set_index(["dataset", "noise", "noise_seed"])
    assert list(estimates.columns) == est.ESTIMATE_COLUMNS
    # canonical order: chexpert before retinamnist, none before symmetric
    assert list(estimates["dataset"]) == ["chexpert"] + ["retinamnist"] * 3
    assert list(estimates["noise"])[1:] == ["none", "symmetric", "symmetric"]
    r = e.loc[("retinamnist", "symmetric", 0)]
    assert r["rate"] == 0.2 and r["num_train"] == N and r["num_label_issues"] == 3
    assert r["true_rate"] == pytest.approx(0.4) and r["rate_error"] == pytest.approx(-0.03)
    assert r["issue_precision"] == pytest.approx(200 / 3)
    assert r["issue_recall"] == pytest.approx(50.0)
    assert r["clean_ratio"] == pytest.approx(500 / 7) and r["coverage"] == pytest.approx(500 / 6)
    assert r["flagged"] == pytest.approx(30.0) and r["backbone"] == "resnet8"
    c = e.loc[("chexpert", "real", 0)]
    assert not c["has_clean"] and np.isnan(c["true_rate"]) and c["estimated_rate"] == 0.153


def test_collect_estimates_refuses_tampered_and_duplicate_files(tmp_path):
    paths = estimate_files(tmp_path)
    with pytest.raises(ValueError, match="several estimates"):
        est.collect_estimates([paths[0], paths[0]])
    with open(paths[1], "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ChecksumError):
        est.collect_estimates(paths)


# ---------------------------------------------------------------- estimation table


def test_estimation_cells_and_table(estimates, tmp_path):
    cells = est.estimation_cells(estimates).set_index(["dataset", "noise"])
    sym = cells.loc[("retinamnist", "symmetric")]
    assert sym["n"] == 2 and sym["has_clean"]
    assert sym["estimated_rate_mean"] == pytest.approx(0.39)
    assert sym["estimated_rate_std"] == pytest.approx(np.std([0.37, 0.41], ddof=1))
    assert sym["clean_ratio_mean"] == pytest.approx((500 / 7 + 100) / 2)
    assert sym["issue_recall_mean"] == pytest.approx(75.0)
    assert np.isnan(cells.loc[("chexpert", "real"), "estimated_rate_std"])  # one noise file

    out = est.write_estimation(estimates, None, tmp_path / "t")
    assert list(out) == list(FILES)
    for p in out.values():
        verify(p)
    md = out["estimation.md"].read_text()
    head = next(ln for ln in md.splitlines() if ln.startswith("| dataset |"))
    names = [c.strip() for c in head.strip("|").split("|")]

    def row_of(prefix):
        line = next(ln for ln in md.splitlines() if ln.startswith(prefix))
        return dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))

    sym = row_of("| retinamnist | symmetric |")
    assert [sym[c] for c in ("rate", "noise seeds", "true rate", "estimated rate")] == [
        "0.2",
        "2",
        "0.400 ± 0.000",
        "0.390 ± 0.028",
    ]
    assert sym["error (est. − true)"] == "−0.010 ± 0.028".replace("−", "-")
    assert sym["T̂ error (rel. L1)"] == "0.300 ± 0.141"
    assert sym["issue precision (%)"] == "83.3 ± 23.6"  # 66.7 and 100
    # beside every estimate: the estimator's accuracy on the noisy and the clean labels
    assert sym["estimator OOF acc. (noisy labels)"] == "0.900 ± 0.000"
    assert sym["estimator OOF acc. (clean labels)"] == "0.850 ± 0.000"
    assert sym["majority share (noisy labels)"] == "0.500 ± 0.000"
    # no clean labels: every score against the truth is n/a, the estimate is shown
    real = row_of("| chexpert |")
    assert real["rate"] == "0.2 (assumed)" and real["estimated rate"] == "0.153"
    truth = ["true rate", "error (est. − true)", "T̂ error (rel. L1)"]
    truth += ["estimator OOF acc. (clean labels)", "issue precision (%)", "issue recall (%)"]
    truth += ["trusted clean ratio (%)", "trusted coverage (%)"]
    assert [real[c] for c in truth] == ["n/a"] * len(truth)
    assert real["flagged (%)"] == "20.0" and real["estimator OOF acc. (noisy labels)"] == "0.900"
    # the clean cell flags nothing: precision undefined (–), not n/a
    assert row_of("| retinamnist | none |")["issue precision (%)"] == "–"
    assert "n/a: the dataset has no clean training labels" in md and "– = undefined" in md
    assert "mean ± std over the 1–2 noise seeds" in md and "real = the labels" in md
    html = out["estimation.html"].read_text()
    assert "0.390 ± 0.028" in html and "Estimator backbone: resnet8." in html
    # the per-file table reads back into the same cells
    back = pd.read_csv(out["estimates.csv"])
    pd.testing.assert_frame_equal(
        est.estimation_cells(back), est.estimation_cells(estimates), check_dtype=False
    )
    # no runs with a rate source: the oracle table says so
    assert "n/a: no method was run both" in out["oracle_vs_estimated.md"].read_text()


def test_no_estimates(tmp_path):
    empty = est.collect_estimates([])
    out = est.write_estimation(empty, None, tmp_path)
    assert "n/a: no estimate file" in out["estimation.md"].read_text()
    assert est.detection_rows(empty).empty


# ---------------------------------------------------------------- oracle vs estimated


def ove_runs():
    """Hand-built runs.csv rows with the rate-source columns."""
    rows = []

    def run(noise, rate, method, base, source, told, seed, acc, noise_seed=0, dataset="d"):
        rows.append(
            {
                "dataset": dataset,
                "noise": noise,
                "rate": rate,
                "noise_seed": noise_seed,
                "method": method,
                "backbone": "resnet8",
                "seed": seed,
                "epochs": 4,
                "size": 28,
                "num_test": 1_000_000,
                "last_k": 2,
                grid.HEADLINE: acc,
                "noise_rate_source": source,
                "assumed_noise_rate": told,
                "base_method": base,
            }
        )

    # separable: oracle 80/81/82 vs estimate 70/72.5/71, differences 10, 8.5, 11
    for s, (a, b) in enumerate([(80, 70), (81, 72.5), (82, 71)]):
        run("symmetric", 0.4, "coteaching", "coteaching", "oracle", 0.4, s, a)
        run("symmetric", 0.4, "coteaching_est", "coteaching", "estimated", 0.37, s, b)
        run("symmetric", 0.4, "ce", "ce", None, None, s, 60.0)
    run("symmetric", 0.4, "coteaching", "coteaching", "oracle", 0.4, 3, 99.0)  # no partner
    # one pair: no interval
    run("pairflip", 0.2, "cdr", "cdr", "oracle", 0.2, 0, 75.0)
    run("pairflip", 0.2, "cdr_est", "cdr", "estimated", 0.18, 0, 75.5)
    # real-world: the reference is the assumed rate
    for s, (a, b) in enumerate([(60, 61), (62, 61.5)]):
        run("real", 0.2, "coteaching", "coteaching", "assumed", 0.2, s, a, dataset="chexpert")
        run(
            "real", 0.2, "coteaching_est", "coteaching", "estimated", 0.15, s, b, dataset="chexpert"
        )
    return pd.DataFrame(rows)


def test_oracle_vs_estimated_pairs_and_interval(tmp_path, estimates):
    runs = ove_runs()
    ove = est.oracle_vs_estimated(runs)
    assert list(ove.columns) == est.OVE_COLUMNS
    assert list(zip(ove["dataset"], ove["noise"], ove["method"], ove["estimated_method"])) == [
        ("chexpert", "real", "coteaching", "coteaching_est"),
        ("d", "symmetric", "coteaching", "coteaching_est"),
        ("d", "pairflip", "cdr", "cdr_est"),
    ]
    r = ove.iloc[1]
    d = np.array([10.0, 8.5, 11.0])
    lo, hi = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert r["n_pairs"] == 3 and r["reference"] == "oracle"
    assert r["acc_reference_mean"] == pytest.approx(81.0)  # the unpaired seed 3 is left out
    assert r["lost_mean"] == pytest.approx(d.mean())
    assert (r["lost_lo"], r["lost_hi"]) == (pytest.approx(lo), pytest.approx(hi))
    assert r["rate_reference"] == pytest.approx(0.4) and r["rate_estimated_mean"] == pytest.approx(
        0.37
    )
    # a million test images, CIs apart: only the oracle accuracy is bold
    assert r["reference_best_group"] and not r["estimated_best_group"]
    one = ove.iloc[2]
    assert one["n_pairs"] == 1 and one["lost_mean"] == pytest.approx(-0.5)
    assert np.isnan(one["lost_lo"]) and one["note"] == f"CI {NEEDS_SEEDS}"
    assert ove.iloc[0]["reference"] == "assumed"

    out = est.write_estimation(estimates, runs, tmp_path)
    md = out["oracle_vs_estimated.md"].read_text()
    line = next(ln for ln in md.splitlines() if "| symmetric |" in ln)
    assert f"| {d.mean():.1f} [{lo:.1f}, {hi:.1f}] |" in line
    assert "| **81.0 ± 1.0** | 71.2 ± 1.3 |" in line and "| 0.400 (oracle) |" in line
    assert "| 0.370 |" in line  # one estimate for all three pairs: no std
    flip = next(ln for ln in md.splitlines() if "| pairflip |" in ln)
    assert flip.rstrip().endswith("| -0.5 (n=1) |")
    assert "0.200 (assumed)" in md and "assumed: a real-world cell has no oracle" in md
    assert "test accuracy (%), mean of the last 2 epochs" in md and "(n=1) = one pair" in md
    csv = pd.read_csv(out["oracle_vs_estimated.csv"])
    assert len(csv) == 3 and csv["lost_hw"].iloc[1] == pytest.approx((hi - lo) / 2, rel=1e-5)


def test_oracle_vs_estimated_without_rate_sources():
    runs = ove_runs().drop(columns=["noise_rate_source", "base_method"])
    assert est.oracle_vs_estimated(runs).empty
    only_oracle = ove_runs()
    only_oracle = only_oracle[only_oracle["noise_rate_source"] != "estimated"]
    assert est.oracle_vs_estimated(only_oracle).empty


# ---------------------------------------------------------------- detection rows


def test_detection_rows_are_hand_computed_precision_and_coverage(estimates):
    det = est.detection_rows(estimates)
    assert list(det.columns) == grid.CELL_KEYS + [
        "n",
        "na",
        "clean_ratio_mean",
        "clean_ratio_std",
        "coverage_mean",
        "coverage_std",
        "n_collapsed",
        "collapse_reason",
    ]
    assert set(det["method"]) == {grid.DETECTION} and "none" not in set(det["noise"])
    r = det.set_index("dataset").loc["retinamnist"]
    # trusted set = not flagged: noise seed 0 keeps 5 clean of 7 (5 of the 6 clean samples),
    # noise seed 1 keeps exactly the 6 clean samples
    cr, cov = [100 * 5 / 7, 100.0], [100 * 5 / 6, 100.0]
    assert r["n"] == 2 and r["na"] == "" and r["backbone"] == "resnet8"
    assert r["clean_ratio_mean"] == pytest.approx(np.mean(cr))
    assert r["clean_ratio_std"] == pytest.approx(np.std(cr, ddof=1))
    assert r["coverage_mean"] == pytest.approx(np.mean(cov))
    assert r["coverage_std"] == pytest.approx(np.std(cov, ddof=1))
    c = det.set_index("dataset").loc["chexpert"]
    assert c["na"] == "clean_ratio,coverage" and np.isnan(c["clean_ratio_mean"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    paths = make_grid(
        root,
        methods=("ce", "coteaching", "trevision"),
        settings=(("none", 0.0), ("symmetric", 0.2)),
        datasets=("retinamnist",),
    )
    return agg.collect_runs(paths)


def test_selection_table_with_and_without_detection(runs, estimates, tmp_path):
    plain = diagnostics.write_diagnostics(runs, tmp_path / "plain")
    # no estimates, no estimate of a noisy cell: the very same bytes
    clean_only = estimates[estimates["noise"] == "none"]
    for i, e in enumerate((None, estimates.iloc[:0], clean_only)):
        again = diagnostics.write_diagnostics(runs, tmp_path / f"again{i}", estimates=e)
        for name, p in plain.items():
            assert again[name].read_bytes() == p.read_bytes(), name

    out = diagnostics.write_diagnostics(runs, tmp_path / "det", estimates=estimates)
    sel, before = pd.read_csv(out["selection.csv"]), pd.read_csv(plain["selection.csv"])
    methods = sel[sel["method"] != grid.DETECTION].reset_index(drop=True)
    # only rows are added ("na" is read as text once a row has one)
    pd.testing.assert_frame_equal(
        methods[before.columns].drop(columns="na"), before.drop(columns="na")
    )
    assert methods["na"].astype(str).tolist() == before["na"].astype(str).tolist()
    cl = sel[sel["method"] == grid.DETECTION].set_index("dataset")
    assert set(cl.index) == {"retinamnist", "chexpert"}
    assert cl.loc["retinamnist", "clean_ratio_mean"] == pytest.approx((500 / 7 + 100) / 2)
    # within the cell, cleanlab follows the methods
    cell = sel[(sel["dataset"] == "retinamnist") & (sel["noise"] == "symmetric")]
    assert list(cell["method"]) == grid.ordered(["coteaching", "trevision"], grid.methods()) + [
        grid.DETECTION
    ]
    md = out["selection.md"].read_text()
    md_before = plain["selection.md"].read_text()
    table = md.split("## ")[1]
    for line in md_before.split("## ")[1].splitlines():
        if line.startswith("| retinamnist"):
            assert line in table
    row = next(ln for ln in table.splitlines() if f"| {grid.DETECTION} |" in ln and "retina" in ln)
    cr = [100 * 5 / 7, 100.0]
    assert f"| {np.mean(cr):.1f} ± {np.std(cr, ddof=1):.1f} |" in row
    assert f"| {grid.DETECTION} | 1 | n/a | n/a |" in table  # chexpert: no clean labels
    assert est.DETECTION_NOTE in table and "n/a: the dataset has no clean training labels" in table
    # the transition-matrix table is untouched
    assert md.split("## ", 2)[2] == md_before.split("## ", 2)[2]


# ---------------------------------------------------------------- figure


def test_estimated_vs_true_figure(estimates, tmp_path):
    fig = est.estimated_vs_true_figure(estimates)
    ax, side = fig.axes
    drawn = {a.get_gid() for a in ax.get_children() if a.get_gid()}
    assert {"retinamnist:symmetric:0.2", "retinamnist:none:0", "identity"} <= drawn
    assert not any(str(g).startswith("chexpert") for g in drawn)  # no true rate: not plotted
    (note,) = [t for t in side.texts if t.get_gid() == "unplotted"]
    assert "chexpert real 0.2 (assumed): 0.153" in note.get_text()
    assert "bars = ± 1 std" in fig._suptitle.get_text()
    out = est.plot_estimated_vs_true(estimates, tmp_path / "estimated_vs_true.png")
    check_png(out, est.FIGSIZE_ESTIMATION)
    # from estimates.csv, and with no true rate at all
    written = est.write_estimation(estimates, None, tmp_path / "t")
    back = pd.read_csv(written["estimates.csv"])
    real = back[back["dataset"] == "chexpert"]
    out = est.plot_estimated_vs_true(real, tmp_path / "real.png")
    check_png(out, est.FIGSIZE_ESTIMATION)
    fig = est.estimated_vs_true_figure(real)
    assert any("no cell has a true noise rate" in t.get_text() for t in fig.axes[0].texts)
