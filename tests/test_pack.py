"""Several runs in one process (lnm.train.pack, runtime.pack_seeds): each run's outputs are
byte for byte those of the run trained alone; the images are loaded once and shared; nothing
leaks from one run into the next; a crashed pack resumes without retraining what completed;
the workflow schedules one train job per run group."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lnm.checksum import verify
from lnm.data import hdf5
from lnm.train import trainer as trainer_mod
from lnm.train.datasource import SharedInputs
from lnm.train.pack import RunJob, run_folders, train_runs
from lnm.train.trainer import ATTEMPT_LOG, CHECKPOINT, train_run
from tests.conftest import REPO, TINY_RUN, make_h5, synthetic_results, tiny_problem, tiny_spec

FILES = [f for name in ("metrics.json", "per_epoch.csv", "test_probs.npz")
         for f in (name, name + ".sha256")]  # fmt: skip


class Crash(RuntimeError):
    pass


def spec(method="ce", seed=0, epochs=2, **kw):
    return tiny_spec(method=method, seed=seed, epochs=epochs, **{**TINY_RUN, **kw})


def quiet(line):
    pass


def same_files(a: Path, b: Path) -> None:
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a.name}/{name}"


def code_files(tmp_path) -> list[Path]:
    """A fixed code identity for the runs of a test, so that an edit of lnm/ while the tests
    run (the digest of the code on disk is in metrics.json) cannot make two runs differ."""
    path = tmp_path / "code.py"
    path.write_text("# the code identity of this test's runs\n")
    return [path]


def alone_in_a_fresh_process(h5, npz, out, method, seed, code, epochs=2, device="cpu"):
    """Train one run in a new Python process (nothing shared with anything)."""
    code = (
        "from tests.conftest import TINY_RUN, tiny_spec\n"
        "from lnm.train.trainer import train_run\n"
        f"s = tiny_spec(method={method!r}, seed={seed}, epochs={epochs}, **TINY_RUN)\n"
        f"train_run(s, {str(h5)!r}, {str(npz)!r}, {str(out)!r}, device={device!r}, log=print,\n"
        f"          code_files={[str(c) for c in code]!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_packed_runs_equal_runs_alone_and_share_the_images(tmp_path, monkeypatch):
    """A different method before it and another seed after it change nothing in a run: its
    files equal, byte for byte, those of the run trained alone in a fresh process (metrics.json
    included: no field records timing or the packing); the data file is read and its images
    put on the device once, and every run uses the same tensors without changing them."""
    h5, npz = tiny_problem(tmp_path)
    code = code_files(tmp_path)
    alone_in_a_fresh_process(h5, npz, tmp_path / "fresh-ce-s0", "ce", 0, code)
    for method, seed in (("coteaching", 1), ("ce", 2)):
        train_run(spec(method, seed), h5, npz, tmp_path / f"alone-{method}-s{seed}",
                  device="cpu", log=quiet, code_files=code)  # fmt: skip

    loads, datas = [], []
    real_load, real_open = hdf5.load_h5, trainer_mod.open_data
    monkeypatch.setattr(hdf5, "load_h5", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    monkeypatch.setattr(trainer_mod, "open_data",
                        lambda *a, **k: datas.append(real_open(*a, **k)) or datas[-1])  # fmt: skip
    shared = SharedInputs()
    runs = [("coteaching", 1), ("ce", 0), ("ce", 2)]
    jobs = [RunJob(spec(m, s), h5, npz, tmp_path / f"packed-{m}-s{s}", code_files=tuple(code))
            for m, s in runs]  # fmt: skip
    lines = []
    metrics = train_runs(jobs, device="cpu", log=lines.append, shared=shared)

    same_files(tmp_path / "packed-ce-s0", tmp_path / "fresh-ce-s0")
    same_files(tmp_path / "packed-coteaching-s1", tmp_path / "alone-coteaching-s1")
    same_files(tmp_path / "packed-ce-s2", tmp_path / "alone-ce-s2")
    assert [m["run"]["seed"] for m in metrics] == [1, 0, 2]
    # one read of the file, one set of device tensors, used as they are by every run
    assert len(loads) == 1 and (shared.loads, shared.reuses) == (1, 2)
    first = datas[0].images
    assert all(d.images[s] is first[s] for d in datas[1:] for s in first)
    assert sum("reusing the images of tiny.h5" in line for line in lines) == 2
    fresh = real_load(h5, check=False)
    for s, x in first.items():  # never changed in place by a run
        assert torch.equal(x, torch.from_numpy(fresh.images[s].transpose(0, 3, 1, 2).copy()))
    # labels stay each run's own
    assert datas[0].labels["test"].data_ptr() != datas[1].labels["test"].data_ptr()
    # the pack holds nothing after it ends; no run keeps its checkpoint
    assert shared.images(shared.key(h5, verify(h5), torch.device("cpu"))) is None
    for job in jobs:
        assert not (Path(job.out_dir) / CHECKPOINT).exists()
        assert not (Path(job.out_dir) / ATTEMPT_LOG).exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_packed_runs_on_cuda_equal_runs_alone(tmp_path):
    """On CUDA (images, CUDA context and caching allocator shared, bf16 autocast): a run after
    another method's run equals the run alone in a fresh process, byte for byte."""
    h5, npz = tiny_problem(tmp_path)
    code = code_files(tmp_path)
    alone_in_a_fresh_process(h5, npz, tmp_path / "fresh", "ce", 0, code, device="cuda")
    runs = [("coteaching", 1), ("ce", 0)]
    jobs = [RunJob(spec(m, s), h5, npz, tmp_path / f"packed-{m}-s{s}", code_files=tuple(code))
            for m, s in runs]  # fmt: skip
    metrics = train_runs(jobs, device="cuda", log=quiet)
    assert metrics[1]["provenance"]["device_type"] == "cuda"
    same_files(tmp_path / "packed-ce-s0", tmp_path / "fresh")


