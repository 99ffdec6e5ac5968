"""Config validation: every bad value is named with its key and what is allowed."""

import copy
from pathlib import Path

import pytest
import yaml

from lnm import grid
from lnm.config import (
    ConfigError,
    check_sources,
    load_config,
    load_schema,
    result_config,
    run_spec,
    validate_config,
)
from lnm.data.medmnist_io import DATASETS
from lnm.grid import noise_cells, run_dirs
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
        "instance_classifier-0.2-n0",
        "instance_classifier-0.4-n0",
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


def test_schema_enums_come_from_the_code():
    schema = load_schema()
    props = schema["properties"]
    assert schema["definitions"]["method"]["enum"] == list(grid.methods())
    assert list(props["noise"]["properties"]["patterns"]["properties"]) == list(
        grid.SYNTHETIC_PATTERNS
    )
    assert list(grid.MEDMNIST_DATASETS) == list(DATASETS)  # medmnist's own list, checked
    assert props["size"]["enum"] == list(grid.MEDMNIST_SIZES)
    adapter = props["real_world"]["additionalProperties"]["properties"]["adapter"]
    assert adapter["enum"] == list(grid.ADAPTERS)
    assert props["backbones"]["items"]["enum"] == list(BACKBONES) == list(grid.BACKBONES)
    assert set(props["method_params"]["properties"]) == set(grid.methods())
    train = schema["definitions"]["train_override"]["properties"]
    assert train["optimizer"]["properties"]["name"]["enum"] == list(grid.OPTIMIZERS)
    assert train["schedule"]["properties"]["name"]["enum"] == list(grid.SCHEDULES)
    assert props["runtime"]["properties"]["stream"]["enum"] == list(grid.STREAM_MODES)
    assert props["protocol"]["enum"] == list(grid.PROTOCOLS)
    noise = props["noise"]["properties"]
    assert noise["classifier"]["properties"]["fit_on"]["enum"] == list(grid.FIT_ON)
    assert noise["instance_std"] == grid.pattern_info("instance").params["instance_std"]
    assert "instance_std" in props["noise"]["required"]
    when = props["cell_overrides"]["items"]["properties"]["when"]["properties"]
    assert when["patterns"]["items"]["enum"] == list(grid.PATTERNS)
    # the code that runs them uses the same names (torch-free lnm.grid is their one place)
    from lnm.train import datasource, optim

    assert (optim.OPTIMIZERS, optim.SCHEDULES) == (grid.OPTIMIZERS, grid.SCHEDULES)
    assert datasource.STREAM_MODES is grid.STREAM_MODES
    raw = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())

    def enums(node):  # every enum written in the schema file itself
        if isinstance(node, dict):
            yield from ([node["enum"]] if "enum" in node else [])
            for v in node.values():
                yield from enums(v)
        elif isinstance(node, list):
            for v in node:
                yield from enums(v)

    written = [e for e in enums(raw) if e]
    # no grid names; the duplicates policy comes from the adapters (lnm.data.adapters.base)
    assert written == [["estimated", "assumed"]]


def test_the_cross_fitted_classifier_settings_are_declared_once():
    """noise.classifier and estimation refer to one definition (`crossfit`), adding only their
    own key; lnm.noise.classifier checks its options against the same definition."""
    raw = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    crossfit = raw["definitions"]["crossfit"]
    shared = {"folds", "backbone", "pretrained", "epochs", "batch_size", "lr", "seed"}
    assert set(crossfit["properties"]) == set(crossfit["required"]) == shared
    sections = (
        raw["properties"]["noise"]["properties"]["classifier"],
        raw["properties"]["estimation"],
    )
    for section, own in zip(sections, ("fit_on", "enabled"), strict=True):
        assert section["$ref"] == "#/definitions/crossfit"
        assert list(section["properties"]) == section["required"] == [own]
        assert section["unevaluatedProperties"] is False
    settings = {"noise.classifier": BASE["noise"]["classifier"], "estimation": BASE["estimation"]}
    for section, values in settings.items():
        msg = bad(**{section.replace(".", "__"): {**values, "fold": 3, "lr": 0}})
        assert f"unknown key(s) ['fold'] under '{section}'" in msg and "'folds'" in msg, msg
        assert f"{section}.lr: 0 is not allowed; must be > 0" in msg, msg


