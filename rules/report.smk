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
        reported(f"{RES}/tables/runs.csv", "runs_csv", "8. Data files"),
        sums(*tables("summary.csv", "summary.md", "ranking.csv")),
        reported(f"{RES}/tables/summary.tex", "latex", "8. Data files"),
        reported(f"{RES}/tables/ranking.html", "ranking_table", "1. Ranking"),
        reported(f"{RES}/tables/summary.html", "summary", "3. Per-cell results"),
    log:
        f"{RES}/logs/aggregate.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/aggregate.py"


rule statistics:
    input:
        sums(f"{RES}/tables/runs.csv"),
        code=code("statistics.py"),
    output:
        reported(f"{RES}/tables/cells.csv", "cells_csv", "8. Data files"),
        sums(
            *tables(
                "cells.md",
                "resolution.csv",
                "ranks.csv",
                "friedman.csv",
                "wilcoxon.csv",
                "variance.csv",
                "imbalance.csv",
            )
        ),
        reported(f"{RES}/tables/cells.tex", "latex", "8. Data files"),
        reported(f"{RES}/tables/statistics.md", "statistics_md", "8. Data files"),
        reported(f"{RES}/tables/cells.html", "cells", "3. Per-cell results"),
        reported(f"{RES}/tables/ranks.html", "ranks", "4. Statistics"),
        reported(f"{RES}/tables/wilcoxon.html", "wilcoxon", "4. Statistics"),
        reported(f"{RES}/tables/variance.html", "variance", "4. Statistics"),
        reported(f"{RES}/tables/imbalance.html", "imbalance", "6. Imbalance"),
    log:
        f"{RES}/logs/statistics.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/statistics.py"


rule diagnostics:
    input:
        sums(f"{RES}/tables/runs.csv"),
        estimates=diagnostics_estimates,  # cleanlab's detection rows
        epochs=run_files("per_epoch.csv"),
        sums=sidecars(run_files("per_epoch.csv")),
        code=code("diagnostics.py"),
    output:
        sums(*tables("per_epoch.csv", "selection.csv", "selection.md")),
        reported(
            f"{RES}/tables/selection.html",
            "selection_table",
            "5. Selection diagnostics",
        ),
    log:
        f"{RES}/logs/diagnostics.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/diagnostics.py"


rule estimation:
    input:
        runs=sums(f"{RES}/tables/runs.csv"),
        estimates=sums(*estimate_files()),
        code=code("estimation.py"),
    output:
        sums(*tables("estimates.csv", "estimation.csv", "estimation.md")),
        sums(*tables("oracle_vs_estimated.csv", "oracle_vs_estimated.md")),
        reported(
            f"{RES}/tables/estimation.html", "estimation", "5. Selection diagnostics"
        ),
        reported(
            f"{RES}/tables/oracle_vs_estimated.html",
            "oracle_vs_estimated",
            "1. Ranking",
        ),
    log:
        f"{RES}/logs/estimation.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/estimation.py"


rule figure_estimation:
    input:
        sums(f"{RES}/tables/estimates.csv"),
        code=code("figures.py"),
    output:
        reported(
            f"{RES}/figures/estimated_vs_true.png",
            "estimated_vs_true",
            "5. Selection diagnostics",
        ),
    log:
        f"{RES}/logs/figures/estimated_vs_true.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/figures.py"


rule run_metadata:
    input:
        metrics=run_files("metrics.json"),
        sums=sidecars(run_files("metrics.json")),
        code=code("metadata.py"),
    output:
        reported(f"{RES}/tables/run_metadata.html", "run_metadata", "7. Run metadata"),
        reported(f"{RES}/tables/config.yaml", "config", "7. Run metadata"),
        reported(f"{RES}/tables/versions.csv", "versions", "7. Run metadata"),
    log:
        f"{RES}/logs/run_metadata.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    params:
        config=result_config(config),  # no run-only keys: moving raw_dir reruns nothing
    script:
        "../workflow_scripts/metadata.py"


rule figure_acc_vs_rate:
    input:
        sums(f"{RES}/tables/runs.csv"),
        code=code("figures.py"),
    output:
        reported(
            f"{RES}/figures/acc_vs_rate_{{dataset}}.png",
            "acc_vs_rate",
            "2. Accuracy vs noise rate",
        ),
    log:
        f"{RES}/logs/figures/acc_vs_rate_{{dataset}}.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/figures.py"


rule figure_ranking:
    input:
        sums(f"{RES}/tables/runs.csv"),
        code=code("figures.py"),
    output:
        reported(f"{RES}/figures/ranking_{{pattern}}.png", "ranking", "1. Ranking"),
    log:
        f"{RES}/logs/figures/ranking_{{pattern}}.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/figures.py"


rule figure_selection:
    input:
        sums(f"{RES}/tables/per_epoch.csv"),
        code=code("figures.py"),
    output:
        reported(
            f"{RES}/figures/selection_{{dataset}}_{{noise}}-{{rate}}.png",
            "selection",
            "5. Selection diagnostics",
            "{dataset}",
        ),
    log:
        f"{RES}/logs/figures/selection_{{dataset}}_{{noise}}-{{rate}}.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/figures.py"


rule figure_cd_diagram:
    input:
        sums(f"{RES}/tables/runs.csv"),
        code=code("figures.py"),
    output:
        reported(f"{RES}/figures/cd_diagram.png", "cd_diagram", "4. Statistics"),
    log:
        f"{RES}/logs/figures/cd_diagram.log",
    localrule: True
    conda:
        "../envs/lnm.yaml"
    script:
        "../workflow_scripts/figures.py"


rule figure_recall:
    input:
        sums(f"{RES}/tables/runs.csv"),
        code=code("figures.py"),
    output:
        reported(f"{RES}/figures/recall_{{dataset}}.png", "recall", "6. Imbalance"),
    log:
        f"{RES}/logs/figures/recall_{{dataset}}.log",
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
        reported(f"{RES}/MANIFEST.sha256", "manifest", "7. Run metadata"),
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
        runs=sums(f"{RES}/tables/runs.csv"),
        epochs=sums(f"{RES}/tables/per_epoch.csv"),  # *_final kinds: each run's last epoch
        references=reference_tables(),
        deviations=deviations_file(),
        code=code("reproduction.py"),
    output:
        csv=reported(
            f"{RES}/tables/reproduction.csv", "reproduction_csv", "8. Data files"
        ),
        tables=sums(*tables("reproduction_ranking.csv", "reproduction.md")),
        html=reported(
            f"{RES}/tables/reproduction.html", "reproduction", "9. Reproduction"
        ),
        figure=reported(
            figure("reproduction"), "reproduction_figure", "9. Reproduction"
        ),
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
