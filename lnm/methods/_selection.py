"""Small-loss sample selection shared by the Co-teaching family (Co-teaching, Co-teaching+, CoDis,
JoCoR): the forget-rate schedule, "keep the ⌊(1 − τ_e)·n⌋ smallest", the cross update (each net
learns from what its PEER kept) and the per-epoch selection masks reported as diagnostics.

Not a method itself (the module name starts with ``_``, so discovery skips it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .base import Method


def forget_rate_schedule(tau: float, epoch: int, num_gradual: int, exponent: float = 1.0) -> float:
    """τ_e of the original Co-teaching code (``main.py``: ``rate_schedule = ones(n_epoch) * τ;
    rate_schedule[:num_gradual] = linspace(0, τ**exponent, num_gradual)``).

    A ramp from 0 at epoch 0 to ``τ**exponent`` at epoch ``num_gradual − 1`` (epochs counted from
    0), then ``τ``. With ``exponent`` 1 (every reference run) the ramp ends at τ one epoch before
    ``num_gradual``; with ``num_gradual`` 1 the first epoch drops nothing and τ applies from
    epoch 1 on.
    """
    if epoch >= num_gradual:
        return float(tau)
    return float(np.linspace(0.0, tau**exponent, num_gradual)[epoch])


#: How ⌊(1 − τ)·n⌋ is computed: ``rounded`` (ours) rounds the product to 6 decimals first, so
#: float error cannot drop a sample ((1 − 0.9)·10 = 0.999… gives 1); ``truncated`` is the
#: original codes' ``int((1 − τ)·n)`` on the float product (0.999… gives 0).
KEEP_RULES = ("rounded", "truncated")


def num_keep(n: int, tau: float, rule: str = "rounded") -> int:
    """⌊(1 − τ)·n⌋ by ``rule`` (:data:`KEEP_RULES`)."""
    if rule == "rounded":
        return max(0, math.floor(round((1.0 - tau) * n, 6)))
    if rule == "truncated":  # the official `int(remember_rate * len(loss))`
        return max(0, int((1 - tau) * n))
    raise ValueError(f"keep rule {rule!r} is not allowed; allowed: {', '.join(KEEP_RULES)}")


def small_loss_mask(
    scores: torch.Tensor, keep: int, eligible: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean mask of the ``keep`` smallest ``scores`` (among the ``eligible`` ones).

    Ties go to the earlier position (stable sort), so the choice is deterministic. ``keep`` must
    not exceed the number of eligible samples.
    """
    s = scores.detach()
    if eligible is not None:
        s = s.masked_fill(~eligible, float("inf"))
    mask = torch.zeros(s.shape, dtype=torch.bool, device=s.device)
    mask[torch.argsort(s, stable=True)[:keep]] = True
    return mask


