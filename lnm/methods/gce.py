"""GCE: generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018), and its truncated variant.

``L_q(p_ỹ) = (1 − p_ỹ^q)/q`` (q → 0: CE, q = 1: MAE; q = 0.7 in the paper's experiments).
The paper has no official code; this follows the paper and the widely used re-implementation
AlanChou/Truncated-Loss (``TruncatedLoss.py``, ``main.py``).

Truncated variant (``truncated: true``): ``L_trunc = L_q(k)`` where ``p_ỹ ≤ k``, else
``L_q(p_ỹ)``, optimised by alternating search over per-sample weights ``w_i ∈ {0, 1}``
(paper Algorithm 1): the batch loss is ``mean_i w_i·(L_q(p_ỹi) − L_q(k))`` over the whole batch
(``TruncatedLoss.forward``), and at the start of every epoch e (0-based) with
``e + 1 ≥ start_prune`` and ``(e + 1) mod prune_every = 0`` the weights of every training sample
are recomputed from scratch as ``w_i = [L_q(p_ỹi) < L_q(k)] = [p_ỹi > k]``
(``TruncatedLoss.update_weight``; ``main.py``: ``(epoch+1) >= args.start_prune and (epoch+1) %
10 == 0``): a pruned sample comes back when its confidence rises above k again. Before the first
pruning every weight is 1 (same gradient as GCE). Defaults: q 0.7, k 0.5 (paper §4 and AlanChou);
the official pruning from epoch 40 every 10 epochs of 120 is scaled to the grid's 50 epochs
(17 and 4; ``gce.start_prune: 40``, ``gce.prune_every: 10`` restore it).

Departures (``docs/deviations.md``): the weights come from the *current* network (eval mode, the
unaugmented training images), as in the paper's alternating search; AlanChou reloads the
checkpoint with the best *test* accuracy (test labels select the weights) and feeds the
augmenting training loader. ``p_ỹ`` is clamped at 1e-7 (the shared :func:`._losses.gce`).

Diagnostics (truncated, once pruned): ``selected`` = the samples with w = 1 (their clean ratio
and coverage), ``pruned_frac`` (percent of samples with w = 0).
"""

from __future__ import annotations

import torch

from ._losses import gce
from ._persample import PerSample
from .base import Method


def lq(p: torch.Tensor | float, q: float):
    """``L_q(p) = (1 − p^q)/q``."""
    return (1.0 - p**q) / q


def is_prune_epoch(epoch: int, start_prune: int, prune_every: int) -> bool:
    """Whether the weights are recomputed at the start of ``epoch`` (0-based): AlanChou's
    ``(epoch+1) >= start_prune and (epoch+1) % prune_every == 0``."""
    return epoch + 1 >= start_prune and (epoch + 1) % prune_every == 0


def truncated_loss(
    logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor, q: float, k: float
) -> torch.Tensor:
    """``mean_i w_i·(L_q(p_ỹi) − L_q(k))`` over the whole batch (pruned samples count as 0)."""
    return (w * (gce(logits, y, q, reduction="none") - lq(k, q))).mean()


def prune_weights(p_y: torch.Tensor, k: float) -> torch.Tensor:
    """``w = [L_q(p_ỹ) < L_q(k)]``, i.e. ``p_ỹ > k`` (the same for every q in (0, 1])."""
    return (p_y > k).float()


class GCE(Method):
    name = "gce"
    order = 11
    reports = ("selected",)  # truncated: the samples it keeps
    params = {
        "q": {
            "default": 0.7,
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "exponent q of L_q (paper §4 and AlanChou TruncatedLoss(q=0.7))",
        },
        "truncated": {
            "default": False,
            "type": "boolean",
            "description": "the truncated L_q loss with sample pruning (paper §3.3, Algorithm 1; AlanChou TruncatedLoss)",
        },
        "k": {
            "default": 0.5,
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
            "description": "truncation threshold: samples with p_y <= k are pruned (AlanChou TruncatedLoss(k=0.5))",
        },
        "start_prune": {
            "default": 17,
            "type": "integer",
            "minimum": 1,
            "description": "first pruning at the start of 0-based epoch e with e + 1 >= start_prune; AlanChou main.py --start_prune 40 of 120 epochs, scaled to 50",
        },
        "prune_every": {
            "default": 4,
            "type": "integer",
            "minimum": 1,
            "description": "pruning when (e + 1) % prune_every == 0; AlanChou main.py: 10 of 120 epochs, scaled to 50",
        },
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.per_sample = PerSample(self.data.num_train, self.device)
        self.per_sample.add("weight", torch.ones(self.data.num_train))
        self.pruned = False  # whether any pruning has happened (then `selected` is reported)

    @torch.no_grad()
    def prune(self) -> None:
        """Recompute every sample's weight from the current network (eval mode, unaugmented)."""
        net = self.nets[0]
        net.eval()
        probs = [torch.softmax(self.forward(net, x), 1) for x in self.data.eval_batches("train")]
        p_y = torch.cat(probs).gather(1, self.data.train_labels.view(-1, 1)).squeeze(1)
        self.per_sample["weight"] = prune_weights(p_y, float(self.hp["k"]))
        self.pruned = True

    def train_epoch(self, epoch, batches):
        q, k = float(self.hp["q"]), float(self.hp["k"])
        truncated = bool(self.hp["truncated"])
        if truncated and is_prune_epoch(
            epoch, int(self.hp["start_prune"]), int(self.hp["prune_every"])
        ):
            self.prune()
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        meter = self.loss_meter()
        weight = self.per_sample["weight"]
        for b in batches:
            logits = self.forward(net, b.x)
            if truncated:
                loss = truncated_loss(logits, b.y, weight[b.idx], q, k)
            else:
                loss = gce(logits, b.y, q)
            self.step(opt, loss)
            meter.add(loss, len(b))
        diag = {"train_loss": meter.mean()}
        if truncated and self.pruned:
            kept = weight > 0
            diag["selected"] = kept.cpu().numpy()
            diag["pruned_frac"] = 100.0 * float((~kept).float().mean())
        return diag

    def extra_state(self) -> dict:
        return {"per_sample": self.per_sample.state_dict(), "pruned": self.pruned}

    def load_extra_state(self, state: dict) -> None:
        self.per_sample.load_state_dict(state["per_sample"])
        self.pruned = bool(state["pruned"])
