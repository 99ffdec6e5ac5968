# train: one run per (dataset, noise, rate, noise_seed, method, backbone, seed); with
# runtime.pack_seeds one job per (dataset, noise, rate, noise_seed, method, backbone) that trains
# every training seed's run in one process (lnm/train/pack.py), each into its own folder.


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
