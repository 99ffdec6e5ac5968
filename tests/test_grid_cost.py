"""benchmarks/grid_cost.py: a tiny real measurement, and the projection on a hand-computed case."""

import json

import pytest

from lnm.config import load_config
from lnm.grid import method_info, methods
from tests.conftest import benchmark, tiny_spec


@pytest.fixture(scope="module")
def gc():
    return benchmark("grid_cost")


def test_measure_run_smoke(gc):
    spec = tiny_spec(method="ce", backbone="resnet8", size=8, batch_size=8)
    rec = gc.measure_run(spec, "cpu", batches=2, channels=1, classes=3)
    assert rec["train_images"] == 16 and rec["measured_batch_size"] == 8
    assert len(rec["phases"]) == 1 and rec["phases"][0]["ips"] > 0
    assert rec["eval"]["ips"] > 0 and rec["checkpoint_s"] >= 0
    assert rec["computed_precision"] == "fp32"  # CPUs compute in fp32


#: the grid of the hand-computed case: 2 cells (clean, symmetric 0.5) x 2 methods x 2 seeds
TINY_GRID = {
    "size": 28,
    "datasets": ["breastmnist"],
    "noise": {
        "patterns": {"symmetric": [0.5], "instance_classifier": [], "instance": []},
        "clean": True,
        "noise_seeds": [0],
    },
    "methods": ["ce", "dividemix"],
    "backbones": ["resnet8"],
    "pretrained": False,
    "seeds": [0, 1],
    "estimation": {"enabled": False},
    "train": {"epochs": 4, "last_k": 1},
    "method_params": {"dividemix": {"warmup_epochs": 1}},
}
SIZES = {"breastmnist": {"train": 100, "val": 10, "test": 30}}


def fake_measurements(jobs):
    """Start-up 2 s; the data file (140 images of 28x28x1 bytes) loads in 1 s; CE trains at
    50 img/s, evaluates at 20 img/s and checkpoints in 0.5 s; DivideMix warms up at 100 img/s
    and runs MixMatch at 10 img/s with half the train set labelled, evaluates at 20 img/s."""
    keys = {j.row: j.key for j in jobs}
    return {
        "startup_s": 2.0,
        "data_bytes_per_s": 140 * 28 * 28,
        "runs": {
            keys["ce"]: {"phases": [{"ips": 50.0}], "eval": {"ips": 20.0}, "checkpoint_s": 0.5},
            keys["dividemix"]: {
                "phases": [{"ips": 100.0}, {"ips": 10.0, "labelled_frac": 0.5}],
                "eval": {"ips": 20.0},
                "checkpoint_s": 0.0,
            },
        },
    }


def test_projection_by_hand(gc, tmp_path, capsys):
    config = load_config(overrides=TINY_GRID)
    jobs = gc.grid_jobs(config, split_sizes=SIZES)
    assert sorted(j.row for j in jobs) == ["ce"] * 4 + ["dividemix"] * 4
    dm = [j for j in jobs if j.row == "dividemix"]
    assert all(j.phases == [1, 3] for j in dm)
    assert sorted(j.labelled_frac for j in dm) == [0.5, 0.5, 1.0, 1.0]
    meas = fake_measurements(jobs)
    rows, missing = gc.project(jobs, meas)
    assert not missing
    # CE run: 2 + 1 + 4 x 100 / 50 + 4 x (40 / 20 + 0.5) = 21 s, 4 runs
    assert rows["ce"]["seconds"] == pytest.approx(4 * 21.0)
    # DivideMix run: 3 s + warm-up 1 x 100 / 100 + evaluation 4 x 40 / 20 = 12 s, plus MixMatch
    # 3 x 100 x (1/20 + (1/10 - 1/20) x f / 0.5): 45 s clean (f = 1), 30 s at rate 0.5
    assert rows["dividemix"]["seconds"] == pytest.approx(2 * (57.0 + 42.0))
    assert rows["dividemix"]["max_job_s"] == pytest.approx(57.0)
    total_h = (84.0 + 198.0) / 3600
    assert gc.devices_needed(total_h, 180 / 3600, 57 / 3600) == 2  # 282 s in 180 s of wall time
    assert gc.devices_needed(total_h, 50 / 3600, 57 / 3600) == -1  # one run alone takes longer
    assert gc.job_seconds(jobs[0], meas["runs"][jobs[0].key], meas, startup=False) == 18.0

    # the command line projects from a measurement file without measuring
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": gc.FORMAT, "devices": {"fake GPU": meas}}))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps(TINY_GRID))  # JSON is YAML
    argv = [str(cfg), "--measurements", str(path), "--use", "fake", "--wall-hours", "0.05"]
    assert gc.main([*argv, "--split-sizes", "breastmnist=100,10,30"]) == 0
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[1:] == ["8", f"{total_h:.2f}"]
    assert "devices to finish in 0.05 h: 2" in out


def test_phases():
    """Each method's phases as its class declares them (lnm.grid.MethodInfo.phase_epochs)."""
    info = method_info
    assert info("trevision").phase_epochs(
        50, {"estimation_epochs": 5, "revision_epochs": None}
    ) == [
        5,
        23,
        22,
    ]
    assert info("trevision").phase_epochs(50, {"revision_epochs": 10}) == [5, 35, 10]
    assert info("disc").phase_epochs(3, {"start_epoch": 5}) == [3, 0]
    assert info("sce").phase_epochs(7, {}) == [7]
    assert info("cocorrecting").phase_epochs(50, {"stage1": 11, "stage2": 31}) == [11, 20, 19]
    assert info("cocorrecting").phase_epochs(20, {"stage1": 11, "stage2": 31}) == [11, 9, 0]
    assert info("promix").phase_epochs(50, {"pretrain_ep": 5}) == [5, 45]
    assert info("gce").phase_epochs(7, {}) == [7] and len(info("sop").phases) == 1
    assert (len(info("promix").phases), len(info("cocorrecting").phases)) == (2, 3)
    assert [len(info(m).phases) for m in ("dividemix", "disc", "coteaching_plus", "trevision")] == [
        2,
        2,
        2,
        3,
    ]
    for m in methods():
        n = len(info(m).phases)
        assert info(m).phase_epochs(2 * n, info(m).phase_overrides(2)) == [2] * n


def test_a_phase_trait_is_projected(gc):
    """A method's declared phases reach the projection: a run's epochs per phase, each phase at
    its measured speed, and a stale measurement with other phases is not used."""
    config = load_config(overrides={**TINY_GRID, "methods": ["trevision"]})
    config["method_params"] = {"trevision": {"estimation_epochs": 1}}
    jobs = gc.grid_jobs(config, split_sizes=SIZES)
    assert {tuple(j.phases) for j in jobs} == {(1, 2, 1)}  # 4 epochs: 1 + 2 + 1
    rec = {"phases": [{"ips": 100.0}, {"ips": 50.0}, {"ips": 25.0}], "eval": {"ips": 20.0}}
    rows, missing = gc.project(jobs, {"runs": {jobs[0].key: rec}}, startup=False)
    # 100 train images: 1 x 1 s + 2 x 2 s + 1 x 4 s, plus 4 evaluations of 40 images at 20/s
    assert rows["trevision"]["seconds"] == pytest.approx(len(jobs) * (9.0 + 8.0)) and not missing
    stale = {**rec, "phases": rec["phases"][:1]}
    assert gc.project(jobs, {"runs": {jobs[0].key: stale}})[1] == [jobs[0].key]
