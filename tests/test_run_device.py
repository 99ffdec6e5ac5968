"""A run and its device (issue 19), checked on the CPU where a CPU can show it:

- a checkpoint's RNG states load onto the CPU whatever the device (torch.set_rng_state takes
  nothing else: resuming on CUDA failed);
- the kind of device and the precision computed are part of a run's identity (a CPU fp32
  checkpoint never resumes into a bf16 GPU run; the train rule's params say the precision);
- the determinism settings are recorded, and those of a CUDA run are set without a GPU;
- a CPU run makes no CUDA call (it used to create a context on every GPU);
- one process at a time trains into a run folder;
- images go onto the device chunk by chunk (no whole host copy), each GPU slot budgets its
  share of the GPU, a cgroup's memory limit bounds the host budget.

The GPU tests at the end show on CUDA what needs CUDA (resume, determinism, every method)."""

import json
import os
import socket
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import torch

from lnm.train import data as data_mod
from lnm.train import datasource, trainer
from lnm.train.trainer import CHECKPOINT
from tests.conftest import REPO, make_h5, run_method, tiny_problem, tiny_spec


class Crash(RuntimeError):
    pass


def crash_in_epoch_2(line):
    if "epoch 2/" in line:
        raise Crash(line)


def interrupted(tmp_path, method="ce", epochs=3, **kw):
    with pytest.raises(Crash):
        run_method(tmp_path, method, epochs=epochs, out="resumed", log=crash_in_epoch_2, **kw)
    assert (tmp_path / "resumed" / CHECKPOINT).exists()
    return tmp_path / "resumed"


def comparable(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "provenance"}


# ------------------------------------------------------------------------------ 1. RNG states
def test_checkpoint_rng_states_load_onto_the_cpu_whatever_the_device(tmp_path):
    out = interrupted(tmp_path)
    ckpt = out / CHECKPOINT
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    spec = tiny_spec(**{k: v for k, v in saved["spec"].items()})
    # "meta" stands in for a GPU: the network's tensors go there, the RNG states must not
    state, record = trainer.load_checkpoint(
        ckpt, saved["identity"], spec, torch.device("meta"), lambda s: None
    )
    assert record is None
    rng = state["rng"]
    assert rng["torch"].device.type == "cpu" and rng["torch"].dtype == torch.uint8
    assert rng["cuda"] is None  # a CPU run saves no CUDA state
    weights = next(iter(state["method"]["nets"].values()))
    assert weights.device.type == "meta"
    torch.set_rng_state(rng["torch"])  # what the old loader's CUDA copy made torch refuse


# ------------------------------------------------------------------------------ 5. precision
def test_device_and_precision_are_part_of_the_resume_identity():
    spec = tiny_spec(precision="bf16")
    cpu = trainer.run_identity(spec, "d", "n", "c", compute=trainer.compute_identity(spec, "cpu"))
    gpu = trainer.run_identity(spec, "d", "n", "c", compute=trainer.compute_identity(spec, "cuda"))
    assert (cpu["compute"], gpu["compute"]) == ("cpu/fp32", "cuda/bf16") and cpu != gpu
    fp32 = tiny_spec(precision="fp32")
    assert trainer.compute_identity(fp32, "cuda") == "cuda/fp32"


def test_a_cpu_checkpoint_never_resumes_into_a_bf16_gpu_run(tmp_path, monkeypatch):
    """The CPU computed epoch 1 in fp32; were the run to go on where bf16 is computed, its
    checkpoint must be set aside (the run starts over), never resumed switching precision."""
    out = interrupted(tmp_path)  # precision bf16 configured: computed fp32 on the CPU
    monkeypatch.setattr(trainer, "compute_identity", lambda spec, dev: "cuda/bf16", raising=False)
    lines = []
    run_method(tmp_path, "ce", epochs=3, out="resumed", log=lines.append)
    said = [line for line in lines if line.startswith("set aside")]
    assert said and "device/precision (written cpu/fp32, now cuda/bf16)" in said[0], lines
    assert not any(line.startswith("resuming") for line in lines)
    assert list(out.glob(f"{CHECKPOINT}.stale-*"))


