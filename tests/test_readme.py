"""The README's commands run as written, in order, on a copy of the repository, and what the
console printed is checked.

The commands are read from the fenced ``bash`` blocks of the README and then of
docs/workflow.md (the stage-by-stage commands; comment lines dropped, backslash continuations
joined) and run one by one with ``bash -c`` in a copy of the working tree (``git ls-files
--cached --others --exclude-standard``: what a fresh clone plus the uncommitted changes holds),
in the order they appear. Four kinds are not run exactly as written, each for a stated reason:

- the set-up line (``python3 -m venv ... pip install ...``) is skipped: it downloads several GB;
  the test runs in the environment it would create (this interpreter's ``bin`` first on PATH,
  the copy first on PYTHONPATH so its ``lnm`` and logger plugin are the ones imported);
- the demo run (``snakemake --cores 2 --configfile presets/demo.yaml``) is run as written with
  ``--dry-run`` appended (160 training runs take many minutes on 2 cores), and then for real on
  a smaller grid with the demo's results folder kept: every ``snakemake`` and ``lnm status``
  command that names ``presets/demo.yaml`` gets one more config file, ``smaller_demo.yaml``
  (presets/smoke.yaml without its ``results``, plus classifier-based instance noise and the
  noise-estimation stage at one epoch and two folds, so that every kind of job runs), so that
  the commands after the demo (``lnm status``, ``lnm verify results/demo``, the report) find a
  finished demo to work on. Before the demo, ``lnm status`` is run once more and must say what
  is missing;
- the GPU and SLURM lines (the paper grid) are run with ``--dry-run`` appended: this machine
  has neither; the dry run plans the paper grid's jobs (every training run of config.yaml);
- ``pytest -q`` runs with ``--collect-only`` appended: it must start and find the tests, but
  running the quick suite inside this test would take minutes and CI runs it anyway.

What the demo printed is checked as the issue that asked for it put it: no line longer than
120 characters, no line from inside a job (every line is the logger plugin's or one of
Snakemake's own start and end messages), and every job's log file is non-empty.

The raw MedMNIST files are never downloaded: ``HOME`` is a temporary folder whose
``.medmnist`` (the README's and config.yaml's ``raw_dir``, ``~/.medmnist``) links to the shared
copy (``$LNM_RAW_DIR`` or ``../shared/data/medmnist``), so every path in the commands is
exactly the one a user types.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, SHARED_MEDMNIST

README = REPO / "README.md"
#: Files whose ```bash blocks are run, in this order.
COMMAND_FILES = (README, REPO / "docs" / "workflow.md")
DEMO_RUN = "snakemake --cores 2 --configfile presets/demo.yaml"
DEMO_CONFIG = "--configfile presets/demo.yaml"
QUICK_START_LINES = 60
#: What the smaller demo adds to presets/smoke.yaml: every kind of job at its smallest.
SMALLER = {
    "noise": {"patterns": {"instance_classifier": [0.4]}, "classifier": {"folds": 2, "epochs": 1}},
    "estimation": {"enabled": True, "folds": 2, "epochs": 1},
}
SMALLER_RUNS = 6  # CE and Co-teaching on clean, symmetric 0.4 and instance_classifier 0.4
#: Console lines that are Snakemake's own, around the plugin's (the start and end of a run).
SNAKEMAKE_LINES = re.compile(
    r"(Using workflow specific profile .*|Config file .* is extended by additional config .*"
    r"|Assuming unrestricted shared filesystem usage\.|Snakemake \d[\d.]*; config files: .*"
    r"|Building DAG of jobs\.\.\.|Using shell: .*|Provided cores: \d+"
    r"|Rules claiming more threads will be scaled down\.|Conda environments: ignored"
    r"|Job stats:|job +count|-+ +-+|\w+ +\d+|Complete log\(s\): .*|Elapsed time: .*)"
)
#: The logger plugin's lines: job lines and status lines (a time first), the running jobs of a
#: periodic report, a status continued on its own line, a wrapped line's continuation.
PLUGIN_LINES = re.compile(
    r"\d\d:\d\d:\d\d (start |done  |runs |FAILED |stopping |stopped: ).*"
    r"|  \S.*: (epoch \d+/\d+|starting|\d+[smh]).*|  \.\.\. and \d+ more running"
    r"| {15}runs \d+/\d+ .*| {4}\S.*"
)


def readme_commands(text: str | None = None) -> list[str]:
    """The commands of the ```bash blocks of :data:`COMMAND_FILES` (or of ``text``), in order."""
    if text is None:
        return [c for f in COMMAND_FILES for c in readme_commands(f.read_text())]
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1].rstrip() + " "
                continue
            commands.append(" ".join((pending + line).split()))
            pending = ""
        assert not pending, f"a README command ends with a backslash: {pending}"
    return commands


def kind(command: str) -> str:
    """``setup`` (skipped), ``demo`` (dry run + smaller real run), ``gpu`` (the paper grid on
    GPUs or SLURM: dry run), ``pytest`` (collect only), ``gpu_check`` (run as written: without
    a GPU it must exit 2 saying nothing was checked) or ``run`` (as written)."""
    if "pip install" in command:
        return "setup"
    if without_comment(command) == DEMO_RUN:
        return "demo"
    if command.startswith("snakemake") and re.search(r"--resources gpu=|--workflow-profile",
                                                     command):  # fmt: skip
        return "gpu"
    if command.startswith("pytest"):
        return "pytest"
    if command.startswith("bash benchmarks/gpu_check.sh"):
        return "gpu_check"
    return "run"


def quick_start(text: str | None = None) -> list[str]:
    """The README's quick start: its lines from its heading to the next section's."""
    lines = (README.read_text() if text is None else text).splitlines()
    start = lines.index("## Quick start")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def test_the_quick_start_fits_one_screen_and_links_the_reference_docs():
    qs = quick_start()
    assert len(qs) <= QUICK_START_LINES, f"the quick start has {len(qs)} lines"
    text = "\n".join(qs)
    for topic in (
        "pip install",
        DEMO_RUN,
        "--report",
        "new-method",
        "datasets.md",
        "--resources gpu=1",
        "--resources gpu=2",
        "profiles/slurm",
        "docs/gpu.md",
    ):
        assert topic in text, topic  # fmt: skip
    readme = README.read_text()
    for doc in ("workflow", "configuration", "methods", "noise", "statistics", "speed",
                "datasets", "gpu", "verification", "deviations"):  # fmt: skip
        assert f"](docs/{doc}.md)" in readme, doc
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)", readme):
        if link not in ("docs/gpu.md", "docs/verification.md"):  # other helpers write these
            assert (REPO / link).exists(), link


def without_comment(command: str) -> str:
    return command.split(" #", 1)[0].rstrip()


def test_readme_commands_are_found_and_consistent_with_where_the_demo_writes():
    commands = readme_commands()
    kinds = [kind(c) for c in commands]
    assert kinds.count("setup") == 1 and kinds.count("demo") == 1, commands
    assert kinds.index("setup") == 0 and kinds.index("demo") < kinds.index("pytest")
    assert kinds.count("gpu") == 3 and kinds.count("gpu_check") == 1, commands
    status = [c for c in commands if c.startswith("lnm status")]
    assert status == ["lnm status presets/demo.yaml"] and commands.index(status[0]) > kinds.index(
        "demo"
    )
    demo_results = yaml.safe_load((REPO / "presets" / "demo.yaml").read_text())["results"]
    after_demo = commands[kinds.index("demo") + 1 :]
    assert f"lnm verify {demo_results}" in after_demo
    report = [c for c in after_demo if "--report" in c]
    assert report == [f"snakemake --report {demo_results}/report.html {DEMO_CONFIG}"]
    for c in commands:
        assert "shared/data" not in c, f"users download the data; {c!r} uses the test copy"
        for preset in re.findall(r"--configfile (presets/\S+\.yaml)", c):  # same results folder
            results = yaml.safe_load((REPO / preset).read_text())["results"]
            for path in re.findall(r"\bresults/\S+", c):
                assert path.startswith(results + "/"), (c, results)


def _copy_repository(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src, dst = REPO / name, dest / name
        if not (src.exists() or src.is_symlink()) or src.is_dir() and not src.is_symlink():
            continue  # deleted in the working tree, or a submodule
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
    return dest


def merged(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` as config files are (dicts deeply, anything else replaced)."""
    out = dict(base)
    for k, v in over.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = merged(out[k], v) if both else v
    return out


def console_problems(output: str) -> list[str]:
    """Lines of a ``snakemake`` run's console that are too long (over 120 characters) or come
    from inside a job (neither the logger plugin's nor Snakemake's own)."""
    bad = []
    for line in output.splitlines():
        if len(line) > 120:
            bad.append(f"longer than 120 characters: {line}")
        elif line and not (SNAKEMAKE_LINES.fullmatch(line) or PLUGIN_LINES.fullmatch(line)):
            bad.append(f"not the console's: {line}")
    return bad


def test_console_problems_finds_long_lines_and_lines_from_inside_a_job():
    good = (
        "Building DAG of jobs...\nProvided cores: 2\nJob stats:\njob      count\n-----  -------\n"
        "train        4\n12:00:01 start ce breastmnist none-0.0-n0 resnet8 s0 · runs 0/4 done\n"
        "  ce breastmnist none-0.0-n0 resnet8 s0: epoch 2/8, 30s\n"
        "12:00:09 done  noise breastmnist none-0.0-n0 (2s) · runs 0/4 done\nElapsed time: 0:01:02"
    )
    assert console_problems(good) == []
    leaked = "estimator fold 4/5 (864 train images) epoch 8/10: loss 1.3067, train acc 0.487"
    assert console_problems(good + "\n" + leaked) == [f"not the console's: {leaked}"]
    assert console_problems("12:00:01 start " + "x" * 120)[0].startswith("longer than 120")


@pytest.mark.slow
def test_readme_commands_run_as_written_in_order(tmp_path):
    from lnm import grid
    from lnm.config import load_config
    from lnm.status import job_stats

    for name in ("breastmnist.npz", "retinamnist.npz"):
        if not (SHARED_MEDMNIST / name).exists():
            pytest.skip(f"real MedMNIST file {name} not found at {SHARED_MEDMNIST}")
    repo = _copy_repository(tmp_path / "repo")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".medmnist").symlink_to(SHARED_MEDMNIST.resolve(), target_is_directory=True)
    smoke = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
    smoke.pop("results")
    smoke = merged(smoke, SMALLER)
    smaller = tmp_path / "smaller_demo.yaml"
    smaller.write_text(yaml.safe_dump(smoke))
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "NO_COLOR": "1",
    }

    def run(command: str, rc: int = 0) -> str:
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == rc, (
            f"README command gave {proc.returncode}: {command}\n{out[-5000:]}"
        )
        return out

    outputs: dict[str, str] = {}
    for command in readme_commands():
        k = kind(command)
        if k == "setup":
            continue
        if k == "demo":
            outputs["demo dry run"] = run(f"{without_comment(command)} --dry-run")
            # the report before the demo has finished: lnm status says what is missing
            outputs["status before"] = run(f"lnm status presets/demo.yaml {smaller}", rc=1)
        elif k == "gpu":
            outputs[command] = run(f"{without_comment(command)} --dry-run")
            continue
        elif k == "pytest":
            outputs[command] = run(f"{without_comment(command)} --collect-only")
            continue
        elif k == "gpu_check":  # this machine has no GPU: the check cannot pass
            outputs[command] = run(without_comment(command), rc=2)
            assert "no GPU: nothing checked" in outputs[command]
            continue
        if command.startswith("snakemake") and DEMO_CONFIG in command:
            command = command.replace(DEMO_CONFIG, f"{DEMO_CONFIG} {smaller}")
        elif command.startswith("lnm status presets/demo.yaml"):
            command = command.replace("presets/demo.yaml", f"presets/demo.yaml {smaller}", 1)
        outputs[command] = run(command)

    assert re.search(r"^train\s+160$", outputs["demo dry run"], re.M), "the demo has 160 runs"
    validate = [o for c, o in outputs.items() if c.startswith("lnm validate presets/demo.yaml")]
    assert validate and all("160 training runs" in o for o in validate)
    assert f"results/demo: not finished: 0 of {SMALLER_RUNS} training runs done" in outputs[
        "status before"]  # fmt: skip
    assert "train 6" in " ".join(outputs["status before"].split())

    demo = outputs[f"{DEMO_RUN} {smaller}"]
    assert f"runs {SMALLER_RUNS}/{SMALLER_RUNS} done" in demo, demo[-3000:]
    for rule in ("classifier_generator", "estimate_noise", "train", "manifest"):
        assert re.search(rf"^{rule}\s+\d+$", demo, re.M), rule  # every kind of job ran
    assert console_problems(demo) == [], "\n".join(console_problems(demo)[:20])
    logs = sorted((repo / "results" / "demo" / "logs").rglob("*.log"))
    assert len(logs) >= 20 and [p for p in logs if not p.stat().st_size] == []
    status = next(o for c, o in outputs.items() if c.startswith("lnm status presets/demo.yaml"))
    assert "results/demo: finished" in status

    paper = load_config(repo / "config.yaml")
    for command in (c for c in outputs if kind(c) == "gpu"):
        stats = job_stats(outputs[command])  # the paper grid, every training run
        assert stats.get("train") == len(grid.run_dirs(paper)), (command, stats)
    assert (repo / "results" / "demo" / "report.html").stat().st_size > 100_000
    assert (repo / "results" / "cli" / "run" / "metrics.json").exists()
    assert "forget_rate" in next(o for c, o in outputs.items() if c.startswith("lnm params co"))
    assert "keep_fraction" in outputs["lnm params my_method"]
    assert (repo / "lnm" / "methods" / "my_method.py").exists()
