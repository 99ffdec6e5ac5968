"""Backbones: timm ResNets (CIFAR-style stem under 64 px) and a small CPU-friendly ResNet."""

from __future__ import annotations

import torch.nn as nn

from ..grid import BACKBONES, TIMM_BACKBONES
from .small import SmallResNet

__all__ = ["BACKBONES", "TIMM_BACKBONES", "build_model"]
SMALL_INPUT = 64  # below this size the 7x7/2 stem and max-pool throw away most of the image


class ModelError(RuntimeError):
    pass


def build_model(
    name: str, in_chans: int, num_classes: int, img_size: int, pretrained: bool = False
) -> nn.Module:
    """Create a classifier. ``resnet8`` is ours; the rest come from timm.

    For inputs under 64 px the timm stem is replaced by a 3x3 stride-1 convolution and the
    max-pool removed (the usual CIFAR-style stem); with ``pretrained`` that stem is then
    freshly initialised while the rest keeps the timm weights.
    """
    if name == "resnet8":
        if pretrained:
            raise ModelError("resnet8 has no pretrained weights; set pretrained: false")
        return SmallResNet(in_chans, num_classes)
    if name not in TIMM_BACKBONES:
        raise ModelError(f"unknown backbone {name!r}; allowed: {', '.join(BACKBONES)}")
    import timm

    try:
        model = timm.create_model(
            name, pretrained=pretrained, in_chans=in_chans, num_classes=num_classes
        )
    except Exception as err:  # hub/network errors surface as many types
        if not pretrained:
            raise
        raise ModelError(
            f"could not load pretrained timm weights for {name!r} ({type(err).__name__}: {err}). "
            "This machine may be offline: pre-fill the Hugging Face cache (HF_HOME) on a "
            "machine with network access, or set pretrained: false"
        ) from err
    if img_size < SMALL_INPUT:
        model.conv1 = nn.Conv2d(in_chans, model.conv1.out_channels, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    return model
