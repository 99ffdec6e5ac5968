# download: verify (or fetch through medmnist) the raw .npz; preprocess: raw .npz -> HDF5.


rule download:
    output:
        multiext(f"{RES}/raw/{{dataset}}_{{size}}", ".json", ".json.sha256"),
    log:
        f"{RES}/logs/download/{{dataset}}_{{size}}.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    params:
        raw_dir=config["raw_dir"],
        allow_download=config["allow_download"],
    script:
        "../workflow_scripts/download.py"


rule preprocess:
    input:
        sums(f"{RES}/raw/{{dataset}}_{{size}}.json"),
        code=CODE_CORE,
    output:
        multiext(f"{RES}/data/{{dataset}}_{{size}}", ".h5", ".h5.sha256"),
    log:
        f"{RES}/logs/preprocess/{{dataset}}_{{size}}.log",
    benchmark:
        f"{RES}/benchmarks/preprocess/{{dataset}}_{{size}}.tsv"
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/preprocess.py"
