"""The reproduction stage (lnm.report.reproduction): reference tables, verdicts computed by hand,
what is refused, Kendall's τ, deviations, files and figure, on synthetic run folders."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from lnm import grid
from lnm.checksum import verify
from lnm.config import load_config
from lnm.report import aggregate as agg
from lnm.report import diagnostics
from lnm.report import reproduction as rep
from lnm.report.figures import DPI
from tests.conftest import REPO
from tests.test_report_tables import write_run

COLS = ",".join(rep.COLUMNS)
T975 = {2: 12.706204736174705, 3: 4.302652729749464}  # t(0.975, n - 1), from tables


def hand_resolution(acc: float, n_test: int) -> float:
    """The binomial 95 % half-width (percentage points), written out by hand."""
    return 100 * 1.959963984540054 * math.sqrt(acc / 100 * (1 - acc / 100) / n_test)


def table(tmp_path: Path, *lines: str, name: str = "paper") -> Path:
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join([COLS, *lines]) + "\n")
    return path


def row(
    dataset="retinamnist",
    pattern="symmetric",
    rate="0.2",
    method="ce",
    backbone="resnet8",
    size="28",
    epochs="4",
    kind="test_acc_last2",
    seed="",
    value="50",
    spread="",
    n="",
    reference="paper",
    provenance="Table 1",
):
    return ",".join(
        [reference, dataset, pattern, rate, method, backbone, size, epochs, kind, seed, value]
        + [spread, n, provenance, "a note"]
    )


def tables_each(tmp_path: Path, **lines: dict) -> list[Path]:
    """One table per published number: name -> the row's fields (several numbers of one cell
    and kind cannot share a table)."""
    return [table(tmp_path, row(reference=name, **kw), name=name) for name, kw in lines.items()]


# ---------------------------------------------------------------- shipped tables


def test_shipped_tables_load_and_say_what_every_number_is():
    refs = rep.load_references(["lnmbench", "medmnist_v2"])
    assert set(refs["reference"]) == {"lnmbench", "medmnist_v2"}
    assert refs["provenance"].str.len().gt(10).all()
    lnm = refs[refs["reference"] == "lnmbench"]
    # the README figure: 11 methods x (symmetric, instance, real-world, overall)
    fig = lnm[lnm["dataset"] == rep.ALL]
    assert len(fig) == 44 and set(fig["method"]) == set(rep.PAPER_NAMES)  # LNMBench's 11
    assert set(rep.PAPER_NAMES) == set(load_config(REPO / "config.yaml")["methods"])
    bars = fig.pivot_table(index="method", columns="pattern", values="value")
    overall = bars[["symmetric", "instance_classifier", "real"]].mean(axis=1)
    assert np.allclose(overall, bars["overall"], atol=0.01)  # the paper's arithmetic, ±0.01
    # DISC's result files: headline, best-val and max of each run; PathMNIST inst 0.2 seed 0
    one = lnm[
        (lnm["dataset"] == "pathmnist")
        & (lnm["pattern"] == "instance_classifier")
        & (lnm["rate"] == 0.2)
        & (lnm["seed"] == 0)
    ].set_index("kind")["value"]
    assert one.to_dict() == {
        "test_acc_last5": 90.2563,
        "test_acc_best_val": 90.6964,
        "test_acc_max": 93.3426,
    }
    pub = rep.published(refs)
    blood = pub[
        (pub["dataset"] == "bloodmnist") & (pub["rate"] == 0.2) & (pub["kind"] == "test_acc_last5")
    ].iloc[0]
    runs = [98.6671, 98.2987, 98.8132]  # seeds 0, 5, 10
    assert blood["value"] == pytest.approx(np.mean(runs)) and blood["n"] == 3
    assert blood["spread"] == pytest.approx(np.std(runs, ddof=1)) and blood["seeds"] == "0,5,10"
    med = refs[refs["reference"] == "medmnist_v2"].set_index(["dataset", "backbone", "kind"])
    assert med.loc[("breastmnist", "resnet18", "test_acc_best_val_auc"), "value"] == 86.3
    assert med.loc[("retinamnist", "resnet18", "auc_best_val_auc"), "value"] == 0.717
    for kind in set(refs["kind"]):
        assert rep.kind_text(kind)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "line, column, allowed",
    [
        (row(method="coteach"), "method", "coteaching_plus"),
        (row(kind="test_acc_top5"), "kind", "test_acc_last{k}"),
        (row(pattern="sym"), "pattern", "instance_classifier"),
        (row(value="120"), "value", "a percentage"),
        (row(kind="auc_last2", value="71.7"), "value", "[0, 1]"),
        (row(rate="1.5"), "rate", "[0, 1)"),
        (row(pattern="none", rate="0.2"), "rate", "0 exactly for pattern 'none'"),
        (row(seed="0", spread="1.0"), "spread", "per-seed row"),
        (row(seed="-1"), "seed", "≥ 0"),
        (row(provenance=""), "provenance", "where the number comes from"),
        (row(dataset="all"), "rate", "empty on a dataset 'all' row"),
    ],
)
def test_bad_rows_name_line_column_and_what_is_allowed(tmp_path, line, column, allowed):
    path = table(tmp_path, row(), line)
    with pytest.raises(rep.ReferenceError) as err:
        rep.load_table(path)
    text = str(err.value)
    assert f"{path}, line 3, column {column!r}" in text and allowed in text


def test_table_level_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("reference,dataset\npaper,x\n")
    with pytest.raises(rep.ReferenceError, match="line 1 .*missing columns.*'pattern'"):
        rep.load_table(bad)
    mixed = table(tmp_path, row(seed="0", value="50"), row(value="51"), name="mixed")
    with pytest.raises(rep.ReferenceError, match="line 3, column 'seed'.*not both"):
        rep.load_table(mixed)
    twice = table(tmp_path, row(seed="5"), row(seed="5", value="52"), name="twice")
    with pytest.raises(rep.ReferenceError, match="line 3, column 'seed'.*seed 5.*line 2"):
        rep.load_table(twice)
    two = table(tmp_path, row(), row(reference="other"), name="two")
    with pytest.raises(rep.ReferenceError, match="line 3, column 'reference'"):
        rep.load_table(two)
    with pytest.raises(rep.ReferenceError, match="'nope' is not allowed; allowed: lnmbench"):
        rep.check_config({"references": ["nope"], "extra": []})
    with pytest.raises(rep.ReferenceError, match="already loaded"):
        rep.load_references(["lnmbench"], [table(tmp_path, row(reference="lnmbench"))])


# ---------------------------------------------------------------- verdicts


def test_verdict_edges():
    # the interval includes its edges
    assert rep.verdict(50.0, 48.0, 52.0, 3, 52.0, 1.0)[0] == rep.AGREES
    assert rep.verdict(50.0, 48.0, 52.0, 3, 48.0, 1.0)[0] == rep.AGREES
    assert rep.verdict(50.0, 48.0, 52.0, 3, 52.001, 1.0)[0] == rep.DIFFERS
    # the resolution: strictly below agrees, at it does not
    assert rep.verdict(50.0, 49.5, 50.5, 3, 50.99, 1.0)[0] == rep.AGREES
    assert rep.verdict(50.0, 49.5, 50.5, 3, 51.0, 1.0)[0] == rep.DIFFERS
    # one run: no interval; agrees only by the resolution, else cannot tell (never differs)
    nan = float("nan")
    assert rep.verdict(50.0, nan, nan, 1, 50.5, 1.0)[0] == rep.AGREES
    assert rep.verdict(50.0, nan, nan, 1, 51.0, 1.0)[0] == rep.CANNOT_TELL
    assert rep.verdict(50.0, nan, nan, 1, 90.0, 1.0)[0] == rep.CANNOT_TELL
    # no resolution (an AUC): the interval alone decides
    assert rep.verdict(0.8, 0.78, 0.82, 3, 0.83, nan)[0] == rep.DIFFERS
    assert rep.verdict(0.8, nan, nan, 1, 0.8, nan)[0] == rep.CANNOT_TELL


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Synthetic run folders: RetinaMNIST (400 test images) symmetric 0.2, CE with three seeds
    at 60, 61, 62 % and Co-teaching with one seed at 70 %; BreastMNIST clean CE with one run
    that predicts one class for every image (collapsed)."""
    root = tmp_path_factory.mktemp("repro")
    paths = [
        write_run(root, "retinamnist", "symmetric", 0.2, "ce", 0, s, acc)
        for s, acc in enumerate([60.0, 61.0, 62.0])
    ]
    paths.append(write_run(root, "retinamnist", "symmetric", 0.2, "coteaching", 0, 0, 70.0))
    one_class = np.tile(np.array([[0.2, 0.8]], np.float32), (156, 1))
    paths.append(write_run(root, "breastmnist", "none", 0.0, "ce", 0, 0, 73.0769, probs=one_class))
    runs = agg.collect_runs(paths)
    return runs, diagnostics.collect_epochs(runs), root


