# train: one run per (dataset, noise, rate, noise_seed, method, backbone, seed).


rule train:
    input:
        data=sums(f"{RES}/data/{{dataset}}_{SIZE}.h5"),
        noise=sums(f"{RES}/noise/{{dataset}}/{{noise}}-{{rate}}-n{{noise_seed}}.npz"),
        code=lambda w: CODE_TRAIN + pkg(f"methods/{w.method}.py"),
    output:
        multiext(
            f"{RES}/runs/{{dataset}}/{{noise}}-{{rate}}-n{{noise_seed}}/{{method}}/{{backbone}}/s{{seed}}/",
            "metrics.json",
            "metrics.json.sha256",
            "per_epoch.csv",
            "per_epoch.csv.sha256",
            "test_probs.npz",
            "test_probs.npz.sha256",
        ),
    log:
        f"{RES}/logs/train/{{dataset}}/{{noise}}-{{rate}}-n{{noise_seed}}/{{method}}/{{backbone}}/s{{seed}}.log",
    benchmark:
        f"{RES}/benchmarks/train/{{dataset}}/{{noise}}-{{rate}}-n{{noise_seed}}/{{method}}/{{backbone}}/s{{seed}}.tsv"
    conda:
        "../envs/lnm.yaml"
    threads: config["resources"]["threads"]
    resources:
        gpu=config["resources"]["gpu"],
        cpus_per_gpu=config["resources"]["threads"],  # SLURM: --cpus-per-gpu when gpu > 0
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"],
    params:
        spec=run_spec,  # canonical and result-relevant only: a change here reruns the job
    script:
        "../workflow_scripts/train.py"
