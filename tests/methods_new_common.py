"""Shared pieces of the fidelity tests of GCE, ELR, SOP, ProMix and Co-Correcting
(tests/test_methods_new_*.py): a method on the tiny synthetic problem, hand-built batches, a spy
on its optimiser steps, and the kill-and-resume check of a configuration past its phase changes.

The fidelity tests compare what a method computes inside ``train_epoch`` (the loss it steps on
and its parameters' gradients, per-sample state) with a transcription of the official code,
evaluated in float64 on the same network outputs.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from lnm.train.data import Batch
from tests.conftest import run_method, tiny_method

#: plain SGD: an update is exactly −lr·grad, and there is no optimiser state to carry
SGD = {"name": "sgd", "lr": 0.1}


def make(tmp_path, name: str, params=None, seed: int = 0, epochs: int = 4, **spec_kw):
    spec_kw.setdefault("optimizer", SGD)
    return tiny_method(tmp_path, name, epochs=epochs, params=params, seed=seed, **spec_kw)[0]


def batch(method, idx, seed: int = 0) -> Batch:
    """The training samples ``idx`` as a batch, unaugmented (x is the normalised image)."""
    data = method.data
    idx = torch.as_tensor(idx, dtype=torch.long)
    raw = data.images["train"][idx]
    gen = torch.Generator().manual_seed(seed)
    return Batch(idx, data.augmenter.normalize(raw.clone()), data.train_labels[idx], raw,
                 data.augmenter, gen)  # fmt: skip


class StepSpy:
    """Records, for every ``Method.step`` call, the loss and the gradients of ``params`` (after
    the backward pass, before the optimiser moves anything); the step then happens as usual."""

    def __init__(self, method, params=None):
        self.params = list(params if params is not None else method.nets.parameters())
        self.losses, self.grads = [], []

        def step(opt, loss, params=None, clip_norm=None):
            opt.zero_grad(set_to_none=True)
            loss.backward()
            self.losses.append(loss.detach().double())
            self.grads.append([None if p.grad is None else p.grad.clone() for p in self.params])
            if clip_norm:
                torch.nn.utils.clip_grad_norm_(params, clip_norm)
            opt.step()

        method.step = step


def grads_of(loss: torch.Tensor, params) -> list:
    params = list(params)
    got = torch.autograd.grad(loss, params, allow_unused=True)
    return [None if g is None else g.clone() for g in got]


def assert_grads_close(got: list, want: list, rtol=1e-4, atol=1e-6) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if w is None or g is None:
            assert (g is None or not g.any()) and (w is None or not w.any())
            continue
        torch.testing.assert_close(g.double(), w.double(), rtol=rtol, atol=atol)


def frozen(net):
    """A copy of ``net`` (same mode) to recompute the outputs the method saw."""
    return copy.deepcopy(net)


def resume_matches(tmp_path, method: str, params: dict, epochs: int = 4, crash_at: int = 3):
    """Kill a run in epoch ``crash_at`` (a checkpoint of epoch ``crash_at − 1`` remains), resume
    it and require the outputs of an uninterrupted run; returns the per-epoch table."""

    def crash(line):
        if f"epoch {crash_at}/{epochs}" in line:
            raise RuntimeError("killed")

    full, _ = run_method(tmp_path, method, epochs=epochs, params=params, out="full")
    with pytest.raises(RuntimeError, match="killed"):
        run_method(tmp_path, method, epochs=epochs, params=params, out="resumed", log=crash)
    lines = []
    resumed, out = run_method(
        tmp_path, method, epochs=epochs, params=params, out="resumed", log=lines.append
    )
    assert any(f"after epoch {crash_at - 1}/{epochs}" in x for x in lines), lines
    drop = lambda m: {k: v for k, v in m.items() if k != "provenance"}
    assert drop(resumed) == drop(full)
    curve = pd.read_csv(out / "per_epoch.csv")
    pd.testing.assert_frame_equal(curve, pd.read_csv(tmp_path / "full" / "per_epoch.csv"))
    return curve


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
