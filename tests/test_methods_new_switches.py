"""docs/deviations.md, section "Methods beyond LNMBench": every setting a Switch cell names
exists (a declared parameter of the method, or a config key the schema accepts, with a value it
accepts that is not the default), and each method setting changes the method's update in a
probe from a fixed initialisation (the rows' format: docs/deviations.md, "Format")."""

from __future__ import annotations

import re

import jsonschema
import numpy as np
import pytest
import torch
import yaml

from lnm import grid
from lnm.config import load_config
from tests.conftest import REPO, tiny_method

DOC = REPO / "docs" / "deviations.md"
SECTION = "## Methods beyond LNMBench"
NEW = ("gce", "elr", "sop", "promix", "cocorrecting")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def section_rows() -> list[list[str]]:
    text = DOC.read_text()
    assert SECTION in text, f"docs/deviations.md has no section {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in body.splitlines():
        if not line.startswith("|") or set(line) <= {"|", "-", " "}:
            continue
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
    return rows[1:]  # without the header


def switch_settings(cell: str) -> list[tuple[str, object]]:
    """Backticked ``name: value`` settings outside parentheses (``;`` separates several)."""
    outside = re.sub(r"\([^)]*\)", "", cell)
    out = []
    for span in re.findall(r"`([^`]*)`", outside):
        for part in span.split(";"):
            if ": " in part:
                name, value = part.split(": ", 1)
                out.append((name.strip(), yaml.safe_load(value)))
    return out


ROWS = section_rows()
SETTINGS = sorted({(n, yaml.safe_dump(v)) for row in ROWS for n, v in switch_settings(row[-1])})
METHOD_SETTINGS = [(n, v) for n, v in SETTINGS if n.split(".")[0] in grid.method_catalog()]


def test_the_section_rows_follow_the_format():
    assert len(ROWS) >= 25
    for row in ROWS:
        assert len(row) == 5, row
        switch = row[-1]
        assert (
            re.match(r"none: \S", switch)
            or switch == "default"
            or switch.startswith("default; option `")
            or (switch.startswith("`") and switch_settings(switch))
        ), switch
    named = {row[0].split(" ")[0].rstrip(",").lower().replace("-", "") for row in ROWS}
    assert {"gce", "elr", "sop", "promix", "cocorrecting"} <= named


@pytest.mark.parametrize("name, value", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_each_named_setting_exists_with_an_allowed_value(name, value):
    value = yaml.safe_load(value)
    head = name.split(".")[0]
    if head in grid.method_catalog():
        method, param = name.split(".", 1)
        info = grid.method_info(method)
        assert param in info.params, f"{method} declares no parameter {param!r}"
        jsonschema.validate({param: value}, info.schema())
        assert value != info.defaults[param], f"`{name}: {value}` is the default already"
    else:  # a config key: valid when merged into config.yaml as a config file is
        override: dict = {}
        node = override
        keys = name.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        load_config(overrides=override)


# ------------------------------------------------------------------------------ probes
def flat_first_net(m) -> np.ndarray:
    """The first network's parameters (ELR+ adds a second network)."""
    return torch.cat([p.detach().double().flatten() for p in m.nets[0].parameters()]).numpy()


def tiny_probe(method, epochs, base=None, total=None):
    def run(tmp_path, params):
        m, data = tiny_method(tmp_path, method, epochs=total or max(epochs) + 1, params=params)
        for e in epochs:
            torch.manual_seed(100 + e)
            np.random.seed(100 + e)
            m.start_epoch(e)
            m.train_epoch(e, data.epoch_batches(0, e))
        return flat_first_net(m)

    def probe(tmp_path, setting):
        a = run(tmp_path / "a", dict(base or {}))
        b = run(tmp_path / "b", {**(base or {}), **setting})
        return a, b

    return probe


TRUNC = {"truncated": True, "k": 0.6}
PROBES = {
    "gce.truncated": tiny_probe("gce", [0, 1], {"start_prune": 2, "prune_every": 1, "k": 0.6}),
    "gce.start_prune": tiny_probe("gce", [0, 1], {**TRUNC, "start_prune": 2, "prune_every": 1}),
    "gce.prune_every": tiny_probe("gce", [0, 1], {**TRUNC, "start_prune": 2, "prune_every": 1}),
    "promix.pretrain_ep": tiny_probe("promix", [0], {"pretrain_ep": 0}),
    "promix.warmup_ep": tiny_probe("promix", [0, 1], {"pretrain_ep": 0}),
    "promix.start_expand": tiny_probe(
        "promix", [0, 1], {"pretrain_ep": 0, "start_expand": 0, "tau": 0.4}, total=3
    ),
    "elr.plus": tiny_probe("elr", [0]),
    "sop.ratio_consistency": tiny_probe("sop", [0]),
    "sop.ratio_balance": tiny_probe("sop", [0]),
    "promix.rho_start": tiny_probe("promix", [0], {"pretrain_ep": 0, "rho_end": 0.7}),
    "promix.rho_end": tiny_probe("promix", [0, 1], {"pretrain_ep": 0, "warmup_ep": 1}),
    "cocorrecting.select_on": tiny_probe(
        "cocorrecting", [0, 1], {"forget_rate": 0.3, "num_gradual": 1}
    ),
    "cocorrecting.stage1": tiny_probe("cocorrecting", [0, 1], {"stage1": 1, "stage2": 100}),
    "cocorrecting.stage2": tiny_probe("cocorrecting", [0, 1], {"stage1": 0, "stage2": 1}),
}


def test_every_method_setting_has_a_probe():
    assert {n for n, _ in METHOD_SETTINGS} <= set(PROBES)


@pytest.mark.parametrize("name, value", METHOD_SETTINGS, ids=[s[0] for s in METHOD_SETTINGS])
def test_each_method_setting_changes_the_update(tmp_path, name, value):
    param = name.split(".", 1)[1]
    default, flipped = PROBES[name](tmp_path, {param: yaml.safe_load(value)})
    assert np.isfinite(default).all() and np.isfinite(flipped).all()
    assert np.abs(default - flipped).max() > 1e-6, f"`{name}` changed nothing in its probe"


def test_a_probe_sees_a_setting_that_changes_nothing(tmp_path):
    """The probes can fail: GCE's pruning schedule does nothing without ``truncated``."""
    default, same = tiny_probe("gce", [0, 1])(tmp_path, {"start_prune": 1, "prune_every": 1})
    assert np.array_equal(default, same)
