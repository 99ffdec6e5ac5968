"""DISC (Li, Xiong & Hu, CVPR 2023): dynamic instance-specific selection and correction.

One network sees a weak and a strong view of every image. A per-sample memory keeps the
softmax of each view from the latest epoch (written by the training forward passes), and
each sample has two dynamic thresholds, exponential moving averages of its maximal
confidence per view: ``τ_i ← m·τ_i + (1 − m)·max_k p_ik`` (initialised at 1/N as in the
original code). At the start of every epoch (from the memory of the previous one, before the
thresholds absorb it, as the original does at the end of an epoch) the training set splits:

- selected by a view: ``p^view_i(ỹ_i) > τ^view_i``;
- clean set C: selected by both views; hard set H: selected by exactly one;
- corrected set P: selected by neither, with the view-averaged maximal probability above
  ``min(cap, (τ^w_i + τ^s_i)/2 + σ)``; its new label is the argmax of the view average;
- mix set C ∪ H ∪ P with labels ỹ (C, H) or the corrected label (P).

Warm-up (epochs < ``start_epoch``): CE on both views. Afterwards, per batch:
``λ_ce·|C_b|/B·(CE_w + CE_s on C_b) + λ_h·|H_b|/B·(GCE_w + GCE_s on H_b)
+ mixup(weak, mix set) + mixup(strong, mix set)`` (GCE q = 0.7, mixup Beta(5, 5)).

Reference values (LNMBench and the original JackYFL/DISC code): start_epoch 5, m 0.99, λ_ce 1,
λ_h 1, σ 0.5, cap 0.99, α 5; the high-noise setting (rate ≥ 0.6) uses λ_h 0.2 and m 0.95
(set through ``method_params``).

Views. The weak view is the run's ``augment`` (harmonized: ``train.augment``, a padded crop and
a flip; reference: ``recipes.disc.augment``, LNMBench's ``RandomResizedCrop(size)`` with scale
0.08–1 and ratio 3/4–4/3, and a horizontal flip). The strong view is a second, independently
drawn view of the same kind followed by a RandAugment-style pool (``strong_pool``):

- ``fixmatch`` (default, harmonized): :func:`._randaugment.rand_augment`, 13 FixMatch-style
  operations at a continuous magnitude in [1, ``strong_max_magnitude``) (enhancement factors
  0.55–1.45), each with probability 0.5, then a Cutout;
- ``lnmbench`` (presets/reference.yaml): LNMBench's and the official DISC's own
  ``RandAugmentwogeo(n=2, m=5)`` (:func:`._randaugment.lnmbench_rand_augment`): 16 operations with
  integer magnitudes 1–4 (enhancement factors 0.28–0.82, rotations of 3–12°, shears 0.01–0.04,
  translations of 0.5–2 % of the side), each with probability 0.5, then a gray Cutout of 15 % of
  the side, on the 8-bit image, pixel for pixel as Pillow computes them.

Both keep every colour channel (LNMBench's MedMNIST views were grayscale by mistake:
``docs/deviations.md``) and run on the device. ``strong_aug: false`` makes the strong view a
plain second crop/flip view.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._losses import gce
from ._mixup import mixup, soft_cross_entropy
from ._randaugment import lnmbench_rand_augment, rand_augment
from .base import Method


def ema_thresholds(tau: torch.Tensor, probs: torch.Tensor, momentum: float) -> torch.Tensor:
    """``τ ← m·τ + (1 − m)·max_k p_k`` per sample."""
    return momentum * tau + (1.0 - momentum) * probs.max(1).values


def disc_sets(
    w_probs: torch.Tensor,
    s_probs: torch.Tensor,
    labels: torch.Tensor,
    tau_w: torch.Tensor,
    tau_s: torch.Tensor,
    sigma: float,
    cap: float,
) -> dict:
    """DISC's division of the training set from its memory and thresholds (all per sample)."""
    w_sel = w_probs.gather(1, labels.view(-1, 1)).squeeze(1) > tau_w
    s_sel = s_probs.gather(1, labels.view(-1, 1)).squeeze(1) > tau_s
    selected = w_sel | s_sel
    ws_max, ws_label = ((w_probs + s_probs) / 2).max(1)
    threshold = ((tau_w + tau_s) / 2 + sigma).clamp(max=cap)
    corrected = (ws_max > threshold) & ~selected
    return {
        "clean": w_sel & s_sel,
        "hard": w_sel ^ s_sel,
        "corrected": corrected,
        "mix": selected | corrected,
        "mix_labels": torch.where(corrected, ws_label, labels),
        "weak_selected": w_sel,
        "strong_selected": s_sel,
    }


