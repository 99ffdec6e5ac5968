from pathlib import Path

from lnm import startup

startup.import_for_training()  # torch and the trainer with the garbage collector frozen

from lnm.train.pack import RunJob, run_folders, train_runs  # noqa: E402
from lnm.train.spec import RunSpec, computed_precision  # noqa: E402
from lnm.train.trainer import train_run  # noqa: E402
from lnm.workflow import job_device, logged  # noqa: E402

runtime = snakemake.config["runtime"]
data, noise = snakemake.input.data[0], snakemake.input.noise[0]
# the cell's noise estimate, for a run told the estimated rate (forget_rate: estimated)
estimate = snakemake.input.estimate[0] if snakemake.input.estimate else None
code = snakemake.input.code  # the code this job runs: part of each run's resume identity
with logged(snakemake), job_device(snakemake) as device:
    # the precision the rule's params promise (from the config) is the one this device computes
    specs = snakemake.params.spec
    for s in specs if isinstance(specs, list) else [specs]:
        got = computed_precision(s["precision"], "cuda" if device.startswith("cuda") else "cpu")
        want = snakemake.params.computed_precision
        if got not in (want if isinstance(want, list) else [want]):
            raise RuntimeError(
                f"this job runs on {device}, which computes in {got}, but its params say "
                f"{want} (resources.gpu / runtime.device of the config): refusing to train"
            )
    common = dict(
        device=device,
        threads=snakemake.threads,
        keep_checkpoint=runtime["keep_checkpoints"],
        stream=runtime["stream"],  # held on the device or streamed: same batches, same result
        memory_budget_mb=runtime["memory_budget_mb"],
    )
    if isinstance(snakemake.params.spec, list):  # runtime.pack_seeds: every seed of a group
        specs = [RunSpec.from_dict(s) for s in snakemake.params.spec]
        jobs = [
            RunJob(
                spec,
                data,
                noise,
                folder,
                estimate_path=estimate if spec.needs_estimate else None,
                code_files=tuple(code),
            )
            for spec, folder in zip(specs, run_folders(snakemake.output, specs))
        ]
        train_runs(jobs, **common)
    else:
        train_run(
            RunSpec.from_dict(snakemake.params.spec),
            data,
            noise,
            Path(snakemake.output[0]).parent,
            code_files=code,
            estimate_path=estimate,
            **common,
        )
startup.exit_now(0)  # every output written: no interpreter teardown (lnm.startup)
