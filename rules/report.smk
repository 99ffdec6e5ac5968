# aggregate -> tables; statistics; selection diagnostics; run metadata; figures; manifest.
# Everything a reader needs is marked report(...) (captions in report/*.rst), so
#   snakemake --report results/report.html
# gathers it into one page. Categories are numbered in reading order.


rule aggregate:
    input:
        metrics=run_files("metrics.json"),
        probs=run_files("test_probs.npz"),
        epochs=run_files("per_epoch.csv"),  # collapse flags: epochs without an update
        sums=sidecars(run_files("metrics.json", "test_probs.npz", "per_epoch.csv")),
        # the estimates runs were told: an unreliable one is marked on its runs
        estimates=sums(*run_estimate_files()),
        code=code("aggregate.py"),
    output:
        tables("aggregate"),
    log:
        f"{RES}/logs/aggregate.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/aggregate.py"


rule statistics:
    input:
        sums(table("runs.csv")),
        code=code("statistics.py"),
    output:
        tables("statistics"),
    log:
        f"{RES}/logs/statistics.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/statistics.py"


rule diagnostics:
    input:
        sums(table("runs.csv")),
        estimates=diagnostics_estimates,  # cleanlab's detection rows
        epochs=run_files("per_epoch.csv"),
        sums=sidecars(run_files("per_epoch.csv")),
        code=code("diagnostics.py"),
    output:
        tables("diagnostics"),
    log:
        f"{RES}/logs/diagnostics.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/diagnostics.py"


rule estimation:
    input:
        runs=sums(table("runs.csv")),
        estimates=sums(*estimate_files()),
        code=code("estimation.py"),
    output:
        tables("estimation"),
    log:
        f"{RES}/logs/estimation.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/estimation.py"


rule run_metadata:
    input:
        metrics=run_files("metrics.json"),
        sums=sidecars(run_files("metrics.json")),
        code=code("metadata.py"),
    output:
        tables("run_metadata"),
    log:
        f"{RES}/logs/run_metadata.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    params:
        config=result_config(config),  # no run-only keys: moving raw_dir reruns nothing
    script:
        "../workflow_scripts/metadata.py"


# One rule per figure of lnm.grid.FIGURES (the reproduction rule writes its own): figures.py
# draws it from the table FIGURE_INPUT names.
for _figure in FIGURE_RULES:

    rule:
        name:
            _figure
        input:
            sums(table(FIGURE_INPUT.get(_figure, "runs.csv"))),
            code=code("figures.py"),
        output:
            figures(_figure),
        log:
            figure_log(_figure),
        localrule: True
        conda:
            "../envs/lnm.yaml"
        script:
            "../workflow_scripts/figures.py"


rule manifest:
    input:
        artifacts=manifest_inputs,
        code=code("manifest.py"),
    output:
        shown(res(grid.MANIFEST), grid.MANIFEST),
    log:
        f"{RES}/logs/manifest.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    params:
        root=lambda w, output: os.path.dirname(output[0]),
    script:
        "../workflow_scripts/manifest.py"


rule reproduction:
    input:
        runs=sums(table("runs.csv")),
        epochs=sums(table("per_epoch.csv")),  # *_final kinds: each run's last epoch
        references=reference_tables(),
        deviations=deviations_file(),
        code=code("reproduction.py"),
    output:
        tables=tables("reproduction"),
        figure=figures("reproduction"),
    log:
        f"{RES}/logs/reproduction.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    params:
        references=config["reproduction"]["references"],
        extra=config["reproduction"]["extra"],
    script:
        "../workflow_scripts/reproduction.py"
