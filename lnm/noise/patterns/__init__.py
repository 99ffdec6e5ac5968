"""Registry of noise patterns: one module per pattern (its class declares what it is; see
:mod:`lnm.noise.patterns.base`).

Which patterns exist, in which order, and their traits is read statically from the pattern
files by :func:`lnm.grid.pattern_catalog` (no numpy needed: the workflow plans with it).
:func:`get_pattern` imports only the one module a draw needs.
"""

from __future__ import annotations

import importlib

from ...grid import pattern_info
from ..spec import check_pattern
from .base import ClassConditional, Draw, Pattern

__all__ = ["ClassConditional", "Draw", "Pattern", "get_pattern"]


def get_pattern(name: str) -> Pattern:
    """An instance of the class of pattern ``name`` (imports its module only)."""
    info = pattern_info(check_pattern(name))
    cls = getattr(importlib.import_module(f"{__name__}.{info.module}"), info.cls)
    if not (isinstance(cls, type) and issubclass(cls, Pattern) and cls.name == name):
        raise TypeError(f"{info.path}: {info.cls} is not the Pattern subclass named {name!r}")
    return cls()
