"""A newcomer is one file. A copy of the repository with three files added and nothing else
changed: a method (``volmin_warm``, a subclass of VolMinNet with one parameter and a phase: the
file docs/methods.md shows), a noise pattern (``nearest_class``, a class-conditional flip with its
own matrix: the file docs/noise.md shows) and a CSV-based adapter with its own default columns
(``mycsv``: the file docs/datasets.md shows). One smoke workflow on the copy (a synthetic
"pathmnist" and a CSV folder in the new layout) runs all three end to end, and each newcomer
appears in the schema, ``lnm params`` / ``lnm validate`` / ``lnm noise``, its files, every table
and figure where its peers do, and (the method) in the cost model, projected from its phases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, SYNTHETIC_RULES, synthetic_results
from tests.realworld_fixtures import SPLITS, read_rows, write_csv, write_csv_dataset
from tests.test_readme import _copy_repository

METHOD, PATTERN, ADAPTER = "volmin_warm", "nearest_class", "mycsv"
SETTING = f"{PATTERN}-0.4"
#: The fixture's columns (tests/realworld_fixtures.py) -> the new layout's.
COLUMNS = {"path": "file", "label": "noisy", "clean": "expert"}


def documented(doc: str, section: str) -> str:
    """The first Python block of ``docs/<doc>`` after the heading ``section`` (so the docs show
    what this test runs)."""
    text = (REPO / "docs" / doc).read_text().split(f"## {section}", 1)[1]
    return re.search(r"```python\n(.*?)```", text, re.S)[1]


NEWCOMERS = {
    f"lnm/methods/{METHOD}.py": documented("methods.md", "Traits"),
    f"lnm/noise/patterns/{PATTERN}.py": documented("noise.md", "Adding a noise pattern"),
    f"lnm/data/adapters/{ADAPTER}.py": documented("datasets.md", "Adding an adapter"),
}


def run(repo, *args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if check and proc.returncode:
        raise AssertionError(f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _files(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The repository copied, the three files added, and the smoke workflow run on it."""
    tmp = tmp_path_factory.mktemp("newcomers")
    repo = _copy_repository(tmp / "repo")
    before = _files(repo)
    for name, text in NEWCOMERS.items():
        (repo / name).write_text(text)
    assert _files(repo) - before == set(NEWCOMERS) and _files(repo) >= before

    # a synthetic "pathmnist" with the record the download step would have written (the HDF5
    # newer than its record, as preprocess would have left it)
    res = tmp / "results"
    h5 = synthetic_results(res)
    later = (res / "raw" / "pathmnist_28.json").stat().st_mtime + 1
    for p in (h5, h5.with_name(h5.name + ".sha256")):
        os.utime(p, (later, later))
    # a tiny CSV set in the new layout: the csv fixture with its columns renamed
    fx = write_csv_dataset(tmp / "data", annotators=0, n=(24, 8, 8), size=16)
    for split in SPLITS:
        header, rows = read_rows(fx.root / f"{split}.csv")
        write_csv(fx.root / f"{split}.csv", [COLUMNS.get(c, c) for c in header], rows)
    entry = {"adapter": ADAPTER, "root": str(fx.root), "size": 16, "assumed_rates": [0.3]}
    pattern_only = {
        "datasets": ["pathmnist"],
        "noise": {"patterns": {"symmetric": [], PATTERN: [0.4]}},
    }
    adapter_only = {
        "results": str(res),
        "datasets": [ADAPTER],
        "real_world": {ADAPTER: entry},  # no options: the adapter's defaults name the columns
        "methods": ["ce"],
        "train": {"epochs": 1, "last_k": 1},
    }
    everything = {
        "results": str(res),
        "datasets": ["pathmnist", ADAPTER],
        # the rate of any method that takes one, in real-world cells: the assumed one (else
        # the estimation stage runs: rules/common.smk asks every method of the catalog)
        "real_world": {ADAPTER: {**entry, "rate_source": "assumed"}},
        "noise": pattern_only["noise"],
        "methods": ["ce", METHOD],
    }
    smoke = repo / "presets" / "smoke.yaml"
    configs = SimpleNamespace(
        pattern=_yaml(tmp / "nearest.yaml", pattern_only),
        adapter=_yaml(tmp / "mycsv.yaml", adapter_only),
        all=_yaml(tmp / "all.yaml", everything),
    )
    allowed = [*SYNTHETIC_RULES, "real_source", "preprocess"]  # not download: no MedMNIST
    out = run(repo, "-m", "snakemake", "--cores", "2", "--configfile", smoke, configs.all,
              "--allowed-rules", *allowed)  # fmt: skip
    assert "rule download" not in out.stdout + out.stderr
    return SimpleNamespace(repo=repo, res=res, smoke=smoke, cfg=configs, fx=fx, entry=entry)


