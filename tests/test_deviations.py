"""docs/deviations.md is checkable: every row's Switch cell follows the documented format, every
setting it names exists (a method parameter in that method's ``params``, or a key of the config
schema) with a value its schema accepts, and, for the methods this file has probes for, setting
it changes the method's parameters after a few training steps from a fixed initialisation.

Rows for methods without a probe here (methods added later) are checked for existence and
schema only; a probe for them belongs next to their other tests.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
import torch
import yaml

from lnm import grid
from lnm.config import load_config, load_schema
from tests.conftest import REPO, tiny_method

DOC = REPO / "docs" / "deviations.md"
#: the methods whose every named parameter must have a probe below
PROBED_METHODS = (
    "ce",
    "trevision",
    "volminnet",
    "sce",
    "cdr",
    "coteaching",
    "coteaching_plus",
    "codis",
    "jocor",
    "disc",
    "dividemix",
)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------ parsing
def split_row(line: str) -> list[str]:
    """The cells of a Markdown table row (``\\|`` is a pipe inside a cell)."""
    body = line.strip()
    assert body.startswith("|") and body.endswith("|"), line
    cells = re.split(r"(?<!\\)\|", body[1:-1])
    return [c.strip().replace("\\|", "|") for c in cells]


def table_rows(text: str) -> list[tuple[int, list[str], list[str]]]:
    """(line number, header, cells) of every data row of every table."""
    rows, header = [], None
    lines = text.splitlines()
    for i, line in enumerate(lines, 1):
        if not line.startswith("|"):
            header = None
            continue
        if header is None:
            header = split_row(line)
            continue
        if set(line.replace("|", "").strip()) <= {"-", ":", " "}:
            continue  # the separator row
        rows.append((i, header, split_row(line)))
    return rows


def top_level_code(cell: str) -> list[str]:
    """The backticked spans of ``cell`` outside parentheses (remarks are free text)."""
    spans, depth, i = [], 0, 0
    while i < len(cell):
        ch = cell[i]
        if ch == "`":
            end = cell.find("`", i + 1)
            if end < 0:
                raise ValueError(f"docs/deviations.md: an unclosed backtick in {cell!r}")
            if depth == 0:
                spans.append(cell[i + 1 : end])
            i = end + 1
            continue
        depth += ch == "("
        depth -= ch == ")"
        i += 1
    return spans


def settings(cell: str) -> list[tuple[str, object]]:
    """The settings of a Switch cell: each top-level backticked ``name: value`` (several may
    share one backtick span, separated by ``;``), with the value parsed as YAML."""
    out = []
    for span in top_level_code(cell):
        for part in span.split(";"):
            if ": " not in part:
                continue
            name, value = part.split(": ", 1)
            out.append((name.strip(), yaml.safe_load(value)))
    return out


def rows_with_settings():
    out = []
    for line, _, cells in table_rows(DOC.read_text()):
        for name, value in settings(cells[-1]):
            out.append((line, name, value, cells[-1]))
    return out


def is_method_setting(name: str) -> bool:
    return name.split(".", 1)[0] in grid.method_catalog()


def test_every_row_has_five_cells_and_a_switch_in_the_documented_format():
    rows = table_rows(DOC.read_text())
    assert len(rows) > 60
    for line, header, cells in rows:
        assert len(header) == 5 and header[-1].startswith("Switch"), (line, header)
        assert len(cells) == 5, f"docs/deviations.md:{line}: {len(cells)} cells, not 5"
        switch = cells[-1]
        if switch.startswith("none"):
            assert re.match(r"none: \S", switch), f"line {line}: 'none: <reason>', not {switch!r}"
        elif switch.startswith("default"):
            assert switch == "default" or switch.startswith("default;") or switch[7] == " ", line
        else:
            assert switch.startswith("`") and settings(switch), (
                f"docs/deviations.md:{line}: a Switch is `name: value` settings, 'default' or "
                f"'none: <reason>', not {switch!r}"
            )


def test_the_parser_reads_the_documented_forms():
    cell = "`a.b: 1; c.d: [x, y]` (set by `x.y: 2`); option `e.f: true`"
    assert settings(cell) == [("a.b", 1), ("c.d", ["x", "y"]), ("e.f", True)]
    assert split_row("| a | b \\| c | `d: 1` |") == ["a", "b | c", "`d: 1`"]
    assert settings("none: bug fix") == [] and settings("default") == []


def test_the_corrected_statements_say_what_the_originals_do():
    """The five statements issue 20 found false now say what a probe shows."""
    text = DOC.read_text()
    rows = {cells[0] + " | " + cells[1][:40]: cells for _, _, cells in table_rows(text)}
    codis = [c for k, c in rows.items() if k.startswith("CoDis | official `loss_ours`")]
    assert codis and codis[0][-1] == "default"  # CoDis does not divide twice
    plus = [c for k, c in rows.items() if "`int((1 − τ)·|D|)`" in c[1]]
    assert plus and "coteaching_plus.keep_count: truncated" in plus[0][-1]
    trev = [c for k, c in rows.items() if "T̂ + (k + 1)·ΔT" in c[1]]
    assert trev and "trevision.revision_delta: per_sample" in trev[0][-1]
    disc = [c for k, c in rows.items() if "RandAugmentwogeo" in c[1]]
    assert disc and "disc.strong_pool: lnmbench" in disc[0][-1]
    views = [c for k, c in rows.items() if "MixMatch's two views" in c[1]]
    assert views and "both views are the raw image" in views[0][2]
    assert "same op pool" not in text and "official adds it once" not in text


# ------------------------------------------------------------------------------ existence
SETTINGS = rows_with_settings()


@pytest.mark.parametrize(
    "line, name, value, cell", SETTINGS, ids=[f"L{r[0]}-{r[1]}" for r in SETTINGS]
)
def test_each_named_setting_exists_and_its_value_is_allowed(line, name, value, cell):
    where = f"docs/deviations.md:{line}: `{name}: {value!r}`"
    if is_method_setting(name):
        method, param = name.split(".", 1)
        info = grid.method_info(method)
        assert param in info.params, f"{where}: {method} declares no parameter {param!r}"
        jsonschema.validate({param: value}, info.schema())
        assert value != info.defaults[param], f"{where}: the default already"
    else:
        schema = load_schema()
        cfg = yaml.safe_load((REPO / "config.yaml").read_text())
        node, keys = cfg, name.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        old = node.get(keys[-1])  # merged as a config file is: mappings deeply
        node[keys[-1]] = (
            {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
        )
        try:
            jsonschema.validate(cfg, schema)
        except jsonschema.ValidationError as err:
            raise AssertionError(f"{where}: not a valid config setting: {err.message}") from None


def test_settings_said_to_be_set_by_the_reference_preset_are():
    ref = load_config(REPO / "presets" / "reference.yaml")
    claimed = [
        (line, name, value)
        for line, name, value, cell in SETTINGS
        if "set by `presets/reference.yaml`" in cell and is_method_setting(name)
    ]
    assert len(claimed) >= 4
    for line, name, value in claimed:
        method, param = name.split(".", 1)
        places = [ref["method_params"].get(method, {})] + [
            e["method_params"].get(method, {}) for e in ref["cell_overrides"]
        ]
        assert any(p.get(param) == value for p in places), (line, name)


def test_every_probed_methods_setting_has_a_probe():
    named = {name for _, name, _, _ in SETTINGS if is_method_setting(name)}
    missing = {n for n in named if n.split(".")[0] in PROBED_METHODS} - set(PROBES)
    assert not missing, f"settings without a probe in tests/test_deviations.py: {missing}"


# ------------------------------------------------------------------------------ probes
def flat(nets) -> np.ndarray:
    return torch.cat([p.detach().double().flatten() for p in nets.parameters()]).numpy()


def tiny_run(tmp_path, method, params, epochs, total=None, **spec_kw):
    """The method on conftest's tiny problem (fixed initialisation and batches) after training
    ``epochs``; its parameters (networks and any learnt matrix) flattened."""
    m, data = tiny_method(
        tmp_path, method, epochs=total or max(epochs) + 1, params=params, seed=0, **spec_kw
    )
    for e in epochs:
        torch.manual_seed(100 + e)
        np.random.seed(100 + e)
        m.start_epoch(e)
        m.train_epoch(e, data.epoch_batches(0, e))
    out = [flat(m.nets)]
    if hasattr(m, "delta"):
        out.append(m.delta.detach().double().flatten().numpy())
    return np.concatenate(out)


def tiny_probe(method, epochs, base=None, total=None, **spec_kw):
    def probe(tmp_path, setting):
        a = tiny_run(tmp_path / "a", method, dict(base or {}), epochs, total, **spec_kw)
        b = tiny_run(tmp_path / "b", method, {**(base or {}), **setting}, epochs, total, **spec_kw)
        return a, b

    return probe


def plus_probe(n_dis, base, epoch=20, optimizer=None):
    """Co-teaching+ on the hand-built lookup batch of tests/test_methods_coteaching.py."""
    from tests.test_methods_coteaching import ORDER12, plus_case, plus_step

    def probe(tmp_path, setting):
        w0, w1, y = plus_case(n_dis)
        run = lambda p: plus_step(w0, w1, y, ORDER12, p, epoch, optimizer=optimizer)
        return np.concatenate(run(base)).ravel(), np.concatenate(run({**base, **setting})).ravel()

    return probe


def coteaching_rate_probe(tmp_path, setting):
    """forget_rate: estimated reads the cell's estimate (0.1 here) instead of the rate (0.4)."""
    from tests.test_methods_coteaching import ORDER12, plus_case

    w0, w1, y = plus_case(0)
    n, c = w0.shape
    out = []
    for params in ({}, setting):
        from lnm.methods import get_method
        from lnm.train.data import Batch
        from tests.conftest import tiny_spec

        class Table(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(n, c))

            def forward(self, x):
                return x @ self.w

        spec = tiny_spec(
            dataset="t", size=8, noise="symmetric", rate=0.4, noise_seed=0, method="coteaching",
            backbone="lookup", seed=0, epochs=50, optimizer={"name": "sgd", "lr": 0.1},
            method_params=params,
        )  # fmt: skip
        data = SimpleNamespace(
            num_train=n, batches_per_epoch=lambda: 1, noise_estimate={"estimated_rate": 0.1}
        )
        m = get_method("coteaching")(spec, Table, c, torch.device("cpu"), data)
        with torch.no_grad():
            m.nets[0].w.copy_(torch.as_tensor(w0, dtype=torch.float32))
            m.nets[1].w.copy_(torch.as_tensor(w1, dtype=torch.float32))
        idx = torch.tensor(ORDER12)
        m.train_epoch(20, [Batch(idx, torch.eye(n)[idx], torch.as_tensor(y)[idx], *[None] * 3)])
        out.append(flat(m.nets))
    return out


