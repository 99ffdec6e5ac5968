"""Snakemake logger plugin ``lnm``: a console a person can follow during a long grid.

Enabled by ``logger: [lnm]`` in ``profiles/*/config.yaml`` (or ``snakemake --logger lnm``);
Snakemake finds it because it is a top-level package named ``snakemake_logger_plugin_<name>``
installed with the project (``pip install -e .``). It replaces Snakemake's console output (not
its log file, ``.snakemake/log/*.snakemake.log``, which keeps the full default output):

- each job start and finish is one short line with the training runs done / running / left
  and an ETA. The workflow's plan (logged by the Snakefile's ``onstart``, :mod:`lnm.workflow`)
  names the results folder and the runs to train, so the runs finished before a restart count
  as done (their folders' ``metrics.json``, :func:`lnm.progress.finished_runs`) and the ETA
  adds up each run left at its method's expected time (:class:`lnm.progress.Estimator`: the
  mean of the method's finished runs, before a restart too, or the methods' relative costs
  when it has none yet), ÷ the parallel slots (``--cores`` ÷ the training job's threads, or
  the most training jobs seen running at once when the executor has no core count, e.g.
  SLURM). Without a plan (another Snakefile): the jobs of this invocation, the mean duration;
- every ``interval`` seconds without other output, the current epoch of each running training
  job, read from the last ``epoch i/n`` line of its log file;
- file lists are never printed in full (a job's first file and how many more), so every line
  it writes itself stays within ``width`` characters; errors and warnings are printed in full
  (the log path, Snakemake's message, the failed logs with ``--show-failed-logs``).

A run stopped with SIGTERM (Snakemake then lets the running jobs finish) says so once, and at the
end what finished, instead of Snakemake's repeated "Will exit after finishing currently running
jobs" and its "At least one job did not complete successfully" (none failed).

A dry run keeps Snakemake's per-job blocks (rule, output, log, jobid, reason, wildcards) with
the file lists and reasons shortened. ``--quiet`` and ``--printshellcmds`` act as usual.
Settings: ``--logger-lnm-interval`` (seconds, 0 = no periodic lines), ``--logger-lnm-width``.
"""

from __future__ import annotations

import logging
import re
import sys
import textwrap
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from lnm import grid, progress
from lnm.workflow import PLAN

#: The rule whose jobs are the training runs (rules/train.smk).
TRAIN_RULE = "train"
#: A progress line of a training log (lnm/train/trainer.py): "[...] epoch 3/8 loss ...".
EPOCH = re.compile(r"\bepoch (\d+)/(\d+)\b")
#: At most this many running jobs are listed in a periodic report.
MAX_LISTED = 8
#: Generic messages that only narrate the scheduler's loop.
NOISE = ("Select jobs to execute...",)
#: Snakemake's message after SIGTERM, repeated at every turn of its scheduler's loop.
STOPPING = "Will exit after finishing currently running jobs"
#: Its messages once the running jobs of a stopped run have finished.
SHUTTING_DOWN = "Shutting down, this might take some time."
NOT_COMPLETE = "At least one job did not complete successfully"
#: Snakemake's last line: where the full log of the run is (an absolute path).
LOG_HINT = "Complete log(s): "


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    interval: int = field(
        default=30,
        metadata={
            "help": "Seconds without console output after which the current epoch of every "
            "running training job is printed (0: never).",
            "type": int,
        },
    )
    width: int = field(
        default=120,
        metadata={"help": "Longest line the plugin writes itself.", "type": int},
    )


@dataclass
class _Job:
    jobid: int
    rule: str = "?"
    wildcards: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    threads: int = 1
    started: float | None = None

    @property
    def is_train(self) -> bool:
        return self.rule == TRAIN_RULE

    @property
    def label(self) -> str:
        """The job's wildcards, training runs as ``method dataset noise-rate-nS backbone sN``."""
        w = dict(self.wildcards)
        if {"noise", "rate", "noise_seed"} <= set(w):  # the noise tag of lnm.grid.NOISE_TAG
            tag = f"{w.pop('noise')}-{w.pop('rate')}-n{w.pop('noise_seed')}"
            w = {**{k: w.pop(k) for k in ("dataset",) if k in w}, "tag": tag, **w}
        if self.is_train and "method" in w:
            w = {"method": w.pop("method"), **w}
        if "seed" in w:
            w["seed"] = f"s{w['seed']}"
        return " ".join(str(v) for v in w.values())


