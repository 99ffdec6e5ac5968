# download: verify (or fetch through medmnist) the raw .npz and record its MD5;
# preprocess: raw .npz -> HDF5. Where the raw file lives (raw_dir) and whether downloads are
# allowed are not part of any result, so neither is a param: moving raw_dir to a folder with
# byte-identical files reruns nothing. The raw file's MD5 is verified whenever it is read.


rule download:
    input:
        code=code("download.py"),
    output:
        sums(res(grid.RAW_RECORD)),
    log:
        f"{RES}/logs/download/{{dataset}}_{{size}}.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/download.py"


rule preprocess:
    input:
        sums(res(grid.RAW_RECORD)),
        code=code("preprocess.py"),
    output:
        sums(res(grid.DATA_FILE)),
    log:
        f"{RES}/logs/preprocess/{{dataset}}_{{size}}.log",
    benchmark:
        f"{RES}/benchmarks/preprocess/{{dataset}}_{{size}}.tsv"
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/preprocess.py"
