from pathlib import Path

from lnm.report.metadata import write_metadata
from lnm.workflow import logged

with logged(snakemake):
    write_metadata(
        dict(snakemake.params.config), snakemake.input.metrics, Path(snakemake.output[0]).parent
    )
