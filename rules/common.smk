# Config validation, the run grid, wildcard constraints, code inputs and input functions.
# Every name and path template comes from lnm.grid (torch-free: parsing imports no torch).
import os
import sys

from lnm import grid
from lnm.codedeps import closure
from lnm.config import (
    ConfigError,
    check_workflow_config,
    result_config,
    run_spec,
    source_files,
)


def config_files():
    """The config files Snakemake merged, in merge order: those of `configfile:` (config.yaml),
    then those given with --configfile."""
    given = list(workflow.config_settings.configfiles)
    return list(workflow.configfiles[len(given) :]) + given


try:  # one validation pass, every problem at once in file order: keys written twice in a config
    # file (re-read strictly: Snakemake's loader keeps the last), the schema (enums from
    # lnm.grid), every method's parameters, the real-world datasets' folders and CSVs; values
    # given with --config key=value are read as YAML where the schema wants another type
    NOTES = check_workflow_config(
        config, config_files(), workflow.config_settings.config
    )
except ConfigError as err:
    raise WorkflowError(str(err)) from None

RES = config["results"]
# runtime.pack_seeds: one train job per run group (every training seed of one dataset, noise
# cell, method and backbone), its runs trained one after another in one process
PACK = config["runtime"]["pack_seeds"]
RUNS_PER_JOB = len(config["seeds"]) if PACK else 1
LNM = os.path.join(workflow.basedir, "lnm")
SCRIPTS = os.path.join(workflow.basedir, "workflow_scripts")

if workflow.is_main_process:  # once per run, not in the processes that run jobs
    from lnm.results_lock import holder
    from lnm.verify import start_check

    for note in NOTES:
        print(f"note: {note}", file=sys.stderr)
    # every start (also when nothing is to be done): each artifact below the results folder has
    # its sidecar and the size it records, no hashing (lnm verify hashes; docs/verification.md)
    # (while another run writes there its files may be half-way: not checked; onstart refuses)
    _holder = holder(RES)
    if _holder:
        print(
            f"note: {RES} is in use by another workflow run ({_holder}); its artifacts are "
            "not checked now",
            file=sys.stderr,
        )
    else:
        _problems = start_check(RES)
        if _problems:
            raise WorkflowError(_problems)


wildcard_constraints:
    dataset="[a-z0-9_]+",
    size="[0-9]+",
    noise="|".join(grid.PATTERNS),
    rate="[0-9.]+",
    noise_seed="[0-9]+",
    method="|".join(grid.grid_methods(config)),
    backbone="|".join(grid.BACKBONES),
    seed="[0-9]+",
    pattern="[a-z0-9_]+",


def res(template):
    """A path template of lnm.grid below the results folder (its fields stay wildcards)."""
    return f"{RES}/{template}"


def sums(*paths):
    """An artifact and its SHA-256 sidecar."""
    return [p for path in paths for p in (path, f"{path}.sha256")]


#: What `snakemake --report` shows, by report category (numbered in reading order): a table of
#: lnm.grid.TABLES or a figure rule of lnm.grid.FIGURES -> its caption, report/<caption>.rst.
#: Every other table is written with its sidecar only.
REPORT = {
    "1. Ranking": {
        "ranking.html": "ranking_table",
        "oracle_vs_estimated.html": "oracle_vs_estimated",
        "figure_ranking": "ranking",
    },
    "2. Accuracy vs noise rate": {"figure_acc_vs_rate": "acc_vs_rate"},
    "3. Per-cell results": {"summary.html": "summary", "cells.html": "cells"},
    "4. Statistics": {
        "ranks.html": "ranks",
        "wilcoxon.html": "wilcoxon",
        "variance.html": "variance",
        "figure_cd_diagram": "cd_diagram",
    },
    "5. Selection diagnostics": {
        "selection.html": "selection_table",
        "estimation.html": "estimation",
        "figure_estimation": "estimated_vs_true",
        "figure_selection": "selection",
    },
    "6. Imbalance": {"imbalance.html": "imbalance", "figure_recall": "recall"},
    "7. Run metadata": {
        "run_metadata.html": "run_metadata",
        "config.yaml": "config",
        "versions.csv": "versions",
        grid.MANIFEST: "manifest",
    },
    "8. Data files": {
        "runs.csv": "runs_csv",
        "summary.tex": "latex",
        "cells.csv": "cells_csv",
        "cells.tex": "latex",
        "statistics.md": "statistics_md",
        "reproduction.csv": "reproduction_csv",
    },
    "9. Reproduction": {
        "reproduction.html": "reproduction",
        "reproduction": "reproduction_figure",
    },
}
#: A report subcategory: one group of selection figures a dataset.
SUBCATEGORY = {"figure_selection": "{dataset}"}


