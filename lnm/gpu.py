"""Which device a training job runs on: a GPU slot from a lock-file pool, or the CPU when the
config asks for it; never a silent fallback (torch-free until :func:`assigned_device` runs).

``--resources gpu=N`` (Snakemake) bounds how many GPU jobs run at once; this pool decides
*which* device each one gets. A machine runs at most ``GPUs x resources.gpu_slots_per_device``
GPU jobs at once, so ``N`` should be that product: ``--resources gpu=1`` on a one-GPU
workstation, ``gpu=2`` on two GPUs (``gpu=4`` on two GPUs with two slots each). A job started
when every slot is held (``N`` larger than the product) waits for a free slot, as long as it
takes, and says so in its log; it never fails for waiting.

Slots are files ``<lock folder>/gpu<d>.slot<k>.lock`` held with ``fcntl.flock``: the kernel
releases a lock when its holder exits or is killed, so a slot whose holder died (even by
SIGKILL) is reclaimed by the next job without any clean-up. The holder writes its PID, host and
start time into the file (what a waiting job reports). The default folder
``<temp dir>/lnm-gpu-locks`` is created world-writable with the sticky bit (mode 1777, like
``/tmp``) and every lock file readable and writable by all, so the jobs of every user of a
machine share one pool (two users' jobs never land on one GPU, and nobody gets a
``PermissionError``).

Under SLURM (``SLURM_JOB_ID`` set) the pool runs inside the allocation: its locks live in a
sub-folder of the job (``slurm-<job id>[.<step id>]``) and its devices are the allocation's
(``CUDA_VISIBLE_DEVICES`` as SLURM sets it). A batch job of the SLURM executor has one GPU and
one training job, which gets it at once; an interactive allocation (``salloc`` with several
GPUs, Snakemake running local jobs inside it) spreads its jobs over all of its GPUs. Separate
allocations never share a lock (inside each, GPU ``0`` is another physical device).

``resources.gpu: 0`` (or ``runtime.device: cpu``) runs a job on the CPU. A job told to use a GPU
(``resources.gpu >= 1``) that finds none, or whose torch cannot use the one it was given, fails
with the reason instead of training on the CPU.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

#: Set in a job holding a pool slot: how many jobs may share its GPU (``gpu_slots_per_device``);
#: the job's default memory budget is its share of the GPU (lnm.train.datasource).
JOBS_PER_DEVICE_ENV = "LNM_JOBS_PER_DEVICE"
#: cuBLAS's deterministic workspace (torch.use_deterministic_algorithms needs it on CUDA); set
#: before CUDA is initialised.
CUBLAS_WORKSPACE = ":4096:8"
#: Mode of the lock folders the pool creates: shared by every user, files deletable by their
#: owner only (as /tmp).
LOCK_DIR_MODE = 0o1777
#: How often a waiting job repeats in its log that it is still waiting (seconds).
WAIT_REPORT_EVERY = 600.0


class NoGpuError(RuntimeError):
    """A job asked for a GPU (``resources.gpu >= 1``) and there is none it can use."""


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # sys.stderr at call time: the job's log


def jobs_per_device() -> int:
    """How many jobs share this job's GPU (:data:`JOBS_PER_DEVICE_ENV`; 1 when unset)."""
    try:
        return max(1, int(os.environ.get(JOBS_PER_DEVICE_ENV, "1")))
    except ValueError:
        return 1


def job_device_type(gpus: int, prefer: str = "auto") -> str:
    """``cuda`` or ``cpu``: where a job of ``resources.gpu = gpus`` and ``runtime.device =
    prefer`` runs, from the config alone (no hardware is probed; a job told to use a GPU that
    finds none fails rather than run on the CPU)."""
    if prefer == "auto":
        return "cuda" if gpus > 0 else "cpu"
    return "cuda" if prefer.startswith("cuda") else "cpu"


# ------------------------------------------------------------------------------- finding GPUs
def _torch_device_count() -> tuple[int, str]:
    """The CUDA devices torch sees, asked in a fresh Python (this process must not initialise
    CUDA before ``CUDA_VISIBLE_DEVICES`` is set); and what torch said."""
    code = (
        "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0, "
        "torch.__version__, torch.version.cuda)"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.SubprocessError) as err:
        return 0, f"asking torch failed ({type(err).__name__}: {err})"
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return 0, f"asking torch failed ({tail})"
    count, version, cuda = out.stdout.split()
    build = "without CUDA" if cuda == "None" else f"built for CUDA {cuda}"
    return int(count), f"torch {version} ({build}) sees {count} CUDA device(s)"


