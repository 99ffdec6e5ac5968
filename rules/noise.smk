# noise: noisy train/val labels, clean masks, realised rates, empirical transition matrix.


rule noise:
    input:
        sums(f"{RES}/data/{{dataset}}_{SIZE}.h5"),
        code=CODE_NOISE,
    output:
        multiext(
            f"{RES}/noise/{{dataset}}/{{noise}}-{{rate}}-n{{noise_seed}}",
            ".npz",
            ".npz.sha256",
        ),
    log:
        f"{RES}/logs/noise/{{dataset}}/{{noise}}-{{rate}}-n{{noise_seed}}.log",
    conda:
        "../envs/lnm.yaml"
    params:
        noisy_val=config["noise"]["noisy_val"],
        instance_std=config["noise"]["instance_std"],
    script:
        "../workflow_scripts/noise.py"
