# aggregate -> tables; figures; manifest of every artifact.


rule aggregate:
    input:
        metrics=all_metrics(),
        sums=[f"{m}.sha256" for m in all_metrics()],
        code=CODE_TABLES,
    output:
        sums(*table_targets()),
    conda:
        "../envs/lnm.yaml"
    log:
        f"{RES}/logs/aggregate.log",
    localrule: True
    script:
        "../workflow_scripts/aggregate.py"


rule figure_acc_vs_rate:
    input:
        sums(f"{RES}/tables/runs.csv"),
        code=CODE_FIGURES,
    output:
        sums(f"{RES}/figures/acc_vs_rate_{{dataset}}.png"),
    conda:
        "../envs/lnm.yaml"
    log:
        f"{RES}/logs/figures/acc_vs_rate_{{dataset}}.log",
    localrule: True
    script:
        "../workflow_scripts/figures.py"


rule figure_ranking:
    input:
        sums(f"{RES}/tables/runs.csv"),
        code=CODE_FIGURES,
    output:
        sums(f"{RES}/figures/ranking_{{pattern}}.png"),
    conda:
        "../envs/lnm.yaml"
    log:
        f"{RES}/logs/figures/ranking_{{pattern}}.log",
    localrule: True
    script:
        "../workflow_scripts/figures.py"


rule manifest:
    input:
        manifest_inputs,
    output:
        f"{RES}/MANIFEST.sha256",
    params:
        root=lambda w, output: os.path.dirname(output[0]),
    conda:
        "../envs/lnm.yaml"
    log:
        f"{RES}/logs/manifest.log",
    localrule: True
    script:
        "../workflow_scripts/manifest.py"
