"""Co-teaching+ (Yu et al., ICML 2019): Co-teaching restricted to the samples the nets disagree on.

For epochs < ``init_epoch`` this is Co-teaching. Afterwards, per batch, only the samples whose
argmax predictions differ between the two nets (the disagreement set D) are eligible. The batch
rule is the official ``loss_coteaching_plus`` (xingruiyu/coteaching_plus ``loss.py``):

- D non-empty: within D each net keeps its ⌊(1 − τ_e)·|D|⌋ smallest-CE samples and the peer is
  trained on them; if that number is 0 (e.g. |D| = 5, τ = 0.9), both nets are trained on all of
  D (the official ``loss_coteaching`` falls back to every sample it was given), at any step;
- D empty: both nets take a plain full-batch CE step while the global step is below
  ``warm_steps`` (5000); later the loss is zero, and (``empty_step``) the optimisers still step
  with that zero gradient, as the official code does (``optimizer.step()`` after a zero loss:
  momentum and Adam's moments keep moving the weights; weight decay still applies).

Reference bugs fixed (``docs/deviations.md``): the CE is computed on logits (the reference applied
it to softmax outputs, a double softmax); the disagreement set is a boolean mask, so the sample
at global index 0 is selectable (the reference filtered indices by ``index * mask != 0``); the
reported selections are the samples actually used, mapped to their own indices (the reference
mapped subset positions to the wrong samples); the loss is the plain mean over the kept samples
(the reference divided that mean again by the number kept); the warm-start step is the true
global step ``epoch × batches_per_epoch + batch_idx`` (the original passed ``epoch × batch_idx``:
0 for the whole first epoch and every first batch).

The epoch diagnostic ``disagreement`` is the % of the samples seen that were in a disagreement set.
"""

from __future__ import annotations

import torch

from ._selection import Selection, SmallLossMethod, cross_small_loss, per_sample_ce


class CoTeachingPlus(SmallLossMethod):
    name = "coteaching_plus"
    # reference values (coteaching_plus/main.py as run by LNMBench): init_epoch 5, num_gradual 10,
    # exponent 1, forget_rate = noise rate
    order = 6
    params = {
        **SmallLossMethod.params,
        "init_epoch": {
            "default": 5,
            "type": "integer",
            "minimum": 0,
            "description": "epochs of plain co-teaching before disagreement",
        },
        "warm_steps": {
            "default": 5000,
            "type": "integer",
            "minimum": 0,
            "description": "global steps during which an empty disagreement set trains on the full batch",
        },
        "empty_step": {
            "default": True,
            "type": "boolean",
            "description": "after warm_steps, a batch without disagreement still steps the optimisers with a zero gradient (original); false: no step",
        },
    }

    def train_epoch(self, epoch, batches):
        self._step = epoch * self.data.batches_per_epoch()  # global step of the next batch
        return super().train_epoch(epoch, batches)

    @property
    def init_epoch(self) -> int:
        return int(self.hp["init_epoch"])

    def select(self, epoch, tau, z0, z1, y):
        ce0, ce1 = per_sample_ce(z0, y), per_sample_ce(z1, y)
        if epoch < self.init_epoch:
            return cross_small_loss(ce0, ce1, tau)
        step, self._step = self._step, self._step + 1
        disagree = z0.detach().argmax(1) != z1.detach().argmax(1)
        # |D| on the host: the batch's one sync (which rule applies, how many to keep and whether
        # to step at all depend on it)
        num_disagree = int(disagree.sum())
        if num_disagree:  # small-loss exchange within D (all of D if none would be kept)
            sel = cross_small_loss(ce0, ce1, tau, eligible=disagree, num_eligible=num_disagree)
        elif step < int(self.hp["warm_steps"]):  # the original's warm start: full-batch CE
            part0, part1 = ce0.mean(), ce1.mean()
            used = torch.ones_like(disagree)
            sel = Selection(
                part0 + part1, (part0, part1), {"selected_net0": used, "selected_net1": used}
            )
        else:  # zero loss; the original still calls optimizer.step()
            zero = 0.0 * (ce0.mean() + ce1.mean())
            nothing = torch.zeros_like(disagree)
            masks = {"selected_net0": nothing, "selected_net1": nothing}
            sel = Selection(zero if self.hp["empty_step"] else None, (zero,), masks)
        sel.counts["disagreement"] = disagree.sum()
        return sel
