from pathlib import Path

from lnm.report.aggregate import collect_runs, write_runs_csv, write_tables
from lnm.report.tables import write_summary_renderings
from lnm.workflow import logged

with logged(snakemake):
    runs = collect_runs(snakemake.input.metrics)
    out = Path(snakemake.output[0]).parent
    write_runs_csv(runs, snakemake.output[0])
    write_tables(runs, out)
    write_summary_renderings(runs, out)
