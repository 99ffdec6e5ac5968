from lnm.noise.estimate import estimate_noise
from lnm.workflow import job_device, logged

with logged(snakemake), job_device(snakemake) as device:
    estimate_noise(
        snakemake.input.data[0],
        snakemake.input.noise[0],
        snakemake.output[0],
        **snakemake.params.estimation,
        device=device,
        threads=snakemake.threads,
    )
