from pathlib import Path

from lnm.train.spec import RunSpec
from lnm.train.trainer import train_run
from lnm.workflow import job_device, logged

runtime = snakemake.config["runtime"]
with logged(snakemake), job_device(snakemake) as device:
    train_run(
        RunSpec.from_dict(snakemake.params.spec),
        snakemake.input.data[0],
        snakemake.input.noise[0],
        Path(snakemake.output[0]).parent,
        device=device,
        threads=snakemake.threads,
        keep_checkpoint=runtime["keep_checkpoints"],
        code_files=snakemake.input.code,  # the code this job runs: part of its resume identity
        stream=runtime["stream"],  # held on the device or streamed: same batches, same result
        memory_budget_mb=runtime["memory_budget_mb"],
        # the cell's noise estimate, for a run told the estimated rate (forget_rate: estimated)
        estimate_path=snakemake.input.estimate[0] if snakemake.input.estimate else None,
    )
