"""SCE: symmetric cross-entropy (Wang et al., ICCV 2019); deviations: ``docs/deviations.md``.

``L = α·CE(z, ỹ) + β·RCE`` with the reverse cross-entropy ``RCE = −Σ_k p_k log q_k``, where p is
the softmax clamped to [1e-7, 1] and q the one-hot noisy label clamped to [1e-4, 1]; so
``RCE = −A·Σ_{k≠ỹ} p_k = −A·(1 − p_ỹ)`` with ``A = log(1e-4)``. α = 0.1, β = 1.0 and the
gradient-norm clipping at 5.0 are the reference (and the paper's CIFAR-10) values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Method

LOG_Q_MIN = math.log(1e-4)  # A: log of the clamped zero entries of the one-hot label


def sce_loss(logits: torch.Tensor, y: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Batch mean of α·CE + β·RCE."""
    ce = F.cross_entropy(logits, y)
    p = torch.softmax(logits, 1).clamp(1e-7, 1.0)
    log_q = torch.full_like(p, LOG_Q_MIN).scatter_(1, y[:, None], 0.0)  # log clamp(onehot, 1e-4)
    rce = -(p * log_q).sum(1).mean()
    return alpha * ce + beta * rce


class SCE(Method):
    name = "sce"
    order = 3
    relative_cost = 0.8
    params = {
        "alpha": {"default": 0.1, "type": "number", "minimum": 0},
        "beta": {"default": 1.0, "type": "number", "minimum": 0},
        "grad_clip": {
            "default": 5.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "gradient-norm clip",
        },
    }

    def train_epoch(self, epoch, batches):
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        meter = self.loss_meter()
        for b in batches:
            loss = sce_loss(self.forward(net, b.x), b.y, self.hp["alpha"], self.hp["beta"])
            self.step(opt, loss, net.parameters(), clip_norm=self.hp["grad_clip"])
            meter.add(loss, len(b))
        return {"train_loss": meter.mean()}
