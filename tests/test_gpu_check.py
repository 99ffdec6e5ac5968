"""benchmarks/gpu_check.sh cannot pass without checking, and its closing table
(benchmarks/gpu_summary.py) gives each figure its verdict against the GPU targets."""

import json
import os
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, benchmark

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
gpu_summary = benchmark("gpu_summary")

BLOCK = """
import os, sys
BLOCK = set(os.environ.get("BLOCK_MODULES", "").split())
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""


def blocking(tmp_path, modules: str) -> dict:
    """The environment of a Python in which ``modules`` do not import."""
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(BLOCK)
    return {"PYTHONPATH": str(fake), "BLOCK_MODULES": modules}


def check(tmp_path, *args, env=None):
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_the_step_budgets_and_the_reserve_fit_in_eight_minutes():
    text = SCRIPT.read_text()
    limit = int(re.search(r"^LIMIT=(\d+)$", text, re.M)[1])
    reserved = int(re.search(r"^RESERVED=(\d+)$", text, re.M)[1])
    start = int(re.search(r"^PREFLIGHT=(\d+)$", text, re.M)[1])
    steps = re.search(r"^STEPS=\(\n(.*?)^\)", text, re.M | re.S)[1]
    budgets = [int(line.split("|")[1]) for line in steps.splitlines() if line.strip()]
    assert limit == 480 and reserved >= 90 or reserved == 0
    assert sum(budgets) + reserved + start <= limit
    assert "pytest -m gpu" in steps.splitlines()[0]  # the GPU tests come first


def step_commands(text: str, table: str) -> list[str]:
    """The COMMAND column of gpu_check.sh's table ``table`` (STEPS, FULL_STEPS), unquoted."""
    lines = re.search(rf"^{table}=\(\n(.*?)^\)", text, re.M | re.S)[1].splitlines()
    return [line.strip()[1:-1].replace('\\"', '"').split("|", 3)[3] for line in lines]


def test_every_benchmark_the_check_runs_takes_its_flags():
    text = SCRIPT.read_text()
    env = {"PY": "python", "OUT": "/o", "RAW_DIR": "/r", "ROUNDS": "3", "BATCHES": "5"}
    scripts = []
    for cmd in step_commands(text, "STEPS") + step_commands(text, "FULL_STEPS"):
        argv = shlex.split(cmd.replace("\\$", "$"))
        if len(argv) < 2 or not argv[1].startswith("benchmarks/"):
            continue
        argv = [string.Template(a).substitute(env) for a in argv]
        name = Path(argv[1]).stem
        benchmark(name).parse_args(argv[2:])  # an unknown flag or a bad value exits
        scripts.append(name)
    assert scripts == ["throughput", "grid_cost", "reproduce_cell", "grid_cost", "pack_runs",
                       "compile_bench"]  # fmt: skip
    assert 'benchmarks/gpu_summary.py "$OUT"' in text


def test_the_summary_runs_as_the_check_calls_it(tmp_path):
    write(tmp_path, GOOD_STEPS, junit([("a", None, "")]), GOOD_TP, GOOD_GRID)
    script = str(REPO / "benchmarks" / "gpu_summary.py")
    proc = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "every target is met" in proc.stdout
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True)
    assert proc.returncode == 1 and "usage: gpu_summary.py OUT_DIR" in proc.stderr


def test_a_python_without_torch_fails(tmp_path):
    rc, out = check(tmp_path, "--python", sys.executable, env=blocking(tmp_path, "torch"))
    assert rc == 2 and "torch fails to import" in out and "nothing checked" in out
    rc, out = check(tmp_path, "--python", str(tmp_path / "no-python"))
    assert rc == 2 and "nothing checked" in out


@pytest.mark.slow  # imports every package the check needs (~20-90 s)
def test_missing_packages_are_named_with_the_steps_they_skip(tmp_path):
    env = blocking(tmp_path, "snakemake jsonschema medmnist cleanlab")
    rc, out = check(tmp_path, "--python", sys.executable, env=env)
    assert rc != 0
    assert "MISSING Python packages: jsonschema snakemake medmnist cleanlab" in out
    assert re.search(
        r"grid cost: paper grid at 28 px, ResNet-18 +-- SKIPPED: needs jsonschema", out
    )
    assert "--wheels DIR" in out
    if not torch.cuda.is_available():  # and without CUDA nothing is checked, nor a table made
        assert rc == 2 and "no GPU: nothing checked" in out and "RESULT" not in out


def test_an_unknown_wheels_folder_is_refused(tmp_path):
    rc, out = check(tmp_path, "--python", sys.executable, "--wheels", str(tmp_path / "nowhere"))
    assert rc == 2 and "is not a folder" in out


