from pathlib import Path

from lnm.train.spec import RunSpec
from lnm.train.trainer import train_run
from lnm.workflow import logged

with logged(snakemake):
    train_run(RunSpec.from_dict(snakemake.params.spec), snakemake.input.data[0],
              snakemake.input.noise[0], Path(snakemake.output[0]).parent,
              device=snakemake.params.device, threads=snakemake.threads,
              keep_checkpoint=snakemake.params.keep_checkpoint)
