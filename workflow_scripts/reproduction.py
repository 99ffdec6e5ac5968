from pathlib import Path

import pandas as pd

from lnm.checksum import verify
from lnm.report.reproduction import write_reproduction
from lnm.workflow import logged

with logged(snakemake):
    runs_csv, epochs_csv = snakemake.input.runs[0], snakemake.input.epochs[0]
    verify(runs_csv)
    verify(epochs_csv)
    write_reproduction(
        pd.read_csv(runs_csv),
        Path(snakemake.output.tables[0]).parent,
        snakemake.output.figure[0],
        references=snakemake.params.references,
        extra=snakemake.params.extra,
        epochs=pd.read_csv(epochs_csv),
        deviations=next(iter(snakemake.input.deviations), None),
    )
