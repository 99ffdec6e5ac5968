import pandas as pd

from lnm.checksum import verify
from lnm.report.figures import plot_acc_vs_rate, plot_ranking
from lnm.workflow import logged

with logged(snakemake):
    verify(snakemake.input[0])
    runs = pd.read_csv(snakemake.input[0])
    if snakemake.rule == "figure_acc_vs_rate":
        plot_acc_vs_rate(runs, snakemake.wildcards.dataset, snakemake.output[0])
    else:
        plot_ranking(runs, snakemake.wildcards.pattern, snakemake.output[0])
