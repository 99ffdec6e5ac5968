from lnm.gpu import assigned_device
from lnm.noise.estimate import estimate_noise
from lnm.workflow import logged

runtime, res = snakemake.config["runtime"], snakemake.config["resources"]
with (
    logged(snakemake),
    assigned_device(
        snakemake.resources.gpu,
        runtime["gpu_lock_dir"],
        res["gpu_slots_per_device"],
        snakemake.threads,
        prefer=runtime["device"],
    ) as device,
):
    estimate_noise(
        snakemake.input.data[0],
        snakemake.input.noise[0],
        snakemake.output[0],
        **snakemake.params.estimation,
        device=device,
        threads=snakemake.threads,
    )
