"""The GPU slot pool and the job's device: distinct devices for concurrent jobs, reclaiming dead
holders, waiting (never failing) when every slot is held, one pool per SLURM allocation, a lock
folder every user can use, and no silent CPU fallback. The CUDA tests run each job in a fresh
process, as the workflow does (CUDA_VISIBLE_DEVICES only works before CUDA is initialised)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

import pytest
import torch

from lnm import gpu
from lnm.gpu import GpuPool, assigned_device, visible_gpus

REPO = Path(__file__).resolve().parent.parent

HOLDER = """
import sys, time
from pathlib import Path
from lnm.gpu import GpuPool
lock_dir, devices, slots, out = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), Path(sys.argv[4])
with GpuPool(lock_dir, devices, slots).acquire(timeout=30, poll=0.05) as dev:
    out.write_text(dev)
    time.sleep(float(sys.argv[5]))
"""


def start_holder(tmp_path, name, devices="0,1,2", slots=1, hold=30.0):
    out = tmp_path / f"{name}.dev"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            str(tmp_path / "locks"),
            devices,
            str(slots),
            str(out),
            str(hold),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return proc, out


def wait_for(path, timeout=20.0):
    end = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def test_concurrent_processes_get_distinct_devices(tmp_path):
    procs = [start_holder(tmp_path, f"p{i}") for i in range(3)]
    try:
        devices = sorted(wait_for(out) for _, out in procs)
        assert devices == ["0", "1", "2"]
        # all three slots are held: a fourth caller has to wait
        with pytest.raises(TimeoutError, match="no free GPU slot"):
            with GpuPool(tmp_path / "locks", ["0", "1", "2"]).acquire(
                timeout=0.3, poll=0.05, log=lambda s: None
            ):
                pass
    finally:
        for p, _ in procs:
            p.kill()
            p.wait()


def test_slots_let_jobs_share_a_device(tmp_path):
    procs = [start_holder(tmp_path, f"p{i}", devices="0", slots=2) for i in range(2)]
    try:
        assert [wait_for(out) for _, out in procs] == ["0", "0"]
    finally:
        for p, _ in procs:
            p.kill()
            p.wait()


def test_lock_of_a_killed_holder_is_reclaimed(tmp_path):
    proc, out = start_holder(tmp_path, "victim", devices="0")
    assert wait_for(out) == "0"
    pool = GpuPool(tmp_path / "locks", ["0"])
    quiet = lambda s: None
    with pytest.raises(TimeoutError):
        with pool.acquire(timeout=0.2, poll=0.05, log=quiet):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pool.acquire(timeout=5, poll=0.05) as dev:
        assert dev == "0"
        text = (tmp_path / "locks" / "gpu0.slot0.lock").read_text()
        assert text.startswith(f"pid {os.getpid()} on ")
    with pool.acquire(timeout=1, poll=0.05) as dev:  # released again at the end of the block
        assert dev == "0"


def test_slots_fill_every_device_before_sharing(tmp_path):
    pool = GpuPool(tmp_path / "locks", ["0", "1"], slots_per_device=2)
    with pool.acquire(timeout=1) as a, pool.acquire(timeout=1) as b, pool.acquire(timeout=1) as c:
        assert (a, b, c) == ("0", "1", "0")


def test_a_full_pool_waits_for_a_slot_and_never_raises(tmp_path, monkeypatch, capsys):
    """One slot, one holder, two waiting jobs: the waiting jobs wait (however long: the clock
    jumps an hour per look here) and get the slot in turn, and say in their log that they
    wait and why; the old pool raised TimeoutError after an hour."""
    clock = {"t": 0.0}
    polls = []

    def monotonic():
        clock["t"] += 3600.0  # an hour passes between any two looks at the clock
        return clock["t"]

    def sleep(s):
        polls.append(s)
        time.sleep(0.01)

    monkeypatch.setattr(gpu, "time", types.SimpleNamespace(monotonic=monotonic, sleep=sleep))
    pool = GpuPool(tmp_path / "locks", ["0"], slots_per_device=1)
    got, errors = [], []
    holding = threading.Event()
    release = threading.Event()

    def holder():
        with pool.acquire():
            holding.set()
            release.wait(20)

    def waiter(name):
        try:
            with pool.acquire(poll=0.01) as dev:  # the job's log: standard error
                got.append((name, dev))
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    h = threading.Thread(target=holder)
    h.start()
    assert holding.wait(10)
    waiters = [threading.Thread(target=waiter, args=(f"w{i}",)) for i in range(2)]
    for w in waiters:
        w.start()
    end = time.time() + 20
    while len(polls) < 20 and time.time() < end:  # both have waited many "hours"
        time.sleep(0.01)
    release.set()
    for t in (h, *waiters):
        t.join(20)
    assert errors == [], errors
    assert sorted(got) == [("w0", "0"), ("w1", "0")]
    logs = capsys.readouterr().err.splitlines()
    said = [line for line in logs if "waiting for a free slot" in line]
    assert said and all("--resources gpu=1" in line for line in said), logs
    assert f"pid {os.getpid()}" in said[0]  # names the holder


def as_nobody(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` as user nobody (after importing lnm.gpu as root: nobody may not read this
    Python's files)."""
    prog = "import os\nfrom lnm.gpu import GpuPool\nos.setgid(65534); os.setuid(65534)\n" + code
    return subprocess.run(
        [sys.executable, "-c", prog],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd="/",
    )