def test_metrics_record_the_device_and_precision_computed(tmp_path):
    m, _ = run_method(tmp_path, "ce", epochs=1, last_k=1, precision="bf16")
    assert m["precision"] == "fp32" and m["provenance"]["compute"] == "cpu/fp32"


def test_the_train_rule_promises_the_precision_the_config_computes():
    from lnm.gpu import job_device_type
    from lnm.train.spec import computed_precision

    assert computed_precision("bf16", job_device_type(0, "auto")) == "fp32"
    assert computed_precision("bf16", job_device_type(1, "auto")) == "bf16"
    assert computed_precision("bf16", job_device_type(1, "cpu")) == "fp32"
    assert computed_precision("fp32", job_device_type(1, "auto")) == "fp32"
    with pytest.raises(ValueError, match="fp16"):
        computed_precision("fp16", "cuda")


@pytest.mark.slow
def test_results_computed_on_the_cpu_are_not_up_to_date_for_a_gpu_config(synthetic_smoke, tmp_path):
    """The smoke workflow ran on the CPU (resources.gpu 0, precision bf16 -> fp32). Asked for a
    GPU (gpu 1: bf16) its train jobs are out of date (params: the precision); the CPU asked
    for otherwise (runtime.device cpu) leaves them as they are."""
    _, cfg = synthetic_smoke

    def dry(yaml_text):
        extra = tmp_path / f"extra{len(list(tmp_path.iterdir()))}.yaml"
        extra.write_text(yaml_text)
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
               str(REPO / "presets" / "smoke.yaml"), str(extra), *cfg, "--dry-run"]  # fmt: skip
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    gpu = dry("resources: {gpu: 1}\n")
    assert gpu.count("rule train:") == 4 and "Params have changed" in gpu, gpu[-3000:]
    assert "rule train:" not in dry("resources: {gpu: 1}\nruntime: {device: cpu}\n")
    assert "rule train:" not in dry("resources: {gpu: 0}\n")


# ------------------------------------------------------------------------------ 6. determinism
def test_a_run_records_its_determinism_settings(tmp_path):
    m, _ = run_method(tmp_path, "ce", epochs=1, last_k=1)
    det = m["provenance"]["deterministic"]
    assert det["cudnn.deterministic"] is True and det["cudnn.benchmark"] is False
    # a CPU run: deterministic kernels already, nothing switched on (and no CUDA touched)
    assert det["use_deterministic_algorithms"] is False
    assert "CUBLAS_WORKSPACE_CONFIG" in det and "deterministic_warn_only" in det


def test_a_cuda_runs_determinism_settings_are_set_without_touching_cuda():
    code = (
        "import json, os, torch\n"
        "os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)\n"
        "from lnm.train.trainer import configure_determinism, determinism_record\n"
        "configure_determinism(torch.device('cuda'))\n"
        "print(json.dumps({**determinism_record(), 'init': torch.cuda.is_initialized()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec == {
        "cudnn.deterministic": True,
        "cudnn.benchmark": False,
        "use_deterministic_algorithms": True,
        "deterministic_warn_only": False,
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "init": False,
    }


# ------------------------------------------------------------------------------ 8. no CUDA call
def test_a_cpu_run_on_a_gpu_machine_makes_no_cuda_call(tmp_path, monkeypatch):
    """torch believes CUDA is there; a CPU run (interrupted, then resumed) must not touch it:
    asking for every GPU's RNG state created a context (~0.5 GB) on each GPU."""

    def refuse(name):
        def call(*a, **k):
            raise AssertionError(f"a CPU run called torch.cuda.{name}")

        return call

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for name in (
        "get_rng_state_all",
        "get_rng_state",
        "set_rng_state_all",
        "set_rng_state",
        "mem_get_info",
        "current_device",
        "set_device",
        "synchronize",
        "empty_cache",
        "get_device_name",
        "init",
    ):
        monkeypatch.setattr(torch.cuda, name, refuse(name))
    monkeypatch.setattr(torch._C, "_cuda_init", refuse("_lazy_init"), raising=False)
    full, _ = run_method(tmp_path, "coteaching", epochs=3, out="full")
    with pytest.raises(Crash):
        run_method(tmp_path, "coteaching", epochs=3, out="resumed", log=crash_in_epoch_2)
    resumed, _ = run_method(tmp_path, "coteaching", epochs=3, out="resumed")
    assert comparable(resumed) == comparable(full)
    assert not torch.cuda.is_initialized()