@pytest.mark.slow
def test_the_workflow_runs_each_newcomer(copy):
    res, fx = copy.res, copy.fx
    # the pattern: its noise file, drawn from its own matrix
    noise = np.load(res / "noise" / "pathmnist" / f"{SETTING}-n0.npz")
    assert str(noise["pattern"]) == PATTERN and float(noise["rate"]) == 0.4
    T = np.array([[0.6, 0.4, 0.0], [0.4, 0.6, 0.0], [0.0, 0.4, 0.6]])
    np.testing.assert_allclose(noise["nominal_transition"], T)
    flipped = noise["train_noisy"] != noise["train_clean"]
    assert 0.25 < flipped.mean() < 0.55 and bool(noise["identifiable"]) is True
    # each flip goes to the class below (class 0 to class 1), nowhere else
    below = np.where(noise["train_clean"] > 0, noise["train_clean"] - 1, 1)
    assert (noise["train_noisy"][flipped] == below[flipped]).all()

    # the adapter: its HDF5 from the new layout, the expert column read as clean labels
    with h5py.File(res / "data" / f"{ADAPTER}_16.h5") as h5:
        assert h5.attrs["source"] == ADAPTER and json.loads(h5.attrs["classes"]) == fx.classes
        assert (h5["train/labels"][:] == fx.clean["train"]).all()

    runs = pd.read_csv(res / "tables" / "runs.csv")
    cells = {("pathmnist", "none"), ("pathmnist", PATTERN), (ADAPTER, "none"), (ADAPTER, "real")}
    assert set(zip(runs.dataset, runs.noise)) == cells
    for dataset, noise_ in cells:  # every method on every cell, the newcomer included
        got = runs.query("dataset == @dataset and noise == @noise_")["method"]
        assert sorted(got) == sorted(["ce", METHOD]), (dataset, noise_)
    real = runs.query("noise == 'real'").iloc[0]
    truth = (fx.noisy["train"] != fx.clean["train"]).mean()
    assert real.realised_rate == pytest.approx(truth)
    mine = runs[runs["method"] == METHOD]
    assert (mine["base_method"] == METHOD).all() and mine["t_error"].notna().any()

    tables = {p.name: p.read_text() for p in (res / "tables").iterdir() if p.is_file()}
    assert "## mycsv (resnet8)" in tables["summary.md"] and PATTERN in tables["summary.md"]
    for table in ("summary.csv", "cells.csv", "selection.csv"):
        assert PATTERN in tables[table], table
    for table in ("cells.csv", "summary.csv", "variance.csv", "imbalance.csv", "statistics.md"):
        assert ADAPTER in tables[table], table
    # the method: in every table that names its peer CE (the published numbers of the
    # reproduction tables have no row for a method that was never published)
    peers = [t for t, text in tables.items() if re.search(r"\bce\b", text) and ".sha256" not in t]
    assert {"runs.csv", "summary.md", "cells.csv", "ranks.csv", "variance.csv"} <= set(peers)
    spelt = {t: METHOD.replace("_", r"\_") if t.endswith(".tex") else METHOD for t in peers}
    missing = [t for t in peers if spelt[t] not in tables[t] and not t.startswith("reproduction")]
    assert not missing, missing
    assert METHOD in tables["wilcoxon.csv"]  # against CE
    t_table = tables["selection.md"].split("transition-matrix estimation error", 1)[1]
    assert METHOD in t_table  # it estimates T: a trait inherited from VolMinNet

    for figure in (f"ranking_{PATTERN}.png", f"selection_pathmnist_{SETTING}.png",
                   f"recall_{ADAPTER}.png"):  # fmt: skip
        assert (res / "figures" / figure).stat().st_size > 0, figure


#: Re-draws every figure of a results folder (as the figure rules do, from its tables) and
#: prints the texts each draws (titles, labels, tick labels, legends).
FIGURE_TEXTS = """
import json, sys, tempfile
from pathlib import Path
import matplotlib.figure, matplotlib.text
import pandas as pd
from lnm.report import figures

res, out, texts = Path(sys.argv[1]), Path(tempfile.mkdtemp()), {}
save = matplotlib.figure.Figure.savefig
def savefig(fig, fname, *a, **k):  # (written to a temporary name first)
    texts[png.name] = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return save(fig, fname, *a, **k)
matplotlib.figure.Figure.savefig = savefig
runs = pd.read_csv(res / "tables" / "runs.csv")
epochs = pd.read_csv(res / "tables" / "per_epoch.csv")
for png in sorted((res / "figures").glob("*.png")):
    name, target = png.stem, out / png.name
    if name.startswith("acc_vs_rate_"):
        figures.plot_acc_vs_rate(runs, name.removeprefix("acc_vs_rate_"), target)
    elif name.startswith("ranking_"):
        figures.plot_ranking(runs, name.removeprefix("ranking_"), target)
    elif name.startswith("recall_"):
        figures.plot_recall(runs, name.removeprefix("recall_"), target)
    elif name == "cd_diagram":
        figures.plot_cd_diagram(runs, target)
    elif name.startswith("selection_"):
        for dataset in sorted(set(runs["dataset"]), key=len, reverse=True):
            if name.startswith(f"selection_{dataset}_"):
                noise, rate = name.removeprefix(f"selection_{dataset}_").rsplit("-", 1)
                figures.plot_selection(epochs, dataset, noise, float(rate), target)
                break
print(json.dumps(texts))
"""


