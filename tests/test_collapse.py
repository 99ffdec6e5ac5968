"""A collapsed run does not look like a result: ``lnm train`` says so where it prints the number
(lnm.collapse, the criterion meant to be shared with the report's ``collapsed`` flag)."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from lnm.collapse import COLLAPSE_SHARE, prediction_collapse
from tests.conftest import make_h5


def test_a_near_constant_predictor_is_collapsed_with_the_majority_rate():
    labels = np.array([0] * 73 + [1] * 27)
    c = prediction_collapse(np.zeros(100, int), labels, 2)
    assert (c.predicted_class, c.share, c.majority_class) == (0, 1.0, 0)
    assert c.majority_rate == pytest.approx(73.0)
    assert c.text() == (
        "collapsed: predicts class 0 for 100 % of test images — the majority-class rate is 73.00"
    )
    minority = prediction_collapse(np.ones(100, int), labels, 2)
    assert minority.text().endswith("the majority-class rate is 73.00 (class 0)")
    # just below the share: a classifier, however poor
    n = 1000
    almost = np.zeros(n, int)
    almost[: int(np.ceil(n * (1 - COLLAPSE_SHARE))) + 1] = 1
    assert prediction_collapse(almost, np.zeros(n, int), 2) is None
    assert prediction_collapse(np.array([0, 1, 2, 0]), np.array([0, 1, 2, 0]), 3) is None
    assert prediction_collapse(np.zeros(5, int), np.zeros(5, int), 1) is None  # one class


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
