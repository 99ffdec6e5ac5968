"""Atomic writes and SHA-256 sidecars for every artifact.

Each artifact ``X`` gets a sidecar ``X.sha256`` in ``sha256sum`` format (``<hex>  <name>``),
followed by a comment line ``# size <bytes>`` (``sha256sum -c`` skips lines starting with
``#``): the size lets the workflow check every artifact at start-up without hashing it
(:func:`lnm.verify.start_check`). Sidecars written before sizes were recorded have the first
line only. Consumers call :func:`verify` before reading; a tampered or truncated file is refused
by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".sha256"
#: The sidecar's second line: ``# size <bytes>`` (a comment to ``sha256sum -c``).
SIZE_PREFIX = "# size "


class ChecksumError(RuntimeError):
    """An artifact does not match its recorded SHA-256 (or has no record).

    ``reason``: what is wrong, without the advice on what to do that ``str(err)`` may add
    (a caller that has already acted, e.g. set a checkpoint aside, says what it did instead)."""

    def __init__(self, reason: str, advice: str = ""):
        super().__init__(f"{reason}. {advice}" if advice else reason)
        self.reason = reason


def file_digest(path: str | os.PathLike, algo: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def sidecar(path: str | os.PathLike) -> Path:
    return Path(str(path) + SUFFIX)


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux:
    ``/proc/self/status``); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched,
    so no half-written artifact ever appears under its final name. The artifact gets the mode
    of any newly created file (0666 minus the umask), not ``mkstemp``'s private 0600, so
    results shared on a cluster follow the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_sidecar(path: str | os.PathLike, digest: str | None = None) -> str:
    """Record the SHA-256 of ``path`` (``digest`` when the caller already has it) and its size
    in ``path.sha256`` (atomically); return the digest."""
    digest = digest or sha256(path)
    size = os.path.getsize(path)
    with atomic_path(sidecar(path)) as tmp:
        tmp.write_text(f"{digest}  {Path(path).name}\n{SIZE_PREFIX}{size}\n")
    return digest


@contextlib.contextmanager
def artifact(path: str | os.PathLike) -> Iterator[Path]:
    """Write an artifact atomically and record its SHA-256 sidecar.

    >>> with artifact("out.json") as tmp:      # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    with atomic_path(path) as tmp:
        yield tmp
    write_sidecar(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` atomically and record its SHA-256 (hashed in memory, not re-read)."""
    digest = hashlib.sha256(data).hexdigest()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return write_sidecar(path, digest)


def write_text(path: str | os.PathLike, text: str) -> str:
    return write_bytes(path, text.encode())


def recorded(path: str | os.PathLike) -> str:
    """The SHA-256 the sidecar of ``path`` records."""
    return read_sidecar(path)[0]


def read_sidecar(path: str | os.PathLike) -> tuple[str, int | None]:
    """(SHA-256, size in bytes or None) that the sidecar of ``path`` records (no size: a
    sidecar written before sizes were recorded)."""
    side = sidecar(path)
    if not side.exists():
        raise ChecksumError(
            f"{path}: no checksum record {side.name}; the artifact was not "
            "written by this workflow or its record was deleted"
        )
    lines = side.read_text().splitlines()
    text = lines[0].split() if lines else []
    if not text or len(text[0]) != 64:
        raise ChecksumError(f"{side}: malformed checksum record")
    size = None
    for line in lines[1:]:
        if line.startswith(SIZE_PREFIX):
            try:
                size = int(line[len(SIZE_PREFIX) :])
            except ValueError:
                raise ChecksumError(f"{side}: malformed checksum record (size)") from None
    return text[0], size


def verify(path: str | os.PathLike) -> str:
    """Check ``path`` against its sidecar; return the digest or raise :class:`ChecksumError`."""
    if not Path(path).exists():
        raise ChecksumError(f"{path}: missing input artifact")
    expected = recorded(path)
    actual = sha256(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: SHA-256 mismatch (recorded {expected}, actual {actual}); the file was "
            "modified or truncated after it was written",
            "Delete it and re-run the workflow.",
        )
    return actual
