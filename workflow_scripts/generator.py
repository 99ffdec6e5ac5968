from lnm.noise.classifier import train_generator
from lnm.workflow import job_device, logged

with logged(snakemake), job_device(snakemake) as device:
    train_generator(
        snakemake.input.data[0],
        snakemake.output[0],
        snakemake.output[2],
        **snakemake.params.classifier,
        device=device,
        threads=snakemake.threads,
    )
