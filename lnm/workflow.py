"""Glue for workflow_scripts/: send a stage's log lines to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator


@contextlib.contextmanager
def logged(snakemake) -> Iterator[logging.Logger]:
    """Redirect stderr (progress lines, warnings) to the rule's log; log any failure in full.

    The log is appended to, never truncated. (Snakemake deletes a job's log before the job
    runs, so a training run that resumes replays its earlier attempts from its own
    ``checkpoint.log``; see :mod:`lnm.train.trainer`.)"""
    path = snakemake.log[0] if snakemake.log else None
    stream = open(path, "a", buffering=1) if path else sys.stderr
    old, sys.stderr = sys.stderr, stream
    log = logging.getLogger(f"lnm.{snakemake.rule}")
    try:
        yield log
    except BaseException:
        traceback.print_exc(file=stream)
        raise
    finally:
        sys.stderr = old
        if path:
            stream.close()


@contextlib.contextmanager
def job_device(snakemake) -> Iterator[str]:
    """The device a job runs on: a GPU slot from the pool when the job declares ``gpu: 1``
    (``runtime`` and ``resources`` of the config say where the locks are, how many jobs share a
    GPU and which device is preferred), else the CPU; held until the job ends."""
    from .gpu import assigned_device

    runtime, res = snakemake.config["runtime"], snakemake.config["resources"]
    with assigned_device(
        snakemake.resources.gpu,
        runtime["gpu_lock_dir"],
        res["gpu_slots_per_device"],
        snakemake.threads,
        prefer=runtime["device"],
    ) as device:
        yield device
