# MedMNIST: download verifies (or fetches through medmnist) the raw .npz and records its MD5.
# Real-world sets: real_source records each CSV's SHA-256 (the CSVs are its inputs: an edited CSV
# reruns it). preprocess: either -> HDF5. Where the raw files live (raw_dir, real_world.*.root) and
# whether downloads are allowed are not part of any result, so none is a param: moving them to a
# folder with byte-identical files reruns nothing. Raw files are verified whenever they are read.


rule download:
    input:
        code=code("download.py"),
    output:
        sums(res(grid.RAW_RECORD)),
    log:
        f"{RES}/logs/download/{{dataset}}_{{size}}.log",
    wildcard_constraints:
        dataset=one_of(MEDMNIST_IN_USE),
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/download.py"


rule real_source:
    input:
        csv=lambda w: source_files(config, w.dataset),
        code=data_code("real_source.py"),
    output:
        sums(res(grid.RAW_RECORD)),
    log:
        f"{RES}/logs/download/{{dataset}}_{{size}}.log",
    wildcard_constraints:
        dataset=one_of(REAL_IN_USE),
    localrule: True
    conda:
        "../envs/lnm.yaml"
    params:
        # what is read (the adapter and its options), not where (root)
        adapter=lambda w: real_entry(w)["adapter"],
        options=lambda w: real_entry(w).get("options", {}),
    script:
        "../workflow_scripts/real_source.py"


rule preprocess:
    input:
        sums(res(grid.RAW_RECORD)),
        code=data_code("preprocess.py"),
    output:
        sums(res(grid.DATA_FILE)),
    log:
        f"{RES}/logs/preprocess/{{dataset}}_{{size}}.log",
    benchmark:
        f"{RES}/benchmarks/preprocess/{{dataset}}_{{size}}.tsv"
    conda:
        "../envs/lnm.yaml"
    threads: config["resources"]["threads"]  # image decoding of real-world sets
    script:
        "../workflow_scripts/preprocess.py"