def test_method_params_keys_are_checked_against_the_method():
    msg = bad(method_params={"ce": {"label_smoothin": 0.1}})
    assert "method_params.ce" in msg and "'label_smoothin'" in msg and "'label_smoothing'" in msg
    msg = bad(method_params={"cee": {}})
    assert "'cee'" in msg and "method_params" in msg


def test_reference_protocol_applies_the_method_recipe():

    cfg = load_config(
        REPO / "config.yaml",
        overrides={
            "protocol": "reference",
            "recipes": {"ce": {"batch_size": 16, "optimizer": {"name": "adam", "lr": 0.001}}},
        },
    )
    spec = run_spec(cfg, "pathmnist", "symmetric", "0.2", "0", "ce", "resnet50", "0")
    assert spec.batch_size == 16 and spec.optimizer["name"] == "adam"
    assert spec.optimizer["lr"] == 0.001 and spec.epochs == cfg["train"]["epochs"]
    cfg["protocol"] = "harmonized"
    spec = run_spec(cfg, "pathmnist", "symmetric", "0.2", "0", "ce", "resnet50", "0")
    assert spec.batch_size == cfg["train"]["batch_size"] and spec.optimizer["name"] == "sgd"


def test_every_default_is_in_config_yaml_and_nothing_is_filled_in():
    """config.yaml is the base of every config: a key missing after the merge is an error, and
    validation never adds a default of its own (same result with and without Snakemake)."""
    cfg = copy.deepcopy(BASE)
    validate_config(cfg)
    assert cfg == BASE
    raw = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())

    def keys(node):
        if isinstance(node, dict):
            yield from node
            for v in node.values():
                yield from keys(v)
        elif isinstance(node, list):
            for v in node:
                yield from keys(v)

    assert "default" not in set(keys(raw))
    del cfg["runtime"]
    with pytest.raises(ConfigError, match="'runtime' is a required property"):
        validate_config(cfg)


def test_presets_validate_merged_over_config_yaml():
    demo = load_config(REPO / "presets" / "demo.yaml")  # config.yaml is merged first
    # the demo lists every method of the catalog (lists are replaced, not merged), the paper grid
    # LNMBench's eleven
    assert set(BASE["methods"]) < set(demo["methods"]) <= set(grid.methods())
    assert demo["train"]["epochs"] == 8
    assert load_config(REPO / "config.yaml", REPO / "presets" / "demo.yaml") == demo


def test_method_defaults_live_with_the_method_and_config_holds_only_overrides():
    assert BASE["method_params"] == {}
    cfg = load_config(REPO / "presets" / "demo.yaml")
    spec = run_spec(cfg, "breastmnist", "symmetric", "0.2", "0", "coteaching", "resnet8", "0")
    want = {**grid.method_info("coteaching").defaults, **cfg["method_params"]["coteaching"]}
    assert spec.method_params == want and want["num_gradual"] == 3 and want["exponent"] == 1.0


@pytest.mark.parametrize(
    "params, needles",
    [
        (
            {"coteaching": {"num_gradual": "ten"}},
            ["method_params.coteaching.num_gradual", "'ten'", "integer"],
        ),
        ({"coteaching": {"num_gradual": 0}}, ["method_params.coteaching.num_gradual", ">= 1"]),
        ({"coteaching": {"forget_rate": 1.2}}, ["method_params.coteaching.forget_rate", "< 1"]),
        (
            {"dividemix": {"reg_prior": "flat"}},
            ["method_params.dividemix.reg_prior", "'flat'", "'labels'"],
        ),
        ({"disc": {"strong_aug": "yes"}}, ["method_params.disc.strong_aug", "boolean"]),
    ],
)
def test_method_param_values_are_checked_at_parse_time(params, needles):
    msg = bad(method_params=params)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_last_k_larger_than_epochs_fails_naming_both():
    msg = bad(train__epochs=3)
    assert "train.last_k: 5" in msg and "train.epochs = 3" in msg
    cfg = copy.deepcopy(BASE)
    cfg.update(protocol="reference")
    cfg["recipes"]["sce"] = {"epochs": 4}
    with pytest.raises(ConfigError, match=r"recipes\.sce\.epochs = 4 \(method sce\)"):
        validate_config(cfg)
    cfg["recipes"]["sce"] = {"last_k": 2}
    with pytest.raises(ConfigError, match="last_k is set once"):
        validate_config(cfg)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("train:\n  epochs: 3\n  batch_size: [64\nseeds: [0]\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml, line \d+, column \d+: YAML syntax error"):
        load_config(f)


