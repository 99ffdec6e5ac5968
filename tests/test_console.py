"""The console keeps its promise: a stage's output goes to its log file, never to the console
(lnm.workflow.logged), every rule has a log its script writes to, and the logger plugin's
progress lines after a restart, its ETA and a stopped run (snakemake_logger_plugin_lnm)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

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
