"""Mixup (Zhang et al. 2018) with soft targets, and temperature sharpening (MixMatch).

Used by DivideMix (Beta(4, 4), over labelled + unlabelled inputs) and DISC (Beta(5, 5), per
view over its mix set). Randomness: the mixing coefficient comes from the global numpy RNG
(as ``np.random.beta`` in the original code) and the partner permutation from a CPU
``torch.Generator`` (the batch generator) or, if none is given, the global torch CPU RNG;
the trainer seeds and checkpoints both, so a resumed run draws the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def sample_lambda(alpha: float) -> float:
    """λ ~ Beta(α, α), folded to λ = max(λ, 1 − λ) so the first input dominates (α ≤ 0: 1)."""
    if alpha <= 0:
        return 1.0
    lam = float(np.random.beta(alpha, alpha))
    return max(lam, 1.0 - lam)


def mixup(
    x: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    gen: torch.Generator | None = None,
    lam: float | None = None,
):
    """Mix ``x`` and its soft ``targets`` with a random partner from the same batch.

    Returns ``(mixed_x, mixed_targets, lam, perm)`` with
    ``mixed = lam * v + (1 - lam) * v[perm]`` for both inputs and targets.
    """
    lam = sample_lambda(alpha) if lam is None else float(lam)
    perm = torch.randperm(len(x), generator=gen).to(x.device)
    mixed_x = lam * x + (1.0 - lam) * x[perm]
    mixed_t = lam * targets + (1.0 - lam) * targets[perm]
    return mixed_x, mixed_t, lam, perm


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-Σ_k t_k log softmax(z)_k`` (targets are distributions)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def sharpen(p: torch.Tensor, T: float) -> torch.Tensor:
    """Temperature sharpening along the last axis: ``p^(1/T) / Σ_k p_k^(1/T)``."""
    pt = p ** (1.0 / T)
    return pt / pt.sum(-1, keepdim=True)
