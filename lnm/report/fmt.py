"""Display conventions shared by every report table and figure.

- row order: methods and noise patterns in their canonical (display) order, not alphabetical
  (:func:`sort_rows`);
- the one ``last_k`` of a run table, for every label that says what a ``*_last_k`` number
  averages (:func:`runs_last_k`; the texts themselves come from :mod:`lnm.grid`);
- numbers as text: ``–`` for n/a, ``±`` half-widths, p-values, rates with the † mark, mean ± std.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lnm import grid


def sort_rows(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort by ``by`` with methods and noise patterns in canonical (not alphabetical) order;
    unknown names after the known ones, alphabetically."""

    canonical = {"method": grid.methods(), "noise": grid.PATTERNS}

    def key(col: pd.Series) -> pd.Series:
        if col.name in canonical:
            return col.map({v: i for i, v in enumerate(grid.ordered(col, canonical[col.name]))})
        return col

    return df.sort_values(by, key=key, kind="mergesort").reset_index(drop=True)


def runs_last_k(runs: pd.DataFrame) -> int:
    """The number of epochs every ``*_last_k`` metric of ``runs`` averages (its ``last_k``
    column); raises when the runs mix different k (:func:`lnm.grid.single_last_k`) or when
    there is no run to say."""
    if "last_k" not in runs:
        raise ValueError(
            "the run table has no last_k column, so its labels cannot say how many epochs its "
            "*_last_k metrics average; rebuild runs.csv with lnm.report.aggregate.collect_runs"
        )
    if not len(runs):
        raise ValueError("no runs: last_k is undefined for an empty run table")
    return grid.single_last_k(runs["last_k"])


def sentence(text: str) -> str:
    """``text`` with a capital first letter, for a heading."""
    return text[:1].upper() + text[1:]


def num(x, digits: int = 1) -> str:
    """A number with ``digits`` decimals; ``–`` for None/NaN, ``±∞`` for infinities."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return ("∞" if x > 0 else "−∞") if np.isinf(x) else f"{x:.{digits}f}"


def pm(x, digits: int = 1) -> str:
    """A ± half-width, or – when there is none."""
    return "–" if x is None or not np.isfinite(x) else f"±{x:.{digits}f}"


def pval(p: float) -> str:
    """A p-value: three decimals, ``<0.001`` below that, ``–`` when there is none."""
    if p is None or not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def rate_label(rate: float, identifiable: bool = True) -> str:
    """A noise rate as a row label, with † when the setting is not identifiable."""
    return f"{rate:g}" + ("" if identifiable else " †")


def mean_std(mean, std, digits: int = 1) -> str:
    """``mean ± std``; the mean alone when there is no std (one run), ``–`` without a mean."""
    if mean is None or not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" + ("" if not np.isfinite(std) else f" ± {std:.{digits}f}")
