"""A collapsed run does not look like a result: ``lnm train`` says so where it prints the number
(lnm.collapse, the criterion meant to be shared with the report's ``collapsed`` flag)."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from lnm.collapse import prediction_collapse
from tests.conftest import make_h5


def test_a_constant_predictor_is_collapsed_with_the_majority_rate():
    labels = np.array([0] * 73 + [1] * 27)
    c = prediction_collapse(np.zeros(100, int), labels, 2)
    assert (c.predicted_class, c.share, c.majority_class, c.constant) == (0, 1.0, 0, True)
    assert c.majority_rate == pytest.approx(73.0) and c.balanced == pytest.approx(50.0)
    assert c.text() == (
        "collapsed: predicts class 0 for 100 % of test images — the majority-class rate is 73.00"
    )
    minority = prediction_collapse(np.ones(100, int), labels, 2)
    assert minority.text().endswith("the majority-class rate is 73.00 (class 0)")
    assert prediction_collapse(np.zeros(5, int), np.zeros(5, int), 1) is None  # one class


def test_predictions_that_ignore_the_image_are_collapsed_and_informative_ones_are_not():
    """96 % class 0 at a balanced accuracy near the 50 % of predictions drawn without looking
    (within the band z·sd): collapsed; the same share with the minority found: not."""
    n0, n1 = 730, 270
    labels = np.array([0] * n0 + [1] * n1)
    blind = np.zeros(n0 + n1, int)
    blind[np.r_[0:29, n0 : n0 + 11]] = 1  # 4 % class 1, spread over both classes by share
    c = prediction_collapse(blind, labels, 2)
    assert c is not None and not c.constant and c.share == pytest.approx(0.96)
    assert abs(c.balanced - c.baseline) <= c.half_width
    assert "predicts class 0 for 96 % of test images, balanced accuracy" in c.text()
    seeing = np.zeros(n0 + n1, int)
    seeing[n0 : n0 + 40] = 1  # the 4 % class 1 are all minority images: recall 15 %
    assert prediction_collapse(seeing, labels, 2) is None
    inverted = 1 - labels  # follows the class, inverted: a result, not a collapse
    assert prediction_collapse(inverted, labels, 2) is None


def test_the_criterion_is_the_reports(tmp_path):
    """lnm train's collapse line and the report's ``collapsed`` flag use one criterion: the
    report's statistics are lnm.collapse's functions, and on predictions across the boundary
    (one class, lopsided near-chance, informative, inverted) the report flags a run collapsed
    exactly when :func:`lnm.collapse.prediction_collapse` says so."""
    from lnm import collapse
    from lnm.checksum import write_sidecar
    from lnm.report import aggregate, stats

    assert stats.balanced_accuracy is collapse.balanced_accuracy
    assert stats.uninformed_balanced is collapse.uninformed_balanced
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(700, int), np.ones(300, int), np.full(200, 2)]
    seen = set()
    for share_right in (0.0, 0.2, 0.34, 0.36, 0.4, 0.5, 0.7, 1.0):
        for lopsided in (0.0, 0.9):
            pred = np.where(
                rng.random(len(labels)) < share_right, labels, rng.integers(0, 3, len(labels))
            )
            pred = np.where(rng.random(len(labels)) < lopsided, 0, pred)
            probs = np.eye(3)[pred]
            run = tmp_path / f"r{share_right}_{lopsided}"
            run.mkdir()
            np.savez(run / "test_probs.npz", probs=probs, labels=labels)
            write_sidecar(run / "test_probs.npz")
            flags = aggregate.collapse_flags(run / "metrics.json", 3)
            expected = collapse.prediction_collapse(pred, labels, 3) is not None
            assert flags["collapsed"] == expected, (share_right, lopsided, flags)
            seen.add(expected)
    assert seen == {True, False}  # both sides of the boundary were probed


def _lopsided(tmp_path):
    """Training and validation labels all class 0 (a network learns to predict class 0
    everywhere); the test set is 3/4 class 0."""
    from lnm.checksum import write_sidecar
    from lnm.noise.generate import generate_noise_file

    h5 = make_h5(tmp_path / "breastmnist_28.h5", size=28, num_classes=2)
    with h5py.File(h5, "r+") as f:
        f.attrs["dataset"] = "breastmnist"
        for split in ("train", "val"):
            f[f"{split}/labels"][...] = 0
        n = len(f["test/labels"])
        f["test/labels"][...] = (np.arange(n) % 4 == 3).astype(np.int64)
    write_sidecar(h5)
    npz = tmp_path / "noise.npz"
    generate_noise_file(h5, npz, "none", 0.0, 0)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("size: 28\ndatasets: [breastmnist]\npretrained: false\n"
                   "train: {epochs: 1, last_k: 1, batch_size: 32}\n")  # fmt: skip
    return h5, npz, cfg


def test_lnm_train_says_a_collapsed_run_collapsed_where_it_prints_the_number(tmp_path, capsys):
    from lnm.cli import main

    h5, npz, cfg = _lopsided(tmp_path)
    out = tmp_path / "run"
    rc = main(["train", "--config", str(cfg), "--data", str(h5), "--noise", str(npz),
               "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(
        rf"{re.escape(str(out))}: .*? (\d+\.\d\d) \(collapsed: predicts class 0 for 100 % of "
        r"test images — the majority-class rate is (\d+\.\d\d)\)",
        line,
    )
    assert m, line
    assert m.group(1) == m.group(2) == "75.00"  # the number is the majority-class rate
