"""Registry of noisy-label methods: one module per method.

Which methods exist, and their hyperparameters, is read statically from the method files by
:func:`lnm.grid.method_catalog` (no torch needed to list them). :func:`get_method` imports only
the one module a run needs; :data:`REGISTRY` (every method class) imports them all on first use.
Shared building blocks live in modules whose names start with ``_`` (and in ``base``).
"""

from __future__ import annotations

import importlib

from ..grid import method_catalog, method_info, methods
from .base import Method

METHODS = methods()


def get_method(name: str) -> type[Method]:
    """The class of method ``name`` (imports its module only)."""
    info = method_info(name)
    cls = getattr(importlib.import_module(f"{__name__}.{info.module}"), info.cls)
    if not (isinstance(cls, type) and issubclass(cls, Method) and cls.name == name):
        raise TypeError(f"{info.path}: {info.cls} is not the Method subclass named {name!r}")
    return cls


def __getattr__(attr: str):
    if attr == "REGISTRY":  # every method class, in display order
        return {name: get_method(name) for name in method_catalog()}
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
