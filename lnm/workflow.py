"""Glue for workflow_scripts/ and the Snakefile: a stage's output goes to its Snakemake log
file, a job's device, and the plan of a run that the console (the logger plugin) reads."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _job_name(snakemake) -> str:
    wildcards = getattr(snakemake, "wildcards", None)
    items = list(wildcards.items()) if wildcards is not None else []  # a Namedlist or a dict
    return " ".join([str(snakemake.rule), *(f"{k}={v}" for k, v in items)])


@contextlib.contextmanager
def logged(snakemake) -> Iterator[logging.Logger]:
    """Everything the stage writes goes to the rule's log file: stdout and stderr are redirected
    at the file-descriptor level, so ``print``, warnings, C-level output and child processes'
    output land there too, never on the console (which shows what the logger plugin shows). The
    log starts with a line naming the job and ends with one saying how long it took; a failure
    is logged in full (and raised, so Snakemake reports the job as failed).

    The log is appended to, never truncated. (Snakemake deletes a job's log before the job
    runs, so a training run that resumes replays its earlier attempts from its own
    ``checkpoint.log``; see :mod:`lnm.train.trainer`.)"""
    log = logging.getLogger(f"lnm.{snakemake.rule}")
    path = snakemake.log[0] if snakemake.log else None
    if not path:  # a rule without a log file (every rule of this workflow has one)
        yield log
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = (os.dup(1), os.dup(2))
    reconfigure = getattr(sys.stdout, "reconfigure", None)  # a TextIOWrapper (not a capture)
    line_buffering = getattr(sys.stdout, "line_buffering", False)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    if reconfigure is not None:
        reconfigure(line_buffering=True)  # a line is in the file once it is printed
    start = time.perf_counter()
    print(f"{_stamp()} {_job_name(snakemake)}: started (pid {os.getpid()} on "
          f"{socket.gethostname()})", flush=True)  # fmt: skip
    try:
        yield log
        print(f"{_stamp()} finished in {time.perf_counter() - start:.1f} s", flush=True)
    except BaseException:
        traceback.print_exc()
        print(f"{_stamp()} FAILED after {time.perf_counter() - start:.1f} s", flush=True)
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for s in saved:
            os.close(s)
        if reconfigure is not None:
            reconfigure(line_buffering=line_buffering)


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


#: The attribute of the log record that carries a run's plan to the console (the logger plugin).
PLAN = "lnm_plan"


def train_plan(dag, config: dict) -> dict:
    """The training runs this invocation will train, for the console's progress line: the
    results folder, each planned run's id (lnm.grid.RUN_ID) with its method, the method each
    grid method runs (``method_variants``) and the runs per train job (``runtime.pack_seeds``:
    every seed of a group)."""
    from . import grid

    packed = bool(config["runtime"]["pack_seeds"])
    planned = {}
    for job in dag.needrun_jobs():
        if job.rule.name != "train":
            continue
        w = dict(job.wildcards.items())
        seeds = config["seeds"] if packed else [w["seed"]]
        for seed in seeds:
            run_id = grid.RUN_ID.format(**{**w, "seed": seed})
            planned[run_id] = w["method"]
    return {
        "results": str(config["results"]),
        "planned": planned,
        "methods": {m: grid.base_method(config, m) for m in config["methods"]},
        "runs_per_job": len(config["seeds"]) if packed else 1,
    }


def announce_plan(dag, config: dict, logger) -> None:
    """Log :func:`train_plan` (one line in Snakemake's log file; the logger plugin reads the
    plan from the record and counts the runs already finished in the results folder)."""
    plan = train_plan(dag, config)
    logger.info(
        f"lnm: {len(plan['planned'])} training run(s) to train into {plan['results']}",
        extra={PLAN: plan},
    )
