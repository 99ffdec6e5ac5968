"""The statistics rule: every table of ``lnm.grid.TABLES["statistics"]``, from the run table
(``runs.csv``). Each file's numbers come from one module:

    cells.csv/.md/.tex/.html   lnm.report.cells      mean, std, 95 % CI, test-set resolution,
                                                      clean-ceiling fraction per cell
    resolution.csv             lnm.report.cells      per dataset: test size, class counts,
                                                      chance, binomial half-widths
    ranks.csv, friedman.csv, ranks.html  lnm.report.ranks    average ranks, Friedman, Nemenyi CD
    wilcoxon.csv, wilcoxon.html          lnm.report.ranks    every method against CE
    variance.csv, variance.html          lnm.report.variance noisy-label draw vs training seed
    imbalance.csv, imbalance.html        lnm.report.imbalance accuracy / balanced acc / macro-F1
    statistics.md                        all of the above, for reading on GitHub
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from lnm import grid
from lnm.report import files
from lnm.report.cells import (
    ceiling_tables,
    cell_table,
    ci_tables,
    dataset_info,
    resolution_render,
    resolution_table,
)
from lnm.report.fmt import na_text, runs_last_k
from lnm.report.imbalance import imbalance_render, imbalance_table
from lnm.report.ranks import (
    friedman_row,
    rank_analysis,
    rank_render,
    wilcoxon_render,
    wilcoxon_table,
)
from lnm.report.render import to_html, to_latex, to_markdown
from lnm.report.variance import variance_render, variance_table

#: The files :func:`write_statistics` writes.
STAT_FILES = grid.TABLES["statistics"]


def _csv(df: pd.DataFrame) -> files.Content:
    return files.csv(df, float_format="%.6g")  # six significant digits


def write_statistics(runs: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write every file of :data:`STAT_FILES` into ``out_dir``; return name -> path. Refuses a
    run table that mixes different ``last_k`` (:func:`lnm.report.fmt.runs_last_k`)."""
    k = runs_last_k(runs)
    info = dataset_info(runs)
    cells = cell_table(runs)
    res = resolution_table(cells, info)
    ra = rank_analysis(cells)
    wil = wilcoxon_table(cells)
    var = variance_table(runs)
    imb = imbalance_table(cells, info)

    cell_t = [resolution_render(res)] + ci_tables(cells, k) + ceiling_tables(cells)
    rank_t, wil_t = rank_render(ra), wilcoxon_render(wil, cells)
    var_t, imb_t = variance_render(var, runs), imbalance_render(imb, info, cells, k)
    head = "Per-cell statistics: 95 % confidence intervals, test-set resolution, clean ceiling"
    return files.write_rule_tables(
        "statistics",
        out_dir,
        {
            "cells.csv": _csv(na_text(cells, ["identifiable"])),
            "cells.md": to_markdown(cell_t, head),
            "cells.tex": to_latex(cell_t, "cells"),
            "cells.html": to_html(cell_t, head),
            "resolution.csv": _csv(res),
            "ranks.csv": _csv(ra["ranks"]),
            "friedman.csv": _csv(friedman_row(ra)),
            "ranks.html": to_html(
                rank_t, "Average ranks, Friedman test and Nemenyi critical difference"
            ),
            "wilcoxon.csv": _csv(wil),
            "wilcoxon.html": to_html(wil_t, "Every method against CE"),
            "variance.csv": _csv(var),
            "variance.html": to_html(var_t, "Where the spread comes from"),
            "imbalance.csv": _csv(imb),
            "imbalance.html": to_html(imb_t, "Imbalance view"),
            "statistics.md": to_markdown(cell_t + rank_t + wil_t + var_t + imb_t, "Statistics"),
        },
    )
