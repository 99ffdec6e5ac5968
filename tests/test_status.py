"""``lnm status``: whether the workflow has finished for a config, else which stages are
missing (lnm/status.py); the README's quick start runs it for real (tests/test_readme.py)."""

from __future__ import annotations

import pytest

from lnm import grid
from lnm.config import load_config
from lnm.status import job_stats, status
from tests.conftest import REPO

DRY_RUN = """\
Building DAG of jobs...
Job stats:
job                     count
--------------------  -------
estimate_noise              8
train                      86
aggregate                   1
manifest                    1
all                         1
total                      97

rule train:
    jobid: 4
Job stats:
job      count
-----  -------
train       86
total       86
"""


def test_job_stats_reads_snakemakes_table():
    assert job_stats(DRY_RUN) == {
        "estimate_noise": 8, "train": 86, "aggregate": 1, "manifest": 1, "all": 1
    }  # fmt: skip
    assert job_stats("Building DAG of jobs...\nNothing to be done (all requested files are "
                     "present and up to date).\n") == {}  # fmt: skip
    with pytest.raises(RuntimeError, match="no job statistics"):
        job_stats("WorkflowError: something else")


def test_status_names_the_missing_stages_and_the_runs_done(tmp_path):
    from tests.test_console import _finished

    cfg = load_config(REPO / "presets" / "demo.yaml", overrides={"results": str(tmp_path)})
    runs = [d.removeprefix("runs/") for d in grid.run_dirs(cfg)]
    for run in runs[:24]:
        _finished(tmp_path, run)
    _finished(tmp_path, "othermnist/none-0.0-n0/ce/resnet8/s0")  # not in this grid
    finished, text = status(cfg, ["presets/demo.yaml"], pending=job_stats(DRY_RUN))
    assert not finished
    lines = text.splitlines()
    assert lines[0] == f"{tmp_path}: not finished: 24 of {len(runs)} training runs done"
    assert "estimate_noise 8, train 86, aggregate 1, manifest 1, all 1" in " ".join(text.split())
    assert "--configfile presets/demo.yaml" in text
    assert all(len(line) <= 120 for line in lines)
    finished, text = status(cfg, ["presets/demo.yaml"], pending={})
    assert finished and "nothing to run" in text
