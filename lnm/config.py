"""Config loading and validation, and the run specs of a config.

``config.yaml`` is the base of every config and holds every workflow-level default; presets and
``--config`` values are merged over it (dicts deeply, lists replaced), exactly as Snakemake's
``configfile:`` + ``--configfile`` do. Method hyperparameter defaults live next to each method
(its ``params``); ``method_params`` in a config holds only overrides. One validation pass
(:func:`validate_config`) runs in the Snakefile at parse time and in the ``lnm`` command: the
JSON schema in ``schemas/config.schema.yaml`` with its enums and per-method parameter schemas
filled from :mod:`lnm.grid`, then the checks a schema cannot express. Errors name the key, the
bad value and what is allowed; YAML syntax errors name the file and line. Torch-free.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from . import grid
from .train.spec import COMPILE_MODES, PRECISIONS, RunSpec

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schemas" / "config.schema.yaml"
BASE_CONFIG = ROOT / "config.yaml"

STRING_HINT = (
    "a value given with --config on the command line arrives as a string when it is nested or "
    "typed ({...}, [...]); put such values in a YAML file and pass it with --configfile"
)


class ConfigError(ValueError):
    pass


def load_schema() -> dict:
    """The config schema with its enums and method parameter schemas filled from lnm.grid."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    props, defs = schema["properties"], schema["definitions"]
    catalog = grid.method_catalog()
    defs["method"] = {"type": "string", "enum": list(catalog)}
    noise = props["noise"]["properties"]
    noise["patterns"]["properties"] = {
        p: {"$ref": "#/definitions/rates"} for p in grid.SYNTHETIC_PATTERNS
    }
    noise["classifier"]["properties"]["backbone"]["enum"] = list(grid.BACKBONES)
    props["estimation"]["properties"]["backbone"]["enum"] = list(grid.BACKBONES)
    props["backbones"]["items"]["enum"] = list(grid.BACKBONES)
    props["size"]["enum"] = list(grid.MEDMNIST_SIZES)
    train = defs["train_override"]["properties"]
    train["precision"]["enum"], train["compile"]["enum"] = list(PRECISIONS), list(COMPILE_MODES)
    real = props["real_world"]["additionalProperties"]["properties"]
    real["adapter"]["enum"] = list(grid.ADAPTERS)
    props["method_params"]["properties"] = {n: info.schema() for n, info in catalog.items()}
    when = props["cell_overrides"]["items"]["properties"]["when"]["properties"]
    when["patterns"]["items"]["enum"] = list(grid.PATTERNS)
    return schema


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _looks_typed(value) -> bool:
    """A string that YAML would read as a mapping, list, number or boolean (so it probably came
    from --config, which passes such values on as strings)."""
    if not isinstance(value, str):
        return False
    try:
        return not isinstance(yaml.safe_load(value), str)
    except yaml.YAMLError:
        return value.lstrip()[:1] in "{["


def _explain(err: jsonschema.ValidationError, prefix=()) -> str:
    """One line per schema error, naming the key (below ``prefix``, the path of the validated
    sub-document), the bad value and what is allowed."""
    path = [*prefix, *err.absolute_path]
    key, value, v, arg = _key(path), err.instance, err.validator, err.validator_value
    if "errorMessage" in err.schema:
        return f"{key}: {err.schema['errorMessage'].strip()}"
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
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


