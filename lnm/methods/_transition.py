"""Transition-matrix building blocks shared by T-Revision and VolMinNet (not a method).

Orientation everywhere: ``T[i, j] = P(noisy = j | clean = i)``; rows sum to one, and the noisy
class posterior of a sample is ``p_clean @ T`` (row vector times matrix, i.e. ``Tᵀ p``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def row_normalize(t: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide every row by its sum (rows become distributions over noisy labels)."""
    return t / t.sum(-1, keepdim=True).clamp_min(eps)


def noisy_posterior(p_clean: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Forward-corrected probabilities ``P(noisy = j | x) = Σ_i p_i(x) T[i, j]``, shape (B, C);
    ``t`` is one (C, C) matrix for the batch or one per sample, (B, C, C)."""
    if t.dim() == 3:
        return torch.einsum("bi,bij->bj", p_clean, t)
    return p_clean @ t


def importance_weights(
    p_clean: torch.Tensor, y: torch.Tensor, t: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """T-Revision's ``β_i = p(ỹ_i | x_i) / (p(x_i) @ T)[ỹ_i]`` (clean over noisy posterior)."""
    num = p_clean.gather(1, y[:, None]).squeeze(1)
    den = noisy_posterior(p_clean, t).gather(1, y[:, None]).squeeze(1)
    return num / den.clamp_min(eps)


@torch.no_grad()
def anchor_transition(probs: torch.Tensor, percentile: float = 97.0) -> torch.Tensor:
    """Anchor-point estimate of T from noisy class posteriors ``probs`` (N, C).

    For each class i the anchor is the sample with the largest ``probs[:, i]`` once the samples
    at or above the column's ``percentile``-th percentile ("higher" interpolation, as in the
    official T-Revision code) are left out as over-confident outliers; row i of T̂ is that
    sample's posterior. Every column's percentile is taken on the unmodified matrix (the
    reference zeroed entries in place, so later rows could read zeroed values), and the result is
    ROW-normalised (the reference divided columns by the row sums).
    """
    probs = probs.double()
    c = probs.shape[1]
    rows = []
    for i in range(c):  # C iterations, not a per-sample loop
        col = probs[:, i]
        if percentile >= 100:
            keep = torch.ones_like(col, dtype=torch.bool)
        else:
            thresh = np.percentile(col.cpu().numpy(), percentile, method="higher")
            keep = col < float(thresh)
        if not keep.any():  # all equal: nothing below the threshold, fall back to the maximum
            keep = torch.ones_like(keep)
        anchor = torch.where(keep, col, torch.full_like(col, -1.0)).argmax()
        rows.append(probs[anchor])
    return row_normalize(torch.stack(rows)).float()


class SigmoidTransition(nn.Module):
    """VolMinNet's learnable T = rownorm(I + sigmoid(W) ⊙ (1 − I)), W initialised to ``init``."""

    def __init__(self, num_classes: int, init: float = -2.0):
        super().__init__()
        self.w = nn.Parameter(torch.full((num_classes, num_classes), float(init)))
        self.register_buffer("eye", torch.eye(num_classes), persistent=False)

    def forward(self) -> torch.Tensor:
        t = self.eye + torch.sigmoid(self.w) * (1 - self.eye)
        return F.normalize(t, p=1, dim=1)  # entries are positive: L1 row normalisation