class DISC(Method):
    name = "disc"
    order = 9
    phases = ({"name": "warmup", "until": "start_epoch"}, {"name": "selection"})
    reports = ("selected", "corrected")
    relative_cost = 2.6
    params = {
        "start_epoch": {
            "default": 5,
            "type": "integer",
            "minimum": 0,
            "description": "warm-up epochs (reference MedMNIST config)",
        },
        "momentum": {
            "default": 0.99,
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "m of the threshold EMA (0.95 in the high-noise setting)",
        },
        "lambda_ce": {
            "default": 1.0,
            "type": "number",
            "minimum": 0,
            "description": "weight of CE on the clean set",
        },
        "lambda_h": {
            "default": 1.0,
            "type": "number",
            "minimum": 0,
            "description": "weight of GCE on the hard set (0.2 in the high-noise setting)",
        },
        "sigma": {
            "default": 0.5,
            "type": "number",
            "minimum": 0,
            "description": "margin of the correction threshold",
        },
        "correction_cap": {
            "default": 0.99,
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "upper bound of the correction threshold",
        },
        "gce_q": {"default": 0.7, "type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "alpha": {
            "default": 5.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Beta(alpha, alpha) of mixup",
        },
        "tau_init": {
            "default": None,
            "type": ["number", "null"],
            "minimum": 0,
            "maximum": 1,
            "description": "initial thresholds; null: 1/N as in the original code",
        },
        "strong_aug": {
            "default": True,
            "type": "boolean",
            "description": "RandAugment (2 ops, magnitude in [1, 5)) + Cutout 15 %",
        },
        "strong_pool": {
            "default": "fixmatch",
            "enum": ["fixmatch", "lnmbench"],
            "description": "operations of the strong view: fixmatch = 13 FixMatch-style ops, continuous magnitude; lnmbench = LNMBench's and the official DISC's 16-op RandAugmentwogeo, integer magnitudes 1..m-1, on 8-bit images (reference protocol)",
        },
        "strong_ops": {"default": 2, "type": "integer", "minimum": 1},
        "strong_max_magnitude": {
            "default": 5.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "m: magnitudes drawn in [1, m) (strong_pool lnmbench: the integers 1..m-1; m an integer in [2, 11])",
        },
        "cutout": {"default": 0.15, "type": "number", "minimum": 0, "exclusiveMaximum": 1},
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        pool, m = self.hp["strong_pool"], float(self.hp["strong_max_magnitude"])
        if pool not in ("fixmatch", "lnmbench"):
            raise ValueError(f"disc: strong_pool {pool!r}; allowed: fixmatch, lnmbench")
        if pool == "lnmbench" and (not m.is_integer() or not 2 <= m <= 11):
            raise ValueError(
                f"disc: strong_max_magnitude {m!r} with strong_pool lnmbench; allowed: an "
                "integer in [2, 11] (magnitudes 1..m-1)"
            )
        n, c, dev = self.data.num_train, self.num_classes, self.device
        tau0 = 1.0 / n if self.hp["tau_init"] is None else float(self.hp["tau_init"])
        self.w_probs = torch.zeros(n, c, device=dev)
        self.s_probs = torch.zeros(n, c, device=dev)
        self.tau_w = torch.full((n,), tau0, device=dev)
        self.tau_s = torch.full((n,), tau0, device=dev)
        labels = self.data.train_labels
        self.sets = {
            "clean": torch.zeros(n, dtype=torch.bool, device=dev),
            "hard": torch.zeros(n, dtype=torch.bool, device=dev),
            "corrected": torch.zeros(n, dtype=torch.bool, device=dev),
            "mix": torch.zeros(n, dtype=torch.bool, device=dev),
            "mix_labels": labels.clone(),
            "weak_selected": torch.zeros(n, dtype=torch.bool, device=dev),
            "strong_selected": torch.zeros(n, dtype=torch.bool, device=dev),
        }
        self.sets_epoch = 0  # the epoch whose start last recomputed the sets

    # ------------------------------------------------------------------ sets
    def update_sets(self, epoch: int) -> None:
        """Recompute the sets from the memory, then move the thresholds (once per epoch)."""
        if epoch <= self.sets_epoch:
            return
        self.sets = disc_sets(
            self.w_probs,
            self.s_probs,
            self.data.train_labels,
            self.tau_w,
            self.tau_s,
            float(self.hp["sigma"]),
            float(self.hp["correction_cap"]),
        )
        m = float(self.hp["momentum"])
        self.tau_w = ema_thresholds(self.tau_w, self.w_probs, m)
        self.tau_s = ema_thresholds(self.tau_s, self.s_probs, m)
        self.sets_epoch = epoch

    def strong_view(self, b) -> torch.Tensor:
        x = b.view()
        if not self.hp["strong_aug"]:
            return x
        aug = self.data.augmenter
        if self.hp["strong_pool"] == "lnmbench":
            return lnmbench_rand_augment(
                x,
                aug.mean,
                aug.std,
                b.gen,
                int(self.hp["strong_ops"]),
                int(self.hp["strong_max_magnitude"]),
                0.5,
                float(self.hp["cutout"]),
            )
        return rand_augment(
            x,
            aug.mean,
            aug.std,
            b.gen,
            int(self.hp["strong_ops"]),
            float(self.hp["strong_max_magnitude"]),
            0.5,
            float(self.hp["cutout"]),
        )

    def _mixup_loss(self, net, x, labels, gen) -> torch.Tensor:
        targets = F.one_hot(labels, self.num_classes).float()
        mixed_x, mixed_t, _, _ = mixup(x, targets, float(self.hp["alpha"]), gen)
        return soft_cross_entropy(self.forward(net, mixed_x), mixed_t)

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch, batches):
        self.update_sets(epoch)
        warm = epoch < int(self.hp["start_epoch"])
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        lam_ce, lam_h, q = (float(self.hp[k]) for k in ("lambda_ce", "lambda_h", "gce_q"))
        meter = self.loss_meter()
        for b in batches:
            xw, xs = b.x, self.strong_view(b)
            bs = len(b)
            logits = self.forward(net, torch.cat([xw, xs]))
            lw, ls = logits[:bs], logits[bs:]
            with torch.no_grad():
                self.w_probs[b.idx] = torch.softmax(lw.detach(), 1)
                self.s_probs[b.idx] = torch.softmax(ls.detach(), 1)
            if warm:
                loss = F.cross_entropy(lw, b.y) + F.cross_entropy(ls, b.y)
            else:
                loss = self._disc_loss(net, b, xw, xs, lw, ls, lam_ce, lam_h, q)
                if loss is None:  # no sample of this batch is in any set
                    continue
            self.step(opt, loss)
            meter.add(loss, bs)
        diag = {"train_loss": meter.mean()}
        if not warm:
            s = self.sets
            idx = torch.nonzero(s["corrected"]).squeeze(1)
            diag.update(
                {
                    "selected": s["clean"].cpu().numpy(),
                    "corrected": (idx.cpu().numpy(), s["mix_labels"][idx].cpu().numpy()),
                    "clean_count": int(s["clean"].sum()),
                    "hard_count": int(s["hard"].sum()),
                    "corrected_count": int(len(idx)),
                    "mix_count": int(s["mix"].sum()),
                }
            )
        return diag

    def _disc_loss(self, net, b, xw, xs, lw, ls, lam_ce, lam_h, q):
        """The post-warm-up loss of one batch, or None if none of its samples is in a set."""
        s, bs, y = self.sets, len(b), b.y
        clean, hard = s["clean"][b.idx].float(), s["hard"][b.idx].float()
        mix = torch.nonzero(s["mix"][b.idx]).squeeze(1)
        if len(mix) == 0:  # the mix set contains C and H: nothing to learn from
            return None
        # λ·(|C_b|/B)·mean over C_b  ==  λ·Σ_{i∈C_b} ℓ_i / B  (no data-dependent indexing)
        ce = F.cross_entropy(lw, y, reduction="none") + F.cross_entropy(ls, y, reduction="none")
        hard_loss = gce(lw, y, q, reduction="none") + gce(ls, y, q, reduction="none")
        loss = (lam_ce * (clean * ce).sum() + lam_h * (hard * hard_loss).sum()) / bs
        labels = s["mix_labels"][b.idx][mix]
        return (
            loss
            + self._mixup_loss(net, xw[mix], labels, b.gen)
            + self._mixup_loss(net, xs[mix], labels, b.gen)
        )

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {
            "w_probs": self.w_probs.clone(),
            "s_probs": self.s_probs.clone(),
            "tau_w": self.tau_w.clone(),
            "tau_s": self.tau_s.clone(),
            "sets": {k: v.clone() for k, v in self.sets.items()},
            "sets_epoch": self.sets_epoch,
        }

    def load_extra_state(self, state: dict) -> None:
        dev = self.device
        self.w_probs, self.s_probs = state["w_probs"].to(dev), state["s_probs"].to(dev)
        self.tau_w, self.tau_s = state["tau_w"].to(dev), state["tau_s"].to(dev)
        self.sets = {k: v.to(dev) for k, v in state["sets"].items()}
        self.sets_epoch = int(state["sets_epoch"])
