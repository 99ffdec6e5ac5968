"""A training process's start and end, off the critical path (torch-free until called).

:func:`import_for_training` imports what a training run uses with the cyclic garbage collector
off, then freezes what was imported. Importing torch and ``torch._dynamo`` (torch's optimisers
import it when the first one is built) creates about a million long-lived objects, which the
collector, left on, traverses over and over while they are created (about a fifth of the import
time); frozen, later collections never traverse them again. Nothing a run computes changes.

:func:`exit_now` ends the process once every output is written (atomically, synced) without
tearing the interpreter down: tearing down torch's modules takes a quarter of a second and
there is nothing left to do. Not under a profiler or tracer (``python -m cProfile``, coverage),
which write their results at the normal exit.

Used by ``lnm train`` (:mod:`lnm.cli`) and the workflow's train jobs
(``workflow_scripts/train.py``).
"""

from __future__ import annotations

import gc
import os
import sys


def import_for_training() -> None:
    gc.disable()
    try:
        import torch._dynamo  # noqa: F401

        from .train import pack, trainer  # noqa: F401
    finally:
        gc.freeze()
        gc.enable()


def exit_now(rc: int) -> None:
    """``os._exit(rc)`` after flushing stdout and stderr; returns (does nothing) under a
    profiler or tracer."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
