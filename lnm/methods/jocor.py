"""JoCoR (Wei et al., CVPR 2020): joint training with co-regularisation, one optimiser for both.

Per sample ℓ = (1 − λ)(CE¹ + CE²) + λ(KL(p¹‖p²) + KL(p²‖p¹)); the ⌊(1 − τ_e)·B⌋ samples with
the smallest ℓ are kept and the mean of ℓ over them is minimised by ONE optimiser over both nets
(hongxin001/JoCoR ``algorithm/loss.py::loss_jocor``). The diagnostic ``selected`` is that joint
selection.

LNMBench bug fixed (``docs/deviations.md``): the CE terms are per sample (LNMBench's
``reduce='none'`` returned the batch-mean CE, so it ranked samples by the KL term alone and
applied CE to the whole batch), as in the original JoCoR (``reduce=False``); as there, neither KL
term is detached.
If ⌊(1 − τ_e)·B⌋ = 0 there is no update (the original took the mean of an empty set).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..train.optim import make_optimizer
from ._selection import (
    Selection,
    SmallLossMethod,
    masked_mean,
    num_keep,
    per_sample_ce,
    small_loss_mask,
)


def jocor_loss(
    z0: torch.Tensor, z1: torch.Tensor, y: torch.Tensor, co_lambda: float
) -> torch.Tensor:
    """Per-sample joint loss (B,)."""
    lp0, lp1 = F.log_softmax(z0, 1), F.log_softmax(z1, 1)
    sym_kl = ((lp0.exp() - lp1.exp()) * (lp0 - lp1)).sum(1)  # KL(p¹‖p²) + KL(p²‖p¹)
    return (1 - co_lambda) * (per_sample_ce(z0, y) + per_sample_ce(z1, y)) + co_lambda * sym_kl


def jocor_select(z0, z1, y, tau: float, co_lambda: float) -> Selection:
    joint = jocor_loss(z0, z1, y, co_lambda)
    keep = num_keep(len(y), tau)
    if keep == 0:
        return Selection(None, masks={"selected": torch.zeros_like(y, dtype=torch.bool)})
    kept = small_loss_mask(joint, keep)
    loss = masked_mean(joint, kept, keep)
    return Selection(loss, (loss,), {"selected": kept})


class JoCoR(SmallLossMethod):
    name = "jocor"
    # reference values: co_lambda 0.1 (JoCoR default, no per-dataset value), num_gradual 10,
    # exponent 1, forget_rate = noise rate
    order = 8
    relative_cost = 1.5
    params = {
        **SmallLossMethod.params,
        "co_lambda": {"default": 0.1, "type": "number", "minimum": 0, "maximum": 1},
    }

    def build_optimizers(self):
        return [make_optimizer(self.spec.optimizer, self.nets.parameters())]

    def select(self, epoch, tau, z0, z1, y):
        return jocor_select(z0, z1, y, tau, float(self.hp["co_lambda"]))