def test_verdicts_by_hand_on_run_folders(folders, tmp_path):
    runs, epochs, _ = folders
    # CE: mean 61, s = 1, n = 3 -> CI 61 ± 4.303/√3 = [58.516, 63.484]; resolution at 61 % on
    # 400 images = ±4.780
    hw, res = T975[3] / math.sqrt(3), hand_resolution(61.0, 400)
    assert res == pytest.approx(4.7803, abs=1e-3)
    paths = tables_each(
        tmp_path,
        paper0={"value": f"{61 + hw - 1e-6:.7f}"},  # just inside the CI's upper edge
        paper1={"value": "64.0", "size": "", "epochs": ""},  # size, epochs not stated
        paper2={"method": "coteaching", "value": "95.0"},
        paper3={"method": "coteaching", "value": "72.0"},
    )
    out = rep.compare(runs, rep.load_references([], paths), epochs, deviations=None)
    got = out.set_index("reference")
    ce_in = got.loc["paper0"]
    assert ce_in["status"] == "compared" and ce_in["verdict"] == rep.AGREES
    assert ce_in["ours_mean"] == pytest.approx(61.0) and ce_in["ours_n"] == 3
    assert ce_in["ours_lo"] == pytest.approx(61 - hw) and ce_in["ours_hi"] == pytest.approx(61 + hw)
    assert ce_in["resolution"] == pytest.approx(res) and "inside" in ce_in["why"]
    # 64: outside the CI (63.484) but 3 points < ±4.78: the test set cannot tell them apart
    by_res = got.loc["paper1"]
    assert by_res["verdict"] == rep.AGREES and "resolution" in by_res["why"]
    assert by_res["diff"] == pytest.approx(-3.0)
    # Co-teaching: one run -> no interval; 25 points apart: cannot tell; 2 points: agrees
    assert got.loc["paper2", "verdict"] == rep.CANNOT_TELL
    assert got.loc["paper3", "verdict"] == rep.AGREES
    assert got.loc["paper3", "resolution"] == pytest.approx(hand_resolution(70.0, 400))