def duration(seconds: float, coarse: bool = False) -> str:
    """``45s``, ``3m05s``, ``2h07m``; ``coarse`` (for an ETA): whole minutes from 10 min."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if coarse and s < 3600 and s >= 600:
        return f"{round(s / 60)}m"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 3)] + "..."


def files_text(files, width: int) -> str:
    """As many of ``files`` as fit in ``width`` characters, then how many more."""
    files = [str(f) for f in files]
    shown: list[str] = []
    for i, f in enumerate(files):
        rest = len(files) - i - 1
        more = f" (+{rest} more)" if rest else ""
        if shown and len(", ".join([*shown, f])) + len(more) > width:
            break
        shown.append(f)
    rest = len(files) - len(shown)
    return ", ".join(shown) + (f" (+{rest} more)" if rest else "")


def reason_text(reason, width: int) -> str:
    """Snakemake's reason ("Missing output files: a, b; Updated input files: c") with each
    file list cut to its first file and how many more."""
    parts = []
    for part in str(reason).split("; "):
        label, sep, files = part.partition(": ")
        room = width - len(label) - 2
        parts.append(f"{label}{sep}{files_text(files.split(', '), room)}" if sep else part)
    return "; ".join(parts)


def relative(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        rel = Path(path).resolve().relative_to(Path.cwd().resolve())
    except (OSError, ValueError):
        return path
    return str(rel)


def last_epoch(log_paths) -> str | None:
    """``epoch i/n`` of the last progress line of a training job's log file, if any."""
    for p in log_paths:
        path = Path(str(p).split(" (", 1)[0])  # Snakemake may annotate a file: "x.log (temp)"
        try:
            with open(path, "rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - 16384))
                tail = fh.read().decode(errors="replace")
        except OSError:
            continue
        found = EPOCH.findall(tail)
        if found:
            return f"epoch {found[-1][0]}/{found[-1][1]}"
    return None


class LogHandler(LogHandlerBase):
    """Short progress lines for jobs; everything else as Snakemake words it."""

    stream: TextIO | None = None  # None: stderr (stdout in a dry run, as Snakemake does)

    def __post_init__(self) -> None:
        s = self.settings if isinstance(self.settings, LogHandlerSettings) else None
        self.interval = s.interval if s else 30
        self.width = s.width if s else 120
        cs = self.common_settings
        self.dryrun = bool(getattr(cs, "dryrun", False))
        self.clock = time.monotonic
        self.jobs: dict[int, _Job] = {}
        self.running: set[int] = set()
        self.done: dict[str, int] = {}
        self.failed: set[int] = set()
        self.durations: deque[float] = deque(maxlen=1000)  # finished training runs
        self.plan: dict | None = None  # the workflow's plan (lnm.workflow.train_plan)
        self.prior: dict[str, progress.FinishedRun] = {}  # finished before this invocation
        self.estimator = progress.Estimator()
        self.started_runs: set[str] = set()  # planned runs whose job has started
        self.stopping = False  # SIGTERM: no new job starts
        self.planned: dict[str, int] = {}  # rule -> jobs of this invocation (Job stats)
        self.steps = (0, 0)  # (done, total) from Snakemake's PROGRESS
        self.cores: int | None = None
        self.peak_train = 0
        self.last_output = self.clock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        from snakemake.logging import DefaultFilter, DefaultFormatter

        self._filter = DefaultFilter(
            getattr(cs, "quiet", None),
            bool(getattr(cs, "debug_dag", False)),
            bool(getattr(cs, "verbose", False)),
            self.dryrun,
            bool(getattr(cs, "printshellcmds", False)),
        )
        self._formatter = DefaultFormatter(
            getattr(cs, "quiet", None), bool(getattr(cs, "show_failed_logs", False))
        )

    # ------------------------------------------------------------------ plugin interface
    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True  # every record updates the counts; DefaultFilter decides what is shown

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def close(self) -> None:
        self._stop.set()
        super().close()

    # ------------------------------------------------------------------ output
    def _out(self) -> TextIO:
        if self.stream is not None:
            return self.stream
        return sys.stdout if getattr(self.common_settings, "stdout", False) else sys.stderr

    def write(self, text: str, level: int = logging.INFO) -> None:
        out = self._out()
        color = {logging.ERROR: 31, logging.CRITICAL: 35, logging.WARNING: 33}.get(level)
        tty = getattr(out, "isatty", None)
        if color and tty and tty() and not getattr(self.common_settings, "nocolor", False):
            text = f"\033[{color}m{text}\033[0m"
        out.write(text + "\n")
        out.flush()
        self.last_output = self.clock()

    def wrap(self, text: str) -> str:
        """Long lines wrapped at spaces (paths and words are never split)."""
        lines = []
        for line in text.splitlines() or [""]:
            if len(line) <= self.width:
                lines.append(line)
                continue
            indent = line[: len(line) - len(line.lstrip())]
            lines.extend(
                textwrap.wrap(
                    line,
                    self.width,
                    subsequent_indent=indent + "    ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ progress
    @property
    def runs_per_job(self) -> int:
        return int(self.plan["runs_per_job"]) if self.plan else 1

    def _train_counts(self) -> tuple[int, int, int, int]:
        """Training runs (total, done, running, failed): with the workflow's plan, the runs
        finished before this invocation count in total and done."""
        n = self.runs_per_job
        done = self.done.get(TRAIN_RULE, 0) * n
        running = sum(self.jobs[j].is_train for j in self.running if j in self.jobs) * n
        failed = sum(self.jobs[j].is_train for j in self.failed if j in self.jobs) * n
        if self.plan is not None:
            prior = len(self.prior)
            return prior + len(self.plan["planned"]), prior + done, running, failed
        return self.planned.get(TRAIN_RULE, 0), done, running, failed

    def job_runs(self, job: _Job) -> list[str]:
        """The run ids a train job trains (one; with runtime.pack_seeds every seed's)."""
        w = {k: str(v) for k, v in job.wildcards.items()}
        try:
            if "seed" in w:
                return [grid.RUN_ID.format(**w)]
            group = grid.RUN_GROUP.format(**w)
        except KeyError:
            return []
        planned = self.plan["planned"] if self.plan else {}
        return [r for r in planned if r.rsplit("/", 1)[0] == group]

    def _on_plan(self, plan: dict) -> None:
        """The workflow's plan: count the runs already finished in its results folder and
        learn their methods' durations."""
        self.plan = plan
        self.estimator = progress.Estimator(aliases=plan.get("methods"))
        try:
            finished = progress.finished_runs(plan["results"])
        except OSError:  # an unreadable results folder: count this invocation's runs only
            finished = {}
        self.prior = {k: v for k, v in finished.items() if k not in plan["planned"]}
        for run in finished.values():
            if run.seconds is not None:
                self.estimator.observe(run.method, run.seconds)
        if self.prior:
            total = len(self.prior) + len(plan["planned"])
            self.write(self.wrap(
                f"{time.strftime('%H:%M:%S')} runs {len(self.prior)}/{total} already done in "
                f"{plan['results']}; {len(plan['planned'])} to train"
            ))  # fmt: skip

    def slots(self) -> int:
        threads = next((j.threads for j in self.jobs.values() if j.is_train), 1) or 1
        if self.cores:
            return max(1, self.cores // max(1, threads))
        return max(1, self.peak_train)

    def eta(self) -> str:
        total, done, running, failed = self._train_counts()
        left = max(0, total - done - running - failed)
        if not left and not running:
            return ""
        if self.plan is not None:
            return self._eta_by_method()
        if not self.durations:
            return "ETA after the first run"
        mean = sum(self.durations) / len(self.durations)
        now = self.clock()
        work = left * mean + sum(
            max(0.0, mean - (now - self.jobs[j].started))
            for j in self.running
            if j in self.jobs and self.jobs[j].is_train and self.jobs[j].started is not None
        )
        return f"ETA {duration(work / self.slots(), coarse=True)}"

    def _eta_by_method(self) -> str:
        """Each run left at its method's expected seconds, each running job's runs less the
        time they have run, over the parallel slots."""
        est = self.estimator
        now = self.clock()
        work = 0.0
        for run_id, method in self.plan["planned"].items():
            if run_id in self.started_runs:
                continue
            seconds = est.per_run(method)
            if seconds is None:
                return "ETA after the first run"
            work += seconds
        for j in self.running:
            job = self.jobs.get(j)
            if job is None or not job.is_train or job.started is None:
                continue
            seconds = est.per_run(str(job.wildcards.get("method", "")))
            if seconds is None:
                return "ETA after the first run"
            work += max(0.0, seconds * self.runs_per_job - (now - job.started))
        return f"ETA {duration(work / self.slots(), coarse=True)}"

    def steps_text(self) -> str:
        done = max(self.steps[0], sum(self.done.values()))
        total = self.steps[1] or sum(self.planned.values())
        return f"steps {done}/{total} done" if total else ""

    def status(self) -> str:
        """``runs 3/110 done, 2 running, 105 left, ETA 36m`` (training runs only)."""
        total, done, running, failed = self._train_counts()
        if not total:
            return self.steps_text()
        left = max(0, total - done - running - failed)
        if not left and not running and not failed:  # training is over: the report steps
            return " · ".join(x for x in (f"runs {done}/{total} done", self.steps_text()) if x)
        text = f"runs {done}/{total} done, {running} running, {left} left"
        if failed:
            text += f", {failed} FAILED"
        eta = self.eta()
        return f"{text}, {eta}" if eta else text

    def job_line(self, what: str, job: _Job, extra: str = "") -> str:
        """``12:03:10 done  <job> (41s) · <status>``: a training run is named by its label, any
        other job by its rule and label. When that is longer than the width, the status goes
        on a second, indented line (a name longer than the width alone is shortened)."""
        head = f"{time.strftime('%H:%M:%S')} {what:<5} "
        name = job.label if job.is_train else f"{job.rule} {job.label}".strip()
        first = head + name + (f" ({extra})" if extra else "")
        status = self.status()
        if not status:
            return shorten(first, self.width)
        if len(first) + 3 + len(status) <= self.width:
            return f"{first} · {status}"
        return shorten(first, self.width) + "\n" + shorten(" " * len(head) + status, self.width)

    def report_running(self) -> None:
        """One status line and the current epoch (or run time) of each running job."""
        if not self.running:
            return
        now = self.clock()
        status = self.status()
        if self.planned.get(TRAIN_RULE) and self.steps_text() and "steps" not in status:
            status += f" · {self.steps_text()}"
        lines = [shorten(f"{time.strftime('%H:%M:%S')} {status}", self.width)]
        jobs = sorted((self.jobs.get(j) or _Job(j) for j in self.running), key=lambda j: j.jobid)
        for job in jobs[:MAX_LISTED]:
            since = duration(now - job.started) if job.started is not None else "?"
            epoch = last_epoch(job.log) if job.is_train else None
            state = (
                f"{epoch}, {since}" if epoch else (f"starting, {since}" if job.is_train else since)
            )
            tail = f": {state}"
            name = job.label if job.is_train else f"{job.rule} {job.label}".strip()
            lines.append("  " + shorten(name, self.width - 2 - len(tail)) + tail)
        if len(jobs) > MAX_LISTED:
            lines.append(f"  ... and {len(jobs) - MAX_LISTED} more running")
        self.write("\n".join(lines))

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if self.clock() - self.last_output < self.interval:
                continue
            self.acquire()
            try:
                if self.running:
                    self.report_running()
                else:
                    self.last_output = self.clock()
            except Exception:  # a status line must never stop the workflow
                pass
            finally:
                self.release()

    def _start_ticker(self) -> None:
        if self._ticker is None and self.interval > 0 and not self.dryrun:
            self._ticker = threading.Thread(target=self._tick, name="lnm-progress", daemon=True)
            self._ticker.start()

    # ------------------------------------------------------------------ records
    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception:
            self.handleError(record)

    def _emit(self, record: logging.LogRecord) -> None:
        plan = getattr(record, PLAN, None)
        if isinstance(plan, dict):  # the workflow's plan (Snakefile onstart): not shown as is
            self._on_plan(plan)
            return
        if self._stop_message(record):
            return
        event = getattr(record, "event", None)
        show = self._filter.filter(record)
        handle = _HANDLERS.get(event)
        if handle is not None:  # the event's own line, if any
            handle(self, record, show)
            return
        if event == LogEvent.RESOURCES_INFO and getattr(record, "cores", None):
            self.cores = int(record.cores)
        elif event == LogEvent.RUN_INFO and isinstance(getattr(record, "stats", None), dict):
            self.planned = {k: int(v) for k, v in record.stats.items() if k != "total"}
        if show:
            self._show(record, event)

    def _show(self, record: logging.LogRecord, event) -> None:
        if record.levelno >= logging.WARNING or event in (LogEvent.ERROR, LogEvent.GROUP_ERROR):
            self.write(self._full(record), record.levelno)  # errors and warnings: never cut
            return
        text = self._text(record)
        if not text or text == "None" or (not self.dryrun and text.strip() in NOISE):
            return
        if text.startswith(LOG_HINT):  # the full log's path, relative to here (shorter)
            paths = text[len(LOG_HINT) :].split(", ")
            text = LOG_HINT + ", ".join(relative(p) for p in paths)
        self.write(self.wrap(text))

    def _progress(self, record: logging.LogRecord, show: bool) -> None:
        self.steps = (int(record.done), int(record.total))  # folded into the job lines

    def _job_started(self, record: logging.LogRecord, show: bool) -> None:
        now = self.clock()  # not shown: the JOB_INFO that follows names the job
        for jid in getattr(record, "jobs", []) or []:
            self.jobs.setdefault(jid, _Job(jid)).started = now
            self.running.add(jid)
            self.failed.discard(jid)  # a retried job
        self._start_ticker()

    def _workflow_started(self, record: logging.LogRecord, show: bool) -> None:
        if show:
            configs = ", ".join(map(str, getattr(record, "configfiles", None) or [])) or "-"
            version = getattr(record, "snakemake_version", "")
            self.write(self.wrap(f"Snakemake {version}; config files: {configs}"))

    def _shellcmd(self, record: logging.LogRecord, show: bool) -> None:
        cmd = getattr(record, "shellcmd", None) or getattr(record, "cmd", None)
        if show and cmd:
            self.write(self.wrap(str(cmd)))

    def _stop_message(self, record: logging.LogRecord) -> bool:
        """SIGTERM: one line when the stop begins, one when it ends (with what finished),
        instead of Snakemake's repeated notice and its error; True when ``record`` is one of
        those messages."""
        msg = record.msg if isinstance(record.msg, str) else ""
        now = time.strftime("%H:%M:%S")
        if msg.startswith(STOPPING):
            if not self.stopping:
                self.stopping = True
                n = len(self.running)
                self.write(f"{now} stopping (SIGTERM): no new job starts; waiting for the {n} "
                           f"running job{'s' if n != 1 else ''} to finish")  # fmt: skip
            return True
        if not self.stopping:
            return False
        if msg.startswith(SHUTTING_DOWN):
            return True
        if NOT_COMPLETE in msg and not self.failed:
            total, done, _, _ = self._train_counts()
            jobs = sum(self.done.values())
            runs = f"runs {done}/{total} done, " if total else ""
            self.write(self.wrap(
                f"{now} stopped: {runs}{jobs} job{'s' if jobs != 1 else ''} finished in this "
                "run, none failed; the same command continues"
            ))  # fmt: skip
            return True
        return False

    def _text(self, record: logging.LogRecord) -> str:
        if getattr(record, "event", None) is None:
            return "" if record.msg is None else record.getMessage()
        return self._formatter.format(record) or ""

    def _full(self, record: logging.LogRecord) -> str:
        text = self._text(record)
        if record.exc_info and not record.exc_text:
            text = f"{text}\n{logging.Formatter().formatException(record.exc_info)}"
        return text

    def _job_info(self, record: logging.LogRecord, show: bool) -> None:
        jid = record.jobid
        job = self.jobs.setdefault(jid, _Job(jid))
        job.rule = record.rule_name
        job.wildcards = dict(getattr(record, "wildcards", None) or {})
        job.log = list(getattr(record, "log", None) or [])
        job.threads = int(getattr(record, "threads", 1) or 1)
        if self.dryrun:
            if show:
                self.write(self._dry_block(record))
            return
        if job.started is None or jid not in self.running:
            job.started = self.clock()
        if job.is_train:
            self.started_runs.update(self.job_runs(job))
        self.running.add(jid)
        self.failed.discard(jid)
        self.peak_train = max(self.peak_train, self._train_counts()[2])
        self._start_ticker()
        if show:
            self.write(self.job_line("start", job))

    def _file_lines(self, r: logging.LogRecord, items) -> list[str]:
        """``    input: a, b, ...`` for each of ``items`` that ``r`` lists files for, within the
        width."""
        return [
            f"    {item}: {files_text(files, self.width - len(item) - 6)}"
            for item, files in ((i, getattr(r, i, None) or []) for i in items)
            if files
        ]

    def _dry_block(self, r: logging.LogRecord) -> str:
        """Snakemake's job block, with file lists and the reason shortened."""
        w = self.width
        kind = ("local" if r.local else "") + ("checkpoint" if r.is_checkpoint else "rule")
        lines = ["", f"{kind} {r.rule_name}:", *self._file_lines(r, ("input", "output", "log"))]
        lines.append(f"    jobid: {r.jobid}")
        if getattr(r, "benchmark", None):
            lines.append(f"    benchmark: {r.benchmark}")
        from snakemake.logging import is_quiet_about

        if not is_quiet_about(self._formatter.quiet, "reason"):
            lines.append(shorten(f"    reason: {reason_text(r.reason, w - 12)}", w))
        wildcards = ", ".join(f"{k}={v}" for k, v in (r.wildcards or {}).items())
        if wildcards:
            lines.append(shorten(f"    wildcards: {wildcards}", w))
        if (getattr(r, "threads", 1) or 1) != 1:
            lines.append(f"    threads: {r.threads}")
        return "\n".join(lines)

    def _job_finished(self, record: logging.LogRecord, show: bool) -> None:
        jid = getattr(record, "job_id", None)
        job = self.jobs.get(jid) or _Job(jid)
        self.running.discard(jid)
        took = self.clock() - job.started if job.started is not None else None
        self.done[job.rule] = self.done.get(job.rule, 0) + 1
        if job.is_train and took is not None:
            self.durations.append(took)
            method = str(job.wildcards.get("method", ""))
            for _ in range(self.runs_per_job):
                self.estimator.observe(method, took / self.runs_per_job)
        if show:
            self.write(self.job_line("done", job, duration(took) if took is not None else ""))

    def _job_error(self, record: logging.LogRecord, show: bool) -> None:
        jid = getattr(record, "jobid", None)
        job = self.jobs.setdefault(jid, _Job(jid, rule=getattr(record, "rule_name", "?")))
        self.running.discard(jid)
        self.failed.add(jid)
        if not show:
            return
        r = record
        lines = [f"{time.strftime('%H:%M:%S')} FAILED {job.rule} {job.label}".rstrip()]
        lines.append(f"Error in rule {r.rule_name}:")
        if getattr(r, "rule_msg", None):
            lines.append(f"    message: {r.rule_msg}")
        lines.append(f"    jobid: {r.jobid}")
        lines += self._file_lines(r, ("input", "output"))
        logs = list(getattr(r, "log", None) or [])
        if logs:
            lines.append(f"    log: {', '.join(logs)} (check log file(s) for error details)")
        if getattr(r, "conda_env", None):
            lines.append(f"    conda-env: {r.conda_env}")
        if getattr(r, "shellcmd", None):
            lines.append(
                f"    shell:\n        {r.shellcmd}\n        (command exited with non-zero exit code)"
            )
        lines += [f"    {key}: {value}" for key, value in (getattr(r, "aux", None) or {}).items()]
        if self._formatter.show_failed_logs and logs:
            from snakemake.logging import show_logs

            lines.extend(show_logs(logs))
        status = self.status()
        if status:
            lines.append(shorten(f"{time.strftime('%H:%M:%S')} {status}", self.width))
        self.write("\n".join(lines), logging.ERROR)


#: The events :class:`LogHandler` shows its own way (if at all), each with its handler.
_HANDLERS = {
    LogEvent.PROGRESS: LogHandler._progress,
    LogEvent.JOB_STARTED: LogHandler._job_started,
    LogEvent.JOB_INFO: LogHandler._job_info,
    LogEvent.JOB_FINISHED: LogHandler._job_finished,
    LogEvent.JOB_ERROR: LogHandler._job_error,
    LogEvent.WORKFLOW_STARTED: LogHandler._workflow_started,
    LogEvent.SHELLCMD: LogHandler._shellcmd,
}
