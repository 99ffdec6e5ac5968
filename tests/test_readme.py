"""The README's commands run as written, in order, on a copy of the repository.

The commands are read from the README's fenced ``bash`` blocks (comment lines dropped,
backslash continuations joined) and run one by one with ``bash -c`` in a copy of the working
tree (``git ls-files --cached --others --exclude-standard``: what a fresh clone plus the
uncommitted changes holds), in the order they appear. Three kinds are not run exactly as
written, each for a stated reason:

- the set-up line (``python3 -m venv ... pip install ...``) is skipped: it downloads ~6 GB;
  the test runs in the environment it would create (this interpreter's ``bin`` first on PATH,
  the copy first on PYTHONPATH so its ``lnm`` and logger plugin are the ones imported);
- the demo run (``snakemake --cores 2 --configfile presets/demo.yaml``) is run as written with
  ``--dry-run`` appended (110 training runs take many minutes on 2 cores), and then for real on
  the smoke preset's grid with the demo's results folder kept: every ``snakemake`` command
  that names ``--configfile presets/demo.yaml`` gets one more config file,
  ``smaller_demo.yaml`` (presets/smoke.yaml without its ``results``), so that the commands
  after the demo (``lnm verify results/demo``, the report) find a finished demo to work on;
- ``pytest -q`` runs with ``--collect-only`` appended: it must start and find the tests, but
  running the quick suite inside this test would take minutes and CI runs it anyway.

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
DEMO_RUN = "snakemake --cores 2 --configfile presets/demo.yaml"
DEMO_CONFIG = "--configfile presets/demo.yaml"


def readme_commands(text: str | None = None) -> list[str]:
    """The commands of the README's ```bash blocks, in order."""
    text = README.read_text() if text is None else text
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
    """``setup`` (skipped), ``demo`` (dry run + smaller real run), ``pytest`` (collect only)
    or ``run`` (as written)."""
    if "pip install" in command:
        return "setup"
    if command.split(" #")[0].strip() == DEMO_RUN:
        return "demo"
    if command.startswith("pytest"):
        return "pytest"
    return "run"


def without_comment(command: str) -> str:
    return command.split(" #", 1)[0].rstrip()


def test_readme_commands_are_found_and_consistent_with_where_the_demo_writes():
    commands = readme_commands()
    kinds = [kind(c) for c in commands]
    assert kinds.count("setup") == 1 and kinds.count("demo") == 1, commands
    assert kinds.index("setup") == 0 and kinds.index("demo") < kinds.index("pytest")
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


@pytest.mark.slow
def test_readme_commands_run_as_written_in_order(tmp_path):
    for name in ("breastmnist.npz", "retinamnist.npz"):
        if not (SHARED_MEDMNIST / name).exists():
            pytest.skip(f"real MedMNIST file {name} not found at {SHARED_MEDMNIST}")
    repo = _copy_repository(tmp_path / "repo")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".medmnist").symlink_to(SHARED_MEDMNIST.resolve(), target_is_directory=True)
    smoke = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
    smoke.pop("results")
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

    def run(command: str) -> str:
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"README command failed: {command}\n{out[-5000:]}"
        return out

    outputs: dict[str, str] = {}
    for command in readme_commands():
        k = kind(command)
        if k == "setup":
            continue
        if k == "demo":
            outputs["demo dry run"] = run(f"{without_comment(command)} --dry-run")
        elif k == "pytest":
            outputs[command] = run(f"{without_comment(command)} --collect-only")
            continue
        if command.startswith("snakemake") and DEMO_CONFIG in command:
            command = command.replace(DEMO_CONFIG, f"{DEMO_CONFIG} {smaller}")
        outputs[command] = run(command)

    assert re.search(r"^train\s+110$", outputs["demo dry run"], re.M), "the demo has 110 runs"
    validate = [o for c, o in outputs.items() if c.startswith("lnm validate presets/demo.yaml")]
    assert validate and all("110 training runs" in o for o in validate)
    demo = outputs[f"{DEMO_RUN} {smaller}"]
    assert "runs 4/4 done" in demo, demo[-3000:]
    for line in demo.splitlines():  # the progress lines are short; no file list is printed
        if re.match(r"\d\d:\d\d:\d\d |  \S", line):
            assert len(line) <= 120, line
        assert len(line) <= 400, line[:400]
    assert (repo / "results" / "demo" / "report.html").stat().st_size > 100_000
    assert (repo / "results" / "cli" / "run" / "metrics.json").exists()
    assert "forget_rate" in next(o for c, o in outputs.items() if c.startswith("lnm params"))