def shown(path, name):
    """An artifact and its SHA-256 sidecar; marked for `snakemake --report` when REPORT names
    ``name`` (a table's file name, a figure's rule)."""
    for category, captions in REPORT.items():
        if name in captions:
            # (`report(` must not start a line here: Snakemake's parser takes it for the keyword)
            item = report(
                path,
                caption=f"../report/{captions[name]}.rst",
                category=category,
                subcategory=SUBCATEGORY.get(name),
            )
            return [item, f"{path}.sha256"]
    return sums(path)


def sidecars(paths):
    """The SHA-256 sidecars of ``paths``."""
    return [f"{p}.sha256" for p in paths]


def code(script, *modules):
    """Code inputs of a rule: its workflow script and the closure of lnm modules it (and the
    extra ``modules``, paths below lnm/) imports, read statically. Snakemake compares these
    small files by checksum, so an edit reruns exactly the jobs that execute it."""
    entries = [os.path.join(SCRIPTS, script)] + [os.path.join(LNM, m) for m in modules]
    return [str(p) for p in closure(entries, LNM)]


def train_code(w):
    """The trainer's closure plus the method's own (its module and the helpers it imports)."""
    base = grid.base_method(config, w.method)
    return code("train.py", f"methods/{grid.method_info(base).module}.py")


def data_code(script):
    """Code inputs of a dataset's job: the script's closure plus, for a real-world set, its
    adapter's module (lnm.data.realworld imports it by name, as lnm.methods a method's).
    """

    def inputs(w):
        if not grid.is_real_world(config, w.dataset):
            return code(script)
        adapter = grid.adapter_info(config["real_world"][w.dataset]["adapter"])
        return code(script, f"data/adapters/{adapter.module}.py")

    return inputs


def one_of(names):
    """A wildcard constraint matching exactly ``names`` (none: a pattern that never matches)."""
    return "|".join(names) if names else "(?!)"


MEDMNIST_IN_USE = [d for d in config["datasets"] if not grid.is_real_world(config, d)]
REAL_IN_USE = [d for d in config["datasets"] if grid.is_real_world(config, d)]


def data_file(w):
    """The HDF5 file of the job's dataset, at the dataset's size."""
    return sums(
        res(
            grid.DATA_FILE.format(
                dataset=w.dataset, size=grid.dataset_size(config, w.dataset)
            )
        )
    )


def real_entry(w):
    return config["real_world"][w.dataset]


def noise_inputs(w):
    """The generator's logits for a pattern that needs them (instance_classifier), else
    nothing."""
    if grid.pattern_info(w.noise).needs_generator:
        return sums(res(grid.GENERATOR_LOGITS))
    return []


def noise_params(w):
    """Only what changes this pattern's labels: its own config keys (its `params`, e.g.
    instance_std of the instance patterns) redraw its files only."""
    noise = config["noise"]
    params = {"noisy_val": noise["noisy_val"]}
    params.update({key: noise[key] for key in grid.pattern_info(w.noise).params})
    # only when not the default, so that the default noise jobs keep their params
    if not noise["nested"]:
        params["nested"] = False
    return params


def noise_code(w):
    """The noise script's closure plus the pattern's own module (lnm.noise.patterns imports it
    by name): an edit of one pattern redraws its files only."""
    return code("noise.py", f"noise/patterns/{grid.pattern_info(w.noise).module}.py")


def job_specs(w):
    """The specs of a train job's runs: its run, or with runtime.pack_seeds every training
    seed's run of its group (in the order of config["seeds"])."""
    seeds = config["seeds"] if PACK else [w.seed]
    return [
        run_spec(
            config, w.dataset, w.noise, w.rate, w.noise_seed, w.method, w.backbone, s
        )
        for s in seeds
    ]


def estimate_input(w):
    """The cell's estimate file, for a job with a run told the estimated noise rate (else
    nothing)."""
    return (
        sums(res(grid.ESTIMATE_FILE))
        if any(s.needs_estimate for s in job_specs(w))
        else []
    )


