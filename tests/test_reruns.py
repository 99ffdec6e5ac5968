"""Reruns follow content and identity, nothing else, and a killed training job resumes.

- Code: editing a module reruns exactly the jobs whose rule imports it (lnm.codedeps), touching
  files or moving the raw folder reruns nothing, a config value reruns only the jobs whose result
  it changes (one workflow copy that has run every method on two noisy cells).
- Resume: a training job SIGKILLed mid-epoch and re-run through Snakemake ends with the numbers
  of an uninterrupted run, unless its code changed in between (then it starts fresh).
"""

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

from lnm import grid
from tests.conftest import REPO, SHARED_MEDMNIST
from tests.test_grid import HELPERS

WORKFLOW = ["Snakefile", "config.yaml", "rules", "workflow_scripts", "schemas", "presets", "envs",
            "lnm", "report", "profiles"]  # fmt: skip
CELLS = 2  # symmetric 0.4 and instance 0.4, one seed: every method trains twice
METHODS = len(grid.methods())  # GRID runs every method of the catalog
GRID = f"""
methods: {list(grid.methods())}
noise: {{patterns: {{symmetric: [0.4], instance: [0.4]}}, clean: false}}
train: {{epochs: 2, last_k: 1}}
method_params:
  trevision: {{estimation_epochs: 1}}
  coteaching_plus: {{init_epoch: 1}}
  disc: {{start_epoch: 1}}
  dividemix: {{warmup_epochs: 1, rampup_epochs: 1, warmup_batch_mult: 1}}
"""


