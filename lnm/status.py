"""``lnm status CONFIG...``: is a results folder finished, and if not, which stages are missing.

The report (``snakemake --report``) needs every table and figure: before the workflow has
finished, Snakemake refuses it with "marked for report but does not exist" after a warning per
missing file. This says first what is missing: the training runs finished in the results folder
(:func:`lnm.progress.finished_runs`) and the jobs each stage still has to run, as Snakemake
plans them (``snakemake --dry-run`` of the same config files: missing outputs, and outputs whose
code, inputs or parameters changed).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from . import grid
from .progress import finished_runs

WIDTH = 118
#: A row of Snakemake's "Job stats" table: ``rule count``.
ROW = re.compile(r"^([A-Za-z_][\w]*)\s+(\d+)$")


def job_stats(output: str) -> dict[str, int]:
    """The first "Job stats" table of Snakemake's output, ``{rule: jobs}`` (without ``total``);
    ``{}`` when there is nothing to be done."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Job stats:":
            stats = {}
            for row in lines[i + 3 :]:  # after the header and its rule
                m = ROW.match(row.strip())
                if not m:
                    break
                stats[m.group(1)] = int(m.group(2))
            stats.pop("total", None)
            return stats
    if "Nothing to be done" in output:
        return {}
    raise RuntimeError("snakemake --dry-run printed no job statistics:\n" + output[-3000:])


def dry_run(files: list[str], snakefile: Path | None = None) -> dict[str, int]:
    """Jobs per rule that ``snakemake --dry-run --configfile FILES`` plans (in this folder)."""
    from .config import ROOT

    snakefile = snakefile or ROOT / "Snakefile"
    cmd = [sys.executable, "-m", "snakemake", "--dry-run", "--snakefile", str(snakefile)]
    if files:
        cmd += ["--configfile", *files]
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    output = proc.stdout + proc.stderr
    if proc.returncode:
        raise RuntimeError(f"snakemake --dry-run failed:\n{output[-3000:]}")
    return job_stats(output)


def status(cfg: dict, files: list[str], pending: dict[str, int] | None = None) -> tuple[bool, str]:
    """(finished, the text to print) for the merged config ``cfg`` of the config ``files``;
    ``pending`` (jobs per rule still to run) defaults to :func:`dry_run` of ``files``."""
    results = cfg["results"]
    grid_runs = {d.removeprefix("runs/") for d in grid.run_dirs(cfg)}
    done = len(set(finished_runs(results)) & grid_runs)
    pending = dry_run(files) if pending is None else pending
    runs = f"{done} of {len(grid_runs)} training runs done"
    if not pending:
        return True, (
            f"{results}: finished: {runs}; every table, figure and {grid.MANIFEST} up to date "
            "(nothing to run)"
        )
    jobs = ", ".join(f"{rule} {n}" for rule, n in pending.items())
    config_args = " ".join(files)
    wrap = functools.partial(
        textwrap.wrap, width=WIDTH, initial_indent="  ", subsequent_indent="    ",
        break_on_hyphens=False,
    )  # fmt: skip
    lines = [
        f"{results}: not finished: {runs}",
        *wrap(
            f"still to run ({sum(pending.values())} jobs whose outputs are missing or out of "
            f"date, as snakemake --dry-run plans them): {jobs}"
        ),
        *wrap(
            "the report needs every stage: finish the workflow first (snakemake --cores N "
            f"--configfile {config_args}), then build the report"
        ),
    ]
    return False, "\n".join(lines)
