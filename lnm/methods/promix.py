"""ProMix (Xiao et al., IJCAI 2023), official code Justherozen/ProMix ``Train_promix.py``.

Two networks, each with a primary head and an auxiliary pseudo-label head on the same
features, trained by one optimiser (``optimizer1`` over both). After ``pretrain_ep`` warm-up
epochs of CE (weak view) on both networks, every epoch e:

- **class-wise small-loss selection (CSS)**, per network (``eval_train``): the per-sample CE of
  the unaugmented training set (eval mode); within each noisy class j the ``max(min(⌈ρ·N/C⌉,
  n_j), 1)`` samples of smallest loss are the network's base clean set, ``ρ = ρ_start + (ρ_end −
  ρ_start)·min(e/warmup_ep, 1)``;
- per batch (weak view x_w, strong view x_s), network k with class-prior estimates π_k (clean
  set) and π_k^u (the rest), both starting uniform:

  * **matched high-confidence selection (MHCS)**: also clean where the network's plain softmax
    on the noisy label exceeds τ;
  * **label guessing by agreement (LGA)** in the last ``start_expand`` epochs (e > E −
    start_expand): while the clean set holds under ``threshold``·B samples, samples whose two
    networks agree with confidence > τ join it (at most ⌊threshold·B⌋ in all, most confident
    first) with the debiased prediction as label;
  * **debiasing**: the losses use logits ``z + a·log π`` (``debias_output`` a), the pseudo-labels
    the softmax of ``z − b·log π`` (``debias_pl`` b); π ← m·π + (1 − m)·mean of the softmax over
    the batch's clean (π) / other (π^u) samples after the step (``bias_m`` m);
  * primary head: ``CE(x_w) + w·(CE(x_s) + mixup + FMix)`` on the clean set with labels ỹ (or
    the LGA labels); pseudo head: the same with its own mixup/FMix draws, plus
    ``β·(CE(x_w) + w·CE(x_s))`` on the other samples towards the sharpened (T) debiased
    prediction w.r.t. π^u; ``w = min(e/warmup_ep, 1)``, ``β = 0.1·min(e/(2·warmup_ep), 1)``
    until e ≥ 2·warmup_ep, then 0 (``debias_pl`` 0: β = 1).

Mixup: ``λ ~ Beta(4, 4)``, ``max(λ, 1 − λ)``; FMix (:mod:`._fmix`): α 1, decay power 3. Test
predictions: the mean of the two primary heads' logits (``test``: ``outputs_mean_ori``;
``eval_view: logit_sum``). Defaults: the argparse defaults and ``run.sh`` for CIFAR-10 (τ 0.99,
warm-up 10, debias 0.8/0.8); ρ 0.5 is ``run.sh``'s value for CIFAR-N, 50 % symmetric and
asymmetric noise (0.7 for 20 % symmetric; argparse's unused default ``0.2,0.6``). The official
epoch counts of its 600-epoch runs (warm-up 10, ramps 50, label guessing in the last 250) are
scaled to the grid's 50 epochs: 5 (LNMBench's DivideMix warm-up), 4, 21.

Departures (``docs/deviations.md``): a loss term over an empty set (no clean or no other sample
in the batch) is left out, and π is not updated from an empty set (the official mean of an empty
set is NaN and poisons the run); the strong view is :func:`._randaugment.rand_augment` (3
operations, always applied, then Cutout) instead of the PIL ``RandomAugment(3, 5)``; no
confidence penalty in the warm-up (the official adds one for asymmetric noise only).

Diagnostics: ``selected_net{k}`` (every sample network k trained its primary head on as clean
in the epoch), ``corrected`` (samples that joined by LGA with a label other than ỹ).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..train.optim import make_optimizer
from ._features import SplitNet, features, head
from ._fmix import fmix, fmix_loss
from ._mixup import sharpen, soft_cross_entropy
from ._randaugment import rand_augment
from .base import Method


def linear_rampup(current: float, length: float) -> float:
    """``utils.linear_rampup2``: ``current/length`` below ``length``, then 1."""
    return 1.0 if current >= length else current / length


def unreliable_weight(epoch: int, warmup_ep: int, debias_pl: float) -> float:
    """β of the pseudo head's loss on the unreliable samples: ``0.1·min(e/(2·warmup_ep), 1)``
    (1 without pseudo-label debiasing), then 0 from epoch 2·warmup_ep on if below 1."""
    beta = 0.1 * linear_rampup(epoch, 2 * warmup_ep) if debias_pl else 1.0
    return 0.0 if (epoch >= 2 * warmup_ep and beta < 1) else beta


def css_select(losses: torch.Tensor, labels: torch.Tensor, rho: float, num_classes: int):
    """Class-wise small-loss selection: boolean mask of the ``max(min(⌈ρ·N/C⌉, n_j), 1)``
    smallest losses within each noisy class j (ties: the earlier sample)."""
    n = len(losses)
    chosen = torch.zeros(n, dtype=torch.bool, device=losses.device)
    quota = n * (1.0 / num_classes) * rho
    for j in range(num_classes):
        idx = torch.nonzero(labels == j).squeeze(1)
        if len(idx) == 0:
            continue
        part = max(min(int(math.ceil(quota)), len(idx)), 1)
        order = torch.argsort(losses[idx], stable=True)
        chosen[idx[order[:part]]] = True
    return chosen


def label_guessing(
    chosen: torch.Tensor,
    score1: torch.Tensor,
    score2: torch.Tensor,
    match: torch.Tensor,
    tau: float,
    threshold: float,
) -> torch.Tensor:
    """LGA of one batch: ``chosen`` plus the agreeing samples with both confidences above τ,
    while fewer than ``threshold``·B are chosen; at most ⌊threshold·B⌋ − |chosen| join, those of
    largest mean confidence."""
    b, n_chosen = len(chosen), int(chosen.sum())
    if n_chosen / b >= threshold:
        return chosen
    cand = (score1 > tau) & (score2 > tau) & match & ~chosen
    room = int(b * threshold) - n_chosen
    if int(cand.sum()) > room:
        idx = torch.nonzero(cand).squeeze(1)
        order = torch.argsort(-(score1 + score2)[idx] / 2, stable=True)
        cand = cand.clone()
        cand[idx[order[room:]]] = False
    return chosen | cand


def debias_output(logits: torch.Tensor, prior: torch.Tensor, a: float) -> torch.Tensor:
    return logits + a * torch.log(prior)


def debias_pl(logits: torch.Tensor, prior: torch.Tensor, b: float) -> torch.Tensor:
    return torch.softmax(logits - b * torch.log(prior), 1)


def prior_update(prior: torch.Tensor, probs: torch.Tensor, m: float) -> torch.Tensor:
    """``m·π + (1 − m)·mean(probs)``; unchanged when ``probs`` is empty (official: NaN)."""
    if len(probs) == 0:
        return prior
    return m * prior + (1.0 - m) * probs.detach().mean(0)


def soft_ce_or_zero(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean soft CE; 0 over an empty set (official: NaN)."""
    if len(logits) == 0:
        return logits.new_zeros(())
    return soft_cross_entropy(logits, targets)