def _read_estimates():
    """Estimate files a train job reads: its cell's, for a run told the estimated noise rate
    (whichever backbone and seed: the spec's method parameters decide)."""
    b, s = config["backbones"][0], config["seeds"][0]
    return {
        res(grid.ESTIMATE_FILE.format(**vars(c)))
        for c in grid.noise_cells(config)
        if any(
            run_spec(
                config, c.dataset, c.noise, c.rate, c.noise_seed, m, b, s
            ).needs_estimate
            for m in config["methods"]
        )
    }


READ_ESTIMATES = _read_estimates()


def estimate_files():
    """Estimate files of the report: every noisy cell's when estimation is enabled, and every
    one a run reads (a clean cell's too): each estimate is reported and in the manifest.
    """
    enabled = config["estimation"]["enabled"]
    paths = [
        res(grid.ESTIMATE_FILE.format(**vars(c))) for c in grid.noise_cells(config)
    ]
    return [
        p
        for p, c in zip(paths, grid.noise_cells(config))
        if p in READ_ESTIMATES or (enabled and c.noise != grid.CLEAN)
    ]


def run_estimate_files():
    """The estimate files train jobs read, in grid order (the report marks the runs told an
    unreliable one)."""
    return [p for p in estimate_files() if p in READ_ESTIMATES]


def run_params(w):
    """Canonical, result-relevant parameters only: they decide when a run is redone (with
    runtime.pack_seeds: the list of the job's runs' parameters, in seed order)."""
    specs = [s.to_dict() for s in job_specs(w)]
    return specs if PACK else specs[0]


#: The train job's name below logs/train and benchmarks/train: a run, or a packed run group.
TRAIN_JOB = grid.PACKED_ID if PACK else grid.RUN_ID


def train_outputs():
    """The train rule's outputs: a run's files; with runtime.pack_seeds, the files of every
    training seed's run of a group (the seed filled in, the other fields wildcards)."""
    if not PACK:
        return multiext(f"{res(grid.RUN_DIR)}/", *sums(*grid.RUN_FILES))
    return [
        f"{res(grid.fill(grid.RUN_DIR, seed=s))}/{f}"
        for s in config["seeds"]
        for f in sums(*grid.RUN_FILES)
    ]


def run_files(*names):
    """Files of every run, e.g. run_files("per_epoch.csv")."""
    return [f"{RES}/{d}/{n}" for d in grid.run_dirs(config) for n in names]


def patterns():
    """Noisy patterns of the grid, in display order (``real`` when a real-world set is run)."""
    found = {p for d in config["datasets"] for p, _ in grid.noise_settings(config, d)}
    return [p for p in grid.NOISY_PATTERNS if p in found]


def noisy_settings(dataset):
    """(noise, rate) of every noisy setting of ``dataset``."""
    return [(p, r) for p, r in grid.noise_settings(config, dataset) if p != grid.CLEAN]


def figure(rule, **fields):
    """The figure of ``rule`` (lnm.grid.FIGURES) with ``fields`` filled in, the others wildcards."""
    return f"{RES}/figures/{grid.fill(grid.FIGURES[rule], **fields)}"


def figures(rule):
    """The outputs of a figure rule: its figure, marked for the report, and its sidecar."""
    return shown(figure(rule), rule)


def figure_log(rule):
    """The log of a figure rule, named as its figure."""
    return f"{RES}/logs/figures/{os.path.splitext(grid.FIGURES[rule])[0]}.log"


#: The figure rules: a figure of lnm.grid.FIGURES that no table rule writes with its tables.
FIGURE_RULES = [rule for rule in grid.FIGURES if rule not in grid.TABLES]
#: The table a figure rule draws from, where it is not runs.csv.
FIGURE_INPUT = {
    "figure_selection": "per_epoch.csv",
    "figure_estimation": "estimates.csv",
}


def figure_targets():
    """Every figure of the report (see rules/report.smk)."""
    datasets, figs = config["datasets"], []
    if patterns():
        # accuracy against the drawn noise rate: synthetic noise only (a real-world set's
        # rates are assumptions, not noise levels)
        figs += [
            figure("figure_acc_vs_rate", dataset=d)
            for d in MEDMNIST_IN_USE
            if noisy_settings(d)
        ]
        figs += [figure("figure_ranking", pattern=p) for p in patterns() + ["overall"]]
        figs += [
            figure("figure_selection", dataset=d, noise=p, rate=r)
            for d in datasets
            for p, r in noisy_settings(d)
        ]
        figs.append(figure("figure_cd_diagram"))
    figs += [figure("figure_recall", dataset=d) for d in datasets]
    if estimate_files():
        figs.append(figure("figure_estimation"))
    figs.append(figure("reproduction"))
    return figs


