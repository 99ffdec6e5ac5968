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
    return [f for n in names for f in (
        sorted(glob.glob(os.path.join(root, n, "*.py"))) if n.endswith("/") else [os.path.join(root, n)])]


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
    figs = [f"{RES}/figures/acc_vs_rate_{d}.png" for d in config["datasets"]] if patterns() else []
    if patterns():
        figs += [f"{RES}/figures/ranking_{p}.png" for p in patterns() + ["overall"]]
    return figs


def table_targets():
    return [f"{RES}/tables/{t}" for t in ("runs.csv", "summary.csv", "summary.md", "ranking.csv")]


def final_targets():
    return table_targets() + figure_targets() + [f"{RES}/MANIFEST.sha256"]


def manifest_inputs(w):
    raws = [f"{RES}/raw/{d}_{SIZE}.json" for d in config["datasets"]]
    data = [f"{RES}/data/{d}_{SIZE}.h5" for d in config["datasets"]]
    noise = [f"{RES}/noise/{c.dataset}/{c.tag}.npz" for c in noise_cells(config)]
    runs = [f"{RES}/{d}/{f}" for d in run_dirs(config)
            for f in ("metrics.json", "per_epoch.csv", "test_probs.npz")]
    return sums(*raws, *data, *noise, *runs, *table_targets(), *figure_targets())


def run_spec(w):
    """Canonical, result-relevant parameters only: they decide when a run is redone."""
    return RunSpec.from_config(config, w.dataset, w.noise, w.rate, w.noise_seed, w.method,
                               w.backbone, w.seed).to_dict()
