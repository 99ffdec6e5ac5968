"""Co-Correcting (Liu et al., IEEE TMI 2021), official code JiarunLiu/Co-Correcting: two networks
select samples for each other and jointly correct the labels, designed on medical images (ISIC
skin lesions, PatchCamelyon).

Each training sample has a label distribution ``ŷ_i = softmax(ỹ_i^logit)``, its logits
initialised at ``K·onehot(ỹ_i)`` (K 10). Three stages (``Co-Correcting.py::_compute_loss``):

1. epochs < ``stage1``: Co-teaching+ with CE on the noisy labels;
2. ``stage1`` ≤ epoch < ``stage2``: Co-teaching+ with the PENCIL loss on ŷ, then the label
   logits of the batch move by ``−λ₁·(∂L_A + ∂L_B)/∂ỹ^logit`` (``mix_grad``), where ``L_net``
   is the batch-mean PENCIL loss of the network's (pre-step) outputs, per curriculum subset
   (below);
3. epochs ≥ ``stage2``: Co-teaching+ with the PENCIL KL term on the final ŷ.

Per sample, with p = softmax(z) and means over the C classes (``Loss.py``)::

    PENCIL    = mean_c p (log p − log ŷ) + α·CE(ŷ as logits, ỹ) + β·(−mean_c p log p)
    PENCIL_KL = mean_c p (log p − log ŷ)

(the compatibility term feeds the *probabilities* ŷ to ``F.cross_entropy``, as the official
code does). Co-teaching+ here (``Loss.py::loss_coteaching_plus``) selects within the samples on
which the two networks' predictions **agree** (``pred1 == pred2``; ``select_on:
disagreement`` gives Co-teaching+'s own rule): each network keeps ``⌊(1 − τ_e)·n⌋`` of them by
its own per-sample loss and the peer trains on the mean loss over them; when that count is 0
both train on the batch-mean loss times ``|{agree or step < warm_steps}|/B``. τ_e: Co-teaching's
ramp (``num_gradual``, ``exponent``) to the forget rate (the noise rate by default: oracle).

Curriculum (``curriculum``; ``utils/curriculum_clustering.py``, CurriculumNet): at the start of
epoch ``stage1`` both networks' penultimate features (concatenated) of every sample are split
per noisy class into 3 subsets by local density (PCA to ``dim_reduce`` dimensions, distances,
density = neighbours closer than the ``density_t`` quantile of all distances, k-means of the
densities; subset 0 densest); in stage 2 a sample's label moves only once the epoch exceeds
``stage1 + (s + 1)·(stage2 − stage1)/3`` for its subset s − 1 (subset 0 from the start).

Defaults: ``utils/settings.py`` and ``scripts/isic.sh`` (λ₁ 200 (isic.sh: 150 at 20 % noise, 200
at 40 %), α 0.4, β 0.1, K 10, forget rate = noise rate); its stages at epochs 70 and 200 of 320
are scaled to the grid's 50 epochs (11, 31). The official learning-rate plan (lr until stage2, then ``lr2`` = lr/10 dropping 10x at
each third of the rest) is a training recipe (``config.yaml`` ``recipes``). Test predictions:
the mean of the two networks' logits (the official ``test``'s "mix"; ``eval_view:
logit_sum``).

Departures (``docs/deviations.md``): the step of the ``warm_steps`` rule is the true global step
(official: ``epoch × batch_idx``); clustering features come from the unaugmented training images
in order (official: the augmenting, shuffled loader); a class (chunk) with fewer than 3 samples or
3 distinct densities is subset 0 and PCA keeps at most as many components as samples (official:
errors); ties in the loss ranking go to the earlier sample.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ._features import SplitNet, features
from ._persample import PerSample
from ._selection import (
    Selection,
    SelectionTracker,
    SmallLossMethod,
    masked_mean,
    num_keep,
    small_loss_mask,
)


# ----------------------------------------------------------------------------- losses
def pencil_kl(logits: torch.Tensor, y_dist: torch.Tensor) -> torch.Tensor:
    """Per sample ``mean_c p (log p − log ŷ)``."""
    p, logp = torch.softmax(logits, 1), F.log_softmax(logits, 1)
    return (p * (logp - torch.log(y_dist))).mean(1)


def pencil_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per sample ``−mean_c p log p``."""
    return -(torch.softmax(logits, 1) * F.log_softmax(logits, 1)).mean(1)