TABLE_NAMES = {t for names in grid.TABLES.values() for t in names}


def check_report():
    """Every name REPORT shows is a table, a figure rule or the manifest, with its caption."""
    known = TABLE_NAMES | set(grid.FIGURES) | {grid.MANIFEST}
    for captions in REPORT.values():
        for name, caption in captions.items():
            path = os.path.join(workflow.basedir, "report", f"{caption}.rst")
            if name not in known or not os.path.exists(path):
                raise WorkflowError(
                    f"rules/common.smk, REPORT: {name!r} (caption {path}): allowed: a table of "
                    "lnm.grid.TABLES, a figure rule of lnm.grid.FIGURES or the manifest, with "
                    "its caption file"
                )


check_report()


def table(name):
    """A table of lnm.grid.TABLES below the results folder."""
    if name not in TABLE_NAMES:
        raise WorkflowError(f"{name!r} is no table of lnm.grid.TABLES")
    return f"{RES}/tables/{name}"


def tables(rule):
    """The outputs of a report rule: every table lnm.grid.TABLES lists for it, with its
    sidecar, those REPORT names marked for the report."""
    return [p for name in grid.TABLES[rule] for p in shown(table(name), name)]


def table_targets():
    return [
        table(t)
        for rule, names in grid.TABLES.items()
        if rule != "estimation" or estimate_files()
        for t in names
    ]


def final_targets():
    return table_targets() + figure_targets() + sums(res(grid.MANIFEST))


def generator_files():
    """The flip-target classifiers (and logits) of the datasets with a pattern that needs them
    (instance_classifier)."""
    used = {
        c.dataset
        for c in grid.noise_cells(config)
        if grid.pattern_info(c.noise).needs_generator
    }
    return [
        res(t.format(dataset=d))
        for d in config["datasets"]
        if d in used
        for t in (grid.GENERATOR_FILE, grid.GENERATOR_LOGITS)
    ]


def diagnostics_estimates(w):
    """The per-file estimate table, for cleanlab's detection rows (when estimation is on)."""
    return sums(table("estimates.csv")) if estimate_files() else []


def manifest_inputs(w):
    datasets = [
        dict(dataset=d, size=grid.dataset_size(config, d)) for d in config["datasets"]
    ]
    raws = [res(grid.RAW_RECORD.format(**d)) for d in datasets]
    data = [res(grid.DATA_FILE.format(**d)) for d in datasets]
    noise = [res(grid.NOISE_FILE.format(**vars(c))) for c in grid.noise_cells(config)]
    runs = run_files(*grid.RUN_FILES)
    return sums(
        *raws,
        *data,
        *generator_files(),
        *noise,
        *estimate_files(),
        *runs,
        *table_targets(),
        *figure_targets(),
    )


# Our results beside published ones (config `reproduction`): the shipped tables of
# lnm/report/references and any of the user's, validated when the workflow is parsed.
try:
    from lnm.report.reproduction import check_config as _check_reproduction

    _check_reproduction(config["reproduction"])
except ValueError as err:
    raise WorkflowError(str(err)) from None


def reference_tables():
    """The reference tables the reproduction rule reads (an edit reruns it)."""
    from lnm.report.reproduction import shipped

    tables = shipped()
    return [str(tables[n]) for n in config["reproduction"]["references"]] + list(
        config["reproduction"]["extra"]
    )


def deviations_file():
    """docs/deviations.md, whose rows a "differs" verdict names (when the workflow has it)."""
    path = os.path.join(workflow.basedir, "docs", "deviations.md")
    return [path] if os.path.exists(path) else []


# ---------------------------------------------------------------- train jobs' device
from lnm.gpu import job_device_type
from lnm.train.spec import computed_precision

#: Where train jobs run, from the config alone (resources.gpu, runtime.device; no hardware is
#: probed: a job told to use a GPU that finds none fails, docs/gpu.md).
TRAIN_DEVICE = job_device_type(config["resources"]["gpu"], config["runtime"]["device"])


def train_precision(w):
    """The precision the job's runs compute in (fp32 on a CPU, bf16 autocast on CUDA with
    train.precision bf16): part of a run's identity, so CPU results never count as up to date
    for a GPU config (or the reverse); the job checks that its device computes it."""
    found = {computed_precision(s.precision, TRAIN_DEVICE) for s in job_specs(w)}
    return found.pop() if len(found) == 1 else sorted(found)
