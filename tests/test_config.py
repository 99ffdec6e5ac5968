"""Config validation: every bad value is named with its key and what is allowed."""

import copy
from pathlib import Path

import pytest
import yaml

from lnm.config import ConfigError, load_config, load_schema, noise_cells, run_dirs, validate_config
from lnm.data import DATASETS
from lnm.methods import METHODS, ORDER
from lnm.models import BACKBONES

REPO = Path(__file__).resolve().parent.parent
BASE = yaml.safe_load((REPO / "config.yaml").read_text())


def bad(**patch):
    cfg = copy.deepcopy(BASE)
    for dotted, value in patch.items():
        *parents, last = dotted.split("__")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    return str(err.value)


def test_shipped_configs_are_valid():
    assert (
        len(run_dirs(load_config(REPO / "config.yaml"))) == 4 * 9 * 11 * 3
    )  # datasets x cells x methods x seeds
    demo = load_config(REPO / "config.yaml", REPO / "presets" / "demo.yaml")
    assert demo["datasets"] == ["breastmnist", "retinamnist"]
    assert [c.tag for c in noise_cells(demo)][:5] == [
        "none-0.0-n0",
        "symmetric-0.2-n0",
        "symmetric-0.4-n0",
        "instance-0.2-n0",
        "instance-0.4-n0",
    ]
    smoke = load_config(REPO / "config.yaml", REPO / "presets" / "smoke.yaml")
    assert [c.tag for c in noise_cells(smoke)] == ["none-0.0-n0", "symmetric-0.4-n0"]


@pytest.mark.parametrize(
    "patch, needles",
    [
        ({"noise__patterns": {"symmetric": [1.5]}}, ["noise.patterns.symmetric[0]", "1.5", "< 1"]),
        ({"methods": ["ce", "coteching"]}, ["methods[1]", "'coteching'", "allowed values", "'ce'"]),
        ({"datasets": ["mnist"]}, ["datasets[0]", "'mnist'", "pathmnist"]),
        ({"train__epochs": -3}, ["train.epochs", "-3", ">= 1"]),
        ({"seeds": [-1]}, ["seeds[0]", "-1", ">= 0"]),
        ({"size": 32}, ["size", "32", "[28, 64, 128, 224]"]),
        (
            {"train__optimizer": {"name": "sgd", "lr": 0.1, "momentun": 0.9}},
            ["'momentun'", "train.optimizer", "'momentum'"],
        ),
        ({"epcohs": 3}, ["'epcohs'", "top level", "allowed keys"]),
    ],
)
def test_bad_values_are_named(patch, needles):
    msg = bad(**patch)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_schema_enums_match_the_code():
    props = load_schema()["properties"]
    assert props["methods"]["items"]["enum"] == list(ORDER)
    assert set(METHODS) <= set(ORDER)
    assert props["datasets"]["items"]["enum"] == list(DATASETS)
    assert props["backbones"]["items"]["enum"] == list(BACKBONES)


def test_method_params_keys_are_checked_against_the_method():
    msg = bad(method_params={"ce": {"label_smoothin": 0.1}})
    assert "method_params.ce" in msg and "'label_smoothin'" in msg and "'label_smoothing'" in msg
    msg = bad(method_params={"cee": {}})
    assert "'cee'" in msg and "method_params" in msg


def test_reference_protocol_applies_the_method_recipe():
    from lnm.train.spec import RunSpec

    cfg = load_config(
        REPO / "config.yaml",
        overrides={
            "protocol": "reference",
            "recipes": {"ce": {"batch_size": 16, "optimizer": {"name": "adam", "lr": 0.001}}},
        },
    )
    spec = RunSpec.from_config(cfg, "pathmnist", "symmetric", "0.2", "0", "ce", "resnet50", "0")
    assert spec.batch_size == 16 and spec.optimizer["name"] == "adam"
    assert spec.optimizer["lr"] == 0.001 and spec.epochs == cfg["train"]["epochs"]
    cfg["protocol"] = "harmonized"
    spec = RunSpec.from_config(cfg, "pathmnist", "symmetric", "0.2", "0", "ce", "resnet50", "0")
    assert spec.batch_size == cfg["train"]["batch_size"] and spec.optimizer["name"] == "sgd"


def test_defaults_are_filled():
    cfg = copy.deepcopy(BASE)
    del cfg["runtime"]
    validate_config(cfg)
    assert cfg["runtime"] == {"device": "auto", "keep_checkpoints": False}


def test_run_params_keep_only_settings_the_run_uses():
    """A cosine schedule ignores milestones and SGD ignores betas: neither may enter params."""
    from lnm.train.spec import RunSpec

    cfg = load_config(REPO / "config.yaml", REPO / "presets" / "demo.yaml")
    assert "milestones" in cfg["train"]["schedule"]  # inherited from config.yaml by the merge
    spec = RunSpec.from_config(cfg, "breastmnist", "none", "0.0", "0", "ce", "resnet8", "0")
    assert spec.schedule == {"name": "cosine"}
    other = copy.deepcopy(cfg)
    other["train"]["schedule"]["milestones"] = [3, 7]
    other["train"]["optimizer"]["betas"] = [0.5, 0.9]
    assert (
        RunSpec.from_config(
            other, "breastmnist", "none", "0.0", "0", "ce", "resnet8", "0"
        ).to_dict()
        == spec.to_dict()
    )
    assert set(spec.optimizer) == {"name", "lr", "momentum", "nesterov", "weight_decay"}
