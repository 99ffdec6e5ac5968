# aggregate -> tables; figures; manifest of every artifact.


rule aggregate:
    input:
        metrics=all_metrics(),
        sums=[f"{m}.sha256" for m in all_metrics()],
        code=CODE_TABLES,
    output:
        sums(*table_targets()),
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
    log:
        f"{RES}/logs/figures/ranking_{{pattern}}.log",
    localrule: True
    script:
        "../workflow_scripts/figures.py"


def manifest_inputs(w):
    raws = [f"{RES}/raw/{d}_{SIZE}.json" for d in config["datasets"]]
    data = [f"{RES}/data/{d}_{SIZE}.h5" for d in config["datasets"]]
    noise = [f"{RES}/noise/{c.dataset}/{c.tag}.npz" for c in noise_cells(config)]
    runs = [f"{RES}/{d}/{f}" for d in run_dirs(config)
            for f in ("metrics.json", "per_epoch.csv", "test_probs.npz")]
    return sums(*raws, *data, *noise, *runs, *table_targets(), *figure_targets())


rule manifest:
    input:
        manifest_inputs,
    output:
        f"{RES}/MANIFEST.sha256",
    params:
        root=RES,
    log:
        f"{RES}/logs/manifest.log",
    localrule: True
    script:
        "../workflow_scripts/manifest.py"
