"""Backbones: shapes, the small-input stem, and a clear error for offline pretrained weights."""

import pytest
import torch

from lnm.models import ModelError, build_model


@pytest.mark.parametrize("name", ["resnet8", "resnet18", "tv_resnet50"])
def test_backbones_classify_small_and_gray_images(name):
    model = build_model(name, in_chans=1, num_classes=5, img_size=28)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 5)


def test_torchvision_resnet50_classifies_large_gray_images():
    model = build_model("tv_resnet50", in_chans=1, num_classes=5, img_size=64).eval()
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 5)


@pytest.mark.parametrize("name", ["resnet18", "tv_resnet50"])
def test_small_inputs_get_a_3x3_stride_1_stem_without_max_pool(name):
    small, large = build_model(name, 3, 2, 28), build_model(name, 3, 2, 224)
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


def test_torchvision_weights_offline_fail_clearly(monkeypatch, tmp_path):
    import urllib.error

    import torch.hub

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    monkeypatch.setattr(torch.hub, "urlopen", offline)  # the weight download
    with pytest.raises(
        ModelError,
        match=r"pretrained torchvision weights for 'tv_resnet50'.*IMAGENET1K_V1.*"
        r"TORCH_HOME.*pretrained: false",
    ):
        build_model("tv_resnet50", 3, 2, 224, pretrained=True)


def test_torchvision_weights_are_imagenet1k_v1_with_a_new_head(monkeypatch):
    """pretrained: the IMAGENET1K_V1 state dict is loaded (a stand-in here: no network), the
    1000-class head replaced; a gray input sums the RGB filters of the first convolution."""
    import torchvision.models._api as api
    from torchvision.models import ResNet50_Weights, resnet50

    fake = resnet50().state_dict()
    urls = []

    def download(url, *args, **kwargs):
        urls.append(url)
        return fake

    monkeypatch.setattr(api, "load_state_dict_from_url", download)
    model = build_model("tv_resnet50", 1, 4, 224, pretrained=True)
    assert urls == [ResNet50_Weights.IMAGENET1K_V1.url]
    assert torch.equal(model.layer1[0].conv1.weight, fake["layer1.0.conv1.weight"])
    assert model.fc.out_features == 4
    assert torch.allclose(model.conv1.weight, fake["conv1.weight"].sum(1, keepdim=True))
