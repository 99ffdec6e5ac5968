"""ELR: early-learning regularisation (Liu et al., NeurIPS 2020), official code shengliu66/ELR.

ELR (``ELR/model/loss.py::elr_loss``): every training sample keeps a target ``t_i`` (zeros at
the start), an exponential moving average of the network's predictions. Per batch, with
``p = clamp(softmax(z), 1e-4, 1 − 1e-4)``::

    t_i ← β·t_i + (1 − β)·p_i/Σ_c p_ic            (p detached; before the loss)
    L = CE(z, ỹ) + λ·mean_i log(1 − ⟨t_i, p_i⟩)

(β 0.7, λ 3: ``ELR/config_cifar10.json``; CIFAR-100 uses β 0.9, λ 7.)

ELR+ (``plus: true``; ``ELR_plus/``): two networks, each with a weight-averaged copy
(``update_ema_variables``: ``θ̄ ← α_s·θ̄ + (1 − α_s)·θ`` after every step, parameters only, with
``α_s = sigmoid_rampup(s + 1, ema_step)·ema_alpha`` at global step s, or ``min(1 − 1/(s + 1),
ema_alpha)`` with ``ema_update: false``). The networks train one after the other over their
own shuffles of the data; each batch is mixed up (``λ_mix ~ Beta(α, α)``, ``max(λ, 1 − λ)``)
and the target of net k is the EMA of the *peer's* averaged network on the unmixed batch
(``elr_plus_loss.update_hist``), mixed like the labels::

    t_i ← β·t_i + (1 − β)·softmax(θ̄_peer(x_i))          (not clamped)
    q = λ_mix·t + (1 − λ_mix)·t[perm]
    L = softCE(z_mix, mixed one-hot) + sigmoid_rampup(s, coef_step)·λ·mean log(1 − ⟨q, p⟩)

The averaged networks run in train mode (their batch statistics), as in the official code;
``warmup_epochs`` epochs of plain CE come first (the target EMA then follows each network's
own predictions). Test predictions: the two trained networks (not the averages), whose
logits the official ``_test_epoch`` averages (``eval_view: logit_sum``). Defaults:
``ELR_plus/config_cifar10.json`` (α 1, ema_alpha 0.997, ema_step 40000, coef_step 0, β 0.7,
λ 3); step counts are optimiser steps (40000 ≈ 100 CIFAR epochs at batch 128).

Departures (``docs/deviations.md``): the official ELR+ reshapes the labels of 100-class
problems by the target (``y·q``, only when ``num_classes == 100``): not implemented (no 100-class
set here).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._mixup import mixup, soft_cross_entropy
from ._persample import PerSample
from .base import Method

#: batch-generator stream of the second network's ELR+ epoch (the trainer's shuffle is 0)
_NET1_STREAM = 7
CLAMP = 1e-4


def sigmoid_rampup(current: float, length: float) -> float:
    """The official ``utils.sigmoid_rampup``: ``exp(−5·(1 − clip(current, 0, L)/L)²)``, 1 if L = 0."""
    if length == 0:
        return 1.0
    current = float(np.clip(current, 0.0, length))
    phase = 1.0 - current / length
    return float(np.exp(-5.0 * phase * phase))


def clamped_softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, 1).clamp(CLAMP, 1.0 - CLAMP)


def elr_target_update(target: torch.Tensor, logits: torch.Tensor, beta: float) -> torch.Tensor:
    """ELR's new targets of a batch: ``β·t + (1 − β)·p̂/Σp̂`` with p̂ the clamped softmax."""
    p = clamped_softmax(logits.detach())
    return beta * target + (1.0 - beta) * p / p.sum(1, keepdim=True)


