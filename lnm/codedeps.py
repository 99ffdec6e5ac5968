"""The code a workflow stage executes: the closure of ``lnm`` modules its entry point imports.

Read statically (``ast``; nothing is imported), so the Snakefile can list each rule's code
inputs without torch. Every ``import``/``from ... import`` counts, at module level or inside a
function; ``from pkg import name`` counts ``pkg/name.py`` when that module exists, and importing
a module counts the ``__init__.py`` of every package above it (Python runs them too). Dynamic
imports (``importlib``) are not followed: :mod:`lnm.methods` imports one method module by name,
and the ``train`` rule adds that method's own closure.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

ROOT_PACKAGE = "lnm"


def _module_file(pkg_root: Path, module: str) -> Path | None:
    """``lnm.a.b`` -> ``<pkg_root>/a/b.py`` or ``<pkg_root>/a/b/__init__.py`` (None if neither)."""
    parts = module.split(".")
    if parts[0] != ROOT_PACKAGE:
        return None
    base = pkg_root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(pkg_root: Path, path: Path) -> str | None:
    """Dotted name of ``path`` when it lies inside the package, else None (an entry script)."""
    try:
        rel = path.resolve().relative_to(pkg_root.resolve())
    except ValueError:
        return None
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([ROOT_PACKAGE, *parts])


@functools.cache
def _imports(pkg_root: Path, path: Path) -> frozenset[str]:
    """Absolute names of the ``lnm`` modules ``path`` imports (anywhere in the file); each file
    is parsed once per process (a Snakefile asks for dozens of overlapping closures)."""
    name = _module_name(pkg_root, path)
    is_pkg = path.name == "__init__.py"
    package = (name if is_pkg else name.rpartition(".")[0]) if name else ""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if not package:
                    raise ValueError(f"{path}: relative import outside the {ROOT_PACKAGE} package")
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # submodules, where they exist
    return frozenset(m for m in found if m.split(".")[0] == ROOT_PACKAGE)


@functools.cache
def _closure(pkg_root: Path, entries: tuple[Path, ...]) -> tuple[Path, ...]:
    seen: set[Path] = set()
    todo = list(entries)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(pkg_root, path):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # the packages above it run their __init__.py
                f = _module_file(pkg_root, ".".join(parts[:i]))
                if f is not None and f not in seen:
                    todo.append(f)
    return tuple(sorted(seen))


def closure(entries: Iterable[str | Path], pkg_root: str | Path) -> list[Path]:
    """The entry files plus every ``lnm`` module they import, transitively (sorted paths).

    ``pkg_root`` is the folder of the ``lnm`` package the entries run with."""
    root = Path(pkg_root).resolve()
    return list(_closure(root, tuple(sorted(Path(e).resolve() for e in entries))))


def code_digest(files: Iterable[str | Path], relative_to: str | Path) -> str:
    """SHA-256 over the (relative path, content) of ``files``: the identity of the code a run
    executes (part of its resume identity)."""
    h = hashlib.sha256()
    base = Path(relative_to).resolve()
    for f in sorted(Path(p).resolve() for p in files):
        rel = f.relative_to(base).as_posix() if f.is_relative_to(base) else f.name
        data = f.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
