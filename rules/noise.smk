# noise: noisy train/val labels, clean masks, realised rates, empirical transition matrix.


rule noise:
    input:
        sums(res(grid.DATA_FILE.format(dataset="{dataset}", size=SIZE))),
        code=code("noise.py"),
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