def masked_mean(values: torch.Tensor, mask: torch.Tensor, count: int) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` (which holds ``count`` samples); others get no gradient."""
    return torch.where(mask, values, torch.zeros_like(values)).sum() / count


def per_sample_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


@dataclass
class Selection:
    """What one batch contributes: the loss to minimise (None: no update from this batch), the
    per-network losses (for reporting/tests), the diagnostic masks over the batch (key -> (B,)
    bool), and counts to sum over the epoch (reported as % of the samples seen)."""

    loss: torch.Tensor | None
    parts: tuple = ()
    masks: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    @property
    def value(self) -> torch.Tensor:
        return torch.stack([p.detach() for p in self.parts]).mean()


def cross_small_loss(
    loss0: torch.Tensor,
    loss1: torch.Tensor,
    tau: float,
    eligible: torch.Tensor | None = None,
    num_eligible: int | None = None,
    keep_rule: str = "rounded",
    divide_by_kept: bool = False,
) -> Selection:
    """Co-teaching's exchange on per-sample losses ``loss0``/``loss1`` (B,) of nets 0 and 1.

    Each net keeps the ⌊(1 − τ)·n⌋ samples with its own smallest loss (n = batch size, or the
    number of ``eligible`` samples); net 0 is trained on the mean of ``loss0`` over the set net 1
    kept, and vice versa. ``selected_net<k>`` is the set net k kept (i.e. taught its peer with).

    If ⌊(1 − τ)·n⌋ = 0 but n > 0, both nets are trained on all n samples, as the official
    ``loss_coteaching`` of Co-teaching+ (xingruiyu/coteaching_plus ``loss.py``) and CoDis's
    ``loss_ours`` do (the first Co-teaching code divided by zero there). With n = 0 there is no
    update (``loss`` None) and nothing is selected.

    ``num_eligible``: ``eligible.sum()`` if the caller already has it on the host (otherwise it
    is read here: a host sync, the only one of this function). ``keep_rule``: how the number kept
    is computed (:func:`num_keep`). ``divide_by_kept``: divide each net's mean again by the number
    kept (the official ``loss_coteaching``'s ``sum(mean CE) / num_remember``; a bug kept only as a
    switch that restores it).
    """
    if eligible is None:
        n = len(loss0)
    else:
        n = int(eligible.sum()) if num_eligible is None else int(num_eligible)
    if n == 0:
        empty = torch.zeros(len(loss0), dtype=torch.bool, device=loss0.device)
        return Selection(None, masks={"selected_net0": empty, "selected_net1": empty})
    keep = num_keep(n, tau, keep_rule) or n
    kept0 = small_loss_mask(loss0, keep, eligible)
    kept1 = small_loss_mask(loss1, keep, eligible)
    part0, part1 = masked_mean(loss0, kept1, keep), masked_mean(loss1, kept0, keep)
    if divide_by_kept:
        part0, part1 = part0 / keep, part1 / keep
    return Selection(
        part0 + part1, (part0, part1), {"selected_net0": kept0, "selected_net1": kept1}
    )


class SelectionTracker:
    """Accumulates the batches' masks into masks over all training samples (kept on device)."""

    def __init__(self, num_train: int, device: torch.device):
        self.n, self.device = num_train, device
        self.seen = torch.zeros(num_train, dtype=torch.bool, device=device)
        self.masks: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, idx: torch.Tensor, sel: Selection) -> None:
        self.seen[idx] = True  # indices are unique within an epoch
        for key, m in sel.masks.items():
            acc = self.masks.setdefault(
                key, torch.zeros(self.n, dtype=torch.bool, device=self.device)
            )
            acc[idx] |= m
        for key, c in sel.counts.items():
            self.counts[key] = self.counts.get(key, 0) + c

    def result(self) -> dict:
        seen = int(self.seen.sum())
        out = {k: m.cpu().numpy() for k, m in self.masks.items()}
        out.update({k: 100.0 * float(c) / max(seen, 1) for k, c in self.counts.items()})
        out["seen"] = self.seen.cpu().numpy()
        return out


class SmallLossMethod(Method):
    """Two networks trained on a per-batch small-loss selection (the Co-teaching family).

    Subclasses implement :meth:`select` (the per-batch losses and selection); one backward pass of
    the selection's loss, then every optimiser steps. For the cross-update methods that loss is
    the sum of the per-net losses, each depending on its own net only, so this equals stepping
    each net on its own loss.

    τ comes from ``forget_rate`` (null: the cell's nominal noise rate, recorded as such); the ramp
    is the original code's (:func:`forget_rate_schedule`: τ at epoch ``num_gradual − 1``), exactly
    as configured (short runs should set it lower; the effective τ_e is logged every epoch as
    ``forget_rate``). Deviations from the official code and LNMBench: ``docs/deviations.md``.
    """

    num_nets = 2
    #: LNMBench scores the Co-teaching family by the mean of the two networks' accuracies
    eval_view = "mean_of_accuracies"
    ramp = "num_gradual"
    reports = ("selected",)
    params = {
        "forget_rate": {
            "default": None,
            "type": ["number", "null", "string"],
            "minimum": 0,
            "exclusiveMaximum": 1,
            "pattern": "^estimated$",
            "noise_rate": True,
            "description": "fraction dropped per batch at full schedule; null: the cell's nominal noise rate (a real-world cell: its estimate, or its assumed rate under rate_source: assumed); estimated: the cell's estimated noise rate (estimation stage)",
        },
        "num_gradual": {
            "default": 10,
            "type": "integer",
            "minimum": 1,
            "description": "length of the forget-rate ramp: linspace(0, tau**exponent, num_gradual) over epochs 0..num_gradual-1, then tau (original code)",
        },
        "exponent": {
            "default": 1.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "c of the ramp's end point tau**c (original --exponent)",
        },
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tau = self.assumed_rate("forget_rate")
        if not 0.0 <= self.tau < 1.0:
            raise ValueError(f"method {self.name!r}: forget_rate must be in [0, 1), got {self.tau}")

    @property
    def num_gradual(self) -> int:
        return int(self.hp["num_gradual"])

    def forget_rate(self, epoch: int) -> float:
        return forget_rate_schedule(self.tau, epoch, self.num_gradual, float(self.hp["exponent"]))

    def select(
        self, epoch: int, tau: float, z0: torch.Tensor, z1: torch.Tensor, y: torch.Tensor
    ) -> Selection:
        raise NotImplementedError

    def train_epoch(self, epoch, batches):
        tau = self.forget_rate(epoch)
        self.nets.train()
        track = SelectionTracker(self.data.num_train, self.device)
        total, n = torch.zeros((), device=self.device), 0
        for b in batches:
            z0, z1 = (self.forward(net, b.x) for net in self.nets)
            sel = self.select(epoch, tau, z0, z1, b.y)
            track.add(b.idx, sel)
            if sel.loss is None:
                continue
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            sel.loss.backward()
            for opt in self.optimizers:
                opt.step()
            total, n = total + sel.value * len(b), n + len(b)
        return {
            "train_loss": float(total) / n if n else float("nan"),
            "forget_rate": tau,
            **track.result(),
        }