def dividemix_threshold_probe(tmp_path, setting):
    """DivideMix's first epoch after warm-up from hand-set clean probabilities spread over
    [0, 1] (on the tiny problem the GMM's posteriors are all near 0 or 1)."""
    out = []
    for params in ({"warmup_epochs": 0}, {"warmup_epochs": 0, **setting}):
        m, data = tiny_method(tmp_path / str(len(out)), "dividemix", epochs=3, params=params)
        w = np.linspace(0.0, 1.0, data.num_train)
        m.clean_probability = lambda k, w=w: np.roll(w, 7 * k)
        torch.manual_seed(0)
        m.train_epoch(0, data.epoch_batches(0, 0))
        out.append(flat(m.nets))
    return out


#: (method, parameter) -> probe(tmp_path, {param: value}) -> (parameters with the default,
#: parameters with the setting)
PROBES = {
    "ce.label_smoothing": tiny_probe("ce", [0]),
    "coteaching.forget_rate": coteaching_rate_probe,
    "coteaching_plus.keep_count": plus_probe(10, {"forget_rate": 0.9}),
    "coteaching_plus.divide_by_kept": plus_probe(7, {"forget_rate": 0.4}),
    "coteaching_plus.ce_input": plus_probe(7, {"forget_rate": 0.4}),
    "coteaching_plus.step_count": plus_probe(0, {"forget_rate": 0.4, "warm_steps": 30}),
    "coteaching_plus.init_epoch": plus_probe(7, {"forget_rate": 0.4}, epoch=10),
    "coteaching_plus.empty_step": plus_probe(
        0,
        {"forget_rate": 0.4, "warm_steps": 30},
        optimizer={"name": "sgd", "lr": 0.1, "weight_decay": 0.1},
    ),
    "codis.discrepancy": tiny_probe("codis", [0]),
    "cdr.kept_scale": tiny_probe("cdr", [3]),
    "cdr.num_gradual": tiny_probe("cdr", [1]),
    "trevision.estimation_optimizer": tiny_probe("trevision", [0]),
    "trevision.revision_beta_grad": tiny_probe("trevision", [0, 1, 2]),
    "trevision.revision_delta": tiny_probe("trevision", [0, 1, 2], {"revision_lr": 1e-3}),
    "disc.strong_pool": tiny_probe("disc", [0]),
    "disc.lambda_h": tiny_probe("disc", [0, 1], {"start_epoch": 1, "tau_init": 0.5}),
    "disc.momentum": tiny_probe("disc", [0, 1, 2, 3], {"start_epoch": 1, "tau_init": 0.9}),
    "dividemix.loss_avg_epochs": tiny_probe("dividemix", [0, 1, 2], {"warmup_epochs": 1}),
    "dividemix.loss_avg_partial": tiny_probe(
        "dividemix", [0, 1, 2], {"warmup_epochs": 1, "loss_avg_epochs": 5}
    ),
    "dividemix.penalty": tiny_probe("dividemix", [0]),
    "dividemix.warmup_epochs": tiny_probe("dividemix", [5], total=8),
    "dividemix.p_threshold": dividemix_threshold_probe,
}

