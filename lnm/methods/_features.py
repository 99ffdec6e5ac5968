"""A backbone split at its final linear layer, for methods that need the penultimate features
(ProMix's auxiliary pseudo-label head, Co-Correcting's curriculum clustering).

Every backbone of :mod:`lnm.models` ends in a linear classifier named ``fc`` (ResNet-8, timm's
ResNets, torchvision's ResNet-50), applied to the globally pooled, flattened features.
:class:`SplitNet` holds the backbone with ``fc`` replaced by the identity (``body``: images ->
features) and the original ``fc``; its ``forward`` is the unchanged classifier, so evaluation,
checkpoints and compilation treat it as any network.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SplitNet(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        head = getattr(model, "fc", None)
        if not isinstance(head, nn.Linear):
            raise TypeError(
                f"{type(model).__name__}: expected a final linear layer named 'fc' (every "
                "backbone of lnm.models has one) to split off the penultimate features"
            )
        model.fc = nn.Identity()
        self.body, self.fc = model, head

    @property
    def num_features(self) -> int:
        return self.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def features(method, net: SplitNet, x: torch.Tensor) -> torch.Tensor:
    """Penultimate features of ``net`` in float32, computed as :meth:`Method.forward` computes
    logits (channels-last on CUDA, the run's autocast)."""
    if method.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with method.autocast():
        return net.body(x).float()


def head(method, layer: nn.Linear, feats: torch.Tensor) -> torch.Tensor:
    """A linear head applied to float32 features under the run's autocast; float32 logits."""
    with method.autocast():
        return layer(feats).float()
