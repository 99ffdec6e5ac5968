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

The number kept (``keep_count``): ``rounded`` (default) rounds (1 − τ_e)·n to 6 decimals before
the floor, so float error never drops a sample; ``truncated`` is the official
``int((1 − τ_e)·n)`` on the float product, which gives 0 for |D| = 10 at τ 0.9 (0.999…), so
both nets then train on all 10 samples of D (presets/reference.yaml sets it: the reference
protocol reproduces the original; 104 (τ_e, |D|) pairs of the reference schedules differ, all at
τ 0.8 and 0.9).

Reference bugs fixed (``docs/deviations.md``; the switch in brackets restores the original): the
CE is computed on logits (the reference applied it to softmax outputs after ``init_epoch``, a
double softmax) [``ce_input: softmax``]; the loss is the plain mean over the kept samples (the
reference divided that mean again by the number kept) [``divide_by_kept: true``]; the
warm-start step is the true global step ``epoch × batches_per_epoch + batch_idx`` (the original
passed ``epoch × batch_idx``: 0 for every first batch) [``step_count: epoch_times_batch``]; the
disagreement set is a boolean mask (the reference filtered its indices with
``index * mask != 0``, which drops the last sample of D whenever the sample at global index 0 is
in it) and the reported selections are the samples actually used, mapped to their own indices
(the reference mapped subset positions to the wrong samples) [no switch].

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
    phases = ({"name": "coteaching", "until": "init_epoch"}, {"name": "disagreement"})
    relative_cost = 1.9
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
        "keep_count": {
            "default": "rounded",
            "enum": ["rounded", "truncated"],
            "description": "number kept: rounded = floor of (1 - tau) n rounded to 6 decimals (robust to float error); truncated = int((1 - tau) n) on the float product (official; reference protocol)",
        },
        "ce_input": {
            "default": "logits",
            "enum": ["logits", "softmax"],
            "description": "after init_epoch the CE is computed on the logits; softmax = on the softmax outputs (the official double softmax)",
        },
        "divide_by_kept": {
            "default": False,
            "type": "boolean",
            "description": "true: each net's mean CE over the kept samples is divided again by the number kept (official loss_coteaching)",
        },
        "step_count": {
            "default": "global",
            "enum": ["global", "epoch_times_batch"],
            "description": "the step compared with warm_steps: global = epoch x batches_per_epoch + batch index; epoch_times_batch = epoch x batch index (official)",
        },
    }

    def train_epoch(self, epoch, batches):
        self._batch = 0  # index of the next batch within the epoch
        return super().train_epoch(epoch, batches)

    def _next_step(self, epoch: int) -> int:
        """The step of this batch that is compared with ``warm_steps`` (``step_count``)."""
        batch, self._batch = self._batch, self._batch + 1
        if self.hp["step_count"] == "epoch_times_batch":
            return epoch * batch
        return epoch * self.data.batches_per_epoch() + batch

    @property
    def init_epoch(self) -> int:
        return int(self.hp["init_epoch"])

    def select(self, epoch, tau, z0, z1, y):
        keep = {"keep_rule": self.hp["keep_count"], "divide_by_kept": self.hp["divide_by_kept"]}
        step = self._next_step(epoch)
        if epoch < self.init_epoch:  # the official loss_coteaching on the logits
            return cross_small_loss(per_sample_ce(z0, y), per_sample_ce(z1, y), tau, **keep)
        if self.hp["ce_input"] == "softmax":  # the official CE of the softmax outputs
            ce0, ce1 = per_sample_ce(z0.softmax(1), y), per_sample_ce(z1.softmax(1), y)
        else:
            ce0, ce1 = per_sample_ce(z0, y), per_sample_ce(z1, y)
        disagree = z0.detach().argmax(1) != z1.detach().argmax(1)
        # |D| on the host: the batch's one sync (which rule applies, how many to keep and whether
        # to step at all depend on it)
        num_disagree = int(disagree.sum())
        if num_disagree:  # small-loss exchange within D (all of D if none would be kept)
            sel = cross_small_loss(
                ce0, ce1, tau, eligible=disagree, num_eligible=num_disagree, **keep
            )
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