def test_the_images_are_keyed_by_the_files_hash(tmp_path):
    """Another file's content at the same path is loaded again (its hash differs); the run on
    it equals that run alone."""
    h5, npz = tiny_problem(tmp_path)
    shared, code = SharedInputs(), code_files(tmp_path)
    train_run(spec(), h5, npz, tmp_path / "a", device="cpu", log=quiet, shared=shared)
    key = shared.key(h5, verify(h5), torch.device("cpu"))
    assert shared.images(key) is not None and shared.loads == 1
    make_h5(h5, seed=1)  # new images and labels, same shapes, same path (and sidecar)
    npz.unlink()
    tiny_problem(tmp_path)  # its noise file drawn again (a noise file fits one data file)
    assert verify(h5) != key[1]
    kw = dict(device="cpu", log=quiet, code_files=code)
    train_run(spec(), h5, npz, tmp_path / "b", shared=shared, **kw)
    assert shared.loads == 2 and shared.images(key) is None
    train_run(spec(), h5, npz, tmp_path / "alone", **kw)
    same_files(tmp_path / "b", tmp_path / "alone")


def test_a_crashed_pack_resumes_without_retraining_the_completed_runs(tmp_path):
    """The second run crashes in its second epoch: the first run's final checkpoint is kept.
    Snakemake then deletes the job's outputs and reruns it: the first run is restored from its
    checkpoint (no epoch trained), the second resumes after its first epoch, and every file
    equals an uninterrupted pack's (metrics.json apart from ``provenance.resumed_at_epochs``)."""
    h5, npz = tiny_problem(tmp_path)
    specs, code = [spec("ce", 0), spec("ce", 1)], tuple(code_files(tmp_path))
    train_runs([RunJob(s, h5, npz, tmp_path / "full" / f"s{s.seed}", code_files=code)
                for s in specs], device="cpu", log=quiet)  # fmt: skip

    jobs = [RunJob(s, h5, npz, tmp_path / "pack" / f"s{s.seed}", code_files=code) for s in specs]

    def crash_in_run_2(line):
        if "s1] epoch 2/2" in line:
            raise Crash(line)

    with pytest.raises(Crash):
        train_runs(jobs, device="cpu", log=crash_in_run_2)
    first, second = (Path(j.out_dir) for j in jobs)
    assert (first / CHECKPOINT).exists() and (first / "metrics.json").exists()
    assert (second / CHECKPOINT).exists() and not (second / "metrics.json").exists()
    for name in FILES:  # what Snakemake does before it reruns a failed job
        (first / name).unlink()

    lines = []
    metrics = train_runs(jobs, device="cpu", log=lines.append)
    trained = [line for line in lines if "] epoch" in line and "---" not in line]
    restored = [line for line in lines if line.startswith("resuming")]
    assert "every epoch restored from the checkpoint" in restored[0]
    assert "after epoch 1/2" in restored[1]
    # the progress lines after the resume lines: only run 2's second epoch was trained
    after = lines[lines.index(restored[1]) + 1 :]
    assert [line for line in after if "] epoch" in line] == [trained[-1]]
    assert "s1] epoch 2/2" in trained[-1]
    assert [m["provenance"]["resumed_at_epochs"] for m in metrics] == [[3], [2]]

    for s in specs:
        a, b = tmp_path / "full" / f"s{s.seed}", tmp_path / "pack" / f"s{s.seed}"
        for name in ("per_epoch.csv", "test_probs.npz"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
        for m in (ma, mb):
            m["provenance"].pop("resumed_at_epochs")
        assert ma == mb
        assert not (b / CHECKPOINT).exists() and not (b / ATTEMPT_LOG).exists()


def test_keep_checkpoint_keeps_every_runs_checkpoint(tmp_path):
    h5, npz = tiny_problem(tmp_path)
    jobs = [RunJob(spec("ce", s, epochs=1, last_k=1), h5, npz, tmp_path / f"s{s}") for s in (0, 1)]
    train_runs(jobs, device="cpu", log=quiet, keep_checkpoint=True)
    for job in jobs:
        verify(Path(job.out_dir) / CHECKPOINT)


def test_run_folders_follow_the_seeds():
    specs = [spec(seed=s) for s in (3, 1)]
    outs = [f"r/s{s}/{f}" for s in (3, 1) for f in FILES]
    assert run_folders(outs, specs) == [Path("r/s3"), Path("r/s1")]
    with pytest.raises(ValueError, match="do not match"):
        run_folders(outs, specs[::-1])
    with pytest.raises(ValueError, match="share a folder"):
        train_runs([RunJob(specs[0], "d", "n", "x"), RunJob(specs[1], "d", "n", "x")])


def test_lnm_train_with_several_seeds_needs_a_seed_in_out(capsys):
    from lnm.cli import main

    args = ["train", "--data", "d.h5", "--noise", "n.npz", "--seed", "0", "1"]
    assert main([*args, "--out", "runs/x"]) == 1
    assert "{seed}" in capsys.readouterr().err
    assert main([*args[:-1], "0", "--out", "runs/s{seed}"]) == 1
    assert "given twice" in capsys.readouterr().err


# ---------------------------------------------------------------- the workflow
PACK_CONFIG = """
results: {results}
runtime: {{pack_seeds: {pack}}}
seeds: [0, 1, 2]
methods: [ce, coteaching_est]
method_variants:
  coteaching_est: {{method: coteaching, method_params: {{forget_rate: estimated}}}}
estimation: {{enabled: true}}
cell_overrides:
  - when: {{patterns: [symmetric]}}
    method_params: {{coteaching: {{exponent: 2}}}}
"""


def dry_run(tmp_path, pack: bool) -> str:
    cfg = tmp_path / f"pack-{pack}.yaml"
    cfg.write_text(PACK_CONFIG.format(results=tmp_path / "results", pack=str(pack).lower()))
    cmd = [sys.executable, "-m", "snakemake", "--dry-run", "--cores", "2", "--workflow-profile",
           "none", "--configfile", str(REPO / "presets" / "smoke.yaml"), str(cfg)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def train_jobs(text: str) -> list[dict]:
    jobs = []
    for block in re.findall(r"^rule train:\n((?:    .*\n)+)", text, re.M):
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        jobs.append({k: v.split(", ") for k, v in fields.items()})
    return jobs


def test_dry_run_packs_every_seed_of_a_group_into_one_train_job(tmp_path):
    """2 cells x 2 methods x 3 seeds: 4 packed train jobs of 3 runs each (12 unpacked); each
    lists its seeds' files, logs to <group>/seeds.log, asks for the estimate file only where
    its runs are told the estimated rate, and for the runtime of its 3 runs."""
    packed, single = train_jobs(dry_run(tmp_path, True)), train_jobs(dry_run(tmp_path, False))
    assert len(single) == 12 and len(packed) == 4
    groups = set()
    for job in packed:
        runs = {str(Path(f).parent) for f in job["output"]}
        assert sorted(Path(r).name for r in runs) == ["s0", "s1", "s2"]
        assert len(job["output"]) == 3 * len(FILES)
        (group,) = {str(Path(r).parent) for r in runs}
        groups.add(group)
        assert job["log"][0].endswith(group.split("/runs/")[1] + "/seeds.log")
        names = {w.split("=")[0] for w in job["wildcards"]}
        assert names == {"dataset", "noise", "rate", "noise_seed", "method", "backbone"}
        estimated = "/coteaching_est/" in group
        assert any("/estimates/" in f for f in job["input"]) == estimated
        runtime = next(r for r in job["resources"] if r.startswith("runtime="))
        assert runtime == "runtime=30"  # smoke: 10 minutes per run
    assert len(groups) == 4
    assert {f for job in packed for f in job["output"]} == {
        f for job in single for f in job["output"]
    }


@pytest.mark.slow
def test_a_packed_workflow_run_equals_the_unpacked_one(tmp_path):
    """Two seeds of one cell through Snakemake, packed and not: the same run files (metrics.json
    apart from the input paths, which name each results folder: the code identity is the same),
    one log for the packed job with both runs, no checkpoint left, nothing to do after."""
    group = "runs/pathmnist/symmetric-0.4-n0/ce/resnet8"
    out = {}
    for pack in (False, True):
        res = tmp_path / f"pack-{pack}"
        synthetic_results(res)
        cfg = tmp_path / f"pack-{pack}.yaml"
        cfg.write_text(f"results: {res}\ndatasets: [pathmnist]\nmethods: [ce]\nseeds: [0, 1]\n"
                       f"runtime: {{pack_seeds: {str(pack).lower()}}}\n")  # fmt: skip
        targets = [str(res / group / f"s{s}" / "metrics.json") for s in (0, 1)]
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--nolock", "--configfile",
               str(REPO / "presets" / "smoke.yaml"), str(cfg), "--allowed-rules", "noise",
               "train"]  # fmt: skip
        for args in ([], ["--dry-run"]):
            proc = subprocess.run([*cmd, *args, "--", *targets], cwd=REPO, capture_output=True,
                                  text=True)  # fmt: skip
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Nothing to be done" in proc.stdout + proc.stderr
        out[pack] = res
    for s in ("s0", "s1"):
        a, b = out[False] / group / s, out[True] / group / s
        for name in ("per_epoch.csv", "test_probs.npz"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
        for m in (ma, mb):
            for item in m["inputs"].values():
                item.pop("path")
        assert ma == mb
        assert not (b / CHECKPOINT).exists() and not (b / ATTEMPT_LOG).exists()
    log = (out[True] / "logs" / "train" / group.removeprefix("runs/") / "seeds.log").read_text()
    assert "packed run 2/2" in log and "reusing the images of pathmnist_28.h5" in log
    assert "s0] epoch 2/2" in log and "s1] epoch 2/2" in log
