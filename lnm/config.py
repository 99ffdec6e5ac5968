"""Config loading and validation, and the run specs of a config.

``config.yaml`` is the base of every config and holds every workflow-level default; presets and
``--config`` values are merged over it (dicts deeply, lists replaced), exactly as Snakemake's
``configfile:`` + ``--configfile`` do. Method hyperparameter defaults live next to each method
(its ``params``); ``method_params`` in a config holds only overrides. One validation pass runs
in the Snakefile at parse time (:func:`check_workflow_config`) and in the ``lnm`` command
(:func:`load_config`): the JSON schema in ``schemas/config.schema.yaml`` with its enums and
per-method parameter schemas filled from :mod:`lnm.grid`, then the checks a schema cannot
express (:func:`validate_config`). Every problem is reported at once, in file order (the place
of the key each problem names: files in merge order, then the command line). Errors name the
key, the bad value and what is allowed; YAML syntax errors and keys written twice in a file
(which YAML would silently resolve to the last) name the file and line. Values given on
Snakemake's command line are read as YAML where the schema wants another type
(:func:`read_command_line_values`: ``allow_download=false``). Torch-free.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from . import grid
from .train.spec import COMPILE_MODES, PRECISIONS, RunSpec

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schemas" / "config.schema.yaml"
BASE_CONFIG = ROOT / "config.yaml"

STRING_HINT = (
    "a quoted value in a YAML file stays a string: write it unquoted; on Snakemake's command "
    "line --config reads true/false, numbers and [lists] as YAML (e.g. allow_download=false)"
)
#: Where a value given on Snakemake's command line (``--config key=value``) was set.
COMMAND_LINE = "the command line"
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: libyaml's loader where PyYAML has it (the same nodes and marks, several times faster)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Problem:
    """One problem of a config: its text, and the key paths it concerns (tuples of keys and
    list indices); its place in file order is that of the latest-set of those keys (the
    problem is made where the last of them was written). ``at``: a place given directly
    (source index, line, column), e.g. of a key written twice."""

    text: str
    keys: tuple[tuple, ...] = ()
    at: tuple[int, int, int] | None = None


@dataclass
class Sources:
    """Where each key of a merged config was set: the config files in merge order (then the
    command line or the ``overrides`` of :func:`load_config`), and key path -> (source index,
    line, column) of the value that won the merge."""

    names: list[str] = field(default_factory=list)
    where: dict[tuple, tuple[int, int, int]] = field(default_factory=dict)

    def add(self, name: str, data: dict, lines: dict | None = None) -> None:
        """Merge one source's keys, as :func:`merged` merges its values (dicts deeply, other
        values replaced with everything below them); ``lines``: key path -> (line, column)."""
        index, lines = len(self.names), lines or {}
        self.names.append(name)
        order = iter(range(1, 1 << 30))  # keys without a line keep the order they come in

        def place(path):
            return (index, *lines[path]) if path in lines else (index, 0, next(order))

        def walk(node, prefix):
            for key, value in node.items():
                path = (*prefix, key)
                if isinstance(value, dict):
                    self.where[path] = place(path)
                    walk(value, path)
                    continue
                for old in [p for p in self.where if p[: len(path)] == path]:
                    del self.where[old]
                self.where[path] = place(path)
                below = (
                    [p for p in lines if len(p) > len(path) and p[: len(path)] == path]
                    if lines
                    else _paths(value, path)  # a source without lines: its list items in order
                )
                self.where.update((p, place(p)) for p in below)

        walk(data, ())

    def place(self, path: tuple) -> tuple[int, int, int]:
        """Where ``path`` (or its longest prefix that was set) was set; unknown: last."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.where:
                return self.where[path[:n]]
        return (len(self.names), 0, 0)

    def order(self, problems: list[Problem]) -> list[str]:
        """The problems' texts in file order (ties in the order given), each once."""

        def key(p: Problem):
            if p.at is not None:
                return p.at
            return max((self.place(k) for k in p.keys), default=(len(self.names), 0, 0))

        return list(dict.fromkeys(p.text for p in sorted(problems, key=key)))


def _paths(value, prefix: tuple):
    """Every key path below ``value`` (list items by index), depth first."""
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