# ------------------------------------------------------------------------------ the table
def write(out: Path, steps, junit=None, throughput=None, grid=None):
    out.mkdir(parents=True, exist_ok=True)
    (out / "steps.tsv").write_text("".join("\t".join(map(str, s)) + "\n" for s in steps))
    if junit is not None:
        (out / "pytest_gpu.xml").write_text(junit)
    if throughput is not None:
        (out / "throughput.json").write_text(json.dumps({"rows": throughput}))
    if grid is not None:
        (out / "grid_cost_28.json").write_text(json.dumps(grid))


def junit(cases):
    body = ""
    for name, kind, msg in cases:
        inner = f'<{kind} message="{msg}"/>' if kind else ""
        body += f'<testcase classname="tests.test_x" name="{name}">{inner}</testcase>'
    return (
        f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{body}</testsuite></testsuites>'
    )


def tp(backbone, size, ours, dl, compute):
    return {
        "device": "cuda",
        "backbone": backbone,
        "size": size,
        "ours": ours,
        "dataloader": dl,
        "compute": compute,
        "ours/dataloader": ours / dl,
        "ours/compute": ours / compute,
    }


GOOD_STEPS = [("pytest -m gpu", 110, 40, "ok", ""), ("throughput", 110, 60, "ok", "")]
GOOD_TP = [tp("resnet18", 28, 30000, 2500, 33000), tp("resnet50", 224, 3000, 1000, 3300)]
GOOD_GRID = {"device": "NVIDIA H100 80GB HBM3", "total_hours": 6.5, "training_runs": 1188}


def summary(out):
    lines = []
    rc = gpu_summary.summarize(out, lines.append)
    return rc, "\n".join(lines)


def test_all_checks_ran_and_met(tmp_path):
    write(tmp_path, GOOD_STEPS, junit([("a", None, ""), ("b", None, "")]), GOOD_TP, GOOD_GRID)
    rc, text = summary(tmp_path)
    assert rc == 0 and "every target is met" in text
    assert "12.00x" in text and "6.50 device-h" in text


def test_a_missed_target_is_exit_3_with_the_row_marked(tmp_path):
    slow = [tp("resnet18", 28, 20000, 2500, 33000), GOOD_TP[1]]  # 8x, 61 %
    write(tmp_path, GOOD_STEPS, junit([("a", None, "")]), slow, {**GOOD_GRID, "total_hours": 9})
    rc, text = summary(tmp_path)
    assert rc == 3
    missed = [line for line in text.splitlines() if line.rstrip().endswith("  MISSED")]
    assert len(missed) == 3, text  # 8x < 10x, 61 % < 85 %, 9 h > 8 h


@pytest.mark.parametrize(
    "case",
    [
        "step failed",
        "step skipped",
        "timeout",
        "test skipped",
        "test failed",
        "no tests",
        "no data",
    ],
)
def test_anything_unchecked_fails_the_check(tmp_path, case):
    steps, cases, tput = list(GOOD_STEPS), [("a", None, "")], GOOD_TP
    if case == "step failed":
        steps.append(("grid", 100, 3, "failed", "exit 1"))
    elif case == "step skipped":
        steps.append(("grid", 100, 0, "skipped", "needs jsonschema"))
    elif case == "timeout":
        steps.append(("grid", 100, 110, "timeout", "over its budget"))
    elif case == "test skipped":
        cases.append(("b", "skipped", "needs a CUDA GPU"))
    elif case == "test failed":
        cases.append(("b", "failure", "assert 1 == 2"))
    elif case == "no tests":
        cases = []
    elif case == "no data":
        tput = []
    write(tmp_path, steps, junit(cases), tput, GOOD_GRID)
    rc, text = summary(tmp_path)
    assert rc == 1 and "nothing here can be trusted" in text


def test_not_applicable_skips_and_extra_rows(tmp_path):
    write(
        tmp_path,
        GOOD_STEPS + [("two GPUs", 10, 0, "n/a", "one GPU here")],
        junit([("a", None, ""), ("b", "skipped", "not applicable: one GPU")]),
        GOOD_TP,
        GOOD_GRID,
    )
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "repro.json").write_text(
        json.dumps(
            [{"check": "BreastMNIST CE", "figure": "86.0 %", "target": ">= 83 %", "verdict": "met"}]
        )
    )
    rc, text = summary(tmp_path)
    assert rc == 0 and "BreastMNIST CE" in text
    (tmp_path / "checks" / "repro.json").write_text(
        json.dumps(
            [
                {
                    "check": "RetinaMNIST CE",
                    "figure": "40 %",
                    "target": ">= 50 %",
                    "verdict": "FAILED",
                }
            ]
        )
    )
    assert summary(tmp_path)[0] == 1