def test_a_quoted_typed_value_gets_a_hint():
    msg = bad(train="{epochs: 6}")
    assert "train: '{epochs: 6}'" in msg and "write it unquoted" in msg
    assert "allow_download=false" in msg  # how the command line spells it


def test_run_params_keep_only_settings_the_run_uses():
    """A cosine schedule ignores milestones and SGD ignores betas: neither may enter params."""

    cfg = load_config(REPO / "config.yaml", REPO / "presets" / "demo.yaml")
    assert "milestones" in cfg["train"]["schedule"]  # inherited from config.yaml by the merge
    spec = run_spec(cfg, "breastmnist", "none", "0.0", "0", "ce", "resnet8", "0")
    assert spec.schedule == {"name": "cosine"}
    other = copy.deepcopy(cfg)
    other["train"]["schedule"]["milestones"] = [3, 7]
    other["train"]["optimizer"]["betas"] = [0.5, 0.9]
    assert (
        run_spec(other, "breastmnist", "none", "0.0", "0", "ce", "resnet8", "0").to_dict()
        == spec.to_dict()
    )
    assert set(spec.optimizer) == {"name", "lr", "momentum", "nesterov", "weight_decay"}


def test_cell_overrides_give_one_method_different_params_per_cell():
    cfg = load_config(REPO / "presets" / "reference.yaml")
    spec = lambda noise, rate, m="disc": run_spec(
        cfg, "pathmnist", noise, rate, "0", m, "resnet50", "0"
    )
    low, high = spec("symmetric", "0.5"), spec("symmetric", "0.6")
    assert (low.method_params["lambda_h"], low.method_params["momentum"]) == (1.0, 0.99)
    assert (high.method_params["lambda_h"], high.method_params["momentum"]) == (0.2, 0.95)
    assert spec("instance", "0.9", "dividemix").method_params["penalty"] is True
    assert spec("instance", "0.9", "dividemix").method_params["loss_avg_epochs"] == 5
    assert spec("symmetric", "0.8", "dividemix").method_params == {
        **grid.method_info("dividemix").defaults
    }
    assert spec("symmetric", "0.9", "ce").method_params == {"label_smoothing": 0.1}


def test_cell_overrides_are_validated_like_method_params():
    entry = {"when": {"patterns": ["symetric"]}, "method_params": {"disc": {"lambda_h": "x"}}}
    msg = bad(cell_overrides=[entry])
    assert "cell_overrides[0].when.patterns[0]: 'symetric'" in msg
    assert "cell_overrides[0].method_params.disc.lambda_h: 'x'" in msg
    assert "--configfile" not in msg  # a plain string from a file gets no --config hint
    msg = bad(cell_overrides=[{"when": {}, "method_params": {}}])
    assert "cell_overrides[0].when" in msg


def test_reference_recipes_train_without_augmentation_except_disc():
    cfg = load_config(REPO / "presets" / "reference.yaml")
    for m in cfg["methods"]:
        aug = run_spec(cfg, "pathmnist", "none", "0.0", "0", m, "resnet50", "0").augment
        assert (aug["crop_padding"] > 0 or aug["hflip"]) == (m == "disc"), (m, aug)


def _real(**entry):
    base = {"adapter": "drtid", "root": "/nowhere", "size": 32, "assumed_rates": [0.4]}
    return {**base, **entry}