PROBED = sorted({(name, yaml.safe_dump(value)) for _, name, value, _ in SETTINGS if name in PROBES})


@pytest.mark.parametrize("name, value", PROBED, ids=[p[0] for p in PROBED])
def test_each_setting_changes_the_methods_update(tmp_path, name, value):
    param = name.split(".", 1)[1]
    default, flipped = PROBES[name](tmp_path, {param: yaml.safe_load(value)})
    assert np.isfinite(default).all() and np.isfinite(flipped).all()
    assert np.abs(default - flipped).max() > 1e-6, f"`{name}` changed nothing in its probe"


def test_a_probe_sees_a_setting_that_changes_nothing(tmp_path):
    """The probes can fail: a parameter that does not enter the update (DivideMix's
    ``reg_prior`` is only used after warm-up) leaves the parameters identical."""
    default, same = tiny_probe("dividemix", [0])(tmp_path, {"reg_prior": "labels"})
    assert np.array_equal(default, same)


def test_an_unknown_method_row_needs_only_its_parameter(tmp_path):
    """A row naming a parameter its method does not declare fails, whether or not the method
    has probes here (as a row for a method added later must name a declared parameter)."""
    bad = [(1, "disc.strong_pools", "lnmbench", "")]
    with pytest.raises(AssertionError, match="declares no parameter 'strong_pools'"):
        test_each_named_setting_exists_and_its_value_is_allowed(*bad[0])
    with pytest.raises(AssertionError, match="not a valid config setting"):
        test_each_named_setting_exists_and_its_value_is_allowed(1, "train.precison", "fp32", "")
    copy.deepcopy(SETTINGS)  # the module-level parse is reusable


def test_doc_path_is_the_repository_file():
    assert DOC == Path(REPO) / "docs" / "deviations.md" and DOC.exists()