def find_gpus() -> tuple[list[str], str]:
    """(GPU ids this process may use, how they were found), without initialising CUDA here.

    In order: ``CUDA_VISIBLE_DEVICES`` when set (SLURM sets it to the allocation's GPUs), else
    ``nvidia-smi``, else torch's device count (asked in a fresh process: containers often
    have GPUs but no ``nvidia-smi``)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = []
        for d in env.split(","):  # CUDA ignores everything from the first invalid entry on
            if d.strip() in ("", "-1"):
                break
            ids.append(d.strip())
        return ids, f"CUDA_VISIBLE_DEVICES={env!r}"
    why = "nvidia-smi is not on PATH"
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if out.returncode == 0:
                ids = [line.strip() for line in out.stdout.splitlines() if line.strip()]
                if ids:
                    return ids, f"nvidia-smi lists {len(ids)} GPU(s)"
                why = "nvidia-smi lists no GPU"
            else:
                why = f"nvidia-smi failed ({(out.stderr or out.stdout).strip()[:200]})"
        except (OSError, subprocess.SubprocessError) as err:
            why = f"nvidia-smi failed ({type(err).__name__}: {err})"
    count, said = _torch_device_count()
    return [str(i) for i in range(count)], f"{why}; {said}"


def visible_gpus() -> list[str]:
    """GPU ids this process may use (:func:`find_gpus`), without initialising CUDA in it."""
    return find_gpus()[0]


# ------------------------------------------------------------------------------- lock files
def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "lnm-gpu-locks"


def job_lock_dir(lock_dir: str | os.PathLike | None = None) -> Path:
    """The pool's folder for this job: ``lock_dir`` (default :func:`default_lock_dir`); under
    SLURM its sub-folder ``slurm-<job id>[.<step id>]``: the allocation's own pool (GPU ids are
    the allocation's, so two allocations must never share a lock)."""
    base = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return base
    step = os.environ.get("SLURM_STEP_ID")
    return base / (f"slurm-{job}" + (f".{step}" if step else ""))


def make_shared_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 1777; an existing folder is left as it
    is, but one this user cannot write into is an error naming its owner and mode."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        with contextlib.suppress(PermissionError):
            os.chmod(d, LOCK_DIR_MODE)  # mkdir's mode is cut by the umask: set it after
    if not os.access(path, os.W_OK | os.X_OK):
        st = path.stat()
        raise PermissionError(
            f"GPU lock folder {path} (owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}) "
            "is not writable by this user: its owner can share it with `chmod 1777 "
            f"{path}`, or set runtime.gpu_lock_dir to a folder every user of these GPUs can "
            "write (the pool only works if all their jobs use the same one)"
        )


def _open_lock(path: Path) -> tuple[int, bool]:
    """(descriptor, writable) of the lock file ``path``, created readable and writable by all.
    A lock file of another user that this one cannot write is opened read-only (``flock``
    works on it; the holder's PID is then not recorded)."""
    flags = os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, os.O_RDWR | flags, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), False
    st = os.fstat(fd)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != 0o666:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)  # the umask cut the mode: let every user's jobs open it
    return fd, True


def holder_text() -> str:
    """What a lock holder writes into its lock file: PID, host, user and start (UTC)."""
    try:
        user = os.getlogin()
    except OSError:
        user = str(os.geteuid())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"pid {os.getpid()} on {socket.gethostname()} (user {user}) since {now}"