@pytest.fixture
def public_tmp():
    """A folder every user can reach (pytest's tmp_path is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix="lnm-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_lock_folder_and_files_are_usable_by_every_user(public_tmp):
    old = os.umask(0o022)
    try:
        locks = public_tmp / "shared" / "locks"
        with GpuPool(locks, ["0"]).acquire(timeout=1) as dev:
            assert dev == "0"
    finally:
        os.umask(old)
    assert oct(locks.stat().st_mode & 0o7777) == oct(0o1777)
    assert oct((locks / "gpu0.slot0.lock").stat().st_mode & 0o777) == oct(0o666)
    if os.geteuid() != 0:
        return
    # another user (nobody) takes the slot in the same folder: no PermissionError
    out = as_nobody(f"with GpuPool({str(locks)!r}, ['0']).acquire(timeout=5) as d: print('got', d)")
    assert out.returncode == 0 and "got 0" in out.stdout, out.stderr[-2000:]


def test_a_lock_folder_nobody_shared_is_an_error_naming_it(public_tmp):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    locks = public_tmp / "locks"
    locks.mkdir()
    os.chmod(locks, 0o755)
    out = as_nobody(f"with GpuPool({str(locks)!r}, ['0']).acquire(timeout=5) as d: pass")
    assert out.returncode != 0
    assert "chmod 1777" in out.stderr and str(locks) in out.stderr, out.stderr[-2000:]


def test_the_config_alone_says_where_a_job_runs():
    assert gpu.job_device_type(0) == "cpu" and gpu.job_device_type(1) == "cuda"
    assert gpu.job_device_type(1, "cpu") == "cpu" and gpu.job_device_type(0, "cuda:1") == "cuda"


def test_a_job_told_to_use_the_cpu_runs_there(tmp_path):
    with assigned_device(0, tmp_path, threads=1) as dev:
        assert dev == "cpu" and torch.get_num_threads() == 1
    with assigned_device(1, tmp_path, prefer="cpu") as dev:
        assert dev == "cpu"
    assert not (tmp_path / "gpu0.slot0.lock").exists()


def test_no_gpu_found_fails_naming_why_instead_of_using_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    with pytest.raises(RuntimeError, match=r"none was found \(CUDA_VISIBLE_DEVICES=''\).*gpu: 0"):
        with assigned_device(1, tmp_path, threads=1):
            pass


def test_without_nvidia_smi_torch_counts_the_gpus(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    monkeypatch.setattr(gpu, "_torch_device_count", lambda: (2, "torch sees 2 CUDA device(s)"))
    devices, how = gpu.find_gpus()
    assert devices == ["0", "1"] and "nvidia-smi is not on PATH" in how


def test_without_nvidia_smi_and_without_cuda_the_reason_is_torchs(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"nvidia-smi is not on PATH; torch .* sees 0"):
        with assigned_device(1, tmp_path / "locks"):
            pass


def test_a_gpu_that_torch_cannot_use_fails_instead_of_using_the_cpu(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(RuntimeError, match="GPU 0 was assigned"):
        with assigned_device(1, tmp_path):
            pass
    with pytest.raises(RuntimeError, match="runtime.device = 'cuda'"):
        with assigned_device(1, tmp_path, prefer="cuda"):
            pass


def fake_cuda(monkeypatch):
    """torch believes a CUDA device exists (nothing is initialised)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)