def load_schema() -> dict:
    """The config schema with its enums, the noise patterns and their config keys, and the
    method parameter schemas filled from lnm.grid."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    props, defs = schema["properties"], schema["definitions"]
    catalog = grid.method_catalog()
    defs["method"] = {"type": "string", "enum": list(catalog)}
    defs["crossfit"]["properties"]["backbone"]["enum"] = list(grid.BACKBONES)
    _fill_noise(props["noise"])
    props["backbones"]["items"]["enum"] = list(grid.BACKBONES)
    props["size"]["enum"] = list(grid.MEDMNIST_SIZES)
    props["protocol"]["enum"] = list(grid.PROTOCOLS)
    props["runtime"]["properties"]["stream"]["enum"] = list(grid.STREAM_MODES)
    train = defs["train_override"]["properties"]
    train["precision"]["enum"], train["compile"]["enum"] = list(PRECISIONS), list(COMPILE_MODES)
    train["optimizer"]["properties"]["name"]["enum"] = list(grid.OPTIMIZERS)
    train["schedule"]["properties"]["name"]["enum"] = list(grid.SCHEDULES)
    real = props["real_world"]["additionalProperties"]["properties"]
    real["adapter"]["enum"] = list(grid.ADAPTERS)
    props["real_world"]["additionalProperties"]["allOf"] = grid.adapter_schemas()  # options
    props["method_params"]["properties"] = {n: info.schema() for n, info in catalog.items()}
    when = props["cell_overrides"]["items"]["properties"]["when"]["properties"]
    when["patterns"]["items"]["enum"] = list(grid.PATTERNS)
    return schema


def _fill_noise(noise: dict) -> None:
    """``noise``: a list of rates per synthetic pattern, the config keys the patterns declare
    (their ``params``; one declaration per key, shared by subclasses) and ``fit_on``."""
    noise["properties"]["patterns"]["properties"] = {
        p: {"$ref": "#/definitions/rates"} for p in grid.SYNTHETIC_PATTERNS
    }
    for info in grid.pattern_catalog().values():
        for key, spec in info.params.items():
            if noise["properties"].setdefault(key, spec) != spec:
                raise ConfigError(
                    f"{info.path}: noise.{key} is declared differently by another pattern or "
                    "the schema; a key shared by patterns is declared once (in a base class)"
                )
            if key not in noise["required"]:
                noise["required"].append(key)
    noise["properties"]["classifier"]["properties"]["fit_on"]["enum"] = list(grid.FIT_ON)


def schema_problems(value, schema: dict, prefix=()) -> list[str]:
    """What is wrong with ``value`` by ``schema`` (a fragment of the config schema, whose
    ``$ref`` may point into its own ``definitions``), one line each as the config's errors are
    told, keys named below ``prefix``."""
    errors = jsonschema.Draft202012Validator(schema).iter_errors(value)
    ordered = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    return [_explain(e, prefix, root=schema) for e in ordered]


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _looks_typed(value) -> bool:
    """A string that YAML would read as a mapping, list, number or boolean (a quoted value in a
    YAML file, or a --config value that could not be read as the type the schema wants)."""
    if not isinstance(value, str):
        return False
    try:
        return not isinstance(yaml.safe_load(value), str)
    except yaml.YAMLError:
        return value.lstrip()[:1] in "{["


def _declared(schema: dict, root: dict) -> set[str]:
    """The keys a (sub-)schema declares: its ``properties`` and those of the definitions it
    refers to (``$ref`` within ``root``, ``allOf``)."""
    keys = set(schema.get("properties", {}))
    ref = schema.get("$ref", "")
    if ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        keys |= _declared(node, root)
    for sub in schema.get("allOf", []):
        keys |= _declared(sub, root)
    return keys


def _explain(err: jsonschema.ValidationError, prefix=(), root: dict | None = None) -> str:
    """One line per schema error, naming the key (below ``prefix``, the path of the validated
    sub-document), the bad value and what is allowed (``root``: the whole schema, for the keys
    of the definitions a sub-schema refers to)."""
    path = [*prefix, *err.absolute_path]
    key, value, v, arg = _key(path), err.instance, err.validator, err.validator_value
    if "errorMessage" in err.schema:
        return f"{key}: {err.schema['errorMessage'].strip()}"
    if v in ("additionalProperties", "unevaluatedProperties"):
        allowed = sorted(_declared(err.schema, root or {}))
        extra = sorted(set(value) - set(allowed))
        where = f"under {key!r}" if path else "at the top level"
        return f"unknown key(s) {extra} {where}; allowed keys: {allowed}"
    if v == "enum":
        return f"{key}: {value!r} is not allowed; allowed values: {arg}"
    if v == "required":
        return f"{key}: {err.message}"
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
        "minItems": "at least",
        "pattern": "matching",
    }
    if v in bounds:
        return f"{key}: {value!r} is not allowed; must be {bounds[v]} {arg}"
    if v == "type":
        hint = f" ({STRING_HINT})" if _looks_typed(value) else ""
        return f"{key}: {value!r} is not allowed; must be of type {arg}{hint}"
    return f"{key}: {value!r}: {err.message}"


def _get(node, path: tuple):
    """The value at ``path`` below ``node`` (mappings and lists), or a sentinel when absent."""
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return _ABSENT
    return node


_ABSENT = object()


def read_command_line_values(config: dict, command_line) -> list[tuple]:
    """Read the strings given on Snakemake's command line as YAML where the schema wants
    another type, in place; return the paths changed.

    Snakemake reads ``--config key=value`` as an int, a float, ``True``/``False``, or else
    with YAML's BaseLoader, which keeps every scalar a string: ``allow_download=false`` and
    ``seeds=[0,1]`` arrive as ``'false'`` and ``['0', '1']``. A string that stands where the
    schema wants a boolean, number, integer or null, and that came from the command line (the
    same string at the same place in ``command_line``), is replaced by its YAML reading
    (YAML 1.1 booleans: true/false, yes/no, on/off in any of their spellings) when that has
    a wanted type. Strings from config files are never changed (a quoted value in a file is
    an error with a hint)."""
    if not command_line:
        return []
    validator = jsonschema.Draft202012Validator(load_schema())
    changed: list[tuple] = []
    for _ in range(32):  # a value read may reveal a type error below it (a mapping's values)
        found = False
        for err in validator.iter_errors(config):
            path = tuple(err.absolute_path)
            if (
                err.validator != "type"
                or not isinstance(err.instance, str)
                or not path
                or _get(command_line, path) != err.instance
            ):
                continue
            try:
                value = yaml.safe_load(err.instance)
            except yaml.YAMLError:
                continue
            wanted = err.validator_value
            wanted = wanted if isinstance(wanted, list) else [wanted]
            if isinstance(value, str) or not any(validator.is_type(value, t) for t in wanted):
                continue
            parent = _get(config, path[:-1])
            parent[path[-1]] = value
            changed.append(path)
            found = True
        if not found:
            break
    return changed


def validate_config(
    config: dict,
    sources: Sources | None = None,
    command_line=None,
    folders: bool = False,
    problems=(),
) -> dict:
    """Validate ``config`` (a merged config, ``config.yaml`` first); raise ConfigError listing
    every problem at once, in file order (``sources``: where each key was set; by default the
    order of the config's own keys). Returns ``config``: every default is already in
    ``config.yaml``; nothing is filled in.

    ``command_line``: the values given as ``--config key=value`` (Snakemake's), read as YAML
    where the schema wants another type (:func:`read_command_line_values`; ``config`` is
    changed in place). ``folders``: also check the real-world datasets' folders and CSVs
    (:func:`check_sources`). ``problems``: found before (keys written twice)."""
    if sources is None:
        sources = Sources()
        sources.add("config", config)
    read_command_line_values(config, command_line)
    schema = load_schema()
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    found = list(problems)
    found += [Problem(_explain(e, root=schema), (tuple(e.absolute_path),)) for e in errors]
    found += _semantic_problems(config, schema_ok=not errors)
    if folders:
        found += _source_problems(config)
    if found:
        raise ConfigError("invalid config:\n  " + "\n  ".join(sources.order(found)))
    return config


def _semantic_problems(config: dict, schema_ok: bool = True) -> list[Problem]:
    """What the schema cannot say (every check runs, so that all problems come at once; where
    the schema has found the values a check reads malformed, that check says nothing)."""
    problems: list[Problem] = []
    for check in (
        _results_problems,
        _name_problems,
        _grid_problems,
        _cell_override_problems,
        _last_k_problems,
    ):
        try:
            problems += check(config)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            if schema_ok:
                raise
    return problems


def _results_problems(config: dict) -> list[Problem]:
    """``results`` names a folder below which raw/, data/, runs/ ... can go: not empty (the
    workflow would plan /raw, /data, /runs) and not the filesystem root."""
    results = config["results"]
    if not isinstance(results, str):
        return []
    text = (
        "results: {!r} is not allowed: every output goes below <results>/ (raw/, data/, "
        "noise/, runs/, ...), which {} is the filesystem root; name a folder, e.g. results"
    )
    if not results.strip():
        return [Problem(text.format(results, "with an empty name"), (("results",),))]
    if Path(os.path.abspath(os.path.expanduser(results))).resolve() == Path("/").resolve():
        return [Problem(text.format(results, "here"), (("results",),))]
    return []


def _name_problems(config: dict) -> list[Problem]:
    """Every method and dataset is known; a variant or real-world name does not shadow a
    method's or a MedMNIST dataset's; each variant's params fit its method."""
    problems = []
    real, variants = config["real_world"], config["method_variants"]
    catalog = grid.method_catalog()
    for name in sorted(set(variants) & set(catalog)):
        problems.append(
            Problem(
                f"method_variants.{name}: {name!r} is a method's name; give the variant "
                "another name",
                (("method_variants", name),),
            )
        )
    for name, variant in variants.items():
        if not isinstance(variant, dict) or variant.get("method") not in catalog:
            continue  # the schema names it
        schema = catalog[variant["method"]].schema()
        prefix = ("method_variants", name, "method_params")
        for err in jsonschema.Draft202012Validator(schema).iter_errors(
            variant.get("method_params", {})
        ):
            problems.append(Problem(_explain(err, prefix), ((*prefix, *err.absolute_path),)))
    allowed = list(grid.grid_methods(config))
    for i, m in enumerate(config["methods"]):
        if isinstance(m, str) and m not in allowed:
            problems.append(
                Problem(
                    f"methods[{i}]: {m!r} is not allowed; allowed values: {allowed} (or the "
                    "name of a method_variants entry)",
                    (("methods", i),),
                )
            )
    for name in sorted(set(real) & set(grid.MEDMNIST_DATASETS)):
        problems.append(
            Problem(
                f"real_world.{name}: {name!r} is a MedMNIST dataset's name; give the "
                "real-world entry another name",
                (("real_world", name),),
            )
        )
    for i, d in enumerate(config["datasets"]):
        if isinstance(d, str) and d not in grid.MEDMNIST_DATASETS and d not in real:
            defined = f"; real_world entries: {', '.join(sorted(real))}" if real else ""
            problems.append(
                Problem(
                    f"datasets[{i}]: {d!r} is neither a supported MedMNIST dataset nor a "
                    f"`real_world` entry; allowed: {', '.join(grid.MEDMNIST_DATASETS)}{defined}",
                    (("datasets", i),),
                )
            )
    return problems


def _known_datasets(config: dict) -> list[str]:
    """The datasets of ``datasets`` that are known (MedMNIST or a well-formed real_world
    entry), in order."""
    real = config["real_world"]
    return [
        d
        for d in config["datasets"]
        if d in grid.MEDMNIST_DATASETS or isinstance(real.get(d), dict)
    ]


def _run_methods(config: dict) -> list[str]:
    """The methods of ``methods`` that are known (a method or a well-formed variant)."""
    catalog = grid.method_catalog()
    variants = config["method_variants"]
    return [
        m
        for m in config["methods"]
        if m in catalog
        or (isinstance(variants.get(m), dict) and variants[m].get("method") in catalog)
    ]


def _grid_problems(config: dict) -> list[Problem]:
    """Every dataset has a noise cell: with every noise.patterns list empty and noise.clean
    false a MedMNIST dataset would train nothing (the workflow would download, preprocess and
    then fail in its tables)."""
    empty = [d for d in _known_datasets(config) if not grid.noise_settings(config, d)]
    if not empty:
        return []
    return [
        Problem(
            f"noise: every noise.patterns list is empty and noise.clean is false, so "
            f"{', '.join(empty)} would get no noise cell and no training run; give a pattern "
            "rates (e.g. noise.patterns.symmetric: [0.4]) or set noise.clean: true",
            (("noise", "patterns"), ("noise", "clean")),
        )
    ]


@dataclass(frozen=True)
class OverrideUse:
    """Where one ``cell_overrides`` entry applies in a config: the grid methods it changes and
    {dataset: [noise setting, e.g. 'symmetric-0.8']} of the cells its ``when`` selects."""

    index: int
    methods: list[str]
    cells: dict[str, list[str]]

    def applies(self) -> bool:
        return bool(self.methods and self.cells)


def override_uses(config: dict) -> list[OverrideUse]:
    """:class:`OverrideUse` of every ``cell_overrides`` entry of a valid config, in order."""
    uses = []
    methods, datasets = _run_methods(config), _known_datasets(config)
    for i, entry in enumerate(config["cell_overrides"]):
        changed = entry["method_params"]
        runs = [m for m in methods if grid.base_method(config, m) in changed]
        cells = {}
        for d in datasets:
            hits = [
                f"{p}-{r}"
                for p, r in grid.noise_settings(config, d)
                if cell_matches(entry["when"], p, float(r), d)
            ]
            if hits:
                cells[d] = hits
        uses.append(OverrideUse(i, runs, cells))
    return uses


def _patterns_of(config: dict, dataset: str) -> set[str]:
    """The patterns a dataset can ever have: the clean cell and the synthetic patterns
    (MedMNIST) or the clean cell and ``real`` (a real-world entry)."""
    if grid.is_real_world(config, dataset):
        return {grid.CLEAN, grid.REAL}
    return {grid.CLEAN, *grid.SYNTHETIC_PATTERNS}


def _cell_override_problems(config: dict) -> list[Problem]:
    """A ``cell_overrides`` entry that can never apply: rate_min > rate_max, an unknown dataset,
    patterns none of its datasets can have, or no method_params (unknown patterns and methods
    the schema refuses). One that applies to no cell of this grid is a note
    (:func:`config_notes`): presets are merged over other grids."""
    problems = []
    known = set(grid.MEDMNIST_DATASETS) | set(config["real_world"])
    for i, entry in enumerate(config["cell_overrides"]):
        when, here = entry.get("when") or {}, ("cell_overrides", i)
        lo, hi = when.get("rate_min"), when.get("rate_max")
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
            problems.append(
                Problem(
                    f"cell_overrides[{i}].when: rate_min {lo} is larger than rate_max {hi}, so "
                    "it selects no rate and the entry never applies; allowed: rate_min <= "
                    "rate_max (both bounds inclusive)",
                    ((*here, "when", "rate_min"), (*here, "when", "rate_max")),
                )
            )
        names = when.get("datasets") or []
        for j, d in enumerate(names):
            if d not in known:
                extra = sorted(config["real_world"])
                problems.append(
                    Problem(
                        f"cell_overrides[{i}].when.datasets[{j}]: {d!r} is neither a MedMNIST "
                        "dataset nor a `real_world` entry, so the entry never applies there; "
                        f"allowed: {', '.join([*grid.MEDMNIST_DATASETS, *extra])}",
                        ((*here, "when", "datasets", j),),
                    )
                )
        patterns = when.get("patterns")
        if patterns and names and all(d in known for d in names):
            if not any(p in _patterns_of(config, d) for d in names for p in patterns):
                problems.append(
                    Problem(
                        f"cell_overrides[{i}].when: patterns {patterns} never occur on "
                        f"datasets {names} (a MedMNIST dataset has the clean cell and the "
                        "synthetic patterns, a real-world one the clean cell and `real`), so "
                        "the entry never applies",
                        ((*here, "when", "patterns"), (*here, "when", "datasets")),
                    )
                )
        if entry.get("method_params") == {}:
            problems.append(
                Problem(
                    f"cell_overrides[{i}].method_params is empty: the entry changes nothing; "
                    "name a method and the parameters it changes",
                    ((*here, "method_params"),),
                )
            )
    return problems


def _last_k_problems(config: dict) -> list[Problem]:
    """The headline's last_k fits every method's (and dataset's) epochs."""
    problems = []
    k = config["train"]["last_k"]
    if not isinstance(k, int):
        return []
    real = config["real_world"]
    for dataset in _known_datasets(config):
        for method in _run_methods(config):
            epochs = train_settings(config, method, dataset)["epochs"]
            if not isinstance(epochs, int) or k <= epochs:
                continue
            base = grid.base_method(config, method)
            if "epochs" in (real.get(dataset, {}).get("train") or {}):
                where, who = ("real_world", dataset, "train", "epochs"), f"dataset {dataset}"
            elif "epochs" in config["recipes"].get(base, {}) and config["protocol"] == "reference":
                where, who = ("recipes", base, "epochs"), f"method {method}"
            else:
                where, who = ("train", "epochs"), f"method {method}"
            problems.append(
                Problem(
                    f"train.last_k: {k} is larger than {_key(where)} = {epochs} ({who}); the "
                    f"headline averages the last {k} epochs: set last_k <= {epochs}",
                    (("train", "last_k"), where),
                )
            )
    return problems


def _source_problems(config: dict) -> list[Problem]:
    """The folders and CSV files of every real-world dataset in ``datasets`` exist (checked
    for each well-formed entry, beside the config's other problems)."""
    entries = config.get("real_world")
    if not isinstance(entries, dict) or not isinstance(config.get("datasets"), list):
        return []  # the schema names the problem
    real = [
        d
        for d in config["datasets"]
        if isinstance(entries.get(d), dict)
        and entries[d].get("adapter") in grid.ADAPTERS
        and isinstance(entries[d].get("root"), str)
        and isinstance(entries[d].get("options", {}), dict)
        and _options_fit_schema(entries[d])  # else the schema has named the problem
    ]
    if not real:
        return []
    from .data.realworld import check_layout

    problems = []
    for d in real:
        entry = entries[d]
        try:
            check_layout(
                entry["adapter"], Path(entry["root"]).expanduser(), entry.get("options", {})
            )
        except Exception as err:  # the adapter's own error names the path and layout
            problems.append(
                Problem(f"real_world.{d} ({entry['adapter']}): {err}", (("real_world", d),))
            )
    return problems


def _options_fit_schema(entry: dict) -> bool:
    schema = grid.adapter_info(entry["adapter"]).options_schema()
    return jsonschema.Draft202012Validator(schema).is_valid(entry.get("options", {}))


def check_sources(config: dict) -> None:
    """The folders and CSV files of every real-world dataset in ``datasets`` exist (checked when
    the workflow is parsed; nothing is downloaded). Raises ConfigError naming the path and what
    is expected there."""
    problems = _source_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(p.text for p in problems))


def source_files(config: dict, dataset: str) -> list[Path]:
    """The CSV files a real-world dataset is read from (inputs of its source record)."""
    from .data.realworld import check_layout

    entry = config["real_world"][dataset]
    return check_layout(
        entry["adapter"], Path(entry["root"]).expanduser(), entry.get("options", {})
    )


def _medmnist_classes() -> dict[str, int]:
    """{MedMNIST dataset: number of classes}, read from medmnist's ``info.py`` without
    importing medmnist (which imports torch); empty when medmnist is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("medmnist")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "info.py"
    info_spec = importlib.util.spec_from_file_location("_lnm_medmnist_info", path)
    if info_spec is None or not path.exists():
        return {}
    module = importlib.util.module_from_spec(info_spec)
    info_spec.loader.exec_module(module)
    return {d: len(module.INFO[d]["label"]) for d in grid.MEDMNIST_DATASETS if d in module.INFO}


def _why_nowhere(config: dict, use: OverrideUse) -> str:
    """Why a ``cell_overrides`` entry applies to no run of this grid."""
    entry = config["cell_overrides"][use.index]
    when = entry["when"]
    if not use.methods:
        return f"none of its methods ({', '.join(entry['method_params'])}) is in methods"
    datasets = _known_datasets(config)
    if "datasets" in when and not set(when["datasets"]) & set(datasets):
        return f"none of its datasets ({', '.join(when['datasets'])}) is in datasets"
    run = {p for d in datasets for p, _ in grid.noise_settings(config, d)}
    if "patterns" in when and not set(when["patterns"]) & run:
        return f"none of its patterns ({', '.join(when['patterns'])}) is run here"
    return "no cell of this grid has a rate within its rate_min/rate_max"


def config_notes(config: dict, overrides: bool = True) -> list[str]:
    """What a user should know about a valid config that is not an error (``lnm validate`` and
    the workflow's parse-time log print them): pairflip on a two-class dataset is symmetric
    noise; (``overrides``) a ``cell_overrides`` entry applies to no run of this grid."""
    notes = []
    if config["noise"]["patterns"].get("pairflip"):
        classes = _medmnist_classes()
        two = [
            d
            for d in config["datasets"]
            if not grid.is_real_world(config, d) and classes.get(d) == 2
        ]
        if two:
            notes.append(
                f"pairflip on {', '.join(two)} (2 classes) is exactly symmetric noise: with "
                "two classes the only other class is the pair, so both patterns have the same "
                "transition matrix (only their draws differ); its cells test no second noise "
                "structure"
            )
    for use in override_uses(config) if overrides else []:
        if not use.applies():
            notes.append(
                f"cell_overrides[{use.index}] applies to no run of this grid: "
                f"{_why_nowhere(config, use)} (kept for the grids it may be merged over)"
            )
    return notes


def override_lines(config: dict) -> list[str]:
    """For each ``cell_overrides`` entry, the methods and cells it applies to (lnm validate)."""
    lines = []
    for use in override_uses(config):
        if not use.applies():
            why = _why_nowhere(config, use)
            lines.append(f"cell_overrides[{use.index}]: applies to no run of this grid ({why})")
            continue
        groups: dict[tuple, list[str]] = {}
        for d, settings in use.cells.items():
            groups.setdefault(tuple(settings), []).append(d)
        where = "; ".join(f"{', '.join(ds)}: {', '.join(s)}" for s, ds in groups.items())
        lines.append(f"cell_overrides[{use.index}] ({', '.join(use.methods)}) on {where}")
    return lines


class _Located:
    """One YAML file read strictly: its mapping, key path -> (line, column), and its keys
    written twice (YAML itself keeps the last silently)."""

    def __init__(self, path: Path, index: int):
        self.path, self.lines, self.problems = path, {}, []
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                self._walk(node, (), index, 0)  # before constructing: merges rewrite the nodes
            data = loader.construct_document(node) if node is not None else None
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
            raise ConfigError(f"{where}: YAML syntax error: {err.problem or err}") from None
        finally:
            loader.dispose()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: a config file must be a mapping of keys, got {type(data).__name__}"
            )
        self.data = data

    def _walk(self, node, path: tuple, index: int, depth: int) -> None:
        if depth > 64:  # a recursive alias
            return
        if isinstance(node, yaml.MappingNode):
            merges = [v for k, v in node.value if k.tag == _MERGE_TAG]
            for merged in merges:  # `<<: *anchor`: its keys here, unless written here too
                for m in merged.value if isinstance(merged, yaml.SequenceNode) else [merged]:
                    self._walk(m, path, index, depth + 1)
            first: dict = {}
            for k, v in node.value:
                if k.tag == _MERGE_TAG or not isinstance(k, yaml.ScalarNode):
                    continue
                key, line = k.value, k.start_mark.line + 1
                if key in first:
                    self.problems.append(
                        Problem(
                            f"{self.path}, line {line}: key {_key((*path, key))!r} is written "
                            f"twice (first on line {first[key]}); YAML would silently keep only "
                            "the last value: remove one of them",
                            at=(index, line, k.start_mark.column + 1),
                        )
                    )
                else:
                    first[key] = line
                self.lines[(*path, key)] = (line, k.start_mark.column + 1)
                self._walk(v, (*path, key), index, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                self._walk(item, (*path, i), index, depth + 1)


def read_config_files(files) -> tuple[list[dict], Sources, list[Problem]]:
    """Read config files strictly, in merge order: their mappings, where each key was set, and
    the keys written twice (problems, reported with the others)."""
    sources, problems, datas = Sources(), [], []
    for i, f in enumerate(map(Path, files)):
        located = _Located(f, i)
        datas.append(located.data)
        problems += located.problems
        sources.add(str(f), located.data, located.lines)
    return datas, sources, problems


def load_config(
    *paths: str | Path,
    overrides: dict | None = None,
    base: str | Path | None = BASE_CONFIG,
    folders: bool = False,
) -> dict:
    """Merge ``base`` (``config.yaml``) and the YAML files left to right (later wins, dicts
    merged deeply, lists replaced), then ``overrides``; validate (every problem at once, in
    file order; ``folders``: the real-world datasets' folders too)."""
    files = [Path(p) for p in paths]
    if base is not None and not any(f.resolve() == Path(base).resolve() for f in files):
        files.insert(0, Path(base))
    datas, sources, problems = read_config_files(files)
    config: dict = {}
    for data in datas:
        _merge(config, data)
    if overrides:
        _merge(config, overrides)
        sources.add("overrides", overrides)
    return validate_config(config, sources, folders=folders, problems=problems)


def check_workflow_config(config: dict, files, command_line=None) -> list[str]:
    """The workflow's parse-time check of Snakemake's merged ``config``: re-read ``files`` (the
    config files Snakemake merged, in order) strictly (a key written twice is an error naming
    file, line and key; Snakemake's YAML loader keeps the last silently), read the
    ``command_line`` strings as YAML where the schema wants another type (in place), validate
    and check the real-world folders, raising ConfigError with every problem in file order.
    Returns :func:`config_notes`."""
    _, sources, problems = read_config_files(files)
    if command_line:
        sources.add(COMMAND_LINE, _plain(command_line))
    validate_config(config, sources, command_line, folders=True, problems=problems)
    return config_notes(config)


def _plain(node):
    """``node`` with every mapping a dict (Snakemake's command-line config may be immutable)."""
    if isinstance(node, Mapping):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


#: Config keys that change where or how jobs run, never what they compute: no job's params
#: hold them, so changing them reruns nothing (the raw file is identified by its MD5).
RUN_ONLY_KEYS = ("results", "raw_dir", "allow_download", "runtime", "resources")


def result_config(config: dict) -> dict:
    """``config`` without :data:`RUN_ONLY_KEYS` and without the real-world datasets' ``root``
    folders: what the results depend on."""
    out = {k: copy.deepcopy(v) for k, v in config.items() if k not in RUN_ONLY_KEYS}
    for entry in out.get("real_world", {}).values():
        entry.pop("root", None)
    return out


def merged(base: dict, new: dict) -> dict:
    """A deep copy of ``base`` updated with ``new`` (nested dicts merged, lists replaced)."""
    return _merge(copy.deepcopy(base), new)


def _merge(base: dict, new: dict) -> dict:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def train_settings(config: dict, method: str, dataset: str | None = None) -> dict:
    """``train``, overridden by the method's recipe under ``protocol: reference``, then by the
    dataset's ``real_world.<name>.train`` (e.g. the fundus sets' batch size and augmentation)."""
    train = config["train"]
    if config["protocol"] == "reference":
        train = merged(train, config["recipes"].get(grid.base_method(config, method), {}))
    if dataset is not None and grid.is_real_world(config, dataset):
        train = merged(train, config["real_world"][dataset].get("train", {}))
    return train


def cell_matches(when: dict, noise: str, rate: float, dataset: str | None = None) -> bool:
    """Whether a ``cell_overrides`` entry's ``when`` (patterns, rate_min, rate_max, datasets;
    rate bounds inclusive, compared with a 1e-9 tolerance) selects the cell (noise, rate) of
    ``dataset`` (an entry with ``datasets`` never matches without a dataset)."""
    eps = 1e-9
    return (
        noise in when.get("patterns", [noise])
        and float(rate) >= when.get("rate_min", 0.0) - eps
        and float(rate) <= when.get("rate_max", 1.0) + eps
        and ("datasets" not in when or dataset in when["datasets"])
    )


def method_params(
    config: dict, method: str, noise: str | None = None, rate=None, dataset: str | None = None
) -> dict:
    """The method's hyperparameters in a cell: its declared defaults, updated with
    ``method_params``, then with every ``cell_overrides`` entry that matches the cell (in order,
    later wins), then (a ``method_variants`` entry) with the variant's ``method_params``.
    Without a cell, the cell-independent values.

    In a real-world cell a null noise rate (``forget_rate``) becomes ``estimated`` unless the
    dataset's ``rate_source`` is ``assumed``: there is no true rate to tell a method."""
    base = grid.base_method(config, method)
    params = {**grid.method_info(base).defaults, **config["method_params"].get(base, {})}
    if noise is not None:
        for entry in config["cell_overrides"]:
            if cell_matches(entry["when"], noise, rate, dataset):
                params.update(entry["method_params"].get(base, {}))
    if base != method:
        params.update(config["method_variants"][method].get("method_params", {}))
    if noise == grid.REAL and dataset is not None:
        if config["real_world"][dataset].get("rate_source", "estimated") == "estimated":
            for key in grid.rate_params(base):
                if params.get(key) is None:
                    params[key] = grid.ESTIMATED
    return params


def run_spec(config: dict, dataset, noise, rate, noise_seed, method, backbone, seed) -> RunSpec:
    """The canonical spec of one run (wildcard values may be strings).

    ``eval_view``: the method's LNMBench view (its file's ``eval_view``) under ``protocol:
    reference``, the softmax mean of the networks under ``harmonized``."""
    train = train_settings(config, method, dataset)
    reference = config["protocol"] == "reference"
    return RunSpec(
        dataset=dataset,
        size=grid.dataset_size(config, dataset),
        noise=noise,
        rate=float(rate),
        noise_seed=int(noise_seed),
        method=method,
        backbone=backbone,
        seed=int(seed),
        pretrained=bool(config["pretrained"]),
        epochs=int(train["epochs"]),
        batch_size=int(train["batch_size"]),
        optimizer=dict(train["optimizer"]),
        schedule=dict(train["schedule"]),
        augment=dict(train["augment"]),
        drop_last=bool(train["drop_last"]),
        last_k=int(config["train"]["last_k"]),
        eval_view=(
            grid.method_info(grid.base_method(config, method)).eval_view
            if reference
            else grid.DEFAULT_EVAL_VIEW
        ),
        precision=str(train["precision"]),
        compile=str(train["compile"]),
        method_params=method_params(config, method, noise, rate, dataset),
        base_method=None
        if grid.base_method(config, method) == method
        else grid.base_method(config, method),
    )
