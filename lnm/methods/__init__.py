"""Registry of noisy-label methods: one file per method."""
from __future__ import annotations

from .base import Method
from .ce import CE

REGISTRY: dict[str, type[Method]] = {m.name: m for m in (CE,)}
METHODS = tuple(REGISTRY)


def get_method(name: str) -> type[Method]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}") from None
