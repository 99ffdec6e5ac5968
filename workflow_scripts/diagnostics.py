from pathlib import Path

import pandas as pd

from lnm.checksum import verify
from lnm.report.diagnostics import write_diagnostics
from lnm.workflow import logged

with logged(snakemake):
    verify(snakemake.input[0])
    runs = pd.read_csv(snakemake.input[0])
    estimates = None
    if snakemake.input.estimates:  # cleanlab's label-issue detection rows
        verify(snakemake.input.estimates[0])
        estimates = pd.read_csv(snakemake.input.estimates[0])
    write_diagnostics(runs, Path(snakemake.output[0]).parent, estimates=estimates)
