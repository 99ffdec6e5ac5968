"""Writing the report's table files.

Every file goes through :func:`lnm.checksum.artifact` (atomic, with a SHA-256 sidecar), and a
report rule writes exactly the files :data:`lnm.grid.TABLES` lists for it
(:func:`write_rule_tables`), so the Snakemake rules, the writers and the tests cannot drift.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from lnm import grid
from lnm.checksum import artifact

#: What a file holds: its text, or a function that writes it to the path it is given.
Content = str | Callable[[Path], object]


def csv(df: pd.DataFrame, index: bool = False, float_format: str | None = None) -> Content:
    """``df`` as a CSV file (``DataFrame.to_csv`` with these options)."""
    return lambda path: df.to_csv(path, index=index, float_format=float_format)


def write(path: str | os.PathLike, content: Content) -> Path:
    """Write one file (text or writer function) as an artifact; return its path."""
    with artifact(path) as tmp:
        if isinstance(content, str):
            tmp.write_text(content)
        else:
            content(tmp)
    return Path(path)


def write_rule_tables(
    rule: str, out_dir: str | os.PathLike, contents: dict[str, Content]
) -> dict[str, Path]:
    """Write the tables of report rule ``rule`` into ``out_dir``: ``contents`` must name exactly
    the files ``lnm.grid.TABLES[rule]`` lists (checked before anything is written); return
    name -> path in that order."""
    expected = grid.TABLES[rule]
    missing = [n for n in expected if n not in contents]
    extra = [n for n in contents if n not in expected]
    if missing or extra:
        raise ValueError(
            f"rule {rule}: the writer must produce exactly lnm.grid.TABLES[{rule!r}]; "
            f"missing {missing}, not listed there {extra}"
        )
    out = Path(out_dir)
    return {name: write(out / name, contents[name]) for name in expected}
