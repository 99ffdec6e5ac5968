"""Aggregation of per-run ``metrics.json`` files into tables, statistics and figures.

One module per report rule (its writer writes exactly the files ``lnm.grid.TABLES`` lists):

``aggregate``    rule aggregate: the run table (runs.csv), the per-cell summary and the paper's
                 ranking, with their Markdown/LaTeX/HTML renderings
``tables``       rule statistics: writes the statistics tables computed by the modules below
``diagnostics``  rule diagnostics: per-epoch curves of every run; selection and T-error tables
``metadata``     rule run_metadata: effective config, package versions, provenance
``figures``      the figure rules (matplotlib Agg canvas, fixed sizes, one colour per method)
``manifest``     rule manifest: MANIFEST.sha256

What the statistics tables compute:

``cells``        per-cell mean, CI, test-set resolution, clean ceiling; the one rule for every
                 bold (``mark_best``: the best as printed and every method not separable from
                 it); collapsed runs and what a number assumed; the per-cell grid layout
``ranks``        average ranks, Friedman, Nemenyi CD, rank groups (letters), Wilcoxon against CE
``variance``     noisy-label draw vs training randomness
``imbalance``    accuracy vs balanced accuracy vs macro-F1 on imbalanced datasets

Shared: ``stats`` (the formulas), ``render`` (one table model as Markdown, LaTeX, HTML),
``fmt`` (row order, number formatting with one rounding, the run table's ``last_k``, the marks
⊘ collapsed / ᵒ oracle noise rate and their notes), ``files`` (writing).
"""