def snakemake(cwd, *args, check=True, extra_config=None):
    """The smoke preset (plus ``extra_config``) in the workflow copy ``cwd``."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
           "presets/smoke.yaml", *([str(extra_config)] if extra_config else []), *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def copy_workflow(root: Path) -> Path:
    for name in WORKFLOW:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        else:
            shutil.copy2(src, root / name)
    return root


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    """A copy of the workflow (nothing run yet) and the config pointing at the real raw files."""
    if not (SHARED_MEDMNIST / "breastmnist.npz").exists():
        pytest.skip(f"real MedMNIST files not found at {SHARED_MEDMNIST} (set LNM_RAW_DIR)")
    root = copy_workflow(tmp_path_factory.mktemp("wf"))
    return root, ["--config", f"results={root / 'results'}", f"raw_dir={SHARED_MEDMNIST}"]


def run(cwd, *args, check=True, files=()):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
           "presets/smoke.yaml", "grid.yaml", *map(str, files), *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def planned(cwd, *config, files=()):
    """{rule: count} of the jobs a dry run would execute, and the methods of its train jobs."""
    out = run(cwd, "--dry-run", "--config", *config, files=files)
    if "Nothing to be done" in out:
        return {}, set()
    counts = {}
    for m in re.finditer(r"^(?:local)?rule (\w+):", out, re.M):
        counts[m[1]] = counts.get(m[1], 0) + 1
    counts.pop("all", None)
    outputs = re.findall(r"rule train:\n(?:    .*\n)*?    output: ([^\n]+)", out)
    methods = {re.search(r"/runs/[^/]+/[^/]+/(\w+)/", o)[1] for o in outputs}
    return counts, methods


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    """A copy of the workflow that has run every method on two noisy BreastMNIST cells."""
    if not (SHARED_MEDMNIST / "breastmnist.npz").exists():
        pytest.skip(f"real MedMNIST files not found at {SHARED_MEDMNIST} (set LNM_RAW_DIR)")
    root = copy_workflow(tmp_path_factory.mktemp("wf"))
    (root / "grid.yaml").write_text(GRID)
    config = [f"results={root / 'results'}", f"raw_dir={SHARED_MEDMNIST}"]
    run(root, "--config", *config)
    return root, config


class edited:
    """Append a comment to a file for the duration of a with block (content restored after)."""

    def __init__(self, path: Path):
        self.path, self.text = path, path.read_text()

    def __enter__(self):
        self.path.write_text(self.text + "\n# edited by a test\n")

    def __exit__(self, *exc):
        self.path.write_text(self.text)


@pytest.mark.slow
def test_touching_code_reruns_nothing(wf):
    root, config = wf
    assert planned(root, *config) == ({}, set())
    for f in [*(root / "lnm").rglob("*.py"), *(root / "workflow_scripts").glob("*.py")]:
        os.utime(f)  # new modification times, same content
    assert planned(root, *config) == ({}, set())


@pytest.mark.slow
@pytest.mark.parametrize("helper", list(HELPERS))
def test_a_helper_module_reruns_exactly_the_methods_that_import_it(wf, helper):
    root, config = wf
    with edited(root / "lnm" / "methods" / helper):
        counts, methods = planned(root, *config)
    assert methods == HELPERS[helper]
    assert counts["train"] == CELLS * len(HELPERS[helper])
    assert not {"download", "preprocess", "noise"} & set(counts), counts
    assert planned(root, *config) == ({}, set())  # content restored: nothing to do


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, expect",
    [
        ("methods/coteaching.py", {"train": 2}),
        ("train/trainer.py", {"train": 2 * METHODS}),
        # a pattern's module and what only it imports: its noise files (one pattern, one cell)
        ("noise/instance.py", {"noise": 1, "train": METHODS}),
        ("noise/patterns/symmetric.py", {"noise": 1, "train": METHODS}),
        ("noise/patterns/base.py", {"noise": 2, "train": 2 * METHODS}),
        ("data/hdf5.py", {"preprocess": 1, "noise": 2, "train": 2 * METHODS}),
        ("data/medmnist_io.py", {"download": 1, "preprocess": 1, "noise": 2, "train": 2 * METHODS}),
        ("report/figures.py", {"figure_ranking": 3, "figure_acc_vs_rate": 1}),
        ("report/stats.py", {"statistics": 1}),
        ("report/manifest.py", {"manifest": 1}),
    ],
)
def test_each_module_reruns_the_jobs_that_execute_it(wf, module, expect):
    root, config = wf
    with edited(root / "lnm" / module):
        counts, _ = planned(root, *config)
    for rule, n in expect.items():
        assert counts.get(rule) == n, (rule, counts)
    if "train" not in expect:
        assert "train" not in counts, counts


@pytest.mark.slow
def test_a_workflow_script_edit_reruns_its_rule_only(wf):
    root, config = wf
    with edited(root / "workflow_scripts" / "noise.py"):
        counts, _ = planned(root, *config)
    assert counts["noise"] == 2 and counts["train"] == 2 * METHODS and "preprocess" not in counts


@pytest.mark.slow
def test_where_the_raw_file_lives_is_not_part_of_any_result(wf, tmp_path):
    root, config = wf
    moved = tmp_path / "raw"
    moved.mkdir()
    shutil.copy2(SHARED_MEDMNIST / "breastmnist.npz", moved)  # byte-identical file elsewhere
    assert planned(root, config[0], f"raw_dir={moved}") == ({}, set())
    assert planned(root, *config, "allow_download=False") == ({}, set())  # Snakemake's bool


@pytest.mark.slow
def test_instance_std_reruns_instance_noise_only(wf, tmp_path):
    root, config = wf
    std = tmp_path / "std.yaml"
    std.write_text("noise: {instance_std: 0.2}\n")
    counts, methods = planned(root, *config, files=[std])
    assert counts["noise"] == 1 and counts["train"] == METHODS and methods == set(grid.methods())
    out = run(root, "--dry-run", "--config", *config, files=[std])
    assert "symmetric-0.4-n0.npz" not in "".join(re.findall(r"rule noise:\n(?:    .*\n)+", out))


@pytest.mark.slow
def test_a_cell_override_reruns_only_the_cells_it_matches(wf, tmp_path):
    root, config = wf
    override = tmp_path / "override.yaml"
    override.write_text(
        "cell_overrides:\n"
        "  - when: {patterns: [instance], rate_min: 0.3}\n"
        "    method_params: {disc: {lambda_h: 0.5}}\n"
    )
    counts, methods = planned(root, *config, files=[override])
    assert counts["train"] == 1 and methods == {"disc"} and "noise" not in counts
    out = run(root, "--dry-run", "--config", *config, files=[override])
    assert "runs/breastmnist/instance-0.4-n0/disc/" in out
    assert "runs/breastmnist/symmetric-0.4-n0/disc/" not in out


@pytest.mark.slow
def test_independent_noise_draws_rerun_the_noise_and_what_it_feeds(wf, tmp_path):
    root, config = wf
    independent = tmp_path / "independent.yaml"
    independent.write_text("noise: {nested: false}\n")
    counts, methods = planned(root, *config, files=[independent])
    assert counts["noise"] == CELLS and counts["train"] == CELLS * METHODS
    assert "preprocess" not in counts


# ---------------------------------------------------------------- a killed run resumes
ONE_RUN = "runs/breastmnist/symmetric-0.4-n0/ce/resnet8/s0"  # one CE run of 8 epochs


def one_run_config(tmp_path) -> Path:
    extra = tmp_path / "one_run.yaml"
    extra.write_text(
        "methods: [ce]\nnoise: {patterns: {symmetric: [0.4], instance: []}, "
        "clean: false}\ntrain: {epochs: 8}\n"
    )
    return extra


def kill_after_first_checkpoint(root, extra, results, settle=0.0) -> Path:
    """Run the one-run grid into ``results`` and SIGKILL Snakemake and its job once the first
    checkpoint exists (``settle`` seconds later: into the next epoch); return the checkpoint."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "presets/smoke.yaml",
           str(extra), "--config", f"results={results}", f"raw_dir={SHARED_MEDMNIST}"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    ckpt = results / ONE_RUN / "checkpoint.pt"
    # complete once its sidecar is written too: a kill between the two leaves a checkpoint
    # without its record, which the rerun rightly sets aside as corrupt (not what is tested)
    deadline = time.monotonic() + 120
    while not (ckpt.exists() and ckpt.with_name(ckpt.name + ".sha256").exists()):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(settle)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (results / ONE_RUN / "metrics.json").exists() and ckpt.exists()
    return ckpt