def test_real_world_cells_sizes_and_train_overrides():
    """A real-world set runs pattern `real` at each assumed rate (noise seed 0 only), plus the
    clean ceiling where its train labels have clean counterparts; its own size and train
    overrides enter its run specs, and cell_overrides may select datasets."""
    cfg = load_config(
        REPO / "presets" / "smoke.yaml",
        overrides={
            "datasets": ["breastmnist", "drtid", "cx"],
            "noise": {"noise_seeds": [0, 3]},
            "real_world": {
                "drtid": _real(assumed_rates=[0.4, 0.5], train={"batch_size": 16}),
                "cx": _real(adapter="chexpert", size=24),
            },
            "cell_overrides": [
                {
                    "when": {"patterns": ["real"], "datasets": ["drtid"]},
                    "method_params": {"coteaching": {"num_gradual": 1}},
                }
            ],
        },
    )
    tags = {(c.dataset, c.tag) for c in noise_cells(cfg)}
    assert {t for d, t in tags if d == "drtid"} == {"none-0.0-n0", "real-0.4-n0", "real-0.5-n0"}
    assert {t for d, t in tags if d == "cx"} == {"real-0.4-n0"}  # no clean train labels
    assert ("breastmnist", "symmetric-0.4-n3") in tags
    spec = run_spec(cfg, "drtid", "real", "0.4", 0, "coteaching", "resnet8", 0)
    assert (spec.size, spec.batch_size, spec.method_params["num_gradual"]) == (32, 16, 1)
    other = run_spec(cfg, "cx", "real", "0.4", 0, "coteaching", "resnet8", 0)
    assert (other.size, other.batch_size) == (24, 64)
    assert other.method_params["num_gradual"] != 1
    assert run_spec(cfg, "breastmnist", "none", "0", 0, "ce", "resnet8", 0).size == 28
    # where the data is kept is not part of any result
    assert "root" not in result_config(cfg)["real_world"]["drtid"]


def test_real_world_names_and_folders_are_checked(tmp_path):
    msg = bad(datasets=["pathmnist", "mydata"])
    assert "datasets[1]: 'mydata'" in msg and "real_world entries" in msg
    msg = bad(real_world={"pathmnist": _real()})
    assert "real_world.pathmnist" in msg and "MedMNIST" in msg
    msg = bad(real_world={"x": _real(adapter="drtiid")})
    assert "real_world.x.adapter" in msg and "'drtid'" in msg
    cfg = load_config(
        overrides={"datasets": ["drtid"], "real_world": {"drtid": _real(root=str(tmp_path / "d"))}}
    )
    with pytest.raises(ConfigError, match=r"real_world\.drtid \(drtid\).*d"):
        check_sources(cfg)


def test_config_real_world_sets_train_with_lnmbench_augmentation():
    """config.yaml spells LNMBench's fundus/CheXpert recipe once (a YAML anchor); it is the
    one the code names."""
    from lnm.train.augment import LNMBENCH_AUGMENT

    cfg = load_config(REPO / "config.yaml")
    for name, entry in cfg["real_world"].items():
        assert entry["train"]["augment"] == LNMBENCH_AUGMENT, name


# ---------------------------------------------------------------- every error at once, in order
#: The README's error example: four mistakes in one file, in this order.
README_MISTAKES = """\
noise:
  patterns:
    symmetric: [1.5]
methods: [ce, coteching]
method_params:
  coteaching: {num_gradual: ten}
train:
  epochs: 3
"""
README_ERRORS = [
    "noise.patterns.symmetric[0]: 1.5 is not allowed; must be < 1",
    "methods[1]: 'coteching' is not allowed; allowed values: ['ce', ",
    "method_params.coteaching.num_gradual: 'ten' is not allowed; must be of type integer",
    "train.last_k: 5 is larger than train.epochs = 3 (method ce)",
]


def error_lines(err) -> list[str]:
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid config:"
    return [line.strip() for line in lines[1:]]


