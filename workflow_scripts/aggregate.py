from pathlib import Path

from lnm.report.aggregate import collect_runs, write_tables
from lnm.workflow import logged

with logged(snakemake):
    runs = collect_runs(
        snakemake.input.metrics, [p for p in snakemake.input.estimates if p.endswith(".npz")]
    )
    write_tables(runs, Path(snakemake.output[0]).parent)
