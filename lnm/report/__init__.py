"""Aggregation of per-run ``metrics.json`` files into tables, statistics and figures.

``aggregate``    the tidy run table, the per-cell summary (Markdown) and the paper's ranking
``stats``        CIs, test-set resolution, ranks, Friedman, Nemenyi, Wilcoxon, variance split
``tables``       per-cell statistics and the statistics tables (CSV, Markdown, LaTeX, HTML)
``diagnostics``  per-epoch curves of every run; selection and transition-matrix tables
``metadata``     effective config, package versions, provenance
``render``       one table model rendered as Markdown, LaTeX (booktabs) and HTML
``figures``      every figure (matplotlib Agg canvas, fixed sizes, one colour per method)
``manifest``     MANIFEST.sha256
"""
