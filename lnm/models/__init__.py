"""Backbones: timm ResNets, torchvision's ResNet-50 (LNMBench's) and a small CPU-friendly ResNet.

Every ImageNet ResNet gets a CIFAR-style stem under 64 px (:data:`SMALL_INPUT`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..grid import BACKBONES, TIMM_BACKBONES, TORCHVISION_BACKBONES
from .small import SmallResNet

__all__ = ["BACKBONES", "TIMM_BACKBONES", "TORCHVISION_BACKBONES", "build_model"]
SMALL_INPUT = 64  # below this size the 7x7/2 stem and max-pool throw away most of the image
OFFLINE_HINT = "This machine may be offline: "


class ModelError(RuntimeError):
    pass


def build_model(
    name: str, in_chans: int, num_classes: int, img_size: int, pretrained: bool = False
) -> nn.Module:
    """Create a classifier. ``resnet8`` is ours, ``tv_resnet50`` is torchvision's ResNet-50
    (``pretrained``: ``ResNet50_Weights.IMAGENET1K_V1``, LNMBench's weights); the rest come
    from timm (``pretrained``: timm's default ImageNet weights).

    For inputs under 64 px the ImageNet stem is replaced by a 3x3 stride-1 convolution and the
    max-pool removed (the usual CIFAR-style stem); with ``pretrained`` that stem is then
    freshly initialised while the rest keeps the ImageNet weights.
    """
    if name == "resnet8":
        if pretrained:
            raise ModelError("resnet8 has no pretrained weights; set pretrained: false")
        return SmallResNet(in_chans, num_classes)
    small = img_size < SMALL_INPUT
    if name in TORCHVISION_BACKBONES:
        model = _torchvision_resnet50(in_chans, num_classes, pretrained, adapt_stem=not small)
    elif name in TIMM_BACKBONES:
        model = _timm_model(name, in_chans, num_classes, pretrained)
    else:
        raise ModelError(f"unknown backbone {name!r}; allowed: {', '.join(BACKBONES)}")
    if small:
        model.conv1 = nn.Conv2d(in_chans, model.conv1.out_channels, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    return model


def _timm_model(name: str, in_chans: int, num_classes: int, pretrained: bool) -> nn.Module:
    import timm

    try:
        return timm.create_model(
            name, pretrained=pretrained, in_chans=in_chans, num_classes=num_classes
        )
    except Exception as err:  # hub/network errors surface as many types
        if not pretrained:
            raise
        raise ModelError(
            f"could not load pretrained timm weights for {name!r} ({type(err).__name__}: {err}). "
            f"{OFFLINE_HINT}pre-fill the Hugging Face cache (HF_HOME) on a "
            "machine with network access, or set pretrained: false"
        ) from err


def _torchvision_resnet50(
    in_chans: int, num_classes: int, pretrained: bool, adapt_stem: bool = True
) -> nn.Module:
    """torchvision's ResNet-50; with ``pretrained`` its ``IMAGENET1K_V1`` weights and a new
    ``num_classes`` head. Other than 3 input channels (``adapt_stem``; the small-input stem
    replaces it anyway): pretrained weights of the first convolution are adapted as timm adapts
    them (summed over RGB for one channel, else tiled and rescaled); without weights it is
    initialised as torchvision initialises it."""
    from timm.models import adapt_input_conv
    from torchvision.models import ResNet50_Weights, resnet50

    if not pretrained:
        model = resnet50(weights=None, num_classes=num_classes)
    else:
        weights = ResNet50_Weights.IMAGENET1K_V1
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as err:  # download/hash errors surface as many types
            raise ModelError(
                f"could not load pretrained torchvision weights for 'tv_resnet50' "
                f"(ResNet50_Weights.IMAGENET1K_V1; {type(err).__name__}: {err}). {OFFLINE_HINT}"
                f"pre-fill the torch hub cache (TORCH_HOME, file {weights.url.rsplit('/', 1)[-1]} "
                "under hub/checkpoints) on a machine with network access, or set "
                "pretrained: false"
            ) from err
        model = resnet50(weights=None)
        model.load_state_dict(state)
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    if in_chans != 3 and adapt_stem:
        old = model.conv1
        conv = nn.Conv2d(in_chans, old.out_channels, 7, 2, 3, bias=False)
        with torch.no_grad():
            if pretrained:
                conv.weight.copy_(adapt_input_conv(in_chans, old.weight))
            else:
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        model.conv1 = conv
    return model
