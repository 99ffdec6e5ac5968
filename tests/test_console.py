"""The console keeps its promise: a stage's output goes to its log file, never to the console
(lnm.workflow.logged), every rule has a log its script writes to, and the logger plugin's
progress lines after a restart, its ETA and a stopped run (snakemake_logger_plugin_lnm)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

#: A stage as a workflow script runs it: output from Python (stdout, stderr, a warning), from C
#: level (a write to the file descriptors) and from a child process.
STAGE = """
import os, subprocess, sys, types, warnings
from lnm.workflow import logged

snakemake = types.SimpleNamespace(rule="estimate_noise", log=[sys.argv[1]],
                                  wildcards={"dataset": "breastmnist", "rate": "0.4"})
with logged(snakemake):
    for fold in range(3):
        print(f"fold {fold} epoch 1/2 loss 0.5")
    print("to stderr", file=sys.stderr)
    warnings.warn("a warning")
    os.write(1, b"C-level stdout\\n")
    os.write(2, b"C-level stderr\\n")
    subprocess.run([sys.executable, "-c", "import sys; print('child out'); "
                    "print('child err', file=sys.stderr)"], check=True)
    if len(sys.argv) > 2:
        raise RuntimeError("the stage fails")
print("after the stage")
"""


def _stage(tmp_path, *args):
    script = tmp_path / "stage.py"
    script.write_text(textwrap.dedent(STAGE))
    log = tmp_path / "logs" / "stage.log"
    log.parent.mkdir()  # Snakemake makes a log's folder before the job runs
    proc = subprocess.run([sys.executable, str(script), str(log), *args], cwd=REPO,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO)})  # fmt: skip
    return proc, log.read_text()


def test_a_stage_writes_everything_to_its_log_and_nothing_to_the_console(tmp_path):
    proc, log = _stage(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "after the stage\n" and proc.stderr == ""  # nothing leaked
    expected = ["fold 2 epoch 1/2", "to stderr", "a warning", "C-level stdout", "C-level stderr",
                "child out", "child err"]  # fmt: skip
    for text in expected:
        assert text in log, (text, log)
    first, *_, last = log.splitlines()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d estimate_noise dataset=breastmnist "
                    r"rate=0.4: started", first), first  # fmt: skip
    assert re.search(r"finished in \d+\.\d s$", last), last


def test_a_failing_stage_logs_its_traceback_and_fails(tmp_path):
    proc, log = _stage(tmp_path, "fail")
    assert proc.returncode != 0
    assert "RuntimeError: the stage fails" in log and "FAILED after" in log
    assert "fold 0" not in proc.stdout + proc.stderr  # the stage's own output stays in the log
    assert "RuntimeError: the stage fails" in proc.stderr  # Snakemake shows the error too


def _rules() -> dict[str, str]:
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    text += "\n" + (REPO / "Snakefile").read_text()
    blocks = re.split(r"^(?=rule \w+:)", text, flags=re.M)
    return {m.group(1): b for b in blocks if (m := re.match(r"rule (\w+):", b))}


def test_every_rule_has_a_log_file_and_its_script_writes_to_it():
    rules = _rules()
    assert {"train", "estimate_noise", "classifier_generator", "manifest"} <= set(rules)
    for name, block in rules.items():
        if name == "all":  # the target rule runs nothing
            assert "script:" not in block and "shell:" not in block
            continue
        assert re.search(r"^    log:", block, re.M), f"rule {name} has no log file"
        script = re.search(r'^    script:\n\s+"\.\./(workflow_scripts/\S+\.py)"', block, re.M)
        assert script, f"rule {name} runs no workflow script"
        source = (REPO / script.group(1)).read_text()
        assert "with logged(snakemake)" in source, f"{script.group(1)} does not log"


# ---------------------------------------------------------------- progress after a restart
def _finished(results, run_id, seconds=None):
    """A finished run folder (its metrics.json) and its job's benchmark file."""
    run = results / "runs" / run_id
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    if seconds is not None:
        bench = results / "benchmarks" / "train" / f"{run_id}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:{seconds}\t100\n")


def _run_id(i, method, noise="symmetric"):
    return f"breastmnist/{noise}-0.{i % 9 + 1}-n{i}/{method}/resnet8/s0"


def _train_job(jobid, run_id):
    from tests.test_cli import train_info

    dataset, tag, method, backbone, seed = run_id.split("/")
    noise, rate, noise_seed = tag.rsplit("-", 2)
    r = train_info(jobid, method, "x.log", rate=rate)
    r.wildcards = dict(dataset=dataset, noise=noise, rate=rate, noise_seed=noise_seed[1:],
                       method=method, backbone=backbone, seed=seed[1:])  # fmt: skip
    return r


