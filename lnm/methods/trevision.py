"""T-Revision (Xia et al., NeurIPS 2019); official code: xiaoboxia/T-Revision (``main.py``).

Three stages share the run's ``spec.epochs`` (reference: 5 + 50 + 50 epochs):

1. **estimation** (``estimation_epochs``): plain cross-entropy on the noisy labels, trained by
   the stage's own plain SGD as in the official code (``optimizer_es = SGD(lr=0.01,
   weight_decay=1e-4)``: no momentum, constant learning rate; ``estimation_optimizer: "run"``
   uses the run's optimiser and schedule instead). At the end of the last estimation epoch the
   network's softmax on every (unaugmented) training image is an estimate of the noisy class
   posterior, and T̂ is built from it with the anchor-point estimator
   (:func:`~._transition.anchor_transition`). Methods never see validation labels, so instead of
   the reference's "best noisy-val epoch" the *last* estimation epoch is used (the paper's
   estimation stage is a short warm-up that stops before memorisation; the lowest training CE on
   the noisy labels would almost always pick the last epoch too).
2. **reweighting** (the run's optimiser and schedule): importance-reweighted CE,
   ``L = mean_i β_i · CE(z_i, ỹ_i)`` with ``β_i = p(ỹ_i|x_i) / (p(x_i) @ T̂)[ỹ_i]`` (the clean
   over the noisy posterior), β a constant (the official ``reweight_loss`` wraps it in a fresh
   ``Variable``, which detaches it).
3. **revision** (``revision_epochs``; default: half of what is left after estimation, as in
   5 + 50 + 50): the same loss with ``T = T̂ + ΔT``; the slack ΔT (C x C, zero at the start)
   is learned through β. As in the official ``reweighting_revision_loss``, β is *not* detached
   there: the network receives the gradient of ``β_i · CE_i`` through β as well as through the
   CE (``revision_beta_grad: false``: β from the detached softmax, so only ΔT learns through
   it). As in the official code, the network and ΔT are fine-tuned together by one Adam
   optimiser (lr 5e-7, weight decay 1e-4). Every sample of a batch sees the same T̂ + ΔT
   (``revision_delta: once``). The official ``reweighting_revision_loss`` (and LNMBench's copy)
   rebinds ``T = T + correction`` inside its per-sample loop, so sample k of a batch (k = 0, 1,
   …) sees T̂ + (k + 1)·ΔT: the revision accumulates over the batch, and the result depends on
   the batch size and the order of the samples. The paper's loss, the printed estimate
   ``T + correction`` and the authors' own vectorised ``reweighting_revision_loss_v2`` all add ΔT
   once, so the loop is a bug, fixed in both protocols; ``revision_delta: per_sample``
   restores it.

Fixes (``docs/deviations.md``): T̂ is row-normalised (the official code divided columns) with
every column's percentile taken on an unmodified copy; ΔT is added once per batch (the official
code and LNMBench re-add it for every sample, T̂ + (k + 1)·ΔT); there is no checkpoint
reload between stages (the reference reloaded the "best" reweighting epoch, off by one in
LNMBench): revision continues from the current weights.

Transition-matrix orientation: ``T[i, j] = P(ỹ = j | y = i)``. ``T_hat`` (T̂, then T̂ + ΔT clamped
at zero and row-normalised) is reported for every epoch from the end of estimation on.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..train.optim import apply_schedule, make_optimizer
from ._transition import anchor_transition, importance_weights, row_normalize
from .base import Method


def reweighted_ce(
    logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor, beta_grad: bool = False
) -> torch.Tensor:
    """``mean_i β_i · CE(z_i, ỹ_i)``. With ``beta_grad`` false β uses the detached softmax, so
    only ``t`` (if it requires grad) gets a gradient through it (the official ``reweight_loss``);
    with ``beta_grad`` true the logits get one too (the official ``reweighting_revision_loss``).
    ``t``: one (C, C) matrix, or one per sample (B, C, C)."""
    p = torch.softmax(logits if beta_grad else logits.detach(), 1)
    beta = importance_weights(p, y, t)
    return (beta * F.cross_entropy(logits, y, reduction="none")).mean()


def stage_lengths(epochs: int, estimation: int, revision: int | None) -> tuple[int, int, int]:
    """(estimation, reweighting, revision) epochs within ``epochs``; estimation gets at least
    one epoch and, when the budget allows, the two later stages at least one each."""
    est = max(1, min(int(estimation), epochs - 2)) if epochs >= 3 else min(1, epochs)
    rest = epochs - est
    rev = rest // 2 if revision is None else min(int(revision), rest)
    return est, rest - rev, rev


def per_sample_revision(t_hat: torch.Tensor, delta: torch.Tensor, batch: int) -> torch.Tensor:
    """The official per-sample matrices of the revision loss, (B, C, C): sample k of the batch
    sees T̂ + (k + 1)·ΔT (``T = T + correction`` inside the per-sample loop)."""
    k = torch.arange(1, batch + 1, device=delta.device, dtype=delta.dtype)
    return t_hat + k.view(-1, 1, 1) * delta


class TRevision(Method):
    name = "trevision"
    order = 1
    phases = ({"name": "estimation", "epochs": "estimation_epochs"}, {"name": "reweighting"},
              {"name": "revision", "epochs": "revision_epochs"})  # fmt: skip
    reports = ("T_hat",)
    relative_cost = 0.9
    params = {
        "estimation_epochs": {
            "default": 5,
            "type": "integer",
            "minimum": 1,
            "description": "reference 5",
        },
        "revision_epochs": {
            "default": None,
            "type": ["integer", "null"],
            "minimum": 1,
            "description": "null: half of the epochs after estimation (reference 50/100)",
        },
        "anchor_percentile": {
            "default": 97.0,
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "description": "anchors: largest p(i|x) below this percentile of column i",
        },
        "revision_lr": {
            "default": 5e-07,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "reference Adam lr of the revision stage",
        },
        "revision_weight_decay": {"default": 0.0001, "type": "number", "minimum": 0},
        "revision_beta_grad": {
            "default": True,
            "type": "boolean",
            "description": "revision stage: the network also gets the gradient through beta (official reweighting_revision_loss); false: beta from the detached softmax",
        },
        "revision_delta": {
            "default": "once",
            "enum": ["once", "per_sample"],
            "description": "revision stage: once = every sample sees T_hat + Delta_T; per_sample = sample k of a batch sees T_hat + (k+1) Delta_T (the official loop's accumulation bug)",
        },
        "estimation_optimizer": {
            "default": "sgd",
            "enum": ["sgd", "run"],
            "description": "estimation stage: sgd = its own plain SGD (official optimizer_es: no momentum, constant lr); run = the run's optimiser and schedule",
        },
        "estimation_lr": {
            "default": 0.01,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "lr of the estimation SGD (official --lr 0.01)",
        },
        "estimation_weight_decay": {
            "default": 0.0001,
            "type": "number",
            "minimum": 0,
            "description": "weight decay of the estimation SGD (official --weight_decay 1e-4)",
        },
    }

    def build_optimizers(self):
        net = self.nets[0]
        self.delta = nn.Parameter(
            torch.zeros(self.num_classes, self.num_classes, device=self.device)
        )
        self.t_hat: torch.Tensor | None = None
        revision = torch.optim.Adam(
            list(net.parameters()) + [self.delta],
            lr=self.hp["revision_lr"],
            weight_decay=self.hp["revision_weight_decay"],
        )
        estimation = torch.optim.SGD(
            net.parameters(),
            lr=self.hp["estimation_lr"],
            weight_decay=self.hp["estimation_weight_decay"],
        )
        return [make_optimizer(self.spec.optimizer, net.parameters()), revision, estimation]

    def stage_optimizer(self, stage: int) -> torch.optim.Optimizer:
        """The optimiser of ``stage`` (0 estimation, 1 reweighting, 2 revision)."""
        if stage == 2:
            return self.optimizers[1]
        if stage == 0:
            kind = self.hp["estimation_optimizer"]
            if kind not in ("sgd", "run"):
                raise ValueError(f"trevision: estimation_optimizer {kind!r}; allowed: sgd, run")
            if kind == "sgd":
                return self.optimizers[2]
        return self.optimizers[0]

    def stages(self) -> tuple[int, int, int]:
        return stage_lengths(
            self.spec.epochs, self.hp["estimation_epochs"], self.hp["revision_epochs"]
        )

    def start_epoch(self, epoch):
        # the configured schedule drives the run's optimiser; the estimation SGD and the
        # revision Adam keep their learning rates (as in the official code)
        apply_schedule(
            self.optimizers[0],
            self.spec.optimizer["lr"],
            self.spec.schedule,
            epoch,
            self.spec.epochs,
        )

    def current_t(self) -> torch.Tensor:
        """The transition matrix in use: T̂ + ΔT (ΔT is zero before revision)."""
        return self.t_hat + self.delta

    def revision_t(self, batch: int) -> torch.Tensor:
        """The matrix (or, ``revision_delta: per_sample``, matrices) of a revision batch."""
        kind = self.hp["revision_delta"]
        if kind == "per_sample":
            return per_sample_revision(self.t_hat, self.delta, batch)
        if kind != "once":
            raise ValueError(f"trevision: revision_delta {kind!r}; allowed: once, per_sample")
        return self.current_t()

    def reported_t(self) -> torch.Tensor:
        return row_normalize(self.current_t().detach().clamp_min(0))

    @torch.no_grad()
    def train_probs(self) -> torch.Tensor:
        net = self.nets[0]
        net.eval()
        probs = torch.cat(
            [torch.softmax(self.forward(net, x), 1) for x in self.data.eval_batches("train")]
        )
        net.train()
        return probs

    def train_epoch(self, epoch, batches):
        est, reweight, _ = self.stages()
        stage = 0 if epoch < est else 1 if epoch < est + reweight else 2
        net = self.nets[0]
        opt = self.stage_optimizer(stage)
        net.train()
        meter = self.loss_meter()
        for b in batches:
            logits = self.forward(net, b.x)
            if stage == 0:
                loss = F.cross_entropy(logits, b.y)
            elif stage == 1:  # T̂ is constant, β too
                loss = reweighted_ce(logits, b.y, self.t_hat)
            else:  # ΔT (and, as in the original, the network) get gradient through β
                loss = reweighted_ce(
                    logits, b.y, self.revision_t(len(b)), bool(self.hp["revision_beta_grad"])
                )
            self.step(opt, loss)
            meter.add(loss, len(b))
        if stage == 0 and epoch == est - 1:
            self.t_hat = anchor_transition(self.train_probs(), self.hp["anchor_percentile"])
        out = {"train_loss": meter.mean(), "stage": stage}
        if self.t_hat is not None:
            out["T_hat"] = self.reported_t().cpu().numpy()
        return out

    def extra_state(self):
        return {
            "t_hat": None if self.t_hat is None else self.t_hat.clone(),
            "delta": self.delta.detach().clone(),
        }

    def load_extra_state(self, state):
        t_hat = state["t_hat"]
        self.t_hat = None if t_hat is None else t_hat.to(self.device)
        with torch.no_grad():
            self.delta.copy_(state["delta"])