def without_locations(metrics: dict) -> dict:
    """metrics.json without what differs between two result folders (provenance, input paths)."""
    metrics.pop("provenance")
    for item in metrics["inputs"].values():
        item.pop("path")
    return metrics


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_and_matches(tmp_path, workflow_copy):
    root, _ = workflow_copy
    extra = one_run_config(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    cfg = lambda res: ["--config", f"results={res}", f"raw_dir={SHARED_MEDMNIST}"]
    snakemake(root, *cfg(a), extra_config=extra)
    ckpt = kill_after_first_checkpoint(root, extra, b, settle=0.3)  # into the next epoch

    snakemake(root, "--unlock", *cfg(b), extra_config=extra)
    snakemake(root, "--rerun-incomplete", *cfg(b), extra_config=extra)
    log = b / "logs" / "train" / "breastmnist" / "symmetric-0.4-n0" / "ce" / "resnet8" / "s0.log"
    assert "resuming" in log.read_text()

    ma, mb = (json.loads((d / ONE_RUN / "metrics.json").read_text()) for d in (a, b))
    assert without_locations(ma) == without_locations(mb)
    pd.testing.assert_frame_equal(
        pd.read_csv(a / ONE_RUN / "per_epoch.csv"), pd.read_csv(b / ONE_RUN / "per_epoch.csv")
    )
    assert not ckpt.exists()


@pytest.mark.slow
def test_killed_run_is_not_resumed_after_its_code_changed(tmp_path, workflow_copy):
    """Snakemake reruns the job and passes its code inputs: the trainer sets the checkpoint
    aside (its code digest differs) and starts from epoch 1."""
    root, _ = workflow_copy
    extra = one_run_config(tmp_path)
    run = ONE_RUN
    a, b = tmp_path / "a", tmp_path / "b"
    cfg = lambda res: ["--config", f"results={res}", f"raw_dir={SHARED_MEDMNIST}"]
    snakemake(root, *cfg(a), extra_config=extra)
    kill_after_first_checkpoint(root, extra, b)

    with edited(root / "lnm" / "methods" / "ce.py"):  # code changed (a comment: same results)
        snakemake(root, "--unlock", *cfg(b), extra_config=extra)
        snakemake(root, "--rerun-incomplete", *cfg(b), extra_config=extra)
    log = (b / "logs" / "train" / run.removeprefix("runs/")).with_suffix(".log").read_text()
    assert "set aside" in log and "different code (sha256" in log and "resuming" not in log
    stale = [p.name for p in (b / run).glob("checkpoint.pt.stale-*") if p.suffix != ".sha256"]
    assert len(stale) == 1 and stale[0] in log
    ma, mb = (json.loads((d / run / "metrics.json").read_text()) for d in (a, b))
    assert mb["provenance"]["resumed_at_epochs"] == []
    assert mb["provenance"]["checkpoints_set_aside"][0]["kind"] == "stale"
    assert without_locations(ma) == without_locations(mb)
