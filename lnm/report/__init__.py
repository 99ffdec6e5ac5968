"""Aggregation of per-run ``metrics.json`` files into tables and figures.

``lnm.report.aggregate`` (pandas only) builds the tidy run table, the per-cell summary, the
Markdown report and the paper-style ranking; ``lnm.report.figures`` (matplotlib, Agg) draws them.
"""
from .aggregate import (METHODS, NOISES, collect_runs, ranking, summarize, summary_markdown,
                        write_runs_csv, write_tables)

__all__ = ["METHODS", "NOISES", "collect_runs", "ranking", "summarize", "summary_markdown",
           "write_runs_csv", "write_tables"]
