"""The device-side loss meter (lnm.methods.base.LossMeter) and the absence of per-batch host syncs
in the methods' training loops."""

import itertools
import math

import numpy as np
import pytest
import torch

from lnm.methods.base import LossMeter
from tests.conftest import tiny_method


def python_mean(losses, sizes) -> float:
    """What the methods computed before the meter: ``total += loss.item() * n``, then
    ``total / max(n, 1)``, in Python floats."""
    total, n = 0.0, 0
    for loss, size in zip(losses, sizes, strict=True):
        total, n = total + loss.item() * size, n + size
    return total / max(n, 1)


def float32_mean(losses, sizes) -> float:
    """The same sum accumulated in float32 on the device (what the meter must NOT do)."""
    total = torch.zeros((), dtype=torch.float32)
    for loss, size in zip(losses, sizes, strict=True):
        total = total + loss * size
    return float(total) / sum(sizes)


def hand_built(seed: int):
    rng = np.random.default_rng(seed)
    losses = [torch.tensor(v, dtype=torch.float32) for v in rng.uniform(0.01, 3.0, 40)]
    sizes = [int(s) for s in rng.integers(1, 129, 40)]
    return losses, sizes


def test_meter_mean_is_bit_identical_to_the_python_float_accumulation():
    # a hand-written sequence: float32 losses that are not exact in binary, odd batch sizes
    losses = [torch.tensor(v, dtype=torch.float32) for v in (0.1, 2.3025851, 1e-3, 0.7, 1 / 3)]
    sizes = [128, 17, 100, 3, 77]
    cases = [(losses, sizes)] + [hand_built(seed) for seed in range(5)]
    for losses, sizes in cases:
        meter = LossMeter("cpu")
        for loss, size in zip(losses, sizes, strict=True):
            meter.add(loss, size)
        expected = python_mean(losses, sizes)
        assert meter.mean() == expected  # bit for bit, not approx
        assert meter.count == sum(sizes)
        assert meter.total.dtype == torch.float64 and meter.total.dim() == 0
        # a float32 accumulator would give another number: the test would catch one
        assert float32_mean(losses, sizes) != expected


def test_meter_detaches_and_keeps_the_loss_dtype_out_of_the_sum():
    w = torch.tensor(1.5, requires_grad=True)
    loss = (w * torch.tensor(0.1)).float()
    meter = LossMeter()
    meter.add(loss, 32)
    assert not meter.total.requires_grad
    assert meter.mean() == loss.item() * 32 / 32


def test_empty_meter():
    meter = LossMeter()
    assert meter.count == 0
    assert meter.mean() == 0.0  # what total / max(n, 1) gave with no batch
    assert math.isnan(meter.mean(empty=float("nan")))


def test_method_loss_meter_is_on_the_method_device(tmp_path):
    method, _ = tiny_method(tmp_path, "ce")
    meter = method.loss_meter()
    assert isinstance(meter, LossMeter) and meter.total.device == method.device


#: Tensor -> host conversions a training loop could hide per batch
SYNCS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


def count_syncs(monkeypatch) -> dict:
    counts = dict.fromkeys(SYNCS, 0)
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


#: (method, params, epoch): epoch 1 with num_gradual 1 so that CDR masks gradients and the
#: Co-teaching family drops samples (at epoch 0 both keep everything)
SYNC_CASES = [
    ("ce", {}, 0),
    ("sce", {}, 0),
    ("cdr", {"num_gradual": 1}, 1),
    ("volminnet", {}, 0),
    ("trevision", {}, 0),
    ("coteaching", {"num_gradual": 1}, 1),
    ("codis", {"num_gradual": 1}, 1),
    ("jocor", {"num_gradual": 1}, 1),
]


@pytest.mark.parametrize("name, params, epoch", SYNC_CASES, ids=[c[0] for c in SYNC_CASES])
def test_train_epoch_makes_no_host_sync_per_batch(tmp_path, monkeypatch, name, params, epoch):
    """The number of tensor -> host conversions in one ``train_epoch`` does not grow with the
    number of batches (1 batch vs 12)."""
    per_run = []
    for num_batches in (1, 12):
        method, data = tiny_method(tmp_path, name, params=params)
        assert data.num_train // 8 >= 12
        batches = itertools.islice(data.epoch_batches(0, epoch, 0, batch_size=8), num_batches)
        with monkeypatch.context() as m:
            counts = count_syncs(m)
            out = method.train_epoch(epoch, batches)
        assert math.isfinite(out["train_loss"])
        per_run.append(counts)
    assert per_run[0] == per_run[1], per_run
    assert per_run[1]["item"] == 0


def test_coteaching_plus_reads_the_disagreement_size_once_per_batch(tmp_path, monkeypatch):
    """After ``init_epoch`` Co-teaching+ must know |D| on the host (which rule applies, how many
    to keep, whether to step): one ``int()`` per batch, nothing else per batch."""
    per_run = []
    for num_batches in (1, 12):
        method, data = tiny_method(
            tmp_path, "coteaching_plus", params={"init_epoch": 0, "num_gradual": 1}
        )
        batches = itertools.islice(data.epoch_batches(0, 1, 0, batch_size=8), num_batches)
        with monkeypatch.context() as m:
            counts = count_syncs(m)
            method.train_epoch(1, batches)
        per_run.append(counts)
    grown = {k: per_run[1][k] - per_run[0][k] for k in SYNCS}
    assert grown == {**dict.fromkeys(SYNCS, 0), "__int__": 11}, per_run