def read_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown holder"
    except OSError:
        return "unknown holder"


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` for the block if it is free (yield True; the
    holder's text is written into it), else yield False at once."""
    fd, writable = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            yield False
            return
        try:
            if writable:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (holder_text() + "\n").encode(), 0)
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class GpuPool:
    """``slots_per_device`` slots on each of ``devices`` (default :func:`visible_gpus`), as
    lock files in ``lock_dir``."""

    def __init__(
        self,
        lock_dir: str | os.PathLike,
        devices: list[str] | None = None,
        slots_per_device: int = 1,
    ):
        if int(slots_per_device) < 1:
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

    def holders(self) -> list[str]:
        return [f"GPU {d}: {read_holder(p)}" for d, p in self._slot_paths() if p.exists()]

    @contextlib.contextmanager
    def acquire(
        self,
        timeout: float | None = None,
        poll: float = 0.5,
        log: Callable[[str], None] | None = None,
    ) -> Iterator[str | None]:
        """Hold a free slot for the duration of the block; yield its device id (None: no
        device in the pool). While every slot is held, wait: ``log`` (default: standard error,
        the job's log) is told at once and every :data:`WAIT_REPORT_EVERY` seconds; without a
        ``timeout`` (the default) the wait never ends in an error."""
        if not self.devices:
            yield None
            return
        log = log or _say
        make_shared_dir(self.lock_dir)
        start = time.monotonic()
        reported = None
        while True:
            for device, path in self._slot_paths():
                with try_lock(path) as held:
                    if not held:
                        continue
                    if reported is not None:
                        waited = time.monotonic() - start
                        log(f"GPU pool: got GPU {device} after waiting {waited:.0f} s")
                    yield device
                    return
            now = time.monotonic()
            if reported is None or now - reported >= WAIT_REPORT_EVERY:
                capacity = len(self.devices) * self.slots
                log(
                    f"GPU pool: waiting for a free slot in {self.lock_dir}: all {capacity} "
                    f"({len(self.devices)} GPU(s) x {self.slots} slot(s) per GPU) are held ("
                    + "; ".join(self.holders())
                    + f"); waited {now - start:.0f} s so far. More GPU jobs were started than "
                    f"this machine runs at once: --resources gpu={capacity} is enough here "
                    "(GPUs x resources.gpu_slots_per_device); this job waits until a slot is "
                    "free"
                )
                reported = now
            if timeout is not None and now - start > timeout:
                raise TimeoutError(
                    f"no free GPU slot in {self.lock_dir} after {timeout:.0f} s "
                    f"({len(self.devices)} devices x {self.slots} slots)"
                )
            time.sleep(poll)


# ------------------------------------------------------------------------------- the job's device
def _cuda_unusable(torch) -> str:
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    return (
        f"torch {torch.__version__} (built for CUDA {torch.version.cuda}) finds no usable "
        "device: torch.cuda.is_available() is False (a driver older than that CUDA, or no "
        "device in CUDA_VISIBLE_DEVICES?)"
    )


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for the block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def assigned_device(
    gpus: int,
    lock_dir: str | os.PathLike | None = None,
    slots_per_device: int = 1,
    threads: int = 1,
    prefer: str = "auto",
    log: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """The torch device string for a job, holding a GPU slot while it runs.

    - ``prefer`` ``cpu``: the CPU; ``cuda`` / ``cuda:N``: that device, as it is (no pool), an
      error when torch cannot use CUDA.
    - ``prefer`` ``auto`` and ``gpus == 0``: the CPU (with ``torch.set_num_threads(threads)``).
    - ``prefer`` ``auto`` and ``gpus >= 1``: a pool slot (:class:`GpuPool` over
      :func:`find_gpus`, in :func:`job_lock_dir`): ``CUDA_VISIBLE_DEVICES`` is set to that one
      device before CUDA is initialised, and the slot is released when the block ends (or
      the process dies). No GPU found, or a torch that cannot use it: :class:`NoGpuError`
      naming why, never the CPU.

    On a GPU ``CUBLAS_WORKSPACE_CONFIG`` is set (unless already) for deterministic cuBLAS."""
    import torch

    if prefer == "cpu" or (prefer == "auto" and gpus <= 0):
        torch.set_num_threads(max(1, int(threads)))
        yield "cpu"
        return
    if prefer != "auto":
        if not prefer.startswith("cuda"):
            raise ValueError(f"runtime.device {prefer!r}; allowed: auto, cpu, cuda, cuda:N")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        if not torch.cuda.is_available():
            raise NoGpuError(f"runtime.device = {prefer!r} but {_cuda_unusable(torch)}")
        yield prefer
        return
    devices, how = find_gpus()
    if not devices:
        raise NoGpuError(
            f"resources.gpu = {gpus}: this job needs a GPU but none was found ({how}). To run "
            "on the CPU say so in the config: resources.gpu: 0 (or runtime.device: cpu)"
        )
    if torch.cuda.is_initialized():
        raise RuntimeError(
            "CUDA was initialised in this process before the GPU pool assigned a device: "
            "CUDA_VISIBLE_DEVICES can no longer take effect"
        )
    pool = GpuPool(job_lock_dir(lock_dir), devices, slots_per_device)
    with pool.acquire(log=log) as device:
        with _env(
            CUDA_VISIBLE_DEVICES=device,
            **{JOBS_PER_DEVICE_ENV: str(pool.slots)},
            CUBLAS_WORKSPACE_CONFIG=os.environ.get("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE),
        ):
            if not torch.cuda.is_available():
                raise NoGpuError(
                    f"resources.gpu = {gpus}: GPU {device} was assigned ({how}) but "
                    f"{_cuda_unusable(torch)}. To run on the CPU say so in the config: "
                    "resources.gpu: 0"
                )
            (log or _say)(
                f"GPU pool: this job runs on GPU {device} (CUDA_VISIBLE_DEVICES={device}; "
                f"{pool.slots} job(s) per GPU; locks in {pool.lock_dir})"
            )
            yield "cuda"
