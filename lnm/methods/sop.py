"""SOP: sparse over-parameterisation (Liu, Zhu, Qu & You, ICML 2022), official code shengliu66/SOP.

Every training sample i has its own parameters ``u_i`` (one number) and ``v_i`` (C numbers),
initialised ``N(mean, std²)`` (``std`` 1e-8: ``config_cifar100.json`` ``reparam_arch``) and
trained by plain SGD (no momentum, no weight decay, no schedule) with their own learning rates
``lr_u``, ``lr_v`` beside the network's optimiser (``train.py``: ``optimizer_overparametrization``
with one parameter group each). With ``y`` the one-hot noisy label
(``model/loss.py::overparametrization_loss.forward``)::

    U = clamp(u_i²·y, 0, 1),   V = clamp(v_i²·(1 − y), 0, 1)
    p̂ = clamp(normalize_L1(clamp(softmax(z) + U − sg(V), min=ε)), ε, 1)        ε = 1e-4
    L = mean_i −Σ_c y log p̂ + Σ_{i,c} (onehot(argmax z) + U − V − y)² / B
        [+ λ_b·(−Σ_c (1/C)·log clamp(mean_i p̂, ε, 1))]                        (class balance)
        [+ λ_c·mean_i KL(sg(softmax z) ‖ softmax z')]                         (consistency)

so u learns from the cross-entropy term, v from the squared term, the network from both
(``sg``: no gradient). SOP+ adds the two bracketed terms: ``ratio_balance`` (0.1 in
``config_cifar100.json``) and ``ratio_consistency`` (0.9), the latter on a second, strongly
augmented view z' of the batch forwarded together with the first (AutoAugment's CIFAR-10 policy
+ Cutout 16 px in the official loader; here :func:`._randaugment.rand_augment`). The loss
module's defaults (both 0) give SOP. Learning rates: ``lr_u`` 1, ``lr_v`` 10 (the README's
CIFAR-100 50 % symmetric command and ``config_cifar100.json``; asymmetric noise uses 0.1 / 100).

The network is evaluated as it is (u, v only act on training labels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._persample import PerSample
from ._randaugment import rand_augment
from .base import Method

EPS = 1e-4


def sop_loss(
    logits: torch.Tensor,
    y_onehot: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    ratio_balance: float = 0.0,
    ratio_consistency: float = 0.0,
    logits2: torch.Tensor | None = None,
) -> torch.Tensor:
    """The official ``overparametrization_loss`` of one batch: ``logits`` (B, C) of the first
    view, ``u`` (B, 1) and ``v`` (B, C) the batch's rows, ``logits2`` the second view's."""
    u_sq = (u**2 * y_onehot).clamp(0, 1)
    v_sq = (v**2 * (1 - y_onehot)).clamp(0, 1)
    pred = (torch.softmax(logits, 1) + u_sq - v_sq.detach()).clamp(min=EPS)
    pred = F.normalize(pred, p=1, eps=EPS).clamp(EPS, 1.0)
    hard = F.one_hot(logits.detach().argmax(1), logits.shape[1]).to(logits.dtype)
    mse = F.mse_loss(hard + u_sq - v_sq, y_onehot, reduction="sum") / len(y_onehot)
    loss = -(y_onehot * torch.log(pred)).sum(1).mean() + mse
    if ratio_balance > 0:
        avg = pred.mean(0).clamp(EPS, 1.0)
        prior = torch.full_like(avg, 1.0 / logits.shape[1])
        loss = loss + ratio_balance * -(prior * torch.log(avg)).sum()
    if ratio_consistency > 0 and logits2 is not None:
        kl = F.kl_div(
            F.log_softmax(logits2, 1), torch.softmax(logits, 1).detach(), reduction="none"
        )
        loss = loss + ratio_consistency * kl.sum(1).mean()
    return loss


class SOP(Method):
    name = "sop"
    order = 13
    params = {
        "lr_u": {
            "default": 1.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "SGD learning rate of u (config_cifar100.json lr_u; README: 1 symmetric, 0.1 asymmetric)",
        },
        "lr_v": {
            "default": 10.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "SGD learning rate of v (config_cifar100.json lr_v; README: 10 symmetric, 100 asymmetric)",
        },
        "init_mean": {
            "default": 0.0,
            "type": "number",
            "description": "mean of the normal initialisation of u, v (config reparam_arch.mean)",
        },
        "init_std": {
            "default": 1e-8,
            "type": "number",
            "minimum": 0,
            "description": "std of the normal initialisation of u, v (config reparam_arch.std)",
        },
        "ratio_balance": {
            "default": 0.0,
            "type": "number",
            "minimum": 0,
            "description": "SOP+ class-balance weight (loss.py default 0 = SOP; config_cifar100.json 0.1)",
        },
        "ratio_consistency": {
            "default": 0.0,
            "type": "number",
            "minimum": 0,
            "description": "SOP+ consistency weight on a strong second view (loss.py default 0 = SOP; config_cifar100.json 0.9)",
        },
        "strong_ops": {
            "default": 2,
            "type": "integer",
            "minimum": 1,
            "description": "SOP+ strong view: operations per image (AutoAugment sub-policies apply 2)",
        },
        "strong_max_magnitude": {"default": 10.0, "type": "number", "exclusiveMinimum": 0},
        "strong_prob": {"default": 0.5, "type": "number", "minimum": 0, "maximum": 1},
        "cutout": {
            "default": 0.5,
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "SOP+ strong view: Cutout side as a fraction of the image side (official 16 of 32 px)",
        },
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        n, c, dev = self.data.num_train, self.num_classes, self.device
        mean, std = float(self.hp["init_mean"]), float(self.hp["init_std"])
        self.per_sample = PerSample(n, dev)
        u = self.per_sample.add("u", torch.empty(n, 1, device=dev).normal_(mean, std))
        v = self.per_sample.add("v", torch.empty(n, c, device=dev).normal_(mean, std))
        u.requires_grad_(True)
        v.requires_grad_(True)
        self.uv_optimizer = torch.optim.SGD(
            [
                {"params": [u], "lr": float(self.hp["lr_u"]), "weight_decay": 0.0},
                {"params": [v], "lr": float(self.hp["lr_v"]), "weight_decay": 0.0},
            ],
            lr=1.0,
            momentum=0.0,
            weight_decay=0.0,
        )

    def strong_view(self, b) -> torch.Tensor:
        aug = self.data.augmenter
        return rand_augment(
            b.view(),
            aug.mean,
            aug.std,
            b.gen,
            int(self.hp["strong_ops"]),
            float(self.hp["strong_max_magnitude"]),
            float(self.hp["strong_prob"]),
            float(self.hp["cutout"]),
        )

    def train_epoch(self, epoch, batches):
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        rb, rc = float(self.hp["ratio_balance"]), float(self.hp["ratio_consistency"])
        u, v = self.per_sample["u"], self.per_sample["v"]
        meter = self.loss_meter()
        for b in batches:
            y = F.one_hot(b.y, self.num_classes).float()
            if rc > 0:  # one forward of both views, as the official cat([data, data2])
                z = self.forward(net, torch.cat([b.x, self.strong_view(b)]))
                z1, z2 = z[: len(b)], z[len(b) :]
            else:
                z1, z2 = self.forward(net, b.x), None
            loss = sop_loss(z1, y, u[b.idx], v[b.idx], rb, rc, z2)
            self.uv_optimizer.zero_grad(set_to_none=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            self.uv_optimizer.step()
            opt.step()
            meter.add(loss, len(b))
        with torch.no_grad():
            y_all = F.one_hot(self.data.train_labels, self.num_classes).float()
            u_sq = (u**2 * y_all).clamp(0, 1).sum(1)
            v_sq = (v**2 * (1 - y_all)).clamp(0, 1).sum(1)
        return {
            "train_loss": meter.mean(),
            "u_sq_mean": float(u_sq.mean()),
            "v_sq_mean": float(v_sq.mean()),
        }

    def extra_state(self) -> dict:
        return {
            "per_sample": self.per_sample.state_dict(),
            "uv_optimizer": self.uv_optimizer.state_dict(),
        }

    def load_extra_state(self, state: dict) -> None:
        self.per_sample.load_state_dict(state["per_sample"])
        self.uv_optimizer.load_state_dict(state["uv_optimizer"])
