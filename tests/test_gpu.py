"""The GPU slot pool: distinct devices for concurrent jobs, reclaiming dead holders, CPU fallback."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lnm.gpu import GpuPool, assigned_device, visible_gpus

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
        ]
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
            with GpuPool(tmp_path / "locks", ["0", "1", "2"]).acquire(timeout=0.3, poll=0.05):
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
    with pytest.raises(TimeoutError):
        with pool.acquire(timeout=0.2, poll=0.05):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pool.acquire(timeout=5, poll=0.05) as dev:
        assert dev == "0"
        assert (tmp_path / "locks" / "gpu0.slot0.lock").read_text().strip() == str(os.getpid())
    with pool.acquire(timeout=1, poll=0.05) as dev:  # released again at the end of the block
        assert dev == "0"


def test_slots_fill_every_device_before_sharing(tmp_path):
    pool = GpuPool(tmp_path / "locks", ["0", "1"], slots_per_device=2)
    with pool.acquire(timeout=1) as a, pool.acquire(timeout=1) as b, pool.acquire(timeout=1) as c:
        assert (a, b, c) == ("0", "1", "0")


def test_cpu_fallback(tmp_path, monkeypatch):
    with assigned_device(0, tmp_path, threads=1) as dev:
        assert dev == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    with assigned_device(1, tmp_path, threads=1) as dev:
        assert dev == "cpu" and torch.get_num_threads() == 1
    with assigned_device(1, tmp_path, prefer="cpu") as dev:
        assert dev == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible here)")
def test_training_runs_on_cuda_with_a_pool_slot(tmp_path, monkeypatch):
    from tests.conftest import run_method

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with assigned_device(1, tmp_path / "locks") as dev:
        assert dev == "cuda" and os.environ["CUDA_VISIBLE_DEVICES"] in visible_gpus() + ["0"]
        metrics, _ = run_method(tmp_path, "coteaching", epochs=2, device_override=dev)
    assert metrics["provenance"]["device_type"] == "cuda"
    assert metrics["provenance"]["cuda"] is not None