# ------------------------------------------------------------------------------ 10. run lock
HOLD_RUN = """
import fcntl, os, socket, sys, time
from pathlib import Path
out = Path(sys.argv[1])
out.mkdir(parents=True)
fd = os.open(out / sys.argv[2], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)  # what a training process holds (lnm.train.trainer.run_folder_lock)
os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since now".encode())
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_process_never_trains_into_a_busy_run_folder(tmp_path):
    """A job left running by a Snakemake killed with -9 holds its run folder; the same run
    started again refuses at once, naming the holder's PID and host; once the holder is gone
    the run trains."""
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RUN, str(out), getattr(trainer, "RUN_LOCK", ".train.lock")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RuntimeError, match=f"pid {holder.pid} on {socket.gethostname()}"):
            run_method(tmp_path, "ce", epochs=1, last_k=1, out="run")
        assert not (out / "metrics.json").exists() and not (out / CHECKPOINT).exists()
    finally:
        holder.kill()
        holder.wait()
    m, _ = run_method(tmp_path, "ce", epochs=1, last_k=1, out="run")  # the kernel freed it
    assert (out / "metrics.json").exists() and not (out / trainer.RUN_LOCK).exists()


# ------------------------------------------------------------------------------ 7. memory
def test_images_go_into_memory_chunk_by_chunk_without_a_host_copy(tmp_path, monkeypatch):
    h5 = make_h5(tmp_path / "big.h5", n=(600, 200, 200), size=32, channels=3)
    _, npz = tiny_problem(tmp_path, h5=h5)
    from lnm.noise.io import load_noise

    noise = load_noise(npz, check=False)
    total = sum(datasource.image_bytes(h5).values())  # ~3 MB
    monkeypatch.setattr(data_mod, "CHUNK_BYTES", 64 << 10, raising=False)
    tracemalloc.start()
    try:
        got = datasource.open_data(
            h5, noise, torch.device("cpu"), {}, 32, True, stream="never", log=lambda s: None
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # numpy's buffers are traced: at most a chunk (and labels) at a time, never a whole split
    assert peak < total / 4, (peak, total)
    from lnm.data.hdf5 import load_h5

    ds = load_h5(h5, check=False)
    for split, im in ds.images.items():
        want = torch.from_numpy(np.ascontiguousarray(im.transpose(0, 3, 1, 2)))
        assert torch.equal(got.images[split], want) and got.images[split].is_contiguous()


def test_one_channel_images_keep_the_layout_the_streamed_batches_have(tmp_path):
    h5 = make_h5(tmp_path / "gray.h5", channels=1)
    images = datasource.load_images(h5, torch.device("cpu"))
    from lnm.data.hdf5 import load_h5

    for split, im in load_h5(h5, check=False).images.items():
        streamed = torch.from_numpy(im).permute(0, 3, 1, 2).contiguous()
        assert torch.equal(images[split], streamed)
        assert images[split].stride() == streamed.stride()


def test_each_gpu_slot_budgets_its_share_of_the_gpu(monkeypatch):
    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (60 * gib, 80 * gib))
    cuda = torch.device("cuda")
    monkeypatch.delenv("LNM_JOBS_PER_DEVICE", raising=False)
    assert datasource.default_memory_budget(cuda) == 30 * gib  # half of what is free
    monkeypatch.setenv("LNM_JOBS_PER_DEVICE", "2")  # two slots per GPU: a quarter of it each
    assert datasource.default_memory_budget(cuda) == 20 * gib
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * gib, 80 * gib))
    assert datasource.default_memory_budget(cuda) == 5 * gib  # never more than half the free


def test_the_host_budget_respects_the_jobs_memory_cgroup(tmp_path, monkeypatch):
    mib = 1 << 20
    v2 = tmp_path / "v2"
    job = v2 / "slurm" / "job_7"
    job.mkdir(parents=True)
    (v2 / "slurm" / "memory.max").write_text("max\n")
    (job / "memory.max").write_text(f"{2000 * mib}\n")
    (job / "memory.current").write_text(f"{500 * mib}\n")
    (job / "memory.stat").write_text(f"anon 1\ninactive_file {100 * mib}\n")
    proc = tmp_path / "cgroup2"
    proc.write_text("0::/slurm/job_7\n")
    assert datasource.cgroup_memory_available(v2, proc) == 1600 * mib
    v1 = tmp_path / "v1"
    (v1 / "memory" / "docker").mkdir(parents=True)
    (v1 / "memory" / "docker" / "memory.limit_in_bytes").write_text(f"{1000 * mib}\n")
    (v1 / "memory" / "docker" / "memory.usage_in_bytes").write_text(f"{200 * mib}\n")
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    proc1 = tmp_path / "cgroup1"
    proc1.write_text("5:cpu,cpuacct:/docker\n4:memory:/docker\n")
    assert datasource.cgroup_memory_available(v1, proc1) == 800 * mib
    proc.write_text("0::/\n")
    (v2 / "memory.max").write_text("max\n")
    assert datasource.cgroup_memory_available(v2, proc) is None
    monkeypatch.setattr(datasource, "cgroup_memory_available", lambda: 3 * mib)
    assert datasource.available_host_memory() == 3 * mib


# ------------------------------------------------------------------------------ on a GPU
gpu_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu_only
@pytest.mark.parametrize("method", ["ce", "dividemix"])
def test_a_run_resumed_on_cuda_equals_the_uninterrupted_run(tmp_path, method):
    params = {"warmup_epochs": 1} if method == "dividemix" else {}
    kw = dict(device_override="cuda", params=params)
    full, _ = run_method(tmp_path, method, epochs=2, out="full", **kw)
    with pytest.raises(Crash):
        run_method(tmp_path, method, epochs=2, out="resumed", log=crash_in_epoch_2, **kw)
    state = torch.load(tmp_path / "resumed" / CHECKPOINT, map_location="cpu", weights_only=False)
    assert state["rng"]["cuda"] is not None  # the CUDA generator's state was saved
    lines = []
    resumed, _ = run_method(tmp_path, method, epochs=2, out="resumed", log=lines.append, **kw)
    assert any(line.startswith("resuming") for line in lines), lines
    assert comparable(resumed) == comparable(full)
    assert full["provenance"]["compute"] == "cuda/bf16"


@pytest.mark.gpu
@gpu_only
def test_cuda_runs_are_deterministic_and_record_it(tmp_path):
    a, _ = run_method(tmp_path, "coteaching", epochs=2, out="a", device_override="cuda")
    b, _ = run_method(tmp_path, "coteaching", epochs=2, out="b", device_override="cuda")
    assert comparable(a) == comparable(b)
    det = a["provenance"]["deterministic"]
    assert det["use_deterministic_algorithms"] is True and det["deterministic_warn_only"] is False
    assert det["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and det["cudnn.benchmark"] is False
    assert det["bf16_autocast"] is True and a["provenance"]["device_type"] == "cuda"


@pytest.mark.gpu
@gpu_only
def test_every_method_trains_on_cuda_under_deterministic_algorithms(tmp_path):
    """Every op the methods use has a deterministic CUDA kernel (else torch raises)."""
    from lnm.methods import REGISTRY

    params = {
        "dividemix": {"warmup_epochs": 1},
        "trevision": {"estimation_epochs": 1},
        "coteaching_plus": {"init_epoch": 1},
        "disc": {"start_epoch": 1},
    }
    failed = {}
    for method in REGISTRY:
        try:
            run_method(
                tmp_path,
                method,
                epochs=2,
                last_k=1,
                out=method,
                device_override="cuda",
                params=params.get(method),
            )
        except Exception as err:  # all methods are tried, then reported
            failed[method] = f"{type(err).__name__}: {err}"
    assert not failed, failed


@pytest.mark.gpu
@gpu_only
def test_images_loaded_onto_the_gpu_equal_the_files(tmp_path):
    h5 = make_h5(tmp_path / "rgb.h5", channels=3, size=28)
    on_gpu = datasource.load_images(h5, torch.device("cuda"))
    on_cpu = datasource.load_images(h5, torch.device("cpu"))
    for split in on_cpu:
        assert torch.equal(on_gpu[split].cpu(), on_cpu[split])