def elr_regulariser(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``mean_i log(1 − ⟨t_i, p_i⟩)`` with p the clamped softmax (gradient through p only)."""
    return torch.log(1.0 - (target * clamped_softmax(logits)).sum(1)).mean()


def ema_alpha_at(step: int, ema_alpha: float, ema_step: float, ramp: bool) -> float:
    """α of ``update_ema_variables`` after global step ``step`` (the official passes
    ``global_step + local_step`` and ramps with ``step + 1``)."""
    if ramp:
        return sigmoid_rampup(step + 1, ema_step) * ema_alpha
    return min(1.0 - 1.0 / (step + 1), ema_alpha)


@torch.no_grad()
def ema_update_(ema: nn.Module, net: nn.Module, alpha: float) -> None:
    """``θ̄ ← α·θ̄ + (1 − α)·θ`` over parameters (buffers are the averaged net's own)."""
    for e, p in zip(ema.parameters(), net.parameters(), strict=True):
        e.mul_(alpha).add_(p.detach(), alpha=1.0 - alpha)


class ELR(Method):
    name = "elr"
    order = 12
    #: ELR+: the official test averages the two networks' logits (one network: its own)
    eval_view = "logit_sum"
    # one phase (the default) for the cost model: ELR+'s optional warm-up (0 epochs by default)
    # is cheaper than its main epochs and does not exist for ELR
    params = {
        "beta": {
            "default": 0.7,
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "momentum of the target EMA (ELR/config_cifar10.json train_loss.beta; CIFAR-100: 0.9)",
        },
        "lambda": {
            "default": 3.0,
            "type": "number",
            "minimum": 0,
            "description": "weight of the regulariser (ELR/config_cifar10.json train_loss.lambda; CIFAR-100: 7)",
        },
        "plus": {
            "default": False,
            "type": "boolean",
            "description": "ELR+: two networks, weight averaging, mixup, targets from the peer's average (ELR_plus/)",
        },
        "mixup_alpha": {
            "default": 1.0,
            "type": "number",
            "minimum": 0,
            "description": "ELR+: Beta(alpha, alpha) of mixup; 0: no mixup (ELR_plus/config_cifar10.json mixup_alpha)",
        },
        "ema_alpha": {
            "default": 0.997,
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "ELR+: weight-averaging momentum (config ema_alpha)",
        },
        "ema_step": {
            "default": 40000,
            "type": "number",
            "minimum": 0,
            "description": "ELR+: optimiser steps of the sigmoid ramp of the averaging momentum (config ema_step)",
        },
        "ema_update": {
            "default": True,
            "type": "boolean",
            "description": "ELR+: ramp the averaging momentum (config ema_update); false: min(1 - 1/(step+1), ema_alpha)",
        },
        "coef_step": {
            "default": 0,
            "type": "number",
            "minimum": 0,
            "description": "ELR+: optimiser steps of the sigmoid ramp of lambda (config coef_step: 0 CIFAR-10, 40000 CIFAR-100)",
        },
        "warmup_epochs": {
            "default": 0,
            "type": "integer",
            "minimum": 0,
            "description": "ELR+: epochs of plain CE first (config trainer.warmup: 0)",
        },
    }

    def __init__(self, spec, model_factory, num_classes, device, data):
        self.plus = bool(spec.method_params.get("plus", self.defaults["plus"]))
        self.num_nets = 2 if self.plus else 1
        super().__init__(spec, model_factory, num_classes, device, data)
        if not self.plus and int(self.hp["warmup_epochs"]):
            raise ValueError(
                "method 'elr': warmup_epochs applies to ELR+ only (plus: true); the official "
                "ELR trainer has no warm-up"
            )
        n, c = self.data.num_train, self.num_classes
        self.per_sample = PerSample(n, device)
        for k in range(self.num_nets):
            self.per_sample.add(f"target{k}", torch.zeros(n, c))
        self.global_step = 0
        self.ema_nets = nn.ModuleList()
        if self.plus:  # independently initialised, as the official model_ema1/2
            self.ema_nets = nn.ModuleList(model_factory() for _ in range(2)).to(device)
            if device.type == "cuda":
                self.ema_nets = self.ema_nets.to(memory_format=torch.channels_last)
            for p in self.ema_nets.parameters():
                p.requires_grad_(False)

    # ------------------------------------------------------------------ ELR
    def train_epoch(self, epoch, batches):
        if not self.plus:
            return self._elr_epoch(batches)
        if epoch < int(self.hp["warmup_epochs"]):
            return self._warmup_epoch(epoch, batches)
        return self._plus_epoch(epoch, batches)

    def _elr_epoch(self, batches) -> dict:
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        beta, lam = float(self.hp["beta"]), float(self.hp["lambda"])
        target = self.per_sample["target0"]
        meter = self.loss_meter()
        for b in batches:
            logits = self.forward(net, b.x)
            target[b.idx] = elr_target_update(target[b.idx], logits, beta)
            loss = F.cross_entropy(logits, b.y) + lam * elr_regulariser(target[b.idx], logits)
            self.step(opt, loss)
            meter.add(loss, len(b))
        return {"train_loss": meter.mean()}

    # ------------------------------------------------------------------ ELR+
    def _net_batches(self, k: int, epoch: int, batches):
        """Net 0 trains on the trainer's batches, net 1 on its own shuffle (data_loader2)."""
        if k == 0:
            return batches
        return self.data.epoch_batches(self.spec.seed, epoch, _NET1_STREAM)

    def _warmup_epoch(self, epoch, batches) -> dict:
        beta = float(self.hp["beta"])
        meter = self.loss_meter()
        for k, (net, opt) in enumerate(zip(self.nets, self.optimizers)):
            net.train()
            target = self.per_sample[f"target{k}"]
            for b in self._net_batches(k, epoch, batches):
                logits = self.forward(net, b.x)
                p = torch.softmax(logits.detach(), 1)  # update_hist: own output, unclamped
                target[b.idx] = beta * target[b.idx] + (1.0 - beta) * p / p.sum(1, keepdim=True)
                loss = F.cross_entropy(logits, b.y)
                self.step(opt, loss)
                meter.add(loss, len(b))
        return {"train_loss": meter.mean()}

    def _plus_epoch(self, epoch, batches) -> dict:
        hp = self.hp
        beta, lam, alpha = float(hp["beta"]), float(hp["lambda"]), float(hp["mixup_alpha"])
        meter = self.loss_meter()
        steps = []
        for k, (net, opt) in enumerate(zip(self.nets, self.optimizers)):
            own_ema, peer_ema = self.ema_nets[k], self.ema_nets[1 - k]
            net.train()
            own_ema.train()
            peer_ema.train()  # the official averaged networks stay in train mode
            target = self.per_sample[f"target{k}"]
            local = 0
            for b in self._net_batches(k, epoch, batches):
                onehot = F.one_hot(b.y, self.num_classes).float()
                mixed_x, mixed_t, lam_mix, perm = mixup(b.x, onehot, alpha, b.gen)
                logits = self.forward(net, mixed_x)
                with torch.no_grad():
                    p_peer = torch.softmax(self.forward(peer_ema, b.x), 1)
                    target[b.idx] = beta * target[b.idx] + (1.0 - beta) * p_peer / p_peer.sum(
                        1, keepdim=True
                    )
                    rows = target[b.idx]
                    q = lam_mix * rows + (1.0 - lam_mix) * rows[perm]
                local += 1
                step = self.global_step + local
                coef = sigmoid_rampup(step, float(hp["coef_step"])) * lam
                loss = soft_cross_entropy(logits, mixed_t) + coef * elr_regulariser(q, logits)
                self.step(opt, loss)
                ema_update_(own_ema, net, self._ema_alpha(step))
                meter.add(loss, len(b))
            steps.append(local)
        self.global_step += steps[0]  # the official adds net 1's local steps
        return {"train_loss": meter.mean(), "global_step": self.global_step}

    def _ema_alpha(self, step: int) -> float:
        hp = self.hp
        return ema_alpha_at(
            step, float(hp["ema_alpha"]), float(hp["ema_step"]), bool(hp["ema_update"])
        )

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {
            "per_sample": self.per_sample.state_dict(),
            "global_step": self.global_step,
            "ema_nets": self.ema_nets.state_dict(),
        }

    def load_extra_state(self, state: dict) -> None:
        self.per_sample.load_state_dict(state["per_sample"])
        self.global_step = int(state["global_step"])
        self.ema_nets.load_state_dict(state["ema_nets"])
