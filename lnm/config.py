"""Config loading, validation against ``schemas/config.schema.yaml``, and the run grid.

The same validation runs in the Snakefile (at parse time) and in the ``lnm`` command. Errors
name the key, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _explain(err: jsonschema.ValidationError) -> str:
    key, value, v, arg = _key(err.absolute_path), err.instance, err.validator, err.validator_value
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed))
        where = f"under {key!r}" if err.absolute_path else "at the top level"
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
        return f"{key}: {value!r} is not allowed; must be of type {arg}"
    return f"{key}: {value!r}: {err.message}"


def _resolve(schema: dict, root: dict) -> list[dict]:
    """A sub-schema and everything it pulls in through $ref and allOf."""
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return _resolve(node, root)
    return [schema] + [s for sub in schema.get("allOf", []) for s in _resolve(sub, root)]


def _defaults(schema: dict, config: dict, root: dict) -> None:
    """Fill in the schema's defaults (following $ref/allOf), recursively into objects."""
    for part in _resolve(schema, root):
        for name, sub in part.get("properties", {}).items():
            subs = _resolve(sub, root)
            default = next((s["default"] for s in subs if "default" in s), None)
            if name not in config and default is not None:
                config[name] = copy.deepcopy(default)
            if isinstance(config.get(name), dict):
                _defaults(sub, config[name], root)


def validate_config(config: dict) -> dict:
    """Validate in place (adding schema defaults); raise ConfigError listing every problem."""
    schema = load_schema()
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(config),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_explain(e) for e in errors))
    _defaults(schema, config, schema)
    _check_method_params(config)
    return config


def _check_method_params(config: dict) -> None:
    """Each method's hyperparameter keys must be ones that method defines."""
    from .methods import REGISTRY

    problems = []
    for name, params in config.get("method_params", {}).items():
        if name not in REGISTRY:
            continue  # a schema-listed method not implemented yet: refused when it is used
        unknown = sorted(set(params) - set(REGISTRY[name].defaults))
        if unknown:
            problems.append(
                f"method_params.{name}: unknown key(s) {unknown}; allowed keys: "
                f"{sorted(REGISTRY[name].defaults)}"
            )
    missing = [m for m in config["methods"] if m not in REGISTRY]
    if missing:
        problems.append(f"methods: {missing} not implemented; implemented: {sorted(REGISTRY)}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def load_config(*paths: str | Path, overrides: dict | None = None) -> dict:
    """Merge YAML files left to right (later wins, dicts merged deeply), then validate."""
    config: dict = {}
    for p in paths:
        _merge(config, yaml.safe_load(Path(p).read_text()) or {})
    _merge(config, overrides or {})
    return validate_config(config)


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


@dataclass(frozen=True)
class NoiseCell:
    dataset: str
    noise: str
    rate: str  # formatted as in file names, e.g. "0.2"
    noise_seed: int

    @property
    def tag(self) -> str:
        return f"{self.noise}-{self.rate}-n{self.noise_seed}"


def fmt_rate(rate: float) -> str:
    return f"{float(rate):g}" if rate else "0.0"


def noise_cells(config: dict) -> list[NoiseCell]:
    noise = config["noise"]
    settings = [(p, fmt_rate(r)) for p, rates in noise["patterns"].items() for r in rates]
    if noise.get("clean", True):
        settings.insert(0, ("none", "0.0"))
    return [
        NoiseCell(d, p, r, s)
        for d in config["datasets"]
        for p, r in settings
        for s in noise.get("noise_seeds", [0])
    ]


def run_dirs(config: dict) -> list[str]:
    """Run folders relative to the results folder, in a stable order."""
    return [
        f"runs/{c.dataset}/{c.tag}/{m}/{b}/s{s}"
        for c, m, b, s in itertools.product(
            noise_cells(config), config["methods"], config["backbones"], config["seeds"]
        )
    ]
