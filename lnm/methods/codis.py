"""CoDis (Xia et al., ICCV 2023): small-loss selection that prefers high-discrepancy samples.

Per sample and net k, the score is ℓ^k = CE(z^k, ỹ) − λ·JS(p¹, p²), with the Jensen-Shannon
divergence JS = ½KL(p¹‖m) + ½KL(p²‖m), m = ½(p¹ + p²) (computed in log space, no clamping). Each
net keeps its ⌊(1 − τ_e)·B⌋ smallest scores; net 1 is trained on the mean of ℓ¹ over the set
net 2 kept and vice versa (reference-protocol §4.8). The JS term is not detached: −λ·JS reaches
each net through its own prediction (pushing it away from its peer, which keeps the two diverse).
As in the official code (one backward and ``zero_grad`` per optimiser), each net gets the
gradient of its own loss only: in net k's loss the peer's probabilities enter as constants, which
gives the same gradients with one backward pass. With identical networks JS = 0 and CoDis is
Co-teaching.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._selection import SmallLossMethod, cross_small_loss, per_sample_ce


def js_divergence(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Per-sample JS(softmax(z0), softmax(z1)) (natural log)."""
    lp0, lp1 = F.log_softmax(z0, 1), F.log_softmax(z1, 1)
    lm = torch.logaddexp(lp0, lp1) - math.log(2.0)
    return 0.5 * ((lp0.exp() * (lp0 - lm)).sum(1) + (lp1.exp() * (lp1 - lm)).sum(1))


def codis_scores(z0, z1, y, co_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(ℓ¹, ℓ²): the values are CE − λ·JS; ℓ^k carries gradient to z^k only."""
    l0 = per_sample_ce(z0, y) - co_lambda * js_divergence(z0, z1.detach())
    l1 = per_sample_ce(z1, y) - co_lambda * js_divergence(z0.detach(), z1)
    return l0, l1


class CoDis(SmallLossMethod):
    name = "codis"
    # reference values: co_lambda 0.15 (CoDis/main.py --co_lam), num_gradual 10, exponent 1,
    # forget_rate = noise rate
    order = 7
    params = {
        **SmallLossMethod.params,
        "co_lambda": {"default": 0.15, "type": "number", "minimum": 0},
    }

    def select(self, epoch, tau, z0, z1, y):
        return cross_small_loss(*codis_scores(z0, z1, y, float(self.hp["co_lambda"])), tau)
