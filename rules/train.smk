# train: one run per (dataset, noise, rate, noise_seed, method, backbone, seed).


rule train:
    input:
        data=data_file,
        noise=sums(res(grid.NOISE_FILE)),
        estimate=estimate_input,  # only for runs told the cell's estimated noise rate
        code=train_code,
    output:
        multiext(f"{res(grid.RUN_DIR)}/", *sums(*grid.RUN_FILES)),
    log:
        res(f"logs/train/{grid.RUN_ID}.log"),
    benchmark:
        res(f"benchmarks/train/{grid.RUN_ID}.tsv")
    conda:
        "../envs/lnm.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        cpus_per_gpu=config["resources"]["threads"],  # SLURM: --cpus-per-gpu when gpu > 0
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"],
    params:
        spec=run_params,  # canonical and result-relevant only: a change here reruns the job
    script:
        "../workflow_scripts/train.py"
