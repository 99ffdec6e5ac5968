"""One workflow run at a time per results folder.

Snakemake's own lock guards a working directory: two clones of the repository (or two working
directories) whose configs name the same ``results`` folder would both write into it at once.
The workflow therefore holds a lock on the results folder itself, ``<results>/.lnm.lock``, for
the life of a run: the main Snakemake process takes it in ``onstart`` (after the DAG is built,
before any job runs, and only when jobs will run: dry runs, ``--report``, ``--lint`` and
"Nothing to be done" never take it; the Snakemake processes that run jobs, locally spawned or
inside SLURM jobs, run with ``--no-hooks`` and never take it), and the kernel releases it when
that process ends, however it ends (``flock``: a killed run leaves no stale lock). A second run
is refused, naming the holder's host and PID, which the holder writes into the lock file.

On a network filesystem ``flock`` is as reliable as the filesystem's locking (Linux maps it to
POSIX byte-range locks over NFS, which lock across hosts with NFSv4 or a working lockd).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

#: The lock file below the results folder (hidden: not an artifact).
LOCK_NAME = ".lnm.lock"
#: Lock files this process holds: resolved path -> open file descriptor.
_HELD: dict[str, int] = {}


class ResultsInUse(RuntimeError):
    """Another workflow run holds the results folder's lock."""


def lock_path(results: str | os.PathLike) -> Path:
    return Path(results) / LOCK_NAME


def _holder_text(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not yet written its host and PID"


def acquire(results: str | os.PathLike, attempts: int = 5) -> None:
    """Take the lock of the results folder ``results`` (created if missing) for the rest of
    this process's life and write this host, PID and time into it; raise
    :class:`ResultsInUse` naming the holder when another process holds it. Taking it again in
    the process that holds it does nothing. A lock held only for an instant (another process
    asking whether the folder is in use, :func:`holder`) is waited for briefly."""
    path = lock_path(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _HELD:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.1)
                continue
            holder = _holder_text(fd)
            os.close(fd)
            raise ResultsInUse(
                f"{results}: this results folder is in use by another workflow run ({holder}); "
                "two runs writing into one results folder would overwrite each other's files. "
                "Wait for that run to end or stop it (its lock goes with it), or give this run "
                "another results folder (config key results). Snakemake's own lock guards one "
                "working directory only."
            ) from None
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = f"host {socket.gethostname()}, PID {os.getpid()}, since {stamp}\n".encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    _HELD[key] = fd


def holder(results: str | os.PathLike) -> str | None:
    """Who holds the lock of ``results`` (host, PID and since when, as the holder wrote it), or
    None when nobody else does (no lock file, or this process holds it). Asks without waiting:
    a shared lock taken and dropped at once."""
    path = lock_path(results)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if str(path.resolve()) in _HELD:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_text(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def release(results: str | os.PathLike) -> None:
    """Drop the lock of ``results`` if this process holds it (a run ends by exiting, which
    drops it anyway; for tests and long-lived callers)."""
    fd = _HELD.pop(str(lock_path(results).resolve()), None)
    if fd is not None:
        os.close(fd)
