from lnm.gpu import assigned_device
from lnm.noise.classifier import train_generator
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
    train_generator(
        snakemake.input.data[0],
        snakemake.output[0],
        snakemake.output[2],
        **snakemake.params.classifier,
        device=device,
        threads=snakemake.threads,
    )