def pencil_loss(logits, y_dist, labels, alpha: float, beta: float) -> torch.Tensor:
    """Per-sample PENCIL loss; the compatibility term is ``F.cross_entropy(ŷ, ỹ)`` on the
    probabilities ŷ (the official ``_pencil_loss_compatibility(last_y_var, target)``)."""
    compat = F.cross_entropy(y_dist, labels, reduction="none")
    return pencil_kl(logits, y_dist) + alpha * compat + beta * pencil_entropy(logits)


# ----------------------------------------------------------------------------- selection
def co_select(
    loss0: torch.Tensor,
    loss1: torch.Tensor,
    pool: torch.Tensor,
    tau: float,
    step: int,
    warm_steps: int,
) -> Selection:
    """Co-Correcting's ``loss_coteaching_plus`` on per-sample losses of nets 0 and 1.

    ``pool``: the samples selection happens within (the networks agree, or disagree). With
    ``k = ⌊(1 − τ)·|pool|⌋ ≥ 1`` each net keeps its k smallest losses in the pool and the peer
    trains on their mean; otherwise each net's loss is its batch-mean loss times the fraction
    of the batch in ``pool ∪ {all, if step < warm_steps}``.

    Also returns the official ``ind_discard`` as a mask: the pool samples some network did not
    keep, or (no selection) the samples outside that fraction."""
    n_pool = int(pool.sum())
    keep = num_keep(n_pool, tau)
    if keep >= 1:
        kept0 = small_loss_mask(loss0, keep, pool)
        kept1 = small_loss_mask(loss1, keep, pool)
        part0, part1 = masked_mean(loss0, kept1, keep), masked_mean(loss1, kept0, keep)
        masks = {"selected_net0": kept0, "selected_net1": kept1}
        return Selection(part0 + part1, (part0, part1), masks), pool & ~(kept0 & kept1)
    update = pool | (step < warm_steps)
    frac = update.float().sum() / len(update)
    part0, part1 = loss0.mean() * frac, loss1.mean() * frac
    masks = {"selected_net0": update, "selected_net1": update}
    return Selection(part0 + part1, (part0, part1), masks), ~update


def update_stage(epoch: int, stage1: int, stage2: int, n_subsets: int = 3) -> int:
    """The highest curriculum subset whose labels move in ``epoch`` (``_get_label_update_stage``:
    the number of i < 3 with ``stage1 + (i + 1)·(stage2 − stage1)/3 < epoch``)."""
    step = (stage2 - stage1) / n_subsets
    return sum(stage1 + step * (i + 1) < epoch for i in range(n_subsets))


