"""benchmarks/reproduce_cell.py (the GPU check's reproduction cell) runs end to end on the CPU,
tiny: synthetic BreastMNIST-shaped data, ResNet-8, two epochs, two seeds."""

import json
import math

import numpy as np
import pytest

from lnm.report import reproduction as rep
from tests.conftest import benchmark


@pytest.fixture(scope="module")
def cell():
    return benchmark("reproduce_cell")


def fake_breastmnist(path, n=(48, 16, 24), seed=0):
    """medmnist's .npz layout: grey 28 px images (uint8), labels N x 1; class 1 is brighter."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        y = rng.integers(0, 2, count)
        x = rng.integers(0, 80, (count, 28, 28)) + 120 * y[:, None, None]
        arrays[f"{split}_images"] = x.clip(0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = y[:, None].astype(np.uint8)
    np.savez(path / "breastmnist.npz", **arrays)


def test_reproduce_cell_runs_and_judges_with_the_stage_rules(cell, tmp_path, capsys):
    fake_breastmnist(tmp_path)
    out = tmp_path / "cell.json"
    args = ["--device", "cpu", "--datasets", "breastmnist", "--epochs", "2", "--seeds", "0", "1"]
    assert (
        cell.main(
            [*args, "--backbone", "resnet8", "--raw-dir", str(tmp_path), "--json", str(out)]
            + ["--checks", str(tmp_path / "checks" / "reproduce_cell.json")]
        )
        == 0
    )
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    d = report["datasets"]["breastmnist"]
    assert report["scaled"] and d["n_test"] == 24 and len(d["runs"]) == 2
    for run in d["runs"]:  # the first epoch with the highest validation AUC
        assert run["epoch"] == int(np.argmax(run["val_aucs"])) and len(run["val_aucs"]) == 2
        assert 0 <= run["acc"] <= 100 and 0 <= run["auc"] <= 1
    # the published numbers come from the shipped table; the verdicts follow the stage's rule
    assert d["verdicts"]["acc"]["published"] == 86.3
    assert d["verdicts"]["auc"]["published"] == 0.901
    for metric, v in d["verdicts"].items():
        values = [r[metric] for r in d["runs"]]
        mean = float(np.mean(values))
        hw = 12.706204736174705 * float(np.std(values, ddof=1)) / math.sqrt(2)  # t(0.975, 1)
        res = 100 * 1.959963984540054 * math.sqrt(mean / 100 * (1 - mean / 100) / 24)
        expected = rep.verdict(
            mean, mean - hw, mean + hw, 2, v["published"], res if metric == "acc" else math.nan
        )[0]
        assert v["mean"] == pytest.approx(mean) and v["verdict"] == expected
        assert f"VERDICT breastmnist {cell.KINDS[metric]}: ours" in text
    assert "[scaled recipe: indicative only]" in text and "reproduce_cell: " in text
    # the GPU check's rows: a scaled recipe never counts as met, whatever its verdict
    rows = json.loads((tmp_path / "checks" / "reproduce_cell.json").read_text())
    assert [r["check"] for r in rows] == [
        f"reproduce breastmnist {cell.KINDS[m]}" for m in d["verdicts"]
    ]
    assert {r["verdict"] for r in rows} == {"MISSED"}
    assert all("scaled recipe" in r["target"] for r in rows)
