# train: one run per (dataset, noise, rate, noise_seed, method, backbone, seed); with
# runtime.pack_seeds one job per (dataset, noise, rate, noise_seed, method, backbone) that trains
# every training seed's run in one process (lnm/train/pack.py), each into its own folder.

from lnm.gpu import job_device_type
from lnm.train.spec import computed_precision

#: Where train jobs run, from the config alone (resources.gpu, runtime.device; no hardware is
#: probed: a job told to use a GPU that finds none fails, docs/gpu.md).
TRAIN_DEVICE = job_device_type(config["resources"]["gpu"], config["runtime"]["device"])


def train_precision(w):
    """The precision the job's runs compute in (fp32 on a CPU, bf16 autocast on CUDA with
    train.precision bf16): part of a run's identity, so CPU results never count as up to date
    for a GPU config (or the reverse); the job checks that its device computes it."""
    found = {computed_precision(s.precision, TRAIN_DEVICE) for s in job_specs(w)}
    return found.pop() if len(found) == 1 else sorted(found)


rule train:
    input:
        data=data_file,
        noise=sums(res(grid.NOISE_FILE)),
        estimate=estimate_input,  # only for runs told the cell's estimated noise rate
        code=train_code,
    output:
        train_outputs(),
    log:
        res(f"logs/train/{TRAIN_JOB}.log"),
    benchmark:
        res(f"benchmarks/train/{TRAIN_JOB}.tsv")
    conda:
        "../envs/lnm.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        cpus_per_gpu=config["resources"]["threads"],  # SLURM: --cpus-per-gpu when gpu > 0
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"] * RUNS_PER_JOB,  # minutes per run x runs
    params:
        # canonical and result-relevant only: a change here reruns the job (packed: every
        # seed's spec, in seed order)
        spec=run_params,
        computed_precision=train_precision,
    script:
        "../workflow_scripts/train.py"
