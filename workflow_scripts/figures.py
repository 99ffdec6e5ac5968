import pandas as pd

from lnm.checksum import verify
from lnm.report import estimation, figures
from lnm.workflow import logged

with logged(snakemake):
    verify(snakemake.input[0])
    table = pd.read_csv(snakemake.input[0])
    w, out = snakemake.wildcards, snakemake.output[0]
    if snakemake.rule == "figure_acc_vs_rate":
        figures.plot_acc_vs_rate(table, w.dataset, out)
    elif snakemake.rule == "figure_ranking":
        figures.plot_ranking(table, w.pattern, out)
    elif snakemake.rule == "figure_selection":
        figures.plot_selection(table, w.dataset, w.noise, float(w.rate), out)
    elif snakemake.rule == "figure_cd_diagram":
        figures.plot_cd_diagram(table, out)
    elif snakemake.rule == "figure_recall":
        figures.plot_recall(table, w.dataset, out)
    elif snakemake.rule == "figure_estimation":
        estimation.plot_estimated_vs_true(table, out)
    else:
        raise ValueError(f"no figure for rule {snakemake.rule!r}")
