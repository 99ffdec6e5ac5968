"""CoDis (Xia et al., ICCV 2023): small-loss selection that prefers high-discrepancy samples.

Per sample and net k, the score is ℓ^k = CE(z^k, ỹ) − λ·D(p¹, p²). Each net keeps its
⌊(1 − τ_e)·B⌋ smallest scores; net 1 is trained on the mean of ℓ¹ over the set net 2 kept and
vice versa (tmllab/2023_ICCV_CoDis ``loss.py::loss_ours``). The discrepancy D (``discrepancy``):

- ``official`` (default): what the official ``js_loss_compute`` computes,
  ``D = ½[KL(m‖p¹) + KL(m‖p²)]`` with ``m = ½(p¹ + p²)``: it calls ``F.kl_div(log p^k, m)``,
  i.e. ``Σ_j m_j (log m_j − log p^k_j)``, element-wise (``reduce=False``) and summed over
  classes. The KLs run from m to each prediction, so D is not the Jensen–Shannon divergence and
  is unbounded (p¹ = (.98, .01, .01), p² = (.01, .98, .01): 1.59 against the JS's 0.63);
- ``js``: the textbook Jensen–Shannon divergence ``½[KL(p¹‖m) + KL(p²‖m)]`` (≤ log 2).

Both are computed in log space from the logits, without LNMBench's clamping of m at 1e-8 (which
changes nothing above that floor). D is not detached: −λ·D reaches each net through its own
prediction (pushing it away from its peer, which keeps the two diverse). As in the official code
(one backward and ``zero_grad`` per optimiser), each net gets the gradient of its own loss only:
in net k's loss the peer's probabilities enter as constants, which gives the same gradients with
one backward pass (LNMBench back-propagated the sum, so each net also received the other loss's
−λ·D gradient; see ``docs/deviations.md``). With identical networks D = 0 and CoDis is Co-teaching.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._selection import SmallLossMethod, cross_small_loss, per_sample_ce

DISCREPANCIES = ("official", "js")


def _log_mixture(lp0: torch.Tensor, lp1: torch.Tensor) -> torch.Tensor:
    return torch.logaddexp(lp0, lp1) - math.log(2.0)


def js_divergence(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Per-sample textbook JS(softmax(z0), softmax(z1)) = ½[KL(p¹‖m) + KL(p²‖m)] (natural log)."""
    lp0, lp1 = F.log_softmax(z0, 1), F.log_softmax(z1, 1)
    lm = _log_mixture(lp0, lp1)
    return 0.5 * ((lp0.exp() * (lp0 - lm)).sum(1) + (lp1.exp() * (lp1 - lm)).sum(1))


def official_discrepancy(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Per-sample ½[KL(m‖p¹) + KL(m‖p²)], the official ``js_loss_compute(z0, z1, reduce=False)``:
    ``½·Σ_j [kl_div(log p¹, m) + kl_div(log p², m)]_j`` with ``kl_div(a, t) = t·(log t − a)``."""
    lp0, lp1 = F.log_softmax(z0, 1), F.log_softmax(z1, 1)
    lm = _log_mixture(lp0, lp1)
    m = lm.exp()
    return 0.5 * (m * (2.0 * lm - lp0 - lp1)).sum(1)


def discrepancy(z0: torch.Tensor, z1: torch.Tensor, kind: str = "official") -> torch.Tensor:
    if kind == "official":
        return official_discrepancy(z0, z1)
    if kind == "js":
        return js_divergence(z0, z1)
    raise ValueError(f"codis: discrepancy {kind!r}; allowed: {', '.join(DISCREPANCIES)}")


def codis_scores(
    z0, z1, y, co_lambda: float, kind: str = "official"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ℓ¹, ℓ²): the values are CE − λ·D; ℓ^k carries gradient to z^k only."""
    l0 = per_sample_ce(z0, y) - co_lambda * discrepancy(z0, z1.detach(), kind)
    l1 = per_sample_ce(z1, y) - co_lambda * discrepancy(z0.detach(), z1, kind)
    return l0, l1


class CoDis(SmallLossMethod):
    name = "codis"
    # reference values: co_lambda 0.15 (CoDis/main.py --co_lam), num_gradual 10, exponent 1,
    # forget_rate = noise rate
    order = 7
    relative_cost = 1.7
    params = {
        **SmallLossMethod.params,
        "co_lambda": {"default": 0.15, "type": "number", "minimum": 0},
        "discrepancy": {
            "default": "official",
            "enum": ["official", "js"],
            "description": "official: 1/2[KL(m||p1) + KL(m||p2)] as js_loss_compute computes it; js: the textbook 1/2[KL(p1||m) + KL(p2||m)]",
        },
    }

    def select(self, epoch, tau, z0, z1, y):
        scores = codis_scores(z0, z1, y, float(self.hp["co_lambda"]), self.hp["discrepancy"])
        return cross_small_loss(*scores, tau)