def test_differs_links_the_methods_deviations(folders, tmp_path):
    runs, epochs, _ = folders
    dev = tmp_path / "deviations.md"
    dev.write_text(
        "# Deviations\n\n| Method | What | Switch |\n|---|---|---|\n"
        "| CE | label smoothing | `ce.label_smoothing` |\n"
        "| Co-teaching family (Co-teaching, CoDis) | loss | none |\n"
        "| CE, DISC | both | none |\n\n"
        "| Other | method |\n|---|---|\n| CE | not the method column |\n"
    )
    assert rep.deviation_rows(dev) == {
        "ce": [5, 7],
        "coteaching": [6],
        "codis": [6],
        "coteaching_plus": [6],
        "jocor": [6],
        "disc": [7],
    }
    # 67: 6 points below 61 - outside the CI and beyond ±4.78
    path = table(tmp_path, row(value="67.0"))
    out = rep.compare(runs, rep.load_references([], [path]), epochs, deviations=dev)
    (r,) = out.itertuples()
    assert r.verdict == rep.DIFFERS and r.diff == pytest.approx(-6.0)
    assert r.deviations == "docs/deviations.md lines 5, 7 (2 rows)"
    assert rep.methods_named("All methods") == set(grid.methods())
    assert rep.methods_named("VolMinNet, CDR and `loss_coteaching`") == {"volminnet", "cdr"}
    assert rep.methods_named("coteaching_plus / T-Revision") == {"coteaching_plus", "trevision"}
    # the real file: every method has its rows
    rows = rep.deviation_rows()
    # (LNMBench's eleven and the five beyond it; a method file added later need not have any)
    assert set(rows) >= set(load_config(REPO / "presets" / "demo.yaml")["methods"])
    assert set(rows) <= set(grid.methods()) and all(rows.values())


