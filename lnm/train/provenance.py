"""Run provenance for metrics.json (never part of Snakemake params: it must not trigger reruns)."""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from pathlib import Path

import torch


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return (out.stdout.strip() + ("+dirty" if dirty else "")) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def provenance(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {
        "git_commit": _git_commit(),
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