@pytest.mark.slow
def test_the_newcomers_are_in_every_figure(copy):
    texts = json.loads(run(copy.repo, "-c", FIGURE_TEXTS, copy.res).stdout)
    drawn = {n: "\n".join(t) for n, t in texts.items()}
    assert {"acc_vs_rate_pathmnist.png", f"ranking_{PATTERN}.png", "cd_diagram.png",
            f"recall_{ADAPTER}.png", f"selection_pathmnist_{SETTING}.png"} <= set(drawn)  # fmt: skip
    shown = [n for n, t in drawn.items() if re.search(r"\bce\b", t)]  # those showing methods
    assert len(shown) >= 4 and not [n for n in shown if METHOD not in drawn[n]], shown
    assert PATTERN in drawn[f"ranking_{PATTERN}.png"] and ADAPTER in drawn[f"recall_{ADAPTER}.png"]


@pytest.mark.slow
def test_the_newcomers_are_in_the_schema_and_the_commands(copy, tmp_path):
    repo, res, smoke, cfg = copy.repo, copy.res, copy.smoke, copy.cfg
    lnm = ("-m", "lnm.cli")
    code = (
        "import json; from lnm.config import load_schema; from lnm import grid\n"
        "schema = load_schema()['properties']\n"
        "entry = schema['real_world']['additionalProperties']\n"
        "rules = {r['if']['properties']['adapter']['const']: r['then'] for r in entry['allOf']}\n"
        "print(json.dumps([list(schema['noise']['properties']['patterns']['properties']),\n"
        "                  list(grid.PATTERNS), entry['properties']['adapter']['enum'], rules,\n"
        f"                  grid.adapter_info({ADAPTER!r}).defaults, list(grid.methods()),\n"
        f"                  schema['method_params']['properties'][{METHOD!r}]]))\n"
    )
    patterns, order, enum, rules, defaults, methods, params = json.loads(
        run(repo, "-c", code).stdout
    )

    # the pattern
    assert PATTERN in patterns
    assert order[:4] == ["none", "symmetric", "pairflip", PATTERN]  # order = 25
    assert "config OK, 4 training runs" in run(repo, *lnm, "validate", smoke, cfg.pattern).stdout
    typo = _yaml(tmp_path / "typo.yaml", {"noise": {"patterns": {"nearest_clas": [0.4]}}})
    proc = run(repo, *lnm, "validate", typo, check=False)
    assert proc.returncode != 0 and f"'{PATTERN}'" in proc.stdout + proc.stderr
    h5 = res / "data" / "pathmnist_28.h5"
    out_npz = tmp_path / "nc.npz"
    run(repo, *lnm, "noise", "--data", h5, "--pattern", PATTERN, "--rate", "0.4", "--out", out_npz)
    workflow_file = res / "noise" / "pathmnist" / f"{SETTING}-n0.npz"
    assert out_npz.read_bytes() == workflow_file.read_bytes()  # same draw, same bytes

    # the adapter: its name and its options, with its own defaults
    assert enum[-1] == ADAPTER and "csv" in enum
    mine, csv = rules[ADAPTER]["properties"]["options"], rules["csv"]["properties"]["options"]
    assert set(mine["properties"]) == set(csv["properties"]) >= {"duplicates", "classes"}
    assert "required" not in mine and csv["required"] == ["image_column", "label_column"]
    assert (defaults["image_column"], defaults["label_column"]) == ("file", "noisy")
    assert defaults["clean_column"] == "expert" and defaults["duplicates"] == "refuse"
    out = run(repo, *lnm, "validate", smoke, cfg.adapter).stdout
    assert "config OK, 2 training runs" in out, out  # clean ceiling + real 0.3: expert labels
    bad = _yaml(tmp_path / "bad.yaml",
                {"real_world": {ADAPTER: {**copy.entry, "options": {"file": "x"}}}})  # fmt: skip
    proc = run(repo, *lnm, "validate", smoke, cfg.adapter, bad, check=False)
    assert proc.returncode != 0
    assert "unknown key(s) ['file'] under 'real_world.mycsv.options'" in proc.stdout + proc.stderr

    # the method: listed with its parameter and its traits, checked by validate
    assert methods[-1] == METHOD and params["properties"]["warmup"]["minimum"] == 0
    listed = run(repo, *lnm, "params", METHOD).stdout
    assert f"{METHOD}  (lnm/methods/{METHOD}.py, class VolMinWarm)" in listed
    assert "warmup = 1" in listed and "lam = 0.0001" in listed  # its own and VolMinNet's
    assert "phases: warmup (until warmup) -> volmin; reports: T_hat" in listed
    assert "config OK, 8 training runs" in run(repo, *lnm, "validate", smoke, cfg.all).stdout
    wrong = _yaml(tmp_path / "wrong.yaml", {"method_params": {METHOD: {"warmup": -1}}})
    proc = run(repo, *lnm, "validate", smoke, cfg.all, wrong, check=False)
    assert proc.returncode != 0 and "warmup" in proc.stdout + proc.stderr