def test_finished_runs_are_read_from_the_results_folder(tmp_path):
    from lnm.progress import finished_runs

    _finished(tmp_path, _run_id(0, "ce"), 12.5)
    _finished(tmp_path, _run_id(1, "dividemix", "instance_classifier"))  # no benchmark file
    (tmp_path / "runs" / _run_id(2, "ce")).mkdir(parents=True)  # unfinished: no metrics.json
    runs = finished_runs(tmp_path)
    assert sorted(runs) == sorted(
        [_run_id(0, "ce"), _run_id(1, "dividemix", "instance_classifier")]
    )
    assert runs[_run_id(0, "ce")].seconds == 12.5 and runs[_run_id(0, "ce")].method == "ce"
    assert runs[_run_id(1, "dividemix", "instance_classifier")].seconds is None


def test_a_restart_counts_the_finished_runs_and_estimates_per_method(tmp_path):
    """24 runs finished before the restart (12 CE at 10 s, 12 DivideMix at 60 s), one more
    DivideMix run is on disk but will be redone; 86 runs are planned, one of them of a method
    (DISC) without a finished run: it is estimated from the relative costs."""
    from lnm.progress import RELATIVE_COST
    from lnm.workflow import PLAN
    from tests.test_cli import LogEvent, lines, make_handler, record

    res = tmp_path / "results"
    for i in range(12):
        _finished(res, _run_id(i, "ce"), 10)
        _finished(res, _run_id(i, "dividemix"), 60)
    redo = _run_id(99, "dividemix")
    _finished(res, redo, 60)
    planned = {_run_id(100 + i, "ce"): "ce" for i in range(43)}
    planned |= {_run_id(200 + i, "dividemix"): "dividemix" for i in range(41)}
    planned |= {redo: "dividemix", _run_id(300, "disc"): "disc"}
    assert len(planned) == 86
    h = make_handler()
    h.emit(record(LogEvent.RESOURCES_INFO, cores=2))
    h.emit(record(LogEvent.RUN_INFO, stats={"train": 86, "total": 90}))
    h.emit(record(None, msg="lnm: 86 training run(s) to train",
                  **{PLAN: {"results": str(res), "planned": planned, "runs_per_job": 1,
                            "methods": {"ce": "ce", "dividemix": "dividemix", "disc": "disc"}}}))  # fmt: skip
    assert lines(h)[-1].endswith(f"runs 24/110 already done in {res}; 86 to train")

    h.emit(record(LogEvent.JOB_STARTED, jobs=[1]))
    h.emit(_train_job(1, _run_id(100, "ce")))
    disc = 780 / (12 * RELATIVE_COST["ce"] + 13 * RELATIVE_COST["dividemix"])
    disc *= RELATIVE_COST["disc"]
    # left: 42 CE, 42 DivideMix and DISC; the running CE run has 10 s to go; over 2 slots
    eta = (42 * 10 + 42 * 60 + disc + 10) / 2
    from snakemake_logger_plugin_lnm import duration

    assert lines(h)[-1].endswith(
        f"runs 24/110 done, 1 running, 85 left, ETA {duration(eta, coarse=True)}"
    ), lines(h)[-1]
    h.clock.now += 4
    h.emit(record(LogEvent.JOB_FINISHED, job_id=1))  # CE now averages (12 × 10 + 4) / 13 s
    ce = (120 + 4) / 13
    eta = (42 * ce + 42 * 60 + disc) / 2
    assert lines(h)[-1].endswith(
        f"runs 25/110 done, 0 running, 85 left, ETA {duration(eta, coarse=True)}"
    ), lines(h)[-1]


def test_the_estimator_scales_finished_runs_by_relative_costs():
    from lnm.progress import Estimator

    est = Estimator(costs={"ce": 1.0, "dividemix": 4.0, "disc": 2.0}, aliases={"ce_v": "ce"})
    assert est.per_run("ce") is None  # nothing finished yet
    est.observe("ce", 10)
    est.observe("ce", 14)
    assert est.per_run("ce") == 12
    assert est.per_run("dividemix") == pytest.approx(48)  # 12 s per unit of cost x 4
    est.observe("dividemix", 60)  # ratio estimate over all: (24 + 60) / (2 x 1 + 4) = 14
    assert est.per_run("disc") == pytest.approx(28)
    assert est.per_run("ce_v") == pytest.approx(14)  # a variant costs what its method costs
    assert est.per_run("unknown") == pytest.approx(14 * 7 / 3)  # the mean cost


