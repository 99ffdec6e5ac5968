"""Loss functions shared by several methods (modules starting with ``_`` are not registered)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gce(
    logits: torch.Tensor, targets: torch.Tensor, q: float = 0.7, reduction: str = "mean"
) -> torch.Tensor:
    """Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018): ``(1 - p_y^q) / q``.

    q -> 0 recovers CE, q = 1 is MAE; DISC uses q = 0.7 on its hard set. ``p_y`` is clamped
    at 1e-7 so the gradient stays finite.
    """
    if not 0.0 < q <= 1.0:
        raise ValueError(f"GCE needs 0 < q <= 1, got {q}")
    p_y = F.softmax(logits.float(), dim=1).gather(1, targets.view(-1, 1)).squeeze(1)
    loss = (1.0 - p_y.clamp(min=1e-7) ** q) / q
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()
