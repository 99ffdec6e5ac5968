"""A new noise pattern is one new file: a copy of the repository with only
``lnm/noise/patterns/nearest_class.py`` added runs the smoke workflow (on a synthetic dataset)
with ``noise.patterns.nearest_class: [0.4]``, and the pattern appears in the config schema,
``lnm validate``, ``lnm noise``, its noise file, runs.csv and the report's tables and figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import SYNTHETIC_RULES, synthetic_results
from tests.test_readme import _copy_repository

#: The newcomer: class-conditional, each label flips with probability ε to the class before it
#: (class 0 to class 1), with a matrix of its own.
NEAREST_CLASS = '''
"""``nearest_class``: each label flips with probability ε to its nearest class below (class 0 to
class 1)."""

import numpy as np

from ..spec import check_num_classes, check_rate
from .base import ClassConditional


class NearestClass(ClassConditional):
    name = "nearest_class"
    code = 6
    order = 25

    def matrix(self, rate, num_classes):
        c, rate = check_num_classes(num_classes), check_rate(self.name, rate)
        T = np.eye(c) * (1.0 - rate)
        T[np.arange(c), np.where(np.arange(c) > 0, np.arange(c) - 1, 1)] += rate
        return T
'''

SETTING = "nearest_class-0.4"


def run(repo, *args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONHASHSEED": "0"}
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    if check:
        assert proc.returncode == 0, f"{args}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def copy_with_pattern(tmp_path_factory):
    """The repository copied, plus the one pattern file, and the smoke workflow run on it."""
    tmp = tmp_path_factory.mktemp("new_pattern")
    repo = _copy_repository(tmp / "repo")
    before = {p.relative_to(repo) for p in repo.rglob("*")}
    (repo / "lnm" / "noise" / "patterns" / "nearest_class.py").write_text(NEAREST_CLASS)
    added = {p.relative_to(repo) for p in repo.rglob("*")} - before
    assert [str(p) for p in added] == ["lnm/noise/patterns/nearest_class.py"]
    res = tmp / "results"
    synthetic_results(res)
    cfg = tmp / "nearest.yaml"
    cfg.write_text(
        textwrap.dedent("""
        datasets: [pathmnist]
        noise:
          patterns: {symmetric: [], nearest_class: [0.4]}
        """)
    )
    smoke = str(repo / "presets" / "smoke.yaml")
    run(repo, sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", smoke,
        str(cfg), "--config", f"results={res}", "--allowed-rules", *SYNTHETIC_RULES)  # fmt: skip
    return repo, res, cfg


@pytest.mark.slow
def test_a_new_pattern_file_runs_through_the_workflow(copy_with_pattern):
    repo, res, cfg = copy_with_pattern
    noise = np.load(res / "noise" / "pathmnist" / f"{SETTING}-n0.npz")
    assert str(noise["pattern"]) == "nearest_class" and float(noise["rate"]) == 0.4
    T = np.array([[0.6, 0.4, 0.0], [0.4, 0.6, 0.0], [0.0, 0.4, 0.6]])
    np.testing.assert_allclose(noise["nominal_transition"], T)
    flipped = noise["train_noisy"] != noise["train_clean"]
    assert 0.25 < flipped.mean() < 0.55 and bool(noise["identifiable"]) is True
    # each flip goes to the class below (class 0 to class 1), nowhere else
    below = np.where(noise["train_clean"] > 0, noise["train_clean"] - 1, 1)
    assert (noise["train_noisy"][flipped] == below[flipped]).all()

    runs = pd.read_csv(res / "tables" / "runs.csv")
    assert set(runs["noise"]) == {"none", "nearest_class"}
    assert len(runs[runs["noise"] == "nearest_class"]) == 2  # ce and coteaching
    summary = (res / "tables" / "summary.md").read_text()
    assert "nearest_class" in summary
    for table in ("summary.csv", "cells.csv", "selection.csv"):
        assert "nearest_class" in (res / "tables" / table).read_text(), table
    for figure in ("ranking_nearest_class.png", f"selection_pathmnist_{SETTING}.png"):
        assert (res / "figures" / figure).stat().st_size > 0, figure


@pytest.mark.slow
def test_a_new_pattern_file_is_in_the_schema_and_the_commands(copy_with_pattern, tmp_path):
    repo, res, cfg = copy_with_pattern
    code = (
        "import json; from lnm.config import load_schema; from lnm import grid\n"
        "noise = load_schema()['properties']['noise']['properties']\n"
        "print(json.dumps([list(noise['patterns']['properties']), list(grid.PATTERNS)]))"
    )
    schema, patterns = json.loads(run(repo, sys.executable, "-c", code).stdout)
    assert "nearest_class" in schema
    assert patterns[:4] == ["none", "symmetric", "pairflip", "nearest_class"]  # order = 25

    lnm = (sys.executable, "-m", "lnm.cli")
    out = run(repo, *lnm, "validate", "presets/smoke.yaml", cfg).stdout
    assert "config OK, 4 training runs" in out, out
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"noise": {"patterns": {"nearest_clas": [0.4]}}}))
    proc = run(repo, *lnm, "validate", typo, check=False)
    assert proc.returncode != 0 and "'nearest_class'" in proc.stdout + proc.stderr

    h5 = res / "data" / "pathmnist_28.h5"
    out_npz = tmp_path / "nc.npz"
    run(repo, *lnm, "noise", "--data", h5, "--pattern", "nearest_class", "--rate", "0.4",
        "--out", out_npz)  # fmt: skip
    workflow_file = res / "noise" / "pathmnist" / f"{SETTING}-n0.npz"
    assert out_npz.read_bytes() == workflow_file.read_bytes()  # same draw, same bytes
