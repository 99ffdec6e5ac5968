"""The ``lnm`` command (help, choices, validate, params) and the console logger plugin
(``snakemake_logger_plugin_lnm``) fed with the log records Snakemake emits."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys

from snakemake_interface_logger_plugins.common import LogEvent

import snakemake_logger_plugin_lnm as plugin
from lnm import grid
from lnm.cli import main
from tests.conftest import REPO


def lnm(*args, capsys) -> tuple[int, str]:
    try:
        rc = main(list(args))
    except SystemExit as exit:  # --help and argparse errors
        rc = exit.code
    out = capsys.readouterr()
    return rc, out.out + out.err


# ---------------------------------------------------------------- lnm
def test_validate_takes_presets_positionally_merged_over_config_yaml(capsys):
    from lnm.config import load_config

    runs = len(grid.run_dirs(load_config(REPO / "presets" / "demo.yaml")))
    rc, out = lnm("validate", "presets/demo.yaml", capsys=capsys)
    assert rc == 0, out
    assert f"{runs} training runs" in out and "results/demo" in out
    rc, out = lnm("validate", "--config", "presets/demo.yaml", capsys=capsys)  # still works
    assert rc == 0 and f"{runs} training runs" in out
    rc, out = lnm("validate", capsys=capsys)  # config.yaml alone: the paper grid
    assert rc == 0 and re.search(r"\d+ training runs", out)


def test_validate_reports_a_bad_config_with_its_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: [ce, coteching]\n")
    rc, out = lnm("validate", str(bad), capsys=capsys)
    assert rc == 1 and "methods[1]" in out and "'coteching'" in out


def test_validate_reports_the_readmes_four_mistakes_at_once_in_file_order(tmp_path, capsys):
    from tests.test_config import README_ERRORS, README_MISTAKES

    bad = tmp_path / "bad.yaml"
    bad.write_text(README_MISTAKES)
    rc, out = lnm("validate", str(bad), capsys=capsys)
    lines = out.splitlines()
    assert rc == 1 and lines[0] == "lnm validate: error: invalid config:", out
    assert len(lines) == 5 and all(
        a.strip().startswith(b) for a, b in zip(lines[1:], README_ERRORS)
    )


def test_validate_refuses_a_key_written_twice(tmp_path, capsys):
    twice = tmp_path / "twice.yaml"
    twice.write_text("seeds: [0]\nmethods: [ce]\nseeds: [1]\n")
    rc, out = lnm("validate", str(twice), capsys=capsys)
    assert rc == 1 and f"{twice}, line 3: key 'seeds' is written twice (first on line 1)" in out


def test_validate_lists_where_each_cell_override_applies_and_notes(tmp_path, capsys):
    rc, out = lnm("validate", "presets/reference.yaml", capsys=capsys)
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[1].startswith("  cell_overrides[0] (disc) on pathmnist, dermamnist, bloodmnist")
    assert lines[4] == (
        "  cell_overrides[3]: applies to no run of this grid (none of its patterns (real) is "
        "run here)"
    )
    pair = tmp_path / "pair.yaml"
    pair.write_text("datasets: [breastmnist]\nnoise: {patterns: {pairflip: [0.3]}}\n")
    rc, out = lnm("validate", str(pair), capsys=capsys)
    assert rc == 0 and out.count("note: pairflip on breastmnist (2 classes) is exactly") == 1


def test_params_lists_each_hyperparameter_with_its_default(capsys):
    rc, out = lnm("params", "coteaching", capsys=capsys)
    assert rc == 0
    assert re.search(
        r"^\s+forget_rate = null\s+\[number\|null in \[0, 1\), or 'estimated'\]", out, re.M
    ), out
    assert re.search(r"^\s+num_gradual = 10\b", out, re.M), out
    assert "nominal noise rate" in out  # the description
    assert "dividemix" not in out
    rc, out = lnm("params", capsys=capsys)  # all methods
    assert rc == 0 and all(re.search(rf"^{m}\s", out, re.M) for m in grid.methods())
    rc, out = lnm("params", "coteching", capsys=capsys)
    assert rc == 2 and "'coteching' is not a method" in out and "coteaching_plus" in out


def test_params_needs_no_torch():
    code = (
        "import sys; from lnm.cli import main; main(['params']); assert 'torch' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_help_lists_choices_and_defaults(capsys):
    rc, out = lnm("train", "--help", capsys=capsys)
    assert rc == 0
    for name in (*grid.methods(), *grid.BACKBONES):
        assert name in out, name
    assert "(default: ce)" in out and "(default: resnet8)" in out and "(default: 0)" in out
    rc, out = lnm("noise", "--help", capsys=capsys)
    assert all(p in out for p in grid.PATTERNS) and "(default: 0.1)" in out
    rc, out = lnm("download", "--help", capsys=capsys)
    assert "breastmnist" in out and "224" in out and "(default: 28)" in out
    rc, out = lnm("train", "--method", "coteching", "--data", "x", "--noise", "y", "--out", "z",
                  capsys=capsys)  # fmt: skip
    assert rc == 2 and "invalid choice: 'coteching'" in out


def test_every_option_has_help():
    from lnm.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"lnm {name} {action.option_strings or action.dest}: no help"


# ---------------------------------------------------------------- logger plugin
class Settings:
    """The output settings Snakemake passes to a logger plugin."""

    printshellcmds = False
    nocolor = True
    quiet = None
    debug_dag = False
    verbose = False
    show_failed_logs = False
    stdout = False
    dryrun = False


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def record(event=None, msg="", level=logging.INFO, **extra) -> logging.LogRecord:
    r = logging.LogRecord("snakemake.logging", level, "x.py", 1, msg, None, None)
    r.__dict__.update(extra)
    if event is not None:
        r.event = event
    return r


def train_info(jobid, method, log, rate="0.4"):
    wildcards = dict(dataset="breastmnist", noise="symmetric", rate=rate, noise_seed="0",
                     method=method, backbone="resnet8", seed="0")  # fmt: skip
    return record(LogEvent.JOB_INFO, jobid=jobid, rule_name="train", rule_msg=None, local=False,
                  input=[f"results/data/f{i}.h5" for i in range(40)], output=["metrics.json"],
                  log=[str(log)], benchmark=None, wildcards=wildcards, reason="Missing output",
                  resources={}, priority=0, threads=1, indent=False, is_checkpoint=False,
                  printshellcmd=True, is_handover=False, shellcmd=None)  # fmt: skip


def make_handler(dryrun=False, **settings):
    common = Settings()
    common.dryrun = dryrun
    h = plugin.LogHandler(common, plugin.LogHandlerSettings(interval=0, **settings))
    h.stream = io.StringIO()
    h.clock = Clock()
    return h


def lines(h) -> list[str]:
    return h.stream.getvalue().splitlines()


def test_plugin_is_registered_with_snakemake():
    from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry

    assert "lnm" in LoggerPluginRegistry().plugins


def test_plugin_prints_short_progress_lines_with_counts_eta_and_current_epoch(tmp_path):
    h = make_handler()
    logs = [tmp_path / f"s{i}.log" for i in range(3)]
    h.emit(record(LogEvent.RESOURCES_INFO, cores=2))
    h.emit(record(LogEvent.RUN_INFO, msg="Job stats: ...",
                  stats={"noise": 1, "train": 5, "manifest": 1, "all": 1, "total": 8}))  # fmt: skip
    # the manifest job lists thousands of inputs: never printed
    huge = [f"results/runs/r{i}/metrics.json" for i in range(5000)]
    h.emit(record(LogEvent.JOB_STARTED, jobs=[7]))
    h.emit(record(LogEvent.JOB_INFO, jobid=7, rule_name="manifest", rule_msg=None, local=True,
                  input=huge, output=["MANIFEST.sha256"], log=[], wildcards={}, threads=1,
                  reason="Input files updated by another job: " + ", ".join(huge)))  # fmt: skip
    h.emit(record(LogEvent.JOB_FINISHED, job_id=7))
    h.emit(record(LogEvent.PROGRESS, done=1, total=8))

    h.emit(record(LogEvent.JOB_STARTED, jobs=[1, 2]))
    h.emit(train_info(1, "ce", logs[0]))
    h.emit(train_info(2, "coteaching_plus", logs[1]))
    short = lines(h)[-3]  # a start line: the job, then the status
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d start ce breastmnist symmetric-0.4-n0 resnet8 s0 · "
        r"runs 0/5 done, 1 running, 4 left, ETA after the first run",
        short,
    ), short
    long = lines(h)[-2:]  # a longer one: the status goes on a second line; nothing is cut
    assert long[0].endswith(" start coteaching_plus breastmnist symmetric-0.4-n0 resnet8 s0")
    assert long[1] == " " * 15 + "runs 0/5 done, 2 running, 3 left, ETA after the first run"

    h.clock.now += 100  # ce finishes after 100 s
    h.emit(record(LogEvent.JOB_FINISHED, job_id=1))
    done = lines(h)[-1]
    assert re.search(r"done\s+ce breastmnist symmetric-0.4-n0 resnet8 s0 \(1m40s\)", done), done
    # 3 left × 100 s + coteaching_plus's 0 s left (it ran 100 s already), over 2 cores: 150 s
    assert "runs 1/5 done, 1 running, 3 left, ETA 2m30s" in done, done

    h.emit(record(LogEvent.JOB_STARTED, jobs=[3]))
    h.emit(train_info(3, "ce", logs[2], rate="0.2"))
    logs[1].write_text(
        "[coteaching_plus breastmnist symmetric-0.4 s0] epoch 1/8 loss 0.6 val 60 (1.0s)\n"
        "[coteaching_plus breastmnist symmetric-0.4 s0] epoch 2/8 loss 0.5 val 61 (1.0s)\n"
    )
    h.clock.now += 20
    h.report_running()
    report = lines(h)[-3:]
    assert report[0].endswith("runs 1/5 done, 2 running, 2 left, ETA 2m20s · steps 2/8 done")
    assert (
        report[1] == "  coteaching_plus breastmnist symmetric-0.4-n0 resnet8 s0: epoch 2/8, 2m00s"
    )
    assert report[2] == "  ce breastmnist symmetric-0.2-n0 resnet8 s0: starting, 20s"

    assert all(len(line) <= 120 for line in lines(h)), max(lines(h), key=len)
    assert "r4999" not in h.stream.getvalue() and "r1/" not in h.stream.getvalue()


def test_plugin_prints_errors_in_full_with_the_log_path(tmp_path):
    h = make_handler()
    h.emit(record(LogEvent.RUN_INFO, stats={"train": 2, "total": 2}))
    h.emit(record(LogEvent.JOB_STARTED, jobs=[1]))
    log = tmp_path / "logs" / "train" / "breastmnist" / "s0.log"
    h.emit(train_info(1, "ce", log))
    message = "RuleException: CalledProcessError in file rules/train.smk, line 4: " + "x" * 300
    h.emit(record(LogEvent.JOB_ERROR, level=logging.ERROR, rule_name="train", rule_msg=None,
                  msg=None, jobid=1, input=[f"in{i}" for i in range(999)], output=["out"],
                  log=[str(log)], conda_env=None, container_img=None, aux={}, indent=False,
                  shellcmd=None))  # fmt: skip
    h.emit(record(LogEvent.ERROR, msg=message, level=logging.ERROR, exception="RuleException"))
    h.emit(record(None, msg="Exiting because a job execution failed.", level=logging.ERROR))
    text = h.stream.getvalue()
    assert f"log: {log} (check log file(s) for error details)" in text
    assert message in text  # never cut
    assert "Exiting because a job execution failed." in text
    assert "runs 0/2 done, 0 running, 1 left, 1 FAILED" in text
    assert "in998" not in text  # the input list is not


def test_plugin_dry_run_keeps_snakemakes_job_blocks_with_short_file_lists():
    h = make_handler(dryrun=True)
    h.emit(train_info(4, "ce", "results/logs/train/s0.log"))
    text = h.stream.getvalue()
    assert re.search(r"^rule train:\n(    .*\n)*    output: metrics.json\n", text, re.M), text
    assert "(+" in text and "f39.h5" not in text
    assert all(len(line) <= 120 for line in text.splitlines())


def test_plugin_honours_quiet_and_prints_other_messages(tmp_path):
    from snakemake.settings.enums import Quietness

    h = make_handler()
    h.common_settings.quiet = {Quietness.RULES}
    h.__post_init__()
    h.stream = io.StringIO()
    h.emit(record(LogEvent.RUN_INFO, stats={"train": 1, "total": 1}))
    h.emit(record(LogEvent.JOB_STARTED, jobs=[1]))
    h.emit(train_info(1, "ce", tmp_path / "s0.log"))  # a rule line: quiet
    h.emit(record(None, msg="Nothing to be done (all requested files are present and up to date)."))
    h.emit(record(None, msg="Select jobs to execute..."))  # the scheduler's narration
    h.emit(record(None, msg="some warning " + "w" * 200, level=logging.WARNING))
    out = lines(h)
    assert out[0].startswith("Nothing to be done") and len(out) == 2
    assert out[1] == "some warning " + "w" * 200  # warnings in full
    assert h._train_counts() == (1, 0, 1, 0)  # counted although not shown