class ProMix(Method):
    name = "promix"
    order = 14
    num_nets = 2
    #: the official ``test`` scores the mean of the two primary heads' logits
    eval_view = "logit_sum"
    phases = ({"name": "warmup", "until": "pretrain_ep"}, {"name": "main"})
    reports = ("selected", "corrected")
    params = {
        "pretrain_ep": {
            "default": 5,
            "type": "integer",
            "minimum": 0,
            "description": "warm-up epochs of CE; argparse --pretrain_ep 10 of 600 epochs (run.sh: 10 CIFAR-10, 30 CIFAR-100); 5 of 50 as LNMBench's DivideMix (10 of 300 officially)",
        },
        "warmup_ep": {
            "default": 4,
            "type": "integer",
            "minimum": 0,
            "description": "epochs of the linear ramps of rho and w (2x: beta); argparse --warmup_ep 50 of 600 epochs, scaled to 50",
        },
        "rho_start": {
            "default": 0.5,
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "CSS selection ratio at epoch 0 (run.sh --rho_range 0.5,0.5; 0.7 at 20 % symmetric noise)",
        },
        "rho_end": {
            "default": 0.5,
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "CSS selection ratio after warmup_ep epochs (run.sh --rho_range 0.5,0.5)",
        },
        "tau": {
            "default": 0.99,
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "confidence threshold of MHCS and LGA (argparse --tau 0.99; CIFAR-100: 0.95)",
        },
        "threshold": {
            "default": 0.9,
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "LGA fills the clean set up to this fraction of the batch (argparse --threshold 0.9)",
        },
        "start_expand": {
            "default": 21,
            "type": "integer",
            "minimum": 0,
            "description": "LGA in the last start_expand epochs: e > epochs - start_expand; argparse 250 of 600 epochs, scaled to 50",
        },
        "debias_output": {
            "default": 0.8,
            "type": "number",
            "minimum": 0,
            "description": "a of the debiased logits z + a log(pi) (argparse/run.sh 0.8; CIFAR-100 0.5)",
        },
        "debias_pl": {
            "default": 0.8,
            "type": "number",
            "minimum": 0,
            "description": "b of the debiased pseudo-labels softmax(z - b log(pi)) (argparse/run.sh 0.8)",
        },
        "bias_m": {
            "default": 0.9999,
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "momentum of the class-prior estimates (argparse --bias_m)",
        },
        "T": {
            "default": 0.5,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "sharpening temperature of the pseudo head's targets (argparse --T)",
        },
        "mixup_alpha": {
            "default": 4.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Beta(alpha, alpha) of mixup (np.random.beta(4, 4))",
        },
        "fmix_alpha": {"default": 1.0, "type": "number", "exclusiveMinimum": 0},
        "fmix_decay": {"default": 3.0, "type": "number", "exclusiveMinimum": 0},
        "strong_ops": {
            "default": 3,
            "type": "integer",
            "minimum": 1,
            "description": "strong view: operations per image (RandomAugment(3, 5))",
        },
        "strong_max_magnitude": {"default": 10.0, "type": "number", "exclusiveMinimum": 0},
        "cutout": {
            "default": 0.25,
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "strong view: Cutout side fraction (official: uniform in [0, 0.5] per image)",
        },
    }

    def __init__(self, spec, model_factory, num_classes, device, data):
        super().__init__(spec, lambda: SplitNet(model_factory()), num_classes, device, data)
        c = self.num_classes
        self.priors = {
            key: torch.full((c,), 1.0 / c, device=self.device)
            for key in ("clean0", "clean1", "other0", "other1")
        }

    def build_optimizers(self):
        """One optimiser over both networks and their pseudo heads (the official optimizer1)."""
        self.pseudo_heads = nn.ModuleList(
            nn.Linear(net.num_features, self.num_classes) for net in self.nets
        ).to(self.device)
        params = [*self.nets.parameters(), *self.pseudo_heads.parameters()]
        return [make_optimizer(self.spec.optimizer, params)]

    # ------------------------------------------------------------------ pieces
    @torch.no_grad()
    def per_sample_loss(self, k: int) -> torch.Tensor:
        """CE of net ``k``'s primary head (eval mode) on every unaugmented training sample."""
        net = self.nets[k]
        net.eval()
        logits = torch.cat([self.forward(net, x) for x in self.data.eval_batches("train")])
        return F.cross_entropy(logits, self.data.train_labels, reduction="none")

    def strong_view(self, b) -> torch.Tensor:
        aug = self.data.augmenter
        return rand_augment(
            b.view(),
            aug.mean,
            aug.std,
            b.gen,
            int(self.hp["strong_ops"]),
            float(self.hp["strong_max_magnitude"]),
            1.0,
            float(self.hp["cutout"]),
        )

    def both_heads(self, k: int, x: torch.Tensor):
        feats = features(self, self.nets[k], x)
        return head(self, self.nets[k].fc, feats), head(self, self.pseudo_heads[k], feats)

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch, batches):
        if epoch < int(self.hp["pretrain_ep"]):
            return self._warmup(batches)
        return self._promix_epoch(epoch, batches)

    def _warmup(self, batches) -> dict:
        self.nets.train()
        opt = self.optimizers[0]
        meter = self.loss_meter()
        for b in batches:
            loss = sum(F.cross_entropy(self.forward(net, b.x), b.y) for net in self.nets)
            self.step(opt, loss)
            meter.add(loss, len(b))
        return {"train_loss": meter.mean()}

    def _promix_epoch(self, epoch, batches) -> dict:
        hp, c = self.hp, self.num_classes
        warm = int(hp["warmup_ep"])
        rho = float(hp["rho_start"]) + (float(hp["rho_end"]) - float(hp["rho_start"])) * (
            linear_rampup(epoch, warm)
        )
        labels = self.data.train_labels
        css = [css_select(self.per_sample_loss(k), labels, rho, c) for k in range(2)]
        w = linear_rampup(epoch, warm)
        beta = unreliable_weight(epoch, warm, float(hp["debias_pl"]))
        lga = epoch > self.spec.epochs - int(hp["start_expand"])
        n = self.data.num_train
        selected = [torch.zeros(n, dtype=torch.bool, device=self.device) for _ in range(2)]
        corrected = torch.full((n,), -1, dtype=torch.long, device=self.device)
        seen = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.nets.train()
        self.pseudo_heads.train()
        opt = self.optimizers[0]
        meter = self.loss_meter()
        for bt in batches:
            losses, chosen_k, px_k, guessed = self._batch(bt, css, w, beta, lga)
            loss = sum(losses)
            self.step(opt, loss)
            m = float(hp["bias_m"])
            for k in range(2):
                ch, px = chosen_k[k], px_k[k]
                self.priors[f"clean{k}"] = prior_update(self.priors[f"clean{k}"], px[ch], m)
                self.priors[f"other{k}"] = prior_update(self.priors[f"other{k}"], px[~ch], m)
                selected[k][bt.idx] = ch
            meter.add(loss, len(bt))
            seen[bt.idx] = True
            idx, lab = guessed
            corrected[bt.idx[idx]] = lab
        changed = (corrected >= 0) & (corrected != labels)
        cidx = torch.nonzero(changed).squeeze(1)
        return {
            "train_loss": meter.mean(),
            "rho": rho,
            "selected_net0": selected[0].cpu().numpy(),
            "selected_net1": selected[1].cpu().numpy(),
            "corrected": (cidx.cpu().numpy(), corrected[cidx].cpu().numpy()),
            "seen": seen.cpu().numpy(),
        }

    def _batch(self, bt, css, w: float, beta: float, lga: bool):
        """The four losses of one batch (net k's primary and pseudo head), each network's clean
        set, its plain weak-view softmax (for the prior update) and the samples LGA added to
        network 0's clean set with their labels (positions in the batch)."""
        hp, c = self.hp, self.num_classes
        a, b_pl, tau = float(hp["debias_output"]), float(hp["debias_pl"]), float(hp["tau"])
        xw, xs, y = bt.x, self.strong_view(bt), bt.y
        onehot = F.one_hot(y, c).float()
        outs = [(self.both_heads(k, xw), self.both_heads(k, xs)) for k in range(2)]
        sel, px_k, pseudo_k, ptx_k = [], [], [], []
        with torch.no_grad():
            for k in range(2):
                z_ori = outs[k][0][0].detach()
                px = torch.softmax(z_ori, 1)
                pred = F.one_hot(debias_pl(z_ori, self.priors[f"clean{k}"], b_pl).argmax(1), c)
                clean = css[k][bt.idx] | ((onehot * px).sum(1) > tau)  # CSS + MHCS
                pseudo_k.append(torch.where(clean[:, None], onehot, pred.float()))
                ptx_k.append(
                    sharpen(debias_pl(z_ori, self.priors[f"other{k}"], b_pl), float(hp["T"]))
                )
                sel.append(clean)
                px_k.append(px)
            guessed = (torch.zeros(0, dtype=torch.long, device=y.device),) * 2
            if lga:
                s1, p1 = px_k[0].max(1)
                s2, p2 = px_k[1].max(1)
                match = p1 == p2
                joined = [
                    label_guessing(sel[k], s1, s2, match, tau, float(hp["threshold"]))
                    for k in range(2)
                ]
                new = torch.nonzero(joined[0] & ~sel[0]).squeeze(1)
                guessed = (new, pseudo_k[0][new].argmax(1))
                sel = joined
        losses = []
        for k in range(2):
            (zw, phw), (zs, phs) = outs[k]
            pi, pi_u = self.priors[f"clean{k}"], self.priors[f"other{k}"]
            ch, pl = sel[k], pseudo_k[k]
            xc, plc = xw[ch], pl[ch]
            mix, fm = self._mix_losses(k, xc, plc, pi, a, pseudo=False)
            mix_ph, fm_ph = self._mix_losses(k, xc, plc, pi, a, pseudo=True)
            ce = soft_ce_or_zero(debias_output(zw, pi, a)[ch], plc)
            cr = soft_ce_or_zero(debias_output(zs, pi, a)[ch], plc)
            ce_ph = soft_ce_or_zero(debias_output(phw, pi, a)[ch], plc)
            cr_ph = soft_ce_or_zero(debias_output(phs, pi, a)[ch], plc)
            other, ptx = ~ch, ptx_k[k]
            unrel = soft_ce_or_zero(debias_output(phw, pi_u, a)[other], ptx[other]) + (
                w * soft_ce_or_zero(debias_output(phs, pi_u, a)[other], ptx[other])
            )
            losses.append(ce + w * (cr + mix + fm))
            losses.append(beta * unrel + ce_ph + w * (cr_ph + mix_ph + fm_ph))
        return losses, sel, px_k, guessed

    def _mix_losses(self, k: int, xc, plc, prior, a: float, pseudo: bool):
        """Mixup and FMix losses of net ``k``'s primary (or pseudo) head on the clean samples
        ``xc`` with labels ``plc`` (one-hot): 0 when there are none."""
        if len(xc) == 0:
            zero = xc.new_zeros(())
            return zero, zero

        def logits(x):  # the pseudo head: a forward of both heads (the official use_ph=True)
            z = self.both_heads(k, x)[1] if pseudo else self.forward(self.nets[k], x)
            return debias_output(z, prior, a)

        lam = float(np.random.beta(float(self.hp["mixup_alpha"]), float(self.hp["mixup_alpha"])))
        lam = max(lam, 1.0 - lam)
        perm = torch.randperm(len(xc)).to(xc.device)
        x_mix = lam * xc + (1 - lam) * xc[perm]
        t_mix = lam * plc + (1 - lam) * plc[perm]
        mix = soft_cross_entropy(logits(x_mix), t_mix)
        x_f, perm_f, lam_f = fmix(
            xc, None, float(self.hp["fmix_alpha"]), float(self.hp["fmix_decay"])
        )
        fm = fmix_loss(logits(x_f), plc.argmax(1), perm_f, lam_f)
        return mix, fm

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {
            "pseudo_heads": self.pseudo_heads.state_dict(),
            "priors": {k: v.clone() for k, v in self.priors.items()},
        }

    def load_extra_state(self, state: dict) -> None:
        self.pseudo_heads.load_state_dict(state["pseudo_heads"])
        self.priors = {k: v.to(self.device) for k, v in state["priors"].items()}