SLURM_JOB = """
import os, sys, time
from pathlib import Path
import torch
torch.cuda.is_available = lambda: True  # a CUDA machine, as far as the pool can tell
from lnm.gpu import assigned_device
out = Path(sys.argv[2])
with assigned_device(1, sys.argv[1]) as dev:
    out.write_text(dev + " " + os.environ["CUDA_VISIBLE_DEVICES"])
    time.sleep(float(sys.argv[3]))
"""


def test_an_interactive_slurm_allocation_spreads_jobs_over_its_gpus(tmp_path):
    """salloc with two GPUs, Snakemake running local jobs in it: each job (a process started
    with the allocation's environment) gets its own GPU; the old pool was bypassed under SLURM
    and every job ran on the allocation's first GPU."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURM_JOB_ID": "4242"}
    env.update(CUDA_VISIBLE_DEVICES="0,1")
    env.pop("SLURM_STEP_ID", None)
    outs = [tmp_path / f"job{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SLURM_JOB, str(tmp_path / "locks"), str(o), "20"], env=env
        )
        for o in outs
    ]
    try:
        got = sorted(wait_for(o, timeout=60) for o in outs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert got == ["cuda 0", "cuda 1"]
    assert (tmp_path / "locks" / "slurm-4242" / "gpu1.slot0.lock").exists()


def test_separate_slurm_allocations_never_share_a_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.delenv("SLURM_STEP_ID", raising=False)
    a = gpu.job_lock_dir(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "8")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert (a, gpu.job_lock_dir(tmp_path)) == (tmp_path / "slurm-7", tmp_path / "slurm-8.0")
    monkeypatch.delenv("SLURM_JOB_ID")
    assert gpu.job_lock_dir(tmp_path) == tmp_path


def test_a_batch_job_of_the_slurm_executor_gets_its_gpu_at_once(tmp_path, monkeypatch):
    fake_cuda(monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with assigned_device(1, tmp_path, slots_per_device=2) as dev:
        assert dev == "cuda" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert os.environ[gpu.JOBS_PER_DEVICE_ENV] == "2"
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == gpu.CUBLAS_WORKSPACE


# ----------------------------------------------------------------------------------- on a GPU
needs_cuda = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)"),
]

POOL_JOB = """
import json, os, sys, time
import torch
from lnm.gpu import assigned_device
lock_dir, slots, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with assigned_device(1, lock_dir, slots_per_device=slots) as dev:
    x = torch.ones(1024, device=dev) * 2  # a context on the assigned GPU only
    info = {"device": dev, "visible": os.environ["CUDA_VISIBLE_DEVICES"],
            "count": torch.cuda.device_count(), "sum": float(x.sum()),
            "name": torch.cuda.get_device_name(0), "t": time.time()}
    print(json.dumps(info), flush=True)
    time.sleep(hold)
"""


def pool_job(tmp_path, slots, hold, unset_visible=True):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if unset_visible:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.Popen(
        [sys.executable, "-c", POOL_JOB, str(tmp_path / "locks"), str(slots), str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")
def test_pool_in_a_fresh_process_runs_the_job_on_one_assigned_gpu(tmp_path):
    import json

    proc = pool_job(tmp_path, 1, 0)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    info = json.loads(out.strip().splitlines()[-1])
    assert info["device"] == "cuda" and info["count"] == 1 and info["sum"] == 2048.0
    assert info["visible"] in visible_gpus()
    assert "this job runs on GPU" in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")
def test_two_slots_share_one_gpu_and_a_third_job_waits(tmp_path):
    """With CUDA_VISIBLE_DEVICES restricted to one GPU and two slots: two jobs run on it at
    once, a third waits (saying so) and runs when one ends; none fails."""
    import json

    env_gpu = visible_gpus()[0]
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = env_gpu
    try:
        jobs = [pool_job(tmp_path, 2, 6.0, unset_visible=False) for _ in range(3)]
        results = [p.communicate(timeout=300) for p in jobs]
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES")
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old
    assert all(p.returncode == 0 for p in jobs), [e[-2000:] for _, e in results]
    infos = [json.loads(o.strip().splitlines()[-1]) for o, _ in results]
    assert {i["visible"] for i in infos} == {env_gpu}
    waited = [e for _, e in results if "waiting for a free slot" in e]
    assert len(waited) == 1, [e[-1000:] for _, e in results]
    starts = sorted(i["t"] for i in infos)
    assert starts[2] - starts[0] >= 5.0  # the third started when a slot was freed
