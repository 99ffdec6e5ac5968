"""Several training runs in one process, one after another (``runtime.pack_seeds``).

Each run is trained by :func:`lnm.train.trainer.train_run`, exactly as alone: its own seeding,
folder, checkpoint, attempt log, resume identity and checksummed outputs, byte for byte the
same. What the runs share is what is identical between them: the process (imported modules,
the device and its CUDA context), the input files' hashes and the images of their data file,
loaded onto the device once (:class:`lnm.train.datasource.SharedInputs`, keyed by the file, its
SHA-256 and the device). Labels, noise and everything a run computes stay its own. Streamed
data is opened by each run.

Resume. Snakemake deletes a job's outputs before it reruns the job, so after a crash the runs
of a packed job that had completed would be trained again. Instead every run keeps its final
checkpoint (and attempt log) until all runs of the pack have completed: a rerun restores the
completed ones from their checkpoints in seconds ("every epoch restored from the checkpoint;
writing the outputs") and resumes the interrupted one. Only then are the checkpoints deleted
(unless ``keep_checkpoint``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..grid import RUN_DIR
from .datasource import SharedInputs
from .spec import RunSpec
from .trainer import remove_checkpoint, train_run


@dataclass(frozen=True)
class RunJob:
    """One run of a pack: what :func:`lnm.train.trainer.train_run` takes per run (its fields are
    train_run's keywords)."""

    spec: RunSpec
    data_path: str | Path
    noise_path: str | Path
    out_dir: str | Path
    estimate_path: str | Path | None = None
    code_files: tuple[str | Path, ...] | None = None  # None: train_run's default


def train_runs(
    jobs: Sequence[RunJob],
    keep_checkpoint: bool = False,
    log: Callable[[str], None] | None = None,
    shared: SharedInputs | None = None,
    **options,
) -> list[dict]:
    """Train ``jobs`` one after another in this process (see the module docstring); return
    their metrics. ``options``: the keywords every run's :func:`lnm.train.trainer.train_run`
    takes (``device``, ``threads``, ``stream``, ``memory_budget_mb``). The first run that fails
    stops the pack (its error is raised); the runs completed before it keep their checkpoints
    for the rerun."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    folders = [Path(j.out_dir).resolve() for j in jobs]
    if len(set(folders)) != len(folders):
        raise ValueError("train_runs: two runs of a pack share a folder")
    shared = SharedInputs() if shared is None else shared
    results = []
    try:
        for i, job in enumerate(jobs, 1):
            log(f"packed run {i}/{len(jobs)}: {job.out_dir}")
            # keep_checkpoint: until the whole pack has completed
            run = train_run(**vars(job), keep_checkpoint=True, log=log, shared=shared, **options)
            results.append(run)
    finally:
        shared.drop_images()
    if not keep_checkpoint:
        for job in jobs:
            remove_checkpoint(job.out_dir)
    return results


def run_folders(outputs: Iterable[str | Path], specs: Sequence[RunSpec]) -> list[Path]:
    """The run folder of each of ``specs`` among the folders of a packed train job's
    ``outputs`` (one per run, in the order of ``specs``; named as :data:`lnm.grid.RUN_DIR`
    names a run of that seed)."""
    folders = list(dict.fromkeys(Path(f).parent for f in outputs))
    names = [Path(RUN_DIR).name.format(seed=spec.seed) for spec in specs]
    if [f.name for f in folders] != names:
        raise ValueError(
            f"packed train job: output folders {[f.name for f in folders]} do not match the "
            f"runs' seeds {names}"
        )
    return folders
