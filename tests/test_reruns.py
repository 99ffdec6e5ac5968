"""Reruns follow code changes exactly; a training job killed mid-epoch resumes and matches."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, SHARED_MEDMNIST

WORKFLOW = [
    "Snakefile",
    "config.yaml",
    "rules",
    "workflow_scripts",
    "schemas",
    "presets",
    "envs",
    "lnm",
    "report",
]


def snakemake(cwd, *args, check=True, extra_config=None):
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "--configfile",
        "presets/smoke.yaml",
        *([str(extra_config)] if extra_config else []),
        *args,
    ]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def planned(cwd, *args):
    """{rule: count} of the jobs a dry run would execute."""
    out = snakemake(cwd, "--dry-run", "--quiet", "rules", *args)
    if "Nothing to be done" in out:
        return {}
    return {
        m[1]: int(m[2])
        for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)
        if m[1] not in ("total", "count")
    }


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    if not (SHARED_MEDMNIST / "breastmnist.npz").exists():
        pytest.skip(f"real MedMNIST files not found at {SHARED_MEDMNIST}")
    root = tmp_path_factory.mktemp("wf")
    for name in WORKFLOW:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(
                src, root / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        elif src.exists():
            shutil.copy2(src, root / name)
    cfg = ["--config", f"results={root / 'results'}", f"raw_dir={SHARED_MEDMNIST}"]
    snakemake(root, *cfg)
    return root, cfg


def edit(path: Path):
    path.write_text(path.read_text() + "\n# edited by a test\n")


@pytest.mark.slow
def test_reruns_follow_exactly_the_code_that_changed(workflow_copy):
    root, cfg = workflow_copy
    assert planned(root, *cfg) == {}
    for f in (root / "lnm").rglob("*.py"):  # new mtimes, same content: nothing to redo
        os.utime(f)
    assert planned(root, *cfg) == {}

    edit(root / "lnm" / "methods" / "coteaching.py")  # only the Co-teaching runs
    plan = planned(root, *cfg)
    upstream = {"download", "preprocess", "noise"}  # data and noise do not run the method
    assert plan["train"] == 2 and not upstream & set(plan) and plan["aggregate"] == 1, plan
    out = snakemake(root, "--dry-run", *cfg)
    outputs = re.findall(r"rule train:\n(?:    .*\n)*?    output: ([^\n]+)", out)
    trained = {re.search(r"runs/breastmnist/[^/]+/(\w+)/", o)[1] for o in outputs}
    assert trained == {"coteaching"}
    snakemake(root, *cfg)

    edit(root / "lnm" / "report" / "figures.py")  # only the figures
    plan = planned(root, *cfg)
    assert plan.get("figure_ranking") == 2, plan
    assert not ({"train", "aggregate"} | upstream) & set(plan), plan

    snakemake(root, *cfg)
    edit(root / "lnm" / "train" / "trainer.py")  # every training run
    assert planned(root, *cfg)["train"] == 4


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_and_matches(tmp_path, workflow_copy):
    root, _ = workflow_copy
    extra = tmp_path / "one_run.yaml"  # one CE run of 8 epochs on symmetric 0.4
    extra.write_text(
        "methods: [ce]\nnoise: {patterns: {symmetric: [0.4], instance: []}, "
        "clean: false}\ntrain: {epochs: 8}\n"
    )
    cfg = [f"raw_dir={SHARED_MEDMNIST}"]
    run = "runs/breastmnist/symmetric-0.4-n0/ce/resnet8/s0"
    snakemake(root, "--config", f"results={tmp_path / 'a'}", *cfg, extra_config=extra)

    b = tmp_path / "b"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "--configfile",
        "presets/smoke.yaml",
        str(extra),
        "--config",
        f"results={b}",
        *cfg,
    ]
    proc = subprocess.Popen(
        cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    ckpt = b / run / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (b / run / "metrics.json").exists() and ckpt.exists()

    snakemake(root, "--unlock", "--config", f"results={b}", *cfg, extra_config=extra)
    snakemake(root, "--rerun-incomplete", "--config", f"results={b}", *cfg, extra_config=extra)
    log = b / "logs" / "train" / "breastmnist" / "symmetric-0.4-n0" / "ce" / "resnet8" / "s0.log"
    assert "resuming" in log.read_text()

    ma, mb = (json.loads((d / run / "metrics.json").read_text()) for d in (tmp_path / "a", b))
    for m in (ma, mb):
        m.pop("provenance")
        for item in m["inputs"].values():
            item.pop("path")
    assert ma == mb
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "a" / run / "per_epoch.csv"), pd.read_csv(b / run / "per_epoch.csv")
    )
    assert not ckpt.exists()


@pytest.mark.slow
def test_killed_run_is_not_resumed_after_its_code_changed(tmp_path, workflow_copy):
    """Snakemake reruns the job and passes its code inputs: the trainer sets the checkpoint
    aside (its code digest differs) and starts from epoch 1."""
    root, _ = workflow_copy
    extra = tmp_path / "one_run.yaml"
    extra.write_text(
        "methods: [ce]\nnoise: {patterns: {symmetric: [0.4], instance: []}, "
        "clean: false}\ntrain: {epochs: 8}\n"
    )
    run = "runs/breastmnist/symmetric-0.4-n0/ce/resnet8/s0"
    a, b = tmp_path / "a", tmp_path / "b"
    cfg = lambda res: ["--config", f"results={res}", f"raw_dir={SHARED_MEDMNIST}"]  # noqa: E731
    snakemake(root, *cfg(a), extra_config=extra)

    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile"]
    cmd += ["presets/smoke.yaml", str(extra), *cfg(b)]
    proc = subprocess.Popen(
        cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    ckpt = b / run / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (b / run / "metrics.json").exists() and ckpt.exists()

    ce = root / "lnm" / "methods" / "ce.py"
    original = ce.read_text()
    try:
        edit(ce)  # the method's code changed (a comment: results stay the same)
        snakemake(root, "--unlock", *cfg(b), extra_config=extra)
        snakemake(root, "--rerun-incomplete", *cfg(b), extra_config=extra)
    finally:
        ce.write_text(original)
    log = (b / "logs" / "train" / run.removeprefix("runs/")).with_suffix(".log").read_text()
    assert "set aside" in log and "different code (sha256" in log and "resuming" not in log
    stale = [p.name for p in (b / run).glob("checkpoint.pt.stale-*") if p.suffix != ".sha256"]
    assert len(stale) == 1 and stale[0] in log
    ma, mb = (json.loads((d / run / "metrics.json").read_text()) for d in (a, b))
    assert mb["provenance"]["resumed_at_epochs"] == []
    assert mb["provenance"]["checkpoints_set_aside"][0]["kind"] == "stale"
    for m in (ma, mb):
        m.pop("provenance")
        for item in m["inputs"].values():
            item.pop("path")
    assert ma == mb
