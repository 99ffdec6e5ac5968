"""Bad inputs are refused before they cost anything (issue 20 §4, issue 21): when the workflow
is parsed (every config problem at once, in file order; keys written twice; the artifacts of
the results folder against their sidecars and sizes), when it starts (one run per results
folder), and by the consumers of a noise file (one drawn on another data file)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from lnm.checksum import sidecar, verify, write_bytes, write_sidecar, write_text
from lnm.cli import main as lnm
from tests.conftest import REPO, SYNTHETIC_RULES, make_h5, snakemake, synthetic_results
from tests.test_config import README_ERRORS, README_MISTAKES


def dry_run(*args, cwd=REPO) -> subprocess.CompletedProcess:
    """``snakemake --dry-run`` with config.yaml and the given arguments (no preset)."""
    cmd = [sys.executable, "-m", "snakemake", "--dry-run", "--cores", "1", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def problem_lines(text: str) -> list[str]:
    """The indented problem lines after Snakemake's "invalid config:"."""
    lines = text.splitlines()
    start = lines.index("invalid config:") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  ") or line.startswith("  File "):
            break
        out.append(line.strip())
    return out


# ---------------------------------------------------------------- the workflow's parse-time check
def test_the_workflow_reports_every_config_error_at_once_in_file_order(tmp_path):
    """The README's four mistakes, merged over config.yaml as in the README, in one run."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(README_MISTAKES)
    out = dry_run("--configfile", bad, "--config", f"results={tmp_path / 'res'}")
    assert out.returncode != 0
    lines = problem_lines(out.stdout + out.stderr)
    assert len(lines) == 4 and all(a.startswith(b) for a, b in zip(lines, README_ERRORS)), lines


def test_the_workflow_refuses_keys_written_twice_an_empty_grid_and_a_root_results_folder(
    tmp_path,
):
    """Snakemake's own YAML loader keeps the last of two equal keys; the workflow re-reads its
    config files strictly. An empty results folder would plan /raw, /data, /runs; a grid with
    no noise cell used to download and preprocess, then fail in its tables."""
    patterns = ", ".join(f"{p}: []" for p in ("symmetric", "instance_classifier"))
    f = tmp_path / "twice.yaml"
    f.write_text(
        f'results: ""\nseeds: [0]\nnoise:\n  patterns: {{{patterns}}}\n  clean: false\nseeds: [1]\n'
    )
    out = dry_run("--configfile", f)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "rule download" not in text
    assert problem_lines(text) == [
        "results: '' is not allowed: every output goes below <results>/ (raw/, data/, noise/, "
        "runs/, ...), which with an empty name is the filesystem root; name a folder, e.g. "
        "results",
        "noise: every noise.patterns list is empty and noise.clean is false, so pathmnist, "
        "dermamnist, bloodmnist, organcmnist would get no noise cell and no training run; give "
        "a pattern rates (e.g. noise.patterns.symmetric: [0.4]) or set noise.clean: true",
        f"{f}, line 6: key 'seeds' is written twice (first on line 2); YAML would silently "
        "keep only the last value: remove one of them",
    ]


def finished_folder(res: Path) -> dict[str, Path]:
    """A results folder as a finished run leaves it (artifacts with sidecars, a manifest)."""
    paths = {}
    for rel in ("noise/breastmnist/symmetric-0.4-n0.npz", "tables/runs.csv"):
        paths[rel] = res / rel
        write_text(res / rel, f"content of {rel}\n")
    lines = [f"{verify(p)}  {rel}" for rel, p in paths.items()]
    write_text(res / "MANIFEST.sha256", "\n".join(lines) + "\n")
    return paths


def test_the_workflow_checks_every_artifact_against_its_sidecar_when_it_starts(tmp_path):
    """Also with nothing to be done (the check is made when the workflow is parsed): a deleted
    sidecar and a changed size are named before anything runs. The parse-time notes (pairflip on
    two classes is symmetric noise) are printed once."""
    res = tmp_path / "res"
    paths = finished_folder(res)
    cfg = tmp_path / "pair.yaml"
    cfg.write_text("datasets: [breastmnist]\nnoise: {patterns: {pairflip: [0.3]}}\nsize: 28\n")
    ok = dry_run("--configfile", cfg, "--config", f"results={res}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert (ok.stdout + ok.stderr).count("note: pairflip on breastmnist (2 classes)") == 1
    noise, table = paths["noise/breastmnist/symmetric-0.4-n0.npz"], paths["tables/runs.csv"]
    sidecar(noise).unlink()
    with open(table, "a") as fh:
        fh.write("x")
    out = dry_run("--configfile", cfg, "--config", f"results={res}")
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"  {noise}: missing sidecar symmetric-0.4-n0.npz.sha256" in text
    assert f"  {table}: 28 bytes, but its sidecar records 27 (changed or truncated" in text


@pytest.mark.slow
def test_the_readmes_offline_line_with_allow_download_false(tmp_path):
    """The README's offline spelling, `--config raw_dir=... allow_download=false`: Snakemake
    delivers 'false' as a string; the workflow reads it as YAML. With a raw folder lacking the
    files, the download step then fails with the URL and MD5 (downloads disabled), not with a
    config error."""
    from tests.test_reruns import copy_workflow

    (tmp_path / "wf").mkdir()
    wf = copy_workflow(tmp_path / "wf")
    line = "snakemake --cores 2 --configfile presets/demo.yaml --config raw_dir=/path/to/medmnist"
    cmd = [sys.executable, "-m", *line.split(), "allow_download=false"]
    out = subprocess.run([*cmd, "--dry-run"], cwd=wf, capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "must be of type boolean" not in out.stdout + out.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    cmd[cmd.index("raw_dir=/path/to/medmnist")] = f"raw_dir={empty}"
    out = subprocess.run([*cmd, "--until", "download"], cwd=wf, capture_output=True, text=True)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"{empty}/breastmnist.npz does not exist and downloads are disabled" in text, text


# ---------------------------------------------------------------- one run per results folder
HOLD = """
import sys, time
from lnm.results_lock import acquire
acquire(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def held(tmp_path):
    """A results folder whose lock another process holds; (folder, that process)."""
    res = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(res)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == "held"
    yield res, proc
    proc.kill()
    proc.wait()


def test_a_second_holder_of_a_results_folder_is_refused_naming_host_and_pid(held):
    from lnm.results_lock import LOCK_NAME, ResultsInUse, acquire, holder, release

    res, proc = held
    who = f"host {socket.gethostname()}, PID {proc.pid}, since "
    assert holder(res).startswith(who)
    with pytest.raises(ResultsInUse) as err:
        acquire(res, attempts=1)
    assert f"{res}: this results folder is in use by another workflow run ({who}" in str(err.value)
    proc.send_signal(signal.SIGKILL)  # however the holder ends, its lock goes with it
    proc.wait()
    assert holder(res) is None
    acquire(res)
    try:
        assert holder(res) is None  # this process holds it
        assert f"PID {os.getpid()}," in (res / LOCK_NAME).read_text()
        acquire(res)  # again in the same process: nothing to do
    finally:
        release(res)


@pytest.mark.slow
def test_the_workflow_refuses_a_second_run_on_the_same_results_folder(held):
    """Only a run that would run jobs takes the lock (onstart); a dry run notes the holder."""
    res, proc = held
    synthetic_results(res, n=(64, 20, 30))
    target = res / "noise" / "pathmnist" / "symmetric-0.4-n0.npz"
    args = ["--config", f"results={res}", "datasets=[pathmnist]", "--allowed-rules"]
    args += [*SYNTHETIC_RULES, "--", str(target)]
    dry = snakemake("--dry-run", *args)
    assert f"note: {res} is in use by another workflow run (host " in dry.stderr
    out = snakemake(*args, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and not target.exists()
    who = f"in use by another workflow run (host {socket.gethostname()}, PID {proc.pid}, since "
    assert who in text, text[-3000:]
    proc.kill()
    proc.wait()
    snakemake(*args)
    verify(target)


# ---------------------------------------------------------------- consumers of a noise file
def test_lnm_train_refuses_a_noise_file_of_another_dataset_before_any_work(tmp_path, capsys):
    """The audit's case: a BreastMNIST HDF5 with a RetinaMNIST noise file used to die with an
    IndexError after loading, leaving a checkpoint.log."""
    from lnm.noise.generate import generate_noise_file

    def data(name, n, seed):
        path = make_h5(tmp_path / f"{name}.h5", n=n, num_classes=2, size=28, seed=seed)
        with h5py.File(path, "a") as h5:
            h5.attrs["dataset"] = name
        write_sidecar(path)
        return path

    breast = data("breastmnist", (60, 20, 20), 0)
    retina = data("retinamnist", (90, 30, 30), 1)
    noise = tmp_path / "retina_sym.npz"
    generate_noise_file(retina, noise, "symmetric", 0.4, 0)
    out = tmp_path / "run"
    rc = lnm(
        ["train", "--config", str(REPO / "presets" / "smoke.yaml"), "--data", str(breast),
         "--noise", str(noise), "--method", "ce", "--backbone", "resnet8", "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert f"lnm train: error: {noise}: drawn for data with SHA-256 {verify(retina)[:16]}" in err
    assert f"(retinamnist), but {breast} (breastmnist) has SHA-256" in err
    assert not out.exists()  # nothing written: no checkpoint.log, no folder


def test_a_corrupt_checkpoint_is_reported_as_set_aside_not_as_a_task(tmp_path):
    """The log said "Delete it and re-run the workflow" about a file already set aside."""
    from lnm.train.trainer import CHECKPOINT, load_checkpoint

    ckpt = tmp_path / CHECKPOINT
    write_bytes(ckpt, b"state" * 100)
    ckpt.write_bytes(b"STATE" * 100)  # same size, other bytes
    lines = []
    state, record = load_checkpoint(ckpt, {}, None, "cpu", lines.append)
    (said,) = lines
    assert state is None and record["kind"] == "corrupt" and not ckpt.exists()
    assert said.startswith(f"set aside {ckpt} as {record['file']}: it failed its checksum (")
    assert "SHA-256 mismatch" in said and said.endswith("; the run starts from epoch 1")
    assert "Delete it" not in said and "re-run" not in said
