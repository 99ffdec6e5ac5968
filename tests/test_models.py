"""Backbones: shapes, the small-input stem, and a clear error for offline pretrained weights."""

import pytest
import torch

from lnm.models import ModelError, build_model


@pytest.mark.parametrize("name", ["resnet8", "resnet18"])
def test_backbones_classify_small_and_gray_images(name):
    model = build_model(name, in_chans=1, num_classes=5, img_size=28)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 5)


def test_small_inputs_get_a_3x3_stride_1_stem_without_max_pool():
    small, large = build_model("resnet18", 3, 2, 28), build_model("resnet18", 3, 2, 224)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, torch.nn.Identity)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.stride == (2, 2)
    assert not isinstance(large.maxpool, torch.nn.Identity)


def test_pretrained_weights_offline_fail_clearly(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # read at import time: patch it too
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(
        ModelError,
        match=r"pretrained timm weights for 'resnet18'.*"
        r"pretrained: false",
    ):
        build_model("resnet18", 3, 2, 28, pretrained=True)


def test_unknown_backbone_and_pretrained_resnet8_are_refused():
    with pytest.raises(ModelError, match=r"unknown backbone 'vit'.*allowed: resnet8, resnet18"):
        build_model("vit", 3, 2, 28)
    with pytest.raises(ModelError, match="resnet8 has no pretrained weights"):
        build_model("resnet8", 3, 2, 28, pretrained=True)
