from pathlib import Path

import pandas as pd

from lnm.checksum import verify
from lnm.report.estimation import collect_estimates, write_estimation
from lnm.workflow import logged

with logged(snakemake):
    verify(snakemake.input.runs[0])
    estimates = collect_estimates(p for p in snakemake.input.estimates if p.endswith(".npz"))
    write_estimation(
        estimates, pd.read_csv(snakemake.input.runs[0]), Path(snakemake.output[0]).parent
    )
