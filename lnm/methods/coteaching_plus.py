"""Co-teaching+ (Yu et al., ICML 2019): Co-teaching restricted to the samples the nets disagree on.

For epochs < ``init_epoch`` this is Co-teaching. Afterwards, per batch, only the samples whose
argmax predictions differ between the two nets (the disagreement set D) are eligible; within D
each net keeps its ⌊(1 − τ_e)·|D|⌋ smallest-CE samples and the peer is trained on them
(reference-protocol §4.7).

Reference bugs fixed (§6.9): the CE is computed on logits (the reference applied it to softmax
outputs, a double softmax); the disagreement set is a boolean mask, so the sample at global index
0 is selectable (the reference filtered indices by ``index * mask != 0``); the reported selections
are the samples actually used, mapped to their own indices (the reference mapped subset positions
to the wrong samples).

A batch with no disagreement (or too few samples to keep one): as in the original code, both nets
take a plain full-batch CE step while the global step is below ``warm_steps`` (5000), and no
update later. The original counted the step as ``epoch × batch_idx`` (a bug: 0 for the whole first
epoch and every first batch); here it is the true step ``epoch × batches_per_epoch + batch_idx``.
Without that warm start, two nets that agree early (easy or binary tasks) never train again.

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
        sel = cross_small_loss(ce0, ce1, tau, eligible=disagree)
        if sel.loss is None and step < int(self.hp["warm_steps"]):  # the original's warm start
            part0, part1 = ce0.mean(), ce1.mean()
            used = torch.ones_like(disagree)
            sel = Selection(
                part0 + part1, (part0, part1), {"selected_net0": used, "selected_net1": used}
            )
        sel.counts["disagreement"] = disagree.sum()
        return sel