def test_every_error_of_a_config_comes_at_once_in_file_order(tmp_path):
    """The README's four mistakes: one run names all four, in the order of the file (schema,
    method name, method parameter and last_k errors used to come in three rounds)."""
    f = tmp_path / "bad.yaml"
    f.write_text(README_MISTAKES)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    lines = error_lines(err)
    assert len(lines) == 4 and all(line.startswith(w) for line, w in zip(lines, README_ERRORS))
    # the order is the file's, not a fixed one: train first, noise last
    blocks = README_MISTAKES.replace("method_params:\n  ", "method_params:\n    ").split("\n")
    f.write_text("train:\n  epochs: 3\nmethods: [ce, coteching]\n" + "\n".join(blocks[:3]))
    with pytest.raises(ConfigError) as err:
        load_config(f)
    lines = error_lines(err)
    assert [line.split(":")[0] for line in lines] == [
        "train.last_k",
        "methods[1]",
        "noise.patterns.symmetric[0]",
    ]


def test_a_key_written_twice_is_refused_naming_file_line_and_key(tmp_path):
    f = tmp_path / "twice.yaml"
    f.write_text("seeds: [0]\ntrain:\n  epochs: 3\n  last_k: 2\n  epochs: 4\nseeds: [1, 2]\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    lines = error_lines(err)
    assert lines == [
        f"{f}, line 5: key 'train.epochs' is written twice (first on line 3); YAML would "
        "silently keep only the last value: remove one of them",
        f"{f}, line 6: key 'seeds' is written twice (first on line 1); YAML would silently "
        "keep only the last value: remove one of them",
    ]
    # anchors and merge keys are not keys written twice
    f.write_text(
        "recipes:\n  ce: &r {epochs: 7, batch_size: 8}\n  sce:\n    <<: *r\n    epochs: 6\n"
    )
    cfg = load_config(f, overrides={"protocol": "reference"})
    assert cfg["recipes"]["sce"]["epochs"] == 6 and cfg["recipes"]["sce"]["batch_size"] == 8


@pytest.mark.parametrize("results", ["", "  ", "/", "//", "/.."])
def test_a_results_folder_at_the_filesystem_root_is_refused(results):
    msg = bad(results=results)
    assert f"results: {results!r} is not allowed" in msg and "filesystem root" in msg


def test_a_grid_without_noise_cells_is_refused():
    patterns = {p: [] for p in grid.SYNTHETIC_PATTERNS}
    msg = bad(noise__patterns=patterns, noise__clean=False)
    assert "noise: every noise.patterns list is empty and noise.clean is false" in msg
    assert "pathmnist, dermamnist, bloodmnist, organcmnist" in msg
    cfg = copy.deepcopy(BASE)
    cfg["noise"].update(patterns=patterns, clean=True)  # the clean cells alone are a grid
    assert len(run_dirs(validate_config(cfg))) == 4 * 11 * 3


def test_cell_overrides_that_can_never_apply_are_refused():
    def entry(when, params=None):
        return {
            "when": when,
            "method_params": {"disc": {"lambda_h": 0.2}} if params is None else params,
        }

    msg = bad(cell_overrides=[entry({"rate_min": 0.8, "rate_max": 0.6})])
    assert "cell_overrides[0].when: rate_min 0.8 is larger than rate_max 0.6" in msg
    msg = bad(cell_overrides=[entry({"datasets": ["pathmnsit"]})])
    assert "cell_overrides[0].when.datasets[0]: 'pathmnsit' is neither a MedMNIST" in msg
    msg = bad(cell_overrides=[entry({"patterns": ["real"], "datasets": ["pathmnist"]})])
    assert "cell_overrides[0].when: patterns ['real'] never occur on datasets ['pathmnist']" in msg
    msg = bad(cell_overrides=[entry({"patterns": ["symetric"]})])  # the schema's enum
    assert "cell_overrides[0].when.patterns[0]: 'symetric' is not allowed" in msg
    msg = bad(cell_overrides=[entry({"rate_min": 0.5}, {"dsic": {"lambda_h": 0.2}})])
    assert "'dsic'" in msg and "cell_overrides[0].method_params" in msg
    msg = bad(cell_overrides=[entry({"rate_min": 0.5}, {})])
    assert "cell_overrides[0].method_params is empty" in msg


def test_where_each_cell_override_applies():
    from lnm.config import config_notes, override_lines, override_uses

    cfg = load_config(REPO / "presets" / "reference.yaml")
    uses = override_uses(cfg)
    four = ["pathmnist", "dermamnist", "bloodmnist", "organcmnist"]
    assert uses[0].methods == ["disc"] and list(uses[0].cells) == four
    assert uses[0].cells["pathmnist"] == [
        "symmetric-0.8",
        "symmetric-0.9",
        "instance_classifier-0.8",
        "instance_classifier-0.9",
    ]
    assert [u.applies() for u in uses] == [True, True, True, False, False]
    lines = override_lines(cfg)
    assert lines[1] == (
        "cell_overrides[1] (dividemix) on pathmnist, dermamnist, bloodmnist, organcmnist: "
        "symmetric-0.9, instance_classifier-0.9"
    )
    assert lines[3] == (
        "cell_overrides[3]: applies to no run of this grid (none of its patterns (real) is run "
        "here)"
    )
    # one that applies to no run of this grid is a note, not an error: presets are merged over
    # other grids (reference.yaml's real-world entries apply under paper_full.yaml)
    notes = config_notes(cfg)
    assert len(notes) == 2 and notes[0].startswith("cell_overrides[3] applies to no run")
    smoke = load_config(REPO / "presets" / "reference.yaml", REPO / "presets" / "smoke.yaml")
    assert "none of its methods (disc) is in methods" in override_lines(smoke)[0]


def test_pairflip_on_two_classes_is_noted_as_symmetric_noise():
    from lnm.config import config_notes

    cfg = load_config(
        overrides={
            "datasets": ["breastmnist", "retinamnist"],
            "noise": {"patterns": {"pairflip": [0.3]}},
        }
    )
    (note,) = config_notes(cfg)
    assert note.startswith("pairflip on breastmnist (2 classes) is exactly symmetric noise")
    assert config_notes(load_config(overrides={"datasets": ["retinamnist"]})) == []
    no_pairflip = load_config(overrides={"datasets": ["breastmnist"]})
    assert config_notes(no_pairflip) == []


@pytest.mark.parametrize(
    "given, key, want",
    [
        ({"allow_download": "false"}, ("allow_download",), False),
        ({"allow_download": "no"}, ("allow_download",), False),
        ({"allow_download": "TRUE"}, ("allow_download",), True),
        ({"seeds": ["0", "5"]}, ("seeds",), [0, 5]),
        ({"train": {"epochs": "6"}}, ("train", "epochs"), 6),
        ({"runtime": {"memory_budget_mb": "null"}}, ("runtime", "memory_budget_mb"), None),
    ],
)
def test_command_line_strings_are_read_as_yaml_where_the_schema_wants_another_type(
    given, key, want
):
    """Snakemake reads --config key=value with YAML's BaseLoader (every scalar a string but
    ints, floats and True/False): allow_download=false arrives as 'false'."""
    from lnm.config import _merge, read_command_line_values

    cfg = _merge(copy.deepcopy(BASE), copy.deepcopy(given))
    validate_config(cfg, command_line=given)
    node = cfg
    for k in key:
        node = node[k]
    assert node == want and type(node) is type(want)
    # the same string from a config file stays a string: an error with a hint
    cfg = _merge(copy.deepcopy(BASE), copy.deepcopy(given))
    assert read_command_line_values(cfg, None) == []
    with pytest.raises(ConfigError, match="write it unquoted"):
        validate_config(cfg)


def test_a_command_line_string_that_is_no_value_of_the_wanted_type_stays_an_error():
    cfg = copy.deepcopy(BASE)
    cfg["allow_download"] = "maybe"
    with pytest.raises(
        ConfigError, match="allow_download: 'maybe' is not allowed; must be of type boolean"
    ):
        validate_config(cfg, command_line={"allow_download": "maybe"})
