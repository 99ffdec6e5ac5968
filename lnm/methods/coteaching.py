"""Co-teaching (Han et al., NeurIPS 2018): two networks teach each other with small-loss samples.

Per batch each net ranks the samples by its own cross-entropy and keeps the ⌊(1 − τ_e)·B⌋
smallest; net 1 is updated on the set net 2 kept and vice versa (bhanML/Co-teaching
``loss.py::loss_coteaching``). τ_e is the original ``rate_schedule``: ``linspace(0, τ**c,
num_gradual)`` over the first ``num_gradual`` epochs, then τ (see ``_selection``). The loss is
the plain mean over the kept samples (the original code also divided that mean by the number
kept); if ⌊(1 − τ_e)·B⌋ = 0 the whole batch is used (the original divided by zero). Deviations
from the official code and LNMBench: ``docs/deviations.md``.
"""

from __future__ import annotations

from ._selection import SmallLossMethod, cross_small_loss, per_sample_ce


class CoTeaching(SmallLossMethod):
    name = "coteaching"
    # reference values: forget_rate = noise rate (--forget_rate unset), num_gradual 10, exponent 1
    order = 5
    relative_cost = 1.6

    def select(self, epoch, tau, z0, z1, y):
        return cross_small_loss(per_sample_ce(z0, y), per_sample_ce(z1, y), tau)