def test_refused_backbone_kind_and_test_selected_numbers(folders, tmp_path):
    runs, epochs, _ = folders
    paths = tables_each(
        tmp_path,
        backbone={"backbone": "tv_resnet50", "value": "61"},
        kind={"kind": "test_acc_last5", "value": "61"},  # ours average the last 2 epochs
        max={"kind": "test_acc_max", "value": "61"},
        size={"size": "224", "value": "61"},
        epochs={"epochs": "50", "value": "61"},
        auc_sel={"kind": "auc_best_val_auc", "value": "0.8"},
    )
    out = rep.compare(runs, rep.load_references([], paths), epochs, deviations=None)
    out = out.set_index("reference")
    assert (out["status"] == "not compared").all() and out["verdict"].fillna("").eq("").all()
    assert out["diff"].isna().all()  # no difference is computed across kinds
    assert "backbone: ours resnet8, the reference's tv_resnet50" in out.loc["backbone", "why"]
    assert "test accuracy (%), mean of the last 5 epochs" in out.loc["kind", "why"]
    assert "test_acc_last2" in out.loc["kind", "why"]
    assert "selected on the test set" in out.loc["max", "why"]
    assert "image size: ours 28 px, the reference's 224 px" in out.loc["size", "why"]
    assert "epochs: ours 4, the reference's 50" in out.loc["epochs", "why"]
    assert "validation AUC" in out.loc["auc_sel", "why"]
    # the closest value of ours is shown beside it, for orientation
    assert out.loc["kind", "ours_kind"] == "test_acc_last2"
    assert out.loc["kind", "ours_mean"] == pytest.approx(61.0)


def test_collapsed_runs_are_marked(folders, tmp_path):
    runs, epochs, root = folders
    assert runs.loc[runs["dataset"] == "breastmnist", "collapsed"].all()
    path = table(tmp_path, row(dataset="breastmnist", pattern="none", rate="0", value="73.0"))
    refs = rep.load_references([], [path])
    out = rep.compare(runs, refs, epochs, deviations=None)
    (r,) = out.itertuples()
    assert r.n_collapsed == 1 and r.verdict == rep.AGREES
    md = "\n".join(t.title + str(t.rows) + str(t.notes) for t in rep.render(out, out[:0], refs))
    assert "73.08 ⊘ (n=1)" in md and "collapsed runs" in md


def test_final_epoch_diagnostics_come_from_per_epoch(folders, tmp_path):
    runs, epochs, _ = folders
    # write_run: Co-teaching's clean ratio over 4 epochs is 100 - 50·0.2 + epoch -> 93 at the end
    a, b = tables_each(
        tmp_path,
        a={"method": "coteaching", "kind": "clean_precision_final", "value": "93.0"},
        b={"method": "coteaching", "kind": "clean_precision_last2", "value": "92.5"},
    )
    out = rep.compare(runs, rep.load_references([], [a, b]), epochs, deviations=None)
    out = out.set_index("reference")
    assert out.loc["a", "ours_mean"] == pytest.approx(93.0)  # the last epoch
    assert out.loc["b", "ours_mean"] == pytest.approx(92.5)  # mean of the last 2 (92, 93)
    assert np.isnan(out.loc["a", "resolution"])  # not a test accuracy: no test-set resolution


# ---------------------------------------------------------------- ranking


def ranking_runs(means: dict[str, float], backbone="tv_resnet50", last_k=5) -> pd.DataFrame:
    """A run table by hand: one dataset, symmetric 0.2 and 0.4, one run per method and rate."""
    rows = []
    for method, acc in means.items():
        for rate, shift in ((0.2, 1.0), (0.4, -1.0)):
            rows.append(
                {
                    "dataset": "d",
                    "noise": "symmetric",
                    "rate": rate,
                    "noise_seed": 0,
                    "method": method,
                    "backbone": backbone,
                    "seed": 0,
                    "epochs": 50,
                    "size": 224,
                    "identifiable": True,
                    "num_classes": 2,
                    "num_test": 1000,
                    "last_k": last_k,
                    "realised_rate": rate,
                    "test_acc_last_k": acc + shift,
                    "test_acc_best_val": acc,
                    "balanced_acc_last_k": acc,
                    "macro_f1_last_k": acc,
                    "test_class_counts": "[500, 500]",
                    "majority_acc": 50.0,
                    "metrics_path": "by-hand",
                }
            )
    return pd.DataFrame(rows)


