"""A lock-file pool that gives each local training job its own GPU (or GPU slot).

Snakemake's ``--resources gpu=N`` bounds how many GPU jobs run at once; this pool decides
*which* device each one gets. Slots are files ``<lock_dir>/gpu<d>.slot<k>.lock`` held with
``fcntl.flock``: the kernel releases a lock when its holder exits or is killed, so a slot whose
holder died (even by SIGKILL) is reclaimed by the next job without any clean-up. The holder's PID
is written into the file for inspection only.

With ``slots_per_device > 1`` several small runs share one GPU (a 28 px ResNet-18 uses a small
fraction of a modern GPU): pass ``--resources gpu=<devices x slots>``.

Under SLURM (``SLURM_JOB_ID`` set) the scheduler already sets ``CUDA_VISIBLE_DEVICES``; the pool
is not used. Without any GPU, jobs run on the CPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def visible_gpus() -> list[str]:
    """GPU ids this process may use, without initialising CUDA in it."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip() not in ("", "-1")]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if out.returncode == 0:
                return [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return []


class GpuPool:
    def __init__(
        self,
        lock_dir: str | os.PathLike,
        devices: list[str] | None = None,
        slots_per_device: int = 1,
    ):
        if slots_per_device < 1:
            raise ValueError(f"slots_per_device {slots_per_device!r}; allowed: an integer >= 1")
        self.lock_dir = Path(lock_dir)
        self.devices = visible_gpus() if devices is None else list(devices)
        self.slots = int(slots_per_device)

    def _slot_paths(self) -> list[tuple[str, Path]]:
        # device-major order over slots: fill every device's first slot before any second slot
        return [
            (d, self.lock_dir / f"gpu{d}.slot{k}.lock")
            for k in range(self.slots)
            for d in self.devices
        ]

    @contextlib.contextmanager
    def acquire(self, timeout: float = 3600.0, poll: float = 0.5) -> Iterator[str | None]:
        """Hold a free slot for the duration of the block; yield its device id (None: no GPU)."""
        if not self.devices:
            yield None
            return
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            for device, path in self._slot_paths():
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                    yield device
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no free GPU slot in {self.lock_dir} after {timeout:.0f} s "
                    f"({len(self.devices)} devices x {self.slots} slots); is "
                    "--resources gpu larger than devices x gpu_slots_per_device?"
                )
            time.sleep(poll)


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "lnm-gpu-locks"


@contextlib.contextmanager
def assigned_device(
    gpus: int,
    lock_dir: str | os.PathLike | None = None,
    slots_per_device: int = 1,
    threads: int = 1,
    prefer: str = "auto",
) -> Iterator[str]:
    """The torch device string for a training job, holding a GPU slot while it runs.

    ``prefer`` other than ``auto`` (``cpu``, ``cuda:1``) is used as it is. ``gpus == 0`` or no
    GPU visible: ``"cpu"`` (with ``torch.set_num_threads(threads)``). Under SLURM: the
    allocation's GPU as ``cuda``. Otherwise a pool slot: sets ``CUDA_VISIBLE_DEVICES`` to that
    one device before CUDA is initialised, and releases the slot when the block ends (or the
    process dies).
    """
    import torch

    if prefer != "auto":
        if prefer == "cpu":
            torch.set_num_threads(max(1, threads))
        yield prefer
        return
    if gpus <= 0 or "SLURM_JOB_ID" in os.environ:
        ok = gpus > 0 and torch.cuda.is_available()
        if not ok:
            torch.set_num_threads(max(1, threads))
        yield "cuda" if ok else "cpu"
        return
    pool = GpuPool(lock_dir or default_lock_dir(), slots_per_device=slots_per_device)
    with pool.acquire() as device:
        if device is None:
            torch.set_num_threads(max(1, threads))
            yield "cpu"
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            if torch.cuda.is_available():
                yield "cuda"
            else:  # a driver without a CUDA-enabled torch: say so, then use the CPU
                print(
                    f"GPU {device} assigned but this torch build has no CUDA; using the CPU",
                    file=sys.stderr,
                )
                torch.set_num_threads(max(1, threads))
                yield "cpu"
