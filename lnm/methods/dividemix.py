"""DivideMix (Li, Socher & Hoi, ICLR 2020): co-divide with a loss GMM, then MixMatch.

Two networks. After a CE warm-up, at the start of every epoch each network's per-sample CE
on the unaugmented training set is min–max normalised and modelled by a two-component GMM;
the posterior of the low-loss component is that sample's clean probability ``w``. Samples
with ``w > p_threshold`` form the labelled set, the rest the unlabelled set, and each
network is trained on the division made by the *other* network (co-divide). One MixMatch
pass per network over its labelled set (unlabelled batches drawn alongside):

- label refinement (labelled): ``t = sharpen(w·onehot(ỹ) + (1 − w)·mean_views p_net, T)``;
- co-guessing (unlabelled): ``t = sharpen(mean over both nets and both views of p, T)``;
- mixup (Beta(α, α), λ = max(λ, 1 − λ)) over the concatenated labelled + unlabelled views;
- ``L = L_x (soft CE) + λ_u(e)·L_u (MSE of probabilities) + L_reg (KL(uniform ‖ mean p))``
  with ``λ_u(e) = λ_u·clip((e − warmup)/rampup, 0, 1)`` (e counts fractional epochs).

Hyperparameters (reference values: LNMBench ``DivideMix/Train_<dataset>.py`` and the original
LiJunnan1992/DivideMix ``Train_cifar.py``): warm-up 5 epochs at twice the batch size with plain
CE (+ negative-entropy confidence penalty for asymmetric/instance noise: ``penalty``),
p_threshold 0.5, T 0.5, α 4, λ_u 25, ramp 16 epochs; the GMM input is the mean of the last
``loss_avg_epochs`` epochs' normalised losses (the originals use 5 at 90 % noise, else 1).
Before that many epochs exist, the official DivideMix averages the 1–4 epochs available
(``loss_avg_partial: true``, the default), LNMBench uses the current epoch's losses alone
until the fifth (``loss_avg_partial: false``, set with ``loss_avg_epochs: 5`` by
presets/reference.yaml). If no sample passes the threshold, the top ``min_labelled_frac`` (1 %)
by ``w`` are labelled.

Diagnostics: ``selected_net{k}`` (labelled set net k trains on), ``clean_prob`` (mean GMM
probability of both nets, scored as an AUC), and ``corrected``: every sample whose training
target (refined label if labelled, co-guessed label if unlabelled) has an argmax other than ỹ,
with that argmax, scored as the purified ratio (precision of the corrected labels). Warning
signs of the division (:func:`division_flags`): ``unlabelled_frac``, ``gmm_inverted`` (the
low-loss component holds under half of the posterior mass) and ``classes_unlabelled``.

Clean or imbalanced data (method's own behaviour, not ours): the division is class-agnostic and
always splits the loss distribution in two, whatever the noise. The original ``eval_train`` does
exactly what is done here (per-sample CE of the unaugmented training set in eval mode, min–max
normalisation, ``GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4)``, posterior of the
component with the smaller mean, ``w > p_threshold``), with no guard for clean data. When after
warm-up the network fits only the majority class (hard, imbalanced tasks such as RetinaMNIST),
the low-loss mode is that class: the GMM labels most of the set noisy, whole minority classes
land in the unlabelled set, and co-guessing relabels them to the classes the networks predict
(clean RetinaMNIST 28 px, resnet8, 5 warm-up epochs: in 8 of the 14 divisions of epochs 5-11
the clean component weighed 0.21-0.30 and 67-77 % of the samples, every one of the four
minority classes, were unlabelled).
``reg_prior: labels`` only changes the regulariser; LNMBench's unused
``build_classwise_thresholds`` helper hints at per-class thresholds, not implemented here.

Fixed (``docs/deviations.md``): every sample's loss enters the GMM (the reference left the
loss of skipped, non-finite batches at 0); losses are asserted finite. The two MixMatch views
are the run's ``augment`` applied twice: two augmented views under ``harmonized``; under
``reference`` the recipe has no augmentation, so both views are the raw image, as in LNMBench's
MedMNIST loaders. The GMM's k-means
initialisation is seeded (``gmm_random_state``; the original is unseeded).
Implementation note: the no-grad guessing forward of the training network runs on all four
views in one batch (the original made four forwards); BatchNorm sees one mixed batch instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..train.data import epoch_generator
from ._gmm import gmm_clean_probability, minmax_normalise
from ._mixup import mixup, sharpen, soft_cross_entropy
from .base import Method

# batch-generator streams (the trainer's own shuffle is stream 0)
_WARMUP_STREAM, _LABELLED_STREAM, _UNLABELLED_STREAM = 1, 3, 5


def refine_labels(w: torch.Tensor, y_onehot: torch.Tensor, p: torch.Tensor, T: float):
    """DivideMix label refinement: ``sharpen(w·onehot(ỹ) + (1 − w)·p, T)``; ``w`` per sample."""
    w = w.view(-1, 1)
    return sharpen(w * y_onehot + (1.0 - w) * p, T)


def partition(w: np.ndarray, threshold: float, min_frac: float = 0.01) -> np.ndarray:
    """Labelled mask ``w > threshold``; if empty, the top ``min_frac`` (at least one) by ``w``."""
    w = np.asarray(w, dtype=np.float64)
    mask = w > threshold
    if not mask.any():
        k = max(1, int(math.ceil(min_frac * len(w))))
        mask[np.argsort(-w, kind="stable")[:k]] = True
    return mask


def division_flags(probs, labelled, labels: np.ndarray) -> dict:
    """Warning signs of the GMM divisions: ``probs`` (one clean-probability vector per net) and
    the ``labelled`` masks made from them (:func:`partition`); scalars for per_epoch.csv:

    - ``unlabelled_frac``: mean over the divisions of the unlabelled fraction (the noise rate the
      division implies; compare with the realised one, 0 on clean data);
    - ``gmm_inverted``: 1.0 if for either net the low-loss ("clean") component holds less than
      half of the posterior mass (mean ``w`` below 0.5), i.e. the GMM calls most of the training
      set noisy, else 0.0. On clean, imbalanced data where the network has not fitted the
      minority classes after warm-up, the low-loss mode is the well-fitted majority class and the
      division inverts what "clean" means;
    - ``classes_unlabelled``: the largest number (over the nets) of classes, by noisy label,
      none of whose samples is labelled (they can only be relabelled by co-guessing).
    """
    flags, inverted, dropped = [], 0.0, 0
    present = np.unique(labels)
    for w, lab in zip(probs, labelled, strict=True):
        w, lab = np.asarray(w, dtype=np.float64), np.asarray(lab, dtype=bool)
        flags.append(1.0 - lab.mean())
        inverted = max(inverted, float(w.mean() < 0.5))
        dropped = max(dropped, int(sum(not lab[labels == c].any() for c in present)))
    return {
        "unlabelled_frac": float(np.mean(flags)),
        "gmm_inverted": inverted,
        "classes_unlabelled": dropped,
    }


def _cycle(indices: torch.Tensor, batch_size: int, gen: torch.Generator):
    """Endless shuffled batches of ``indices``; reshuffled after each pass (last may be short)."""
    while True:
        if len(indices) == 0:
            yield indices
            continue
        perm = indices[torch.randperm(len(indices), generator=gen).to(indices.device)]
        for start in range(0, len(perm), batch_size):
            yield perm[start : start + batch_size]


class DivideMix(Method):
    name = "dividemix"
    num_nets = 2
    #: LNMBench (and the official ``test``): argmax of the sum of both networks' logits
    eval_view = "logit_sum"
    order = 10
    #: MixMatch may start on untrained networks (warm-up 0); a warm-up step takes
    #: ``warmup_batch_mult`` batches; MixMatch iterates over the labelled samples
    phases = ({"name": "warmup", "until": "warmup_epochs", "min_epochs": 0,
               "batch_multiple": "warmup_batch_mult"},
              {"name": "mixmatch", "labelled": "min_labelled_frac"})  # fmt: skip
    reports = ("selected", "corrected", "clean_prob")
    relative_cost = 5.1
    params = {
        "warmup_epochs": {
            "default": 5,
            "type": "integer",
            "minimum": 0,
            "description": "reference: 5 on MedMNIST (8 on the real-world sets)",
        },
        "warmup_batch_mult": {
            "default": 2,
            "type": "integer",
            "minimum": 1,
            "description": "the warm-up loader uses this many times the batch size",
        },
        "penalty": {
            "default": False,
            "type": "boolean",
            "description": "negative-entropy confidence penalty during warm-up",
        },
        "p_threshold": {
            "default": 0.5,
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "clean-probability threshold of the labelled set",
        },
        "min_labelled_frac": {
            "default": 0.01,
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "fallback when no sample passes the threshold",
        },
        "T": {
            "default": 0.5,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "sharpening temperature",
        },
        "alpha": {
            "default": 4.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Beta(alpha, alpha) of mixup",
        },
        "lambda_u": {
            "default": 25.0,
            "type": "number",
            "minimum": 0,
            "description": "weight of the unlabelled MSE loss",
        },
        "rampup_epochs": {
            "default": 16,
            "type": "integer",
            "minimum": 1,
            "description": "length of the linear ramp of lambda_u after warm-up",
        },
        "loss_avg_epochs": {
            "default": 1,
            "type": "integer",
            "minimum": 1,
            "description": "GMM input = mean of this many epochs' normalised losses",
        },
        "loss_avg_partial": {
            "default": True,
            "type": "boolean",
            "description": "while fewer than loss_avg_epochs epochs exist, average those available (official DivideMix); false: the current epoch's losses only (LNMBench; reference protocol)",
        },
        "gmm_random_state": {"default": 0, "type": "integer", "minimum": 0},
        "reg_prior": {
            "default": "uniform",
            "enum": ["uniform", "labels"],
            "description": "L_reg target: uniform (original) or the noisy-label class frequencies (imbalanced data)",
        },
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if int(self.hp["loss_avg_epochs"]) < 1 or int(self.hp["warmup_batch_mult"]) < 1:
            raise ValueError("dividemix: loss_avg_epochs and warmup_batch_mult must be >= 1")
        self.loss_history: list[list[torch.Tensor]] = [[] for _ in range(self.num_nets)]

    # ------------------------------------------------------------------ division
    @torch.no_grad()
    def per_sample_loss(self, k: int) -> torch.Tensor:
        """CE of net ``k`` (eval mode) on every unaugmented training sample, in order."""
        net = self.nets[k]
        net.eval()
        chunks, start = [], 0
        for x in self.data.eval_batches("train"):
            y = self.data.train_labels[start : start + len(x)]
            chunks.append(F.cross_entropy(self.forward(net, x), y, reduction="none"))
            start += len(x)
        losses = torch.cat(chunks)
        assert len(losses) == self.data.num_train and bool(torch.isfinite(losses).all()), (
            "DivideMix: every per-sample loss must be finite"
        )
        return losses

    def clean_probability(self, k: int) -> np.ndarray:
        """GMM clean probability of every training sample according to net ``k``."""
        norm = torch.from_numpy(minmax_normalise(self.per_sample_loss(k).double().cpu().numpy()))
        window = int(self.hp["loss_avg_epochs"])
        hist = (self.loss_history[k] + [norm])[-window:]
        self.loss_history[k] = hist if window > 1 else []
        if len(hist) < window and not self.hp["loss_avg_partial"]:
            values = norm.numpy()  # LNMBench: the average starts once `window` epochs exist
        else:
            values = torch.stack(hist).mean(0).numpy()
        return gmm_clean_probability(values, random_state=int(self.hp["gmm_random_state"]))

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch, batches):
        if epoch < int(self.hp["warmup_epochs"]):
            return self._warmup(epoch)
        probs = [self.clean_probability(k) for k in range(self.num_nets)]
        n, c = self.data.num_train, self.num_classes
        refined_sum = torch.zeros(n, c, device=self.device)
        refined_cnt = torch.zeros(n, device=self.device)
        diag, losses = {}, []
        for k in range(self.num_nets):
            other = 1 - k  # co-divide: net k learns from the other net's division
            labelled = partition(probs[other], self.hp["p_threshold"], self.hp["min_labelled_frac"])
            diag[f"selected_net{k}"] = labelled
            diag[f"labelled_net{k}"] = int(labelled.sum())
            losses.append(
                self._train_net(k, epoch, labelled, probs[other], refined_sum, refined_cnt)
            )
        seen = refined_cnt > 0
        new = refined_sum.argmax(1)
        changed = seen & (new != self.data.train_labels)
        idx = torch.nonzero(changed).squeeze(1)
        diag["corrected"] = (idx.cpu().numpy(), new[idx].cpu().numpy())
        diag["clean_prob"] = np.mean(probs, axis=0)
        divisions = [diag["selected_net1"], diag["selected_net0"]]  # made from probs[0], probs[1]
        diag.update(division_flags(probs, divisions, self.data.train_labels.cpu().numpy()))
        diag["train_loss"] = float(np.mean(losses))
        diag["lambda_u"] = self._lambda_u(epoch + 1.0)
        return diag

    def reg_prior(self) -> torch.Tensor:
        """The class distribution L_reg pulls the mean prediction towards."""
        kind = self.hp["reg_prior"]
        if kind == "uniform":
            return torch.full((self.num_classes,), 1.0 / self.num_classes, device=self.device)
        if kind == "labels":
            counts = torch.bincount(self.data.train_labels, minlength=self.num_classes).float()
            return counts / counts.sum()
        raise ValueError(f"dividemix: reg_prior {kind!r}; allowed: 'uniform', 'labels'")

    def _lambda_u(self, progress: float) -> float:
        ramp = max(float(self.hp["rampup_epochs"]), 1e-12)
        frac = (progress - int(self.hp["warmup_epochs"])) / ramp
        return float(self.hp["lambda_u"]) * min(max(frac, 0.0), 1.0)

    def _warmup(self, epoch: int) -> dict:
        bs = self.data.batch_size * int(self.hp["warmup_batch_mult"])
        meter = self.loss_meter()
        for k, (net, opt) in enumerate(zip(self.nets, self.optimizers)):
            net.train()
            for b in self.data.epoch_batches(self.spec.seed, epoch, _WARMUP_STREAM + k, bs):
                logits = self.forward(net, b.x)
                loss = F.cross_entropy(logits, b.y)
                if self.hp["penalty"]:  # negative entropy: penalise confident predictions
                    logp = F.log_softmax(logits, 1)
                    loss = loss + (logp.exp() * logp).sum(1).mean()
                self.step(opt, loss)
                meter.add(loss, len(b))
        return {"train_loss": meter.mean()}

    def _train_net(
        self,
        k: int,
        epoch: int,
        labelled: np.ndarray,
        w: np.ndarray,
        refined_sum: torch.Tensor,
        refined_cnt: torch.Tensor,
    ) -> float:
        """One MixMatch pass of net ``k`` over the labelled set ``labelled`` (weights ``w``)."""
        net, other, opt = self.nets[k], self.nets[1 - k], self.optimizers[k]
        net.train()
        other.eval()
        dev, data, T = self.device, self.data, float(self.hp["T"])
        aug, images = data.augmenter, data.images["train"]
        gen_x = epoch_generator(self.spec.seed, epoch, _LABELLED_STREAM + k)
        gen_u = epoch_generator(self.spec.seed, epoch, _UNLABELLED_STREAM + k)
        mask = torch.from_numpy(labelled).to(dev)
        w_all = torch.from_numpy(np.asarray(w, dtype=np.float32)).to(dev)
        lab = torch.nonzero(mask).squeeze(1)
        lab = lab[torch.randperm(len(lab), generator=gen_x).to(dev)]
        unl = _cycle(torch.nonzero(~mask).squeeze(1), data.batch_size, gen_u)
        bs = min(data.batch_size, data.num_train)
        num_iter = max(1, math.ceil(len(lab) / bs))
        prior = self.reg_prior()
        meter = self.loss_meter()
        for i, start in enumerate(range(0, len(lab), bs)):
            idx_x, idx_u = lab[start : start + bs], next(unl)
            raw_x, raw_u = images[idx_x], images[idx_u]
            x1, x2 = aug(raw_x, gen_x), aug(raw_x, gen_x)
            u1, u2 = aug(raw_u, gen_u), aug(raw_u, gen_u)
            nx, nu = len(idx_x), len(idx_u)
            with torch.no_grad():
                p_net = torch.softmax(self.forward(net, torch.cat([x1, x2, u1, u2])), 1)
                px = (p_net[:nx] + p_net[nx : 2 * nx]) / 2
                y1h = F.one_hot(data.train_labels[idx_x], self.num_classes).float()
                tx = refine_labels(w_all[idx_x], y1h, px, T)
                if nu:
                    p_oth = torch.softmax(self.forward(other, torch.cat([u1, u2])), 1)
                    pu = (
                        p_net[2 * nx : 2 * nx + nu] + p_net[2 * nx + nu :] + p_oth[:nu] + p_oth[nu:]
                    ) / 4
                    tu = sharpen(pu, T)
                else:
                    tu = tx.new_zeros(0, self.num_classes)
            # the labels the net is trained towards: refined (labelled) and co-guessed
            # (unlabelled); where their argmax differs from ỹ the sample counts as corrected
            idx_t = torch.cat([idx_x, idx_u])
            refined_sum.index_add_(0, idx_t, torch.cat([tx, tu]))
            refined_cnt.index_add_(0, idx_t, torch.ones(len(idx_t), device=dev))

            inputs = torch.cat([x1, x2, u1, u2])
            targets = torch.cat([tx, tx, tu, tu])
            mixed_x, mixed_t, _, _ = mixup(inputs, targets, float(self.hp["alpha"]), gen_x)
            logits = self.forward(net, mixed_x)
            loss_x = soft_cross_entropy(logits[: 2 * nx], mixed_t[: 2 * nx])
            if nu:
                loss_u = ((torch.softmax(logits[2 * nx :], 1) - mixed_t[2 * nx :]) ** 2).mean()
            else:
                loss_u = logits.new_zeros(())
            pred_mean = torch.softmax(logits, 1).mean(0)
            loss_reg = (prior * torch.log(prior / pred_mean)).sum()
            lam_u = self._lambda_u(epoch + i / num_iter)
            loss = loss_x + lam_u * loss_u + loss_reg
            self.step(opt, loss)
            meter.add(loss, nx)
        return meter.mean()

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {"loss_history": [[h.clone() for h in hist] for hist in self.loss_history]}

    def load_extra_state(self, state: dict) -> None:
        self.loss_history = [[h.clone() for h in hist] for hist in state["loss_history"]]
