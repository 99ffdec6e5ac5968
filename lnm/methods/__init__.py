"""Registry of noisy-label methods: one module per method, discovered automatically.

Every module in this package that defines a :class:`Method` subclass with a ``name`` registers
it; shared building blocks live in modules whose names start with ``_`` (and in ``base``).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Method

ORDER = (
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


def _discover() -> dict[str, type[Method]]:
    found: dict[str, type[Method]] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_") or mod.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Method)
                and obj.name != "base"
                and obj.__module__ == module.__name__
            ):
                found[obj.name] = obj
    rank = {n: i for i, n in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


REGISTRY: dict[str, type[Method]] = _discover()
METHODS = tuple(REGISTRY)


def get_method(name: str) -> type[Method]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}") from None