#: The cost model of the copy (benchmarks/grid_cost.py) on the newcomer's runs, from a made-up
#: measurement: its phases, the parameters that time each phase, the projected seconds.
COST = """
import json, sys
sys.path.insert(0, "benchmarks")
import grid_cost as gc
from lnm import grid
from lnm.config import load_config

config = load_config(*sys.argv[1:])
sizes = {"pathmnist": {"train": 100, "val": 10, "test": 30}, "mycsv": {"train": 24, "val": 8, "test": 8}}
jobs = gc.grid_jobs(config, methods=["volmin_warm"], split_sizes=sizes)
rec = {"phases": [{"ips": 100.0}, {"ips": 50.0}], "eval": {"ips": 20.0}, "checkpoint_s": 0.0}
rows, missing = gc.project(jobs, {"runs": {j.key: rec for j in jobs}}, startup=False)
info = grid.method_info("volmin_warm")
print(json.dumps({"phases": sorted(j.phases for j in jobs), "rows": rows["volmin_warm"]["seconds"],
                  "jobs": len(jobs), "overrides": info.phase_overrides(2), "missing": missing}))
"""


@pytest.mark.slow
def test_the_cost_model_projects_the_new_method_from_its_phases(copy):
    got = json.loads(run(copy.repo, "-c", COST, copy.smoke, copy.cfg.all).stdout)
    assert got["jobs"] == 4 and not got["missing"]  # 2 datasets x (clean + noisy)
    assert got["phases"] == [[1, 1]] * 4  # 2 epochs: warm-up 1 (its default), then VolMinNet
    assert got["overrides"] == {"warmup": 2}  # to time each phase: 2 epochs of each
    # per run: 1 epoch at 100 img/s + 1 at 50 img/s, + 2 evaluations at 20 img/s
    pathmnist = 100 / 100 + 100 / 50 + 2 * 40 / 20
    csv = 24 / 100 + 24 / 50 + 2 * 16 / 20
    assert got["rows"] == pytest.approx(2 * pathmnist + 2 * csv)


@pytest.mark.slow
def test_each_newcomer_file_is_a_code_input_of_its_own_jobs(copy):
    """Editing a newcomer reruns exactly its jobs (and what reads their outputs); editing
    another adapter reruns nothing."""
    dry = ("-m", "snakemake", "--cores", "1", "--dry-run", "--configfile", copy.smoke, copy.cfg.all)

    def planned_after_editing(name):
        path = copy.repo / name
        text = path.read_text()
        try:
            path.write_text(text + "# edited by a test\n")
            return run(copy.repo, *dry).stdout
        finally:
            path.write_text(text)

    def jobs(planned, rule):  # the wildcards of each planned job of ``rule``
        return re.findall(rf"rule {rule}:\n(?:    .*\n)*?    wildcards: ([^\n]*)", planned)

    assert "Nothing to be done" in planned_after_editing("lnm/data/adapters/chexpert.py")
    planned = planned_after_editing(f"lnm/data/adapters/{ADAPTER}.py")
    for rule, n in (("real_source", 1), ("preprocess", 1), ("noise", 2), ("train", 4)):
        got = jobs(planned, rule)
        assert len(got) == n and all(f"dataset={ADAPTER}" in w for w in got), (rule, got)
    trains = jobs(planned_after_editing(f"lnm/methods/{METHOD}.py"), "train")
    assert len(trains) == 4 and all(f"method={METHOD}" in w for w in trains), trains
    assert "Nothing to be done" in run(copy.repo, *dry).stdout  # content restored