def validate_config(config: dict) -> dict:
    """Validate ``config`` (a merged config, ``config.yaml`` first); raise ConfigError listing
    every problem. Returns ``config`` unchanged: every default is already in ``config.yaml``."""
    schema = load_schema()
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(config),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    problems = [_explain(e) for e in errors] or _semantic_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def _semantic_problems(config: dict) -> list[str]:
    """What the schema cannot say: every dataset is known; a real-world name does not shadow a
    MedMNIST one; the headline's last_k fits every method's (and dataset's) epochs."""
    problems = []
    real, variants = config["real_world"], config["method_variants"]
    catalog = grid.method_catalog()
    for name in sorted(set(variants) & set(catalog)):
        problems.append(
            f"method_variants.{name}: {name!r} is a method's name; give the variant another name"
        )
    for name, variant in sorted(variants.items()):
        schema = catalog[variant["method"]].schema()
        for err in jsonschema.Draft202012Validator(schema).iter_errors(
            variant.get("method_params", {})
        ):
            problems.append(_explain(err, ("method_variants", name, "method_params")))
    allowed = list(grid.grid_methods(config))
    for i, m in enumerate(config["methods"]):
        if m not in allowed:
            problems.append(
                f"methods[{i}]: {m!r} is not allowed; allowed values: {allowed} (or the name of "
                "a method_variants entry)"
            )
    for name in sorted(set(real) & set(grid.MEDMNIST_DATASETS)):
        problems.append(
            f"real_world.{name}: {name!r} is a MedMNIST dataset's name; give the real-world "
            "entry another name"
        )
    for i, d in enumerate(config["datasets"]):
        if d not in grid.MEDMNIST_DATASETS and d not in real:
            defined = f"; real_world entries: {', '.join(sorted(real))}" if real else ""
            problems.append(
                f"datasets[{i}]: {d!r} is neither a supported MedMNIST dataset nor a `real_world` "
                f"entry; allowed: {', '.join(grid.MEDMNIST_DATASETS)}{defined}"
            )
    if problems:
        return problems
    k = config["train"]["last_k"]
    for dataset in config["datasets"]:
        for method in config["methods"]:
            epochs = train_settings(config, method, dataset)["epochs"]
            if k > epochs:
                if "epochs" in real.get(dataset, {}).get("train", {}):
                    where, who = f"real_world.{dataset}.train.epochs", f"dataset {dataset}"
                elif (
                    "epochs" in config["recipes"].get(method, {})
                    and config["protocol"] == "reference"
                ):
                    where, who = f"recipes.{method}.epochs", f"method {method}"
                else:
                    where, who = "train.epochs", f"method {method}"
                problems.append(
                    f"train.last_k: {k} is larger than {where} = {epochs} ({who}); the "
                    f"headline averages the last {k} epochs: set last_k <= {epochs}"
                )
    return list(dict.fromkeys(problems))


def check_sources(config: dict) -> None:
    """The folders and CSV files of every real-world dataset in ``datasets`` exist (checked when
    the workflow is parsed; nothing is downloaded). Raises ConfigError naming the path and what
    is expected there."""
    real = [d for d in config["datasets"] if grid.is_real_world(config, d)]
    if not real:
        return
    from .data.realworld import check_layout

    problems = []
    for d in real:
        entry = config["real_world"][d]
        try:
            check_layout(
                entry["adapter"], Path(entry["root"]).expanduser(), entry.get("options", {})
            )
        except Exception as err:  # the adapter's own error names the path and layout
            problems.append(f"real_world.{d} ({entry['adapter']}): {err}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def source_files(config: dict, dataset: str) -> list[Path]:
    """The CSV files a real-world dataset is read from (inputs of its source record)."""
    from .data.realworld import check_layout

    entry = config["real_world"][dataset]
    return check_layout(
        entry["adapter"], Path(entry["root"]).expanduser(), entry.get("options", {})
    )


def _read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {err.problem or err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config file must be a mapping of keys, got {type(data).__name__}"
        )
    return data


def load_config(
    *paths: str | Path, overrides: dict | None = None, base: str | Path | None = BASE_CONFIG
) -> dict:
    """Merge ``base`` (``config.yaml``) and the YAML files left to right (later wins, dicts
    merged deeply, lists replaced), then ``overrides``; validate."""
    files = [Path(p) for p in paths]
    if base is not None and not any(f.resolve() == Path(base).resolve() for f in files):
        files.insert(0, Path(base))
    config: dict = {}
    for f in files:
        _merge(config, _read_yaml(f))
    _merge(config, overrides or {})
    return validate_config(config)


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
