"""VolMinNet (Li et al., ICML 2021); deviations from the originals: ``docs/deviations.md``.

A learnable transition matrix ``T = rownorm(I + sigmoid(W) ⊙ (1 − I))`` (W initialised to −2) is
trained jointly with the network on

    L = NLL(log(softmax(z) @ T), ỹ) + λ · log|det T|        (λ = 1e-4)

i.e. the forward-corrected noisy posterior is fitted to the noisy labels while the volume of
the simplex spanned by T's rows is minimised. T has its own SGD optimiser (lr 0.01, momentum
0.9, no weight decay; reference values) whose learning rate follows the run's schedule, as the
reference stepped a MultiStep scheduler for both optimisers.

Fix (``docs/deviations.md``): LNMBench multiplied the raw *logits* by T and applied softmax-CE;
here, as in the paper and the official code, T multiplies the softmax probabilities. Orientation:
``T[i, j] = P(ỹ = j | y = i)``; the estimate ``T_hat`` is reported after every epoch. The
network alone (the clean posterior) is evaluated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..train.optim import apply_schedule
from ._transition import SigmoidTransition, noisy_posterior
from .base import Method


def volmin_loss(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor, lam: float) -> torch.Tensor:
    """NLL of the forward-corrected posterior ``softmax(z) @ T`` plus ``λ·log|det T|``."""
    noisy = noisy_posterior(torch.softmax(logits, 1), t)
    return F.nll_loss(torch.log(noisy.clamp_min(1e-12)), y) + lam * torch.linalg.slogdet(t)[1]


class VolMinNet(Method):
    name = "volminnet"
    order = 2
    reports = ("T_hat",)
    relative_cost = 0.9
    params = {
        "lam": {
            "default": 0.0001,
            "type": "number",
            "minimum": 0,
            "description": "weight of the log-volume of T",
        },
        "t_init": {
            "default": -2.0,
            "type": "number",
            "description": "initial off-diagonal logit of T",
        },
        "t_lr": {"default": 0.01, "type": "number", "exclusiveMinimum": 0},
        "t_momentum": {"default": 0.9, "type": "number", "minimum": 0, "maximum": 1},
        "t_weight_decay": {"default": 0.0, "type": "number", "minimum": 0},
    }

    def build_optimizers(self):
        opts = super().build_optimizers()
        self.transition = SigmoidTransition(self.num_classes, self.hp["t_init"]).to(self.device)
        opts.append(
            torch.optim.SGD(
                self.transition.parameters(),
                lr=self.hp["t_lr"],
                momentum=self.hp["t_momentum"],
                weight_decay=self.hp["t_weight_decay"],
            )
        )
        return opts

    def start_epoch(self, epoch):
        net_opt, t_opt = self.optimizers
        for opt, lr in ((net_opt, self.spec.optimizer["lr"]), (t_opt, self.hp["t_lr"])):
            apply_schedule(opt, lr, self.spec.schedule, epoch, self.spec.epochs)

    def train_epoch(self, epoch, batches):
        net, (net_opt, t_opt) = self.nets[0], self.optimizers
        net.train()
        meter = self.loss_meter()
        for b in batches:
            loss = volmin_loss(self.forward(net, b.x), b.y, self.transition(), self.hp["lam"])
            net_opt.zero_grad(set_to_none=True)
            t_opt.zero_grad(set_to_none=True)
            loss.backward()
            net_opt.step()
            t_opt.step()
            meter.add(loss, len(b))
        with torch.no_grad():
            t_hat = self.transition().cpu().numpy()
        return {"train_loss": meter.mean(), "T_hat": t_hat}

    def extra_state(self):
        return {"w": self.transition.w.detach().clone()}

    def load_extra_state(self, state):
        with torch.no_grad():
            self.transition.w.copy_(state["w"])
