"""CDR: robust early-learning (Xia et al., ICLR 2021), official code xiaoboxia/CDR ``main.py``.

After the cross-entropy backward pass, the weights of convolutions and linear layers (the 4-D and
2-D parameters; BatchNorm parameters and biases are left alone) are split, jointly over all
those tensors, into *critical* ones, the top ``clip_e`` fraction by ``|w · ∂L/∂w|``, and the
rest. The non-critical weights lose their loss gradient, so the optimiser applies just its
weight decay (the regulariser, as in the official code) and momentum, pulling them to zero. The
critical weights keep their loss gradient, multiplied by ``clip_e`` as in the official
``train_one_step`` (``mask = (score >= thresh) * clip``; ``kept_scale: "clip"``, the default);
``kept_scale: "none"`` leaves it unscaled (the paper's update rule for critical parameters, our
earlier default).

``clip_e`` (LNMBench ``CDR/main.py::train``): linear from 1 (epoch 0) to ``1 − τ`` at epoch
``num_gradual − 1``, then ``1 − τ``; τ is the assumed noise rate. The official code computes
that ramp and then overwrites it with ``clip = 1 − τ`` in every epoch (a dead ``if``; LNMBench
added the ``else``): ``num_gradual: 1`` reproduces the official constant ``1 − τ``.

Departure from both (``docs/deviations.md``): every batch is forwarded once (the reference
forwarded it twice in train mode, updating the BatchNorm statistics twice).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import Method


def keep_fraction(epoch: int, forget_rate: float, num_gradual: int) -> float:
    """``clip_e``: linear from 1.0 at epoch 0 to 1 − τ at epoch num_gradual − 1, then flat."""
    if num_gradual <= 1 or epoch >= num_gradual:
        return 1.0 - forget_rate
    return float(np.linspace(1.0, 1.0 - forget_rate, num_gradual)[epoch])


def prunable(params) -> list[torch.Tensor]:
    """Conv and linear weights (4-D / 2-D), the parameters CDR ranks."""
    return [p for p in params if p.dim() in (2, 4) and p.grad is not None]


KEPT_SCALES = ("clip", "none")


def kth_largest(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th largest value of the 1-D ``x`` (``1 <= k <= len(x)``), exactly
    ``torch.kthvalue(x, len(x) - k + 1).values`` (NaN counting as the largest, as there): the
    extreme of ``torch.topk`` over the smaller side, a selection without arithmetic, so the
    same value. ``kthvalue`` runs on a single block of the GPU; ``topk`` uses all of it (CDR
    selects among every conv/linear weight, ~25 M for a ResNet-50, at each step)."""
    n = x.numel()
    if not 1 <= k <= n:
        raise ValueError(f"kth_largest: k = {k} outside 1..{n}")
    if k <= n - k + 1:
        top = torch.topk(x, k, largest=True, sorted=False).values
        nan = top.isnan()  # NaNs are the largest: the k-th largest is NaN only if all k are
        smallest = torch.where(nan, torch.full_like(top, float("inf")), top).min()
        return torch.where(nan.all(), top.max(), smallest)
    # the (n - k + 1)-th smallest: NaN (the largest) only if it is among them, as max gives
    return torch.topk(x, n - k + 1, largest=False, sorted=False).values.max()


@torch.no_grad()
def mask_noncritical_(params, keep_frac: float, scale: float = 1.0) -> None:
    """Zero, in place, the gradient of all but the top ``keep_frac`` of ``|w · grad|`` ranked
    jointly over ``params`` (ties at the threshold are kept, as in the reference), then multiply
    the kept gradients by ``scale`` (the official code: ``scale = keep_frac``)."""
    params = list(params)
    scores = [(p * p.grad).abs() for p in params]
    total = sum(s.numel() for s in scores)
    k = int(keep_frac * total)
    if k <= 0:
        for p in params:
            p.grad.zero_()
        return
    if k < total:
        thresh = kth_largest(torch.cat([s.reshape(-1) for s in scores]), k)
        # thresh <= 0: ">=" would also keep weights with score 0, so keep "> 0" instead
        # (chosen on the device: no host sync per batch)
        zero_thresh = thresh <= 0
        for p, s in zip(params, scores):
            p.grad.mul_(torch.where(zero_thresh, s > 0, s >= thresh))
    if scale != 1.0:
        for p in params:
            p.grad.mul_(scale)


class CDR(Method):
    name = "cdr"
    # forget_rate None: the cell's nominal noise rate (reference: --noise_rate)
    order = 4
    ramp = "num_gradual"
    relative_cost = 0.8
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
            "description": "clip_e ramps from 1 to 1 - tau over epochs 0..num_gradual-1 (LNMBench); 1: constant 1 - tau (what the official code runs)",
        },
        "kept_scale": {
            "default": "clip",
            "enum": ["clip", "none"],
            "description": "clip: critical weights' gradients are multiplied by clip_e (official code); none: left unscaled (paper's rule)",
        },
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tau = self.assumed_rate("forget_rate")  # recorded even if no epoch is run

    def kept_scale(self, keep: float) -> float:
        kind = self.hp["kept_scale"]
        if kind not in KEPT_SCALES:
            raise ValueError(f"cdr: kept_scale {kind!r}; allowed: {', '.join(KEPT_SCALES)}")
        return keep if kind == "clip" else 1.0

    def train_epoch(self, epoch, batches):
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        keep = keep_fraction(epoch, self.tau, self.hp["num_gradual"])
        meter = self.loss_meter()
        for b in batches:
            loss = F.cross_entropy(self.forward(net, b.x), b.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            mask_noncritical_(prunable(net.parameters()), keep, self.kept_scale(keep))
            opt.step()
            meter.add(loss, len(b))
        return {"train_loss": meter.mean(), "keep_frac": keep}
