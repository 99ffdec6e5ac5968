"""Run provenance for metrics.json (never part of Snakemake params: it must not trigger reruns).

Informational only: nothing here enters a run's identity (its spec, input hashes and the digest
of the code it runs decide that). The git state says which commit the code came from and
whether it differed from it: ``git_dirty`` (tracked files changed, or files git does not track
below the code folders :data:`CODE_PATHS`), the changed paths and ``git_diff_sha256``, a digest
of exactly what differed (``git diff HEAD --binary`` and each untracked code file's path and
bytes), so two runs from the same modified tree can be told from two different modifications.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
import subprocess
from pathlib import Path

import torch

#: Folders (and files) of the repository whose untracked files count as a code change.
CODE_PATHS = ("lnm", "workflow_scripts", "rules", "Snakefile")
#: At most this many changed paths are listed (the digest covers them all).
MAX_LISTED = 50


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10)


def git_state(where: str | Path | None = None) -> dict:
    """``git_commit`` (HEAD, ``+dirty`` appended when the code differs from it), ``git_dirty``,
    ``git_changed`` (changed tracked paths and untracked code files, repository-relative, at
    most :data:`MAX_LISTED`) and ``git_diff_sha256`` (None when clean); all None outside a git
    checkout or without git."""
    none = {"git_commit": None, "git_dirty": None, "git_changed": None, "git_diff_sha256": None}
    cwd = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        head = _git("rev-parse", "HEAD", cwd=cwd)
        top = _git("rev-parse", "--show-toplevel", cwd=cwd)
        if head.returncode or top.returncode:
            return none
        root = Path(top.stdout.decode().strip())
        tracked = _git("diff", "HEAD", "--name-only", "-z", cwd=root)
        untracked = _git("ls-files", "--others", "--exclude-standard", "-z", "--", *CODE_PATHS,
                         cwd=root)  # fmt: skip
        if tracked.returncode or untracked.returncode:
            return none
        changed = sorted(filter(None, tracked.stdout.decode().split("\0")))
        new = sorted(filter(None, untracked.stdout.decode().split("\0")))
        digest = None
        if changed or new:
            h = hashlib.sha256()
            diff = _git("diff", "HEAD", "--binary", cwd=root)
            h.update(diff.stdout)
            for name in new:
                h.update(b"\0untracked\0" + name.encode() + b"\0")
                try:
                    h.update((root / name).read_bytes())
                except OSError:  # removed meanwhile
                    pass
            digest = h.hexdigest()
    except (OSError, subprocess.SubprocessError):
        return none
    commit = head.stdout.decode().strip()
    dirty = bool(changed or new)
    return {
        "git_commit": commit + ("+dirty" if dirty else ""),
        "git_dirty": dirty,
        "git_changed": (changed + [f"{n} (untracked)" for n in new])[:MAX_LISTED],
        "git_diff_sha256": digest,
    }


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def provenance(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {
        **git_state(),
        "python": platform.python_version(),
        "packages": {
            p: _version(p)
            for p in (
                "lnm",
                "torch",
                "timm",
                "numpy",
                "scikit-learn",
                "h5py",
                "medmnist",
                "snakemake",
            )
        },
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "device_type": device.type,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "torch_threads": torch.get_num_threads(),
        "deterministic": {
            "cudnn.deterministic": torch.backends.cudnn.deterministic,
            "cudnn.benchmark": torch.backends.cudnn.benchmark,
            "bf16_autocast": cuda,
        },
        "host": platform.node(),
    }