def test_kendall_tau_matches_scipy(tmp_path):
    ours = {"ce": 60.0, "sce": 58.0, "cdr": 55.0, "disc": 50.0}
    theirs = {"ce": 70.0, "sce": 65.0, "cdr": 40.0, "disc": 45.0}  # cdr and disc swapped
    lines = [
        row(
            dataset="all",
            rate="",
            method=m,
            backbone="tv_resnet50",
            size="",
            epochs="",
            kind="test_acc_last5",
            value=str(v),
        )
        for m, v in theirs.items()
    ]
    refs = rep.load_references([], [table(tmp_path, *lines)])
    out = rep.ranking_comparison(ranking_runs(ours), refs).set_index("method")
    # 6 pairs, one discordant: τ = (5 − 1) / 6
    assert out["tau"].iloc[0] == pytest.approx(4 / 6)
    expected = sps.kendalltau([60, 58, 55, 50], [70, 65, 40, 45])
    assert out["tau"].iloc[0] == pytest.approx(expected.statistic)
    assert out["tau_pvalue"].iloc[0] == pytest.approx(expected.pvalue)
    assert out.loc["ce", "ours"] == pytest.approx(60.0)  # mean over the pattern's two cells
    assert out.loc["cdr", "ours_rank"] == 3 and out.loc["cdr", "published_rank"] == 4
    assert out["ours_group"].ne("").all() and (out["status"] == "compared").all()
    # another backbone, or another last-k: not compared, one honest line
    other = rep.ranking_comparison(ranking_runs(ours, backbone="resnet8"), refs)
    assert len(other) == 1 and "backbone tv_resnet50" in other["why"].iloc[0]
    other = rep.ranking_comparison(ranking_runs(ours, last_k=3), refs)
    assert len(other) == 1 and "ours average the last 3" in other["why"].iloc[0]


# ---------------------------------------------------------------- files and figure


def test_files_figure_and_the_no_overlap_line(folders, tmp_path):
    runs, epochs, _ = folders
    out = rep.write_reproduction(
        runs,
        tmp_path / "tables",
        tmp_path / "figures" / "reproduction.png",
        references=["lnmbench", "medmnist_v2"],
        epochs=epochs,
    )
    assert list(out) == list(grid.TABLES["reproduction"])
    for path in [*out.values(), tmp_path / "figures" / "reproduction.png"]:
        verify(path)
    md = (tmp_path / "tables" / "reproduction.md").read_text()
    # resnet8 runs overlap MedMNIST v2's clean CE cell of BreastMNIST, never comparably
    assert rep.NO_OVERLAP in md and "not comparable" in md and "breastmnist none 0" in md
    # the shipped tables are named as the repository spells them, not by this checkout's path
    # (the references overview of the .md and .html; the .csv files hold no source)
    checkout = str(grid.PACKAGE.parent)
    for name in ("reproduction.md", "reproduction.html"):
        assert checkout not in (tmp_path / "tables" / name).read_text(), name
    assert "lnm/report/references/lnmbench.csv" in md
    result = pd.read_csv(tmp_path / "tables" / "reproduction.csv")
    assert len(result) and (result["status"] == "not compared").all()
    img = mpimg.imread(tmp_path / "figures" / "reproduction.png")
    assert img.shape[:2] == (round(rep.FIGSIZE[1] * DPI), round(rep.FIGSIZE[0] * DPI))
    # with a comparable number: a point per number, coloured by verdict
    path = table(tmp_path, row(value="61"), name="mine")
    rep.write_reproduction(
        runs, tmp_path / "t2", tmp_path / "f2.png", extra=[path], epochs=epochs, deviations=None
    )
    md = (tmp_path / "t2" / "reproduction.md").read_text()
    assert rep.NO_OVERLAP not in md and "1 agrees, 0 differs, 0 cannot tell" in md
    assert mpimg.imread(tmp_path / "f2.png")[..., :3].std() > 0.01