# ----------------------------------------------------------------------------- curriculum
def curriculum_subsets(
    feats: np.ndarray,
    labels: np.ndarray,
    n_subsets: int = 3,
    density_t: float = 0.6,
    dim_reduce: int = 256,
    batch_max: int = 30000,
    random_state: int = 0,
) -> np.ndarray:
    """CurriculumNet's density subsets (``cluster_curriculum_subsets``): per noisy class (and
    chunk of ``batch_max`` samples), 0 = densest … ``n_subsets − 1`` = sparsest."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    out = np.full(len(labels), -1, dtype=np.int64)
    for cls in np.unique(labels):
        members = np.nonzero(labels == cls)[0]
        for start in range(0, len(members), batch_max):
            idx = members[start : start + batch_max]
            x = np.asarray(feats[idx], dtype=np.float32)
            if feats.shape[1] > dim_reduce:
                comps = min(dim_reduce, len(idx))
                x = PCA(n_components=comps, random_state=random_state).fit_transform(x)
            m = x @ x.T
            t = np.square(x).sum(1)
            dist = np.sqrt(np.abs(-2 * m + t + t[:, None]))
            flat = dist.reshape(-1)
            cutoff = np.partition(flat, int(flat.size * density_t))[int(flat.size * density_t)]
            dens = (dist < cutoff).sum(1).astype(np.float32) - 1
            if len(np.unique(dens)) < n_subsets:  # official: ValueError
                out[idx] = 0
                continue
            km = KMeans(n_clusters=n_subsets, random_state=random_state, n_init=10)
            km.fit(dens.reshape(-1, 1))
            bound = np.sort([dens[km.labels_ == i].min() for i in range(n_subsets)])
            sub = np.zeros(len(idx), dtype=np.int64)
            for j in range(n_subsets - 1):
                sub[(bound[j] <= dens) & (dens < bound[j + 1])] = n_subsets - j - 1
            sub[dens >= bound[-1]] = 0
            out[idx] = sub
    return out


class CoCorrecting(SmallLossMethod):
    name = "cocorrecting"
    order = 15
    #: the official ``test`` reports the mean of the two networks' logits ("mix")
    eval_view = "logit_sum"
    phases = ({"name": "stage1", "until": "stage1"}, {"name": "stage2", "until": "stage2"},
              {"name": "stage3"})  # fmt: skip
    reports = ("selected", "corrected")
    params = {
        **SmallLossMethod.params,
        "stage1": {
            "default": 11,
            "type": "integer",
            "minimum": 0,
            "description": "first epoch of stage 2 (label correction); settings.py --stage1 70 of 320 epochs, scaled to 50",
        },
        "stage2": {
            "default": 31,
            "type": "integer",
            "minimum": 0,
            "description": "first epoch of stage 3 (fixed corrected labels); settings.py --stage2 200 of 320 epochs, scaled to 50",
        },
        "lambda1": {
            "default": 200.0,
            "type": "number",
            "minimum": 0,
            "description": "step size of the label update (settings.py 200; isic.sh 150 at 20 %, 200 at 40 % noise)",
        },
        "alpha": {
            "default": 0.4,
            "type": "number",
            "minimum": 0,
            "description": "weight of the PENCIL compatibility term (settings.py --alpha)",
        },
        "beta": {
            "default": 0.1,
            "type": "number",
            "minimum": 0,
            "description": "weight of the PENCIL entropy term (settings.py --beta)",
        },
        "K": {
            "default": 10.0,
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "initial label logits K * onehot (settings.py --K)",
        },
        "select_on": {
            "default": "agreement",
            "enum": ["agreement", "disagreement"],
            "description": "samples selection happens within: official pred1 == pred2 (agreement); Co-teaching+'s disagreement",
        },
        "warm_steps": {
            "default": 5000,
            "type": "integer",
            "minimum": 0,
            "description": "steps during which an empty selection trains on the whole batch (Loss.py: step < 5000)",
        },
        "mix_grad": {
            "default": True,
            "type": "boolean",
            "description": "label update from the sum of both networks' gradients (settings.py --mix-grad 1); false: net A's",
        },
        "discard": {
            "default": False,
            "type": "boolean",
            "description": "move only the labels of samples a network discarded (settings.py --discard 0)",
        },
        "curriculum": {
            "default": True,
            "type": "boolean",
            "description": "label updates by density subsets (settings.py --curriculum 1)",
        },
        "dim_reduce": {
            "default": 256,
            "type": "integer",
            "minimum": 1,
            "description": "PCA dimensions of the clustering features (settings.py --dim-reduce 256; pcam 128)",
        },
        "density_t": {
            "default": 0.6,
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
            "description": "distance quantile of the density count (CurriculumClustering density_t)",
        },
        "cluster_batch_max": {
            "default": 30000,
            "type": "integer",
            "minimum": 3,
            "description": "samples per clustering chunk (CurriculumClustering batch_max)",
        },
    }

    def __init__(self, spec, model_factory, num_classes, device, data):
        super().__init__(spec, lambda: SplitNet(model_factory()), num_classes, device, data)
        s1, s2 = int(self.hp["stage1"]), int(self.hp["stage2"])
        if s1 > s2:
            raise ValueError(f"method 'cocorrecting': stage1 = {s1} must not exceed stage2 = {s2}")
        n, c = self.data.num_train, self.num_classes
        self.per_sample = PerSample(n, self.device)
        k = float(self.hp["K"])
        self.per_sample.add("y_logits", k * F.one_hot(self.data.train_labels, c).float())
        self.per_sample.add("subset", torch.full((n,), -1, dtype=torch.long))

    # ------------------------------------------------------------------ curriculum
    @torch.no_grad()
    def cluster(self) -> None:
        """Density subsets from both networks' features of the unaugmented training set."""
        parts = []
        for net in self.nets:
            net.eval()
            parts.append(
                torch.cat([features(self, net, x) for x in self.data.eval_batches("train")])
            )
        feats = torch.cat(parts, 1).cpu().numpy()
        subsets = curriculum_subsets(
            feats,
            self.data.train_labels.cpu().numpy(),
            dim_reduce=int(self.hp["dim_reduce"]),
            density_t=float(self.hp["density_t"]),
            batch_max=int(self.hp["cluster_batch_max"]),
        )
        self.per_sample["subset"] = torch.from_numpy(subsets).to(self.device)

    # ------------------------------------------------------------------ training
    def stage(self, epoch: int) -> int:
        return 1 if epoch < int(self.hp["stage1"]) else 2 if epoch < int(self.hp["stage2"]) else 3

    def train_epoch(self, epoch, batches):
        hp = self.hp
        stage, tau = self.stage(epoch), self.forget_rate(epoch)
        if epoch == int(hp["stage1"]) and stage == 2 and bool(hp["curriculum"]):
            self.cluster()
        alpha, beta = float(hp["alpha"]), float(hp["beta"])
        y_logits, subset = self.per_sample["y_logits"], self.per_sample["subset"]
        top = update_stage(epoch, int(hp["stage1"]), int(hp["stage2"]))
        per_epoch = self.data.batches_per_epoch()
        self.nets.train()
        track = SelectionTracker(self.data.num_train, self.device)
        meter = self.loss_meter()
        for i, b in enumerate(batches):
            z0, z1 = (self.forward(net, b.x) for net in self.nets)
            rows = y_logits[b.idx]
            y_dist = torch.softmax(rows, 1)
            if stage == 1:
                l0, l1 = (F.cross_entropy(z, b.y, reduction="none") for z in (z0, z1))
            elif stage == 2:
                l0, l1 = (pencil_loss(z, y_dist, b.y, alpha, beta) for z in (z0, z1))
            else:
                l0, l1 = (pencil_kl(z, y_dist) for z in (z0, z1))
            agree = z0.detach().argmax(1) == z1.detach().argmax(1)
            pool = agree if hp["select_on"] == "agreement" else ~agree
            step = epoch * per_epoch + i
            sel, discarded = co_select(l0, l1, pool, tau, step, int(hp["warm_steps"]))
            track.add(b.idx, sel)
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            sel.loss.backward()
            for opt in self.optimizers:
                opt.step()
            meter.add(sel.value, len(b))
            if stage == 2:
                self._move_labels(b, z0.detach(), z1.detach(), rows, discarded, subset, top)
        diag = {"train_loss": meter.mean(), "forget_rate": tau, **track.result()}
        if stage >= 2:
            new = y_logits.argmax(1)
            idx = torch.nonzero(new != self.data.train_labels).squeeze(1)
            diag["corrected"] = (idx.cpu().numpy(), new[idx].cpu().numpy())
        return diag

    def _move_labels(self, b, z0, z1, rows, discarded, subset, top: int) -> None:
        """Stage 2's label update of one batch (after the networks' step)."""
        hp = self.hp
        alpha, beta, lam = float(hp["alpha"]), float(hp["beta"]), float(hp["lambda1"])
        ya, yb = rows.clone().requires_grad_(True), rows.clone().requires_grad_(True)
        la = pencil_loss(z0, torch.softmax(ya, 1), b.y, alpha, beta).mean()
        lb = pencil_loss(z1, torch.softmax(yb, 1), b.y, alpha, beta).mean()
        ga, gb = torch.autograd.grad((la, lb), (ya, yb))
        grad = ga + gb if hp["mix_grad"] else ga
        new = (rows - lam * grad).detach()
        move = torch.ones(len(b), dtype=torch.bool, device=rows.device)
        if hp["discard"]:  # only the samples left out of the selection
            move = discarded
        if hp["curriculum"]:
            move = move & (subset[b.idx] <= top)
        y_logits = self.per_sample["y_logits"]
        y_logits[b.idx[move]] = new[move]

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {"per_sample": self.per_sample.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.per_sample.load_state_dict(state["per_sample"])
