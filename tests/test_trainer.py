"""The shared trainer: exact resume for every method, determinism, metrics, checkpoints."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lnm.methods import REGISTRY
from lnm.train.augment import Augmenter
from lnm.train.trainer import CheckpointMismatch
from tests.conftest import run_method


class Crash(RuntimeError):
    pass


def comparable(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "provenance"}


@pytest.mark.parametrize("method", list(REGISTRY))
def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path, method):
    full, _ = run_method(tmp_path, method, epochs=3, out="full")

    def crash_in_epoch_2(line):
        if "epoch 2/3" in line:
            raise Crash(line)

    with pytest.raises(Crash):
        run_method(tmp_path, method, epochs=3, out="resumed", log=crash_in_epoch_2)
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    lines = []
    resumed, out = run_method(tmp_path, method, epochs=3, out="resumed", log=lines.append)
    assert any("resuming" in line and "after epoch 0" in line for line in lines)
    assert comparable(resumed) == comparable(full)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "per_epoch.csv"), pd.read_csv(tmp_path / "full" / "per_epoch.csv")
    )
    assert not (out / "checkpoint.pt").exists()


def test_same_seed_same_metrics_and_different_seed_differs(tmp_path):
    a, _ = run_method(tmp_path, "ce", epochs=2, out="a")
    b, _ = run_method(tmp_path, "ce", epochs=2, out="b")
    c, _ = run_method(tmp_path, "ce", epochs=2, out="c", seed=1)
    assert comparable(a) == comparable(b)
    assert a["test_acc_last_k"] != c["test_acc_last_k"] or a["nll_last_k"] != c["nll_last_k"]


def test_metrics_headline_is_last_k_mean_and_best_val_not_max(tmp_path):
    m, out = run_method(tmp_path, "ce", epochs=4)
    curve = pd.read_csv(out / "per_epoch.csv")
    assert m["test_acc_last_k"] == pytest.approx(curve.test_acc.iloc[-2:].mean())
    best = int(curve.val_acc.to_numpy().argmax())
    assert m["best_val_epoch"] == best and m["test_acc_best_val"] == curve.test_acc[best]
    assert "max" not in json.dumps(sorted(m)).lower()  # the test maximum is never reported
    assert m["noise_rate_realised"] == pytest.approx(0.4, abs=4 * (0.24 / 96) ** 0.5)
    assert len(m["per_class_recall_last_k"]) == 3 and m["identifiable"] is True
    for key in ("balanced_acc_last_k", "macro_f1_last_k", "auc_last_k", "ece_last_k", "nll_last_k"):
        assert m[key] is not None
    probs = np.load(out / "test_probs.npz")
    assert probs["probs"].shape == (48, 3)
    np.testing.assert_allclose(probs["probs"].sum(1), 1, atol=1e-5)


def test_checkpoint_from_a_different_config_is_refused(tmp_path):
    def crash_in_epoch_2(line):
        if "epoch 2/3" in line:
            raise Crash(line)

    with pytest.raises(Crash):
        run_method(tmp_path, "ce", epochs=3, log=crash_in_epoch_2)
    with pytest.raises(CheckpointMismatch, match=r"checkpoint\.pt.*differs in: optimizer"):
        run_method(tmp_path, "ce", epochs=3, optimizer={"name": "sgd", "lr": 0.01})


def test_augmenter_crops_and_flips_per_sample():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    aug = Augmenter([0.0], [1 / 255], crop_padding=1, hflip=True)
    g = torch.Generator().manual_seed(0)
    outs = torch.stack([aug(x, g) for _ in range(200)]).round().long()  # values = pixel ids
    # every output is a (possibly flipped) 4x4 window of the zero-padded image
    assert outs.shape == (200, 2, 1, 4, 4)
    assert set(outs.unique().tolist()) <= set(range(32))
    # both flips and all 9 offsets occur, and the two samples are augmented independently
    assert (outs[:, 0] != outs[:, 1] - 16).any()
    centres = outs[:, 0, 0, 1:3, 1:3].reshape(200, -1)
    assert len({tuple(c.tolist()) for c in centres}) >= 9
