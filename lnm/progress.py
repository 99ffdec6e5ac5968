"""What the console's progress line counts and how its ETA is estimated (read by the logger
plugin, ``snakemake_logger_plugin_lnm``; torch-free and quick to import).

- :func:`finished_runs`: the training runs already finished in a results folder (a run folder
  with its ``metrics.json``), each with its method and, where Snakemake's benchmark file of the
  run's job exists (``benchmarks/train/<run>.tsv``), its wall-clock seconds; so a restarted
  workflow counts the work done before it.
- :class:`Estimator`: the expected seconds of a run of a method: the mean of the method's
  finished runs; for a method without one, the finished runs' seconds scaled by
  :data:`RELATIVE_COST` (what a run of each method costs next to CE's); before any run has
  finished, no estimate.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import grid

#: Relative time of one training run per method, CE = 1, under one recipe (the harmonized
#: protocol): each method class's ``relative_cost`` (lnm.grid.method_info), from the cost model of
#: ``benchmarks/grid_cost.py`` (each method trained through its own ``train_epoch``, plus
#: evaluation, checkpoints and start-up): its minutes per job of the demo (``python
#: benchmarks/grid_cost.py presets/demo.yaml --threads 1``: ResNet-8, 28 px, 8 epochs) over CE's,
#: rounded (measured 2026-12-07 at 9699cc5, on a busy 2-core CPU; per job in minutes: CE 2.69,
#: T-Revision 2.47, VolMinNet 2.49, SCE 2.19, CDR 2.18, Co-teaching 4.18, Co-teaching+ 4.99,
#: CoDis 4.57, JoCoR 4.03, DISC 6.96, DivideMix 13.64). Used only until a method has finished a
#: run; a method without one counts as the mean of the others.
RELATIVE_COST = {
    m: info.relative_cost
    for m, info in grid.method_catalog().items()
    if info.relative_cost is not None
}

#: A run folder below the results folder, as a path pattern: lnm.grid.RUN_DIR's fields as *.
RUN_GLOB = re.sub(r"\{[a-z_]+\}", "*", grid.RUN_DIR)
_RUN_RE = re.compile(
    "^" + re.sub(r"\\\{([a-z_]+)\\\}", r"(?P<\1>[^/]+?)", re.escape(grid.RUN_DIR)) + "$"
)


@dataclass(frozen=True)
class FinishedRun:
    run_id: str  # lnm.grid.RUN_ID of the run
    method: str  # its method (a method_variants name as it is)
    seconds: float | None  # wall-clock seconds of its job, per run (None: no benchmark file)


def run_fields(run_dir: str) -> dict | None:
    """The wildcards of a run folder path ``runs/<dataset>/<tag>/<method>/<backbone>/s<seed>``
    (relative to the results folder); None if it is not one."""
    m = _RUN_RE.match(run_dir.replace(os.sep, "/"))
    return m.groupdict() if m else None


def benchmark_seconds(path: str | os.PathLike) -> float | None:
    """The wall-clock seconds (column ``s``) of a Snakemake benchmark file; None if absent or
    unreadable."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        return float(rows[-1]["s"]) if rows else None
    except (OSError, KeyError, ValueError):
        return None


def finished_runs(results: str | os.PathLike) -> dict[str, FinishedRun]:
    """Every training run of ``results`` whose ``metrics.json`` exists, by run id; the seconds
    from ``benchmarks/train/<run id>.tsv``, or for a packed job (runtime.pack_seeds) from
    ``benchmarks/train/<run group>/seeds.tsv`` divided by the group's finished runs."""
    root = Path(results)
    found: dict[str, dict] = {}
    for metrics in root.glob(f"{RUN_GLOB}/metrics.json"):
        rel = metrics.parent.relative_to(root).as_posix()
        fields = run_fields(rel)
        if fields is not None:
            found[grid.RUN_ID.format(**fields)] = fields
    groups: dict[str, int] = {}
    for fields in found.values():
        group = grid.RUN_GROUP.format(**fields)
        groups[group] = groups.get(group, 0) + 1
    out = {}
    bench = root / "benchmarks" / "train"
    for run_id, fields in sorted(found.items()):
        seconds = benchmark_seconds(bench / f"{run_id}.tsv")
        if seconds is None:
            group = grid.RUN_GROUP.format(**fields)
            packed = benchmark_seconds(bench / f"{grid.PACKED_ID.format(**fields)}.tsv")
            seconds = packed / groups[group] if packed is not None else None
        out[run_id] = FinishedRun(run_id, fields["method"], seconds)
    return out


class Estimator:
    """Expected seconds of a training run per method, from the runs seen to finish."""

    def __init__(self, costs: dict[str, float] | None = None, aliases: dict | None = None):
        """``costs``: relative costs by method (default :data:`RELATIVE_COST`); ``aliases``:
        the method a name runs (``method_variants``: a variant costs what its method costs)."""
        self.costs = dict(RELATIVE_COST if costs is None else costs)
        self.aliases = dict(aliases or {})
        self.seconds: dict[str, list[float]] = {}

    def observe(self, method: str, seconds: float) -> None:
        self.seconds.setdefault(method, []).append(float(seconds))

    def cost(self, method: str) -> float:
        method = self.aliases.get(method, method)
        if method in self.costs:
            return self.costs[method]
        return sum(self.costs.values()) / len(self.costs) if self.costs else 1.0

    def per_run(self, method: str) -> float | None:
        """The mean seconds of ``method``'s finished runs; else every finished run's seconds
        scaled by the methods' relative costs (a ratio estimate); None before any run."""
        own = self.seconds.get(method)
        if own:
            return sum(own) / len(own)
        if not self.seconds:
            return None
        total = sum(sum(v) for v in self.seconds.values())
        cost = sum(self.cost(m) * len(v) for m, v in self.seconds.items())
        return total / cost * self.cost(method)
