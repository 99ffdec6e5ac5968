"""CDR: robust early-learning (Xia et al., ICLR 2021), reference-protocol §4.5.

After the cross-entropy backward pass, the weights of convolutions and linear layers (the 4-D and
2-D parameters; BatchNorm parameters and biases are left alone) are split, jointly over all
those tensors, into *critical* ones, the top ``clip_e`` fraction by ``|w · ∂L/∂w|``, and the
rest. Critical weights take the loss gradient plus the regulariser, the others the regulariser
only (the paper's two update rules): their loss gradient is zeroed, so the optimiser applies just
its weight decay (the regulariser, as in the official code) and momentum, pulling them to zero. ``clip_e`` falls linearly from 1 (epoch 0) to ``1 − τ`` at epoch
``num_gradual − 1`` and stays there; τ is the assumed noise rate.

Departures from the reference code (§6.9), following the paper: the kept gradients are not
also multiplied by ``clip_e`` (the official code did this; the paper's update rule for critical
parameters is the plain gradient step), and every batch is forwarded once (the reference
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


@torch.no_grad()
def mask_noncritical_(params, keep_frac: float) -> None:
    """Zero, in place, the gradient of all but the top ``keep_frac`` of ``|w · grad|`` ranked
    jointly over ``params`` (ties at the threshold are kept, as in the reference)."""
    params = list(params)
    scores = [(p * p.grad).abs() for p in params]
    total = sum(s.numel() for s in scores)
    k = int(keep_frac * total)
    if k >= total:
        return
    if k <= 0:
        for p in params:
            p.grad.zero_()
        return
    thresh = torch.kthvalue(torch.cat([s.reshape(-1) for s in scores]), total - k + 1).values
    zero_thresh = bool(thresh <= 0)  # then ">=" would also keep weights with score 0
    for p, s in zip(params, scores):
        p.grad.mul_(s > 0 if zero_thresh else s >= thresh)


class CDR(Method):
    name = "cdr"
    # forget_rate None: the cell's nominal noise rate (reference: --noise_rate)
    order = 4
    params = {
        "forget_rate": {
            "default": None,
            "type": ["number", "null"],
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "fraction dropped per batch at full schedule; null: the cell's nominal noise rate",
        },
        "num_gradual": {"default": 10, "type": "integer", "minimum": 1},
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tau = self.assumed_rate("forget_rate")  # recorded even if no epoch is run

    def train_epoch(self, epoch, batches):
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        keep = keep_fraction(epoch, self.tau, self.hp["num_gradual"])
        total, n = 0.0, 0
        for b in batches:
            loss = F.cross_entropy(self.forward(net, b.x), b.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            mask_noncritical_(prunable(net.parameters()), keep)
            opt.step()
            total, n = total + loss.item() * len(b), n + len(b)
        return {"train_loss": total / max(n, 1), "keep_frac": keep}