# ---------------------------------------------------------------- a stopped run
def test_a_stopped_run_says_so_once_and_what_finished(tmp_path):
    from tests.test_cli import LogEvent, lines, make_handler, record, train_info

    h = make_handler()
    h.emit(record(LogEvent.RUN_INFO, stats={"train": 5, "total": 6}))
    h.emit(record(LogEvent.JOB_STARTED, jobs=[1, 2]))
    h.emit(train_info(1, "ce", tmp_path / "a.log"))
    h.emit(train_info(2, "sce", tmp_path / "b.log"))
    before = len(lines(h))
    for _ in range(31):
        h.emit(record(None, msg="Will exit after finishing currently running jobs (scheduler)."))
    h.emit(record(LogEvent.JOB_FINISHED, job_id=1))
    h.emit(record(LogEvent.JOB_FINISHED, job_id=2))
    h.emit(record(None, msg="Shutting down, this might take some time."))
    h.emit(record(LogEvent.ERROR, level=logging.ERROR, exception="WorkflowError",
                  msg="WorkflowError:\nAt least one job did not complete successfully."))  # fmt: skip
    new = lines(h)[before:]
    assert len(new) == 4, new  # stopping, two done lines, stopped
    assert re.fullmatch(r"\d\d:\d\d:\d\d stopping \(SIGTERM\): no new job starts; waiting for "
                        r"the 2 running jobs to finish", new[0]), new[0]  # fmt: skip
    assert re.fullmatch(r"\d\d:\d\d:\d\d stopped: runs 2/5 done, 2 jobs finished in this run, "
                        r"none failed; the same command continues", new[-1])  # fmt: skip
    assert "Will exit" not in h.stream.getvalue() and "did not complete" not in h.stream.getvalue()


@pytest.mark.slow
def test_sigterm_stops_a_real_run_with_one_line_each_way(tmp_path):
    """The smoke preset on synthetic data, sent SIGTERM once its first training job has
    started: the running jobs finish, the console says once that the run is stopping and at
    the end what finished; no repeated notice, no error (none failed); every finished job's
    log is non-empty. Run again, the workflow counts the runs done before and trains the rest."""
    import os
    import signal
    import threading
    import time

    from tests.conftest import SYNTHETIC_RULES, synthetic_results

    res = tmp_path / "results"
    synthetic_results(res)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
           str(REPO / "presets" / "smoke.yaml"), "--config", f"results={res}",
           "datasets=[pathmnist]", "--allowed-rules", *SYNTHETIC_RULES]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    out: list[str] = []
    started = threading.Event()

    def read():
        for line in proc.stdout:
            out.append(line.rstrip("\n"))
            if re.match(r"\d\d:\d\d:\d\d start (ce|coteaching) ", line):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(300), "\n".join(out[-30:])
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(300) != 0  # a stopped run is not a finished one
    reader.join(10)
    text = "\n".join(out)
    stopping = [line for line in out if " stopping (SIGTERM)" in line]
    stopped = [line for line in out if re.search(r"\d stopped: runs \d/4 done", line)]
    assert len(stopping) == 1 and len(stopped) == 1, text[-3000:]
    assert "Will exit" not in text and "did not complete successfully" not in text, text[-3000:]
    assert "Error" not in text and "FAILED" not in text, text[-3000:]
    done = int(re.search(r"runs (\d)/4 done", stopped[0]).group(1))
    assert 1 <= done < 4
    logs = [p for p in (res / "logs").rglob("*.log")]
    assert logs and all(p.stat().st_size > 0 for p in logs), [
        p for p in logs if not p.stat().st_size
    ]

    # the training runs only (the report stages are not what this checks)
    again = subprocess.run([*cmd, "--until", "train"], cwd=REPO, env=env, capture_output=True,
                           text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"runs {done}/4 already done in {res}; {4 - done} to train" in again.stderr
    assert "runs 4/4 done" in again.stderr


def test_the_full_logs_path_is_printed_relative_to_the_working_directory(tmp_path, monkeypatch):
    from tests.test_cli import lines, make_handler, record

    repo = tmp_path / ("a-checkout-in-a-deep-folder-" * 4)  # an absolute path past the width
    log = repo / ".snakemake" / "log" / "2026-12-07T035811.994100.snakemake.log"
    log.parent.mkdir(parents=True)
    monkeypatch.chdir(repo)
    h = make_handler()
    h.emit(record(None, msg=f"Complete log(s): {log}"))
    assert len(f"Complete log(s): {log}") > 120
    assert lines(h) == [f"Complete log(s): .snakemake/log/{log.name}"]


def test_the_relative_costs_name_methods_that_exist():
    """(A method added later has none until measured: it counts as the mean of the others.)"""
    from lnm.grid import methods
    from lnm.progress import RELATIVE_COST

    assert set(RELATIVE_COST) <= set(methods()) and RELATIVE_COST["ce"] == 1.0
    assert all(c > 0 for c in RELATIVE_COST.values())
