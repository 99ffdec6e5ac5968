# Config validation, the run grid, wildcard constraints and input functions.
import glob
import os

from snakemake.utils import validate

from lnm.config import noise_cells, run_dirs, validate_config
from lnm.train.spec import RunSpec

validate_config(config)  # clear messages naming key, value and what is allowed
validate(config, "../schemas/config.schema.yaml")

RES = config["results"]
SIZE = config["size"]


wildcard_constraints:
    dataset="[a-z]+",
    size="[0-9]+",
    noise="none|symmetric|pairflip|instance",
    rate="[0-9.]+",
    noise_seed="[0-9]+",
    method="[a-z_]+",
    backbone="[a-z0-9_]+",
    seed="[0-9]+",
    pattern="[a-z_]+",


def sums(*paths):
    """An artifact and its SHA-256 sidecar."""
    return [p for path in paths for p in (path, f"{path}.sha256")]


def pkg(*names):
    """Source files of the lnm package, as inputs (Snakemake compares small files by checksum).

    A name ending in ``/`` stands for every module of that sub-package."""
    root = os.path.join(workflow.basedir, "lnm")
    return [
        f
        for n in names
        for f in (
            sorted(glob.glob(os.path.join(root, n, "*.py")))
            if n.endswith("/")
            else [os.path.join(root, n)]
        )
    ]


# Code each stage executes: editing a file reruns exactly the stages that run it.
CODE_CORE = pkg("checksum.py", "data/")
CODE_NOISE = CODE_CORE + pkg("noise/")
CODE_TRAIN = CODE_NOISE + pkg("models/", "train/", "methods/base.py")
CODE_TABLES = CODE_CORE + pkg("report/aggregate.py")
CODE_FIGURES = CODE_TABLES + pkg("report/figures.py")


def run_dir(w):
    return f"{RES}/runs/{w.dataset}/{w.noise}-{w.rate}-n{w.noise_seed}/{w.method}/{w.backbone}/s{w.seed}"


def all_metrics():
    return [f"{RES}/{d}/metrics.json" for d in run_dirs(config)]


def patterns():
    return [p for p, rates in config["noise"]["patterns"].items() if rates]


def figure_targets():
    """Every figure of the report (see rules/report.smk); report_targets() lists the rest."""
    figs = (
        [f"{RES}/figures/acc_vs_rate_{d}.png" for d in config["datasets"]]
        if patterns()
        else []
    )
    if patterns():
        figs += [f"{RES}/figures/ranking_{p}.png" for p in patterns() + ["overall"]]
        figs += [
            f"{RES}/figures/selection_{d}_{s}.png"
            for d in config["datasets"]
            for s in noisy_settings()
        ]
        figs.append(f"{RES}/figures/cd_diagram.png")
    figs += [f"{RES}/figures/recall_{d}.png" for d in config["datasets"]]
    return figs


def table_targets():
    return [
        f"{RES}/tables/{t}"
        for t in AGGREGATE_TABLES + STAT_TABLES + DIAGNOSTIC_TABLES + METADATA_TABLES
    ]


def final_targets():
    return table_targets() + figure_targets() + [f"{RES}/MANIFEST.sha256"]


def manifest_inputs(w):
    raws = [f"{RES}/raw/{d}_{SIZE}.json" for d in config["datasets"]]
    data = [f"{RES}/data/{d}_{SIZE}.h5" for d in config["datasets"]]
    noise = [f"{RES}/noise/{c.dataset}/{c.tag}.npz" for c in noise_cells(config)]
    runs = [
        f"{RES}/{d}/{f}"
        for d in run_dirs(config)
        for f in ("metrics.json", "per_epoch.csv", "test_probs.npz")
    ]
    return sums(*raws, *data, *noise, *runs, *table_targets(), *figure_targets())


def run_spec(w):
    """Canonical, result-relevant parameters only: they decide when a run is redone."""
    return RunSpec.from_config(
        config, w.dataset, w.noise, w.rate, w.noise_seed, w.method, w.backbone, w.seed
    ).to_dict()


# ---------------------------------------------------------------- report: tables, statistics
from lnm.config import fmt_rate  # noqa: E402

# Files each report rule writes under {RES}/tables (tests check them against lnm.report).
AGGREGATE_TABLES = (
    "runs.csv",
    "summary.csv",
    "summary.md",
    "summary.tex",
    "summary.html",
    "ranking.csv",
    "ranking.html",
)
STAT_TABLES = (
    "cells.csv",
    "cells.md",
    "cells.tex",
    "cells.html",
    "resolution.csv",
    "ranks.csv",
    "friedman.csv",
    "ranks.html",
    "wilcoxon.csv",
    "wilcoxon.html",
    "variance.csv",
    "variance.html",
    "imbalance.csv",
    "imbalance.html",
    "statistics.md",
)
DIAGNOSTIC_TABLES = ("per_epoch.csv", "selection.csv", "selection.md", "selection.html")
METADATA_TABLES = ("config.yaml", "versions.csv", "run_metadata.html")

CODE_RENDER = CODE_TABLES + pkg("report/render.py")
CODE_STATS = CODE_RENDER + pkg("report/stats.py", "report/tables.py")
CODE_DIAGNOSTICS = CODE_RENDER + pkg("report/diagnostics.py")
CODE_METADATA = CODE_RENDER + pkg("report/metadata.py")
CODE_PLOTS = CODE_STATS + pkg("report/figures.py")


def noisy_settings():
    """'{noise}-{rate}' of every noisy setting, as in noise-file and figure names."""
    return [
        f"{p}-{fmt_rate(r)}"
        for p, rates in config["noise"]["patterns"].items()
        for r in rates
    ]


def run_files(*names):
    """Files of every run, e.g. run_files("per_epoch.csv")."""
    return [f"{RES}/{d}/{n}" for d in run_dirs(config) for n in names]


def sidecars(paths):
    """The SHA-256 sidecars of ``paths``."""
    return [f"{p}.sha256" for p in paths]


def reported(path, caption, category, subcategory=None):
    """An artifact marked for `snakemake --report` (caption report/<caption>.rst), and its
    SHA-256 sidecar."""
    return [
        report(
            path,
            caption=f"../report/{caption}.rst",
            category=category,
            subcategory=subcategory,
        ),
        f"{path}.sha256",
    ]


def tables(*names):
    return [f"{RES}/tables/{n}" for n in names]
