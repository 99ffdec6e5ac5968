# noise: noisy train/val labels, clean masks, realised rates, empirical transition matrix.
# classifier_generator: the flip-target classifier of instance_classifier noise (one per dataset).
# What each pattern draws, needs and depends on: its file in lnm/noise/patterns.


rule classifier_generator:
    input:
        data=data_file,
        code=code("generator.py"),
    output:
        sums(res(grid.GENERATOR_FILE)),
        sums(res(grid.GENERATOR_LOGITS)),
    log:
        res("logs/noise/{dataset}/classifier_generator.log"),
    benchmark:
        res("benchmarks/noise/{dataset}/classifier_generator.tsv")
    conda:
        "../envs/lnm.yaml"
    # one CPU thread: the classifier's weights (and so the noisy labels) do not depend on how
    # many threads a machine gives the job (on a GPU they depend on the device anyway)
    threads: 1
    resources:
        gpu=config["resources"]["gpu"],
        cpus_per_gpu=1,
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"],
    params:
        classifier=config["noise"]["classifier"],  # a change retrains it (and renoises)
    script:
        "../workflow_scripts/generator.py"


rule estimate_noise:
    # out-of-fold CE probabilities on the noisy labels -> cleanlab's estimated noise rate,
    # transition matrix and label issues (lnm.noise.estimate); one CPU thread, as the generator
    input:
        data=data_file,
        noise=sums(res(grid.NOISE_FILE)),
        code=code("estimate.py"),
    output:
        sums(res(grid.ESTIMATE_FILE)),
    log:
        res(f"logs/{grid.ESTIMATE_FILE.removesuffix('.npz')}.log"),
    benchmark:
        res(f"benchmarks/{grid.ESTIMATE_FILE.removesuffix('.npz')}.tsv")
    conda:
        "../envs/lnm.yaml"
    threads: 1
    resources:
        gpu=config["resources"]["gpu"],
        cpus_per_gpu=1,
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"],
    params:
        estimation={k: v for k, v in config["estimation"].items() if k != "enabled"},
    script:
        "../workflow_scripts/estimate.py"


rule noise:
    input:
        data_file,
        generator=noise_inputs,
        code=noise_code,
    output:
        sums(res(grid.NOISE_FILE)),
    log:
        res(f"logs/{grid.NOISE_FILE.removesuffix('.npz')}.log"),
    conda:
        "../envs/lnm.yaml"
    params:
        noise_params,  # only what changes this pattern's labels
    script:
        "../workflow_scripts/noise.py"
