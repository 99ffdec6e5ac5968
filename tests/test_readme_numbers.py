"""Every count, time and size the README (and the reference docs it links) states is either
checked by a test here or carries the date and commit it was measured at, so numbers cannot go
stale silently (the README once said the paper grid plans 1,215 jobs when it planned 1,320).

A stated number is a number with a unit of time (s, min, h, device-hours), size (GB, MB),
throughput (images/s) or count (jobs, runs, training runs, methods, lines, characters), outside
example blocks (console samples, file layouts; a ```bash block's comments count). It is fine when

- its exact phrase is in :data:`CHECKED`, whose checks a test below runs (or, for the paper
  grid's job count, tests/test_readme.py's dry run of the README's GPU line), or
- the paragraph, list item or table row stating it (a table also takes the marker of the
  sentence introducing it) carries a marker ``(measured YYYY-MM-DD at <commit>...)`` or
  ``(estimated YYYY-MM-DD at <commit>...)`` whose commit exists in the repository's history.
"""

from __future__ import annotations

import re
import subprocess
from datetime import date

import pytest

from tests.conftest import REPO

#: The files whose numbers are checked: the README and the reference docs moved out of it.
FILES = ("README.md", *(f"docs/{d}.md" for d in
         ("workflow", "configuration", "methods", "noise", "statistics", "speed")))  # fmt: skip

UNIT = (
    r"device-hours|seconds?|minutes?|hours?|min|ms|s|h|GB|MB|GiB|MiB|TB|images/s|img/s"
    r"|training runs|runs|jobs|methods|lines|characters"
)
NUMBER = re.compile(
    r"(?<![\w.,/-])(?P<num>\d[\d,]*(?:\.\d+)?(?:\s?[–-]\s?\d[\d,]*(?:\.\d+)?)?)\s?"
    rf"(?P<unit>{UNIT})(?![\w/])"
)
MARKER = re.compile(
    r"\((?:measured|estimated)\s+(\d{4}-\d\d-\d\d)\s+at\s+([0-9a-f]{7,40})\b[^)]*\)"
)


def _demo_runs():
    from lnm.config import load_config
    from lnm.grid import run_dirs

    return len(run_dirs(load_config(REPO / "presets" / "demo.yaml")))


def _demo_methods():
    """The number of methods the demo trains (each in the catalog)."""
    from lnm.config import load_config
    from lnm.grid import methods

    names = load_config(REPO / "presets" / "demo.yaml")["methods"]
    assert set(names) <= set(methods())
    return len(names)


def _plugin(name):
    from snakemake_logger_plugin_lnm import LogHandlerSettings

    return getattr(LogHandlerSettings(), name)


#: Phrases checked by the tests of this file: phrase -> what it must equal (a callable's value).
CHECKED = {
    "160 training runs": lambda: _demo_runs() == 160,
    "160 runs": lambda: _demo_runs() == 160,
    "16 methods": lambda: _demo_methods() == 16 and _demo_runs() % 16 == 0,
    "120 characters": lambda: _plugin("width") == 120,
    "30 s": lambda: _plugin("interval") == 30,
    "8 min": lambda: _gpu_check_limit() == 8 * 60,
    "8 minutes": lambda: _gpu_check_limit() == 8 * 60,
}


def _gpu_check_limit():
    """benchmarks/gpu_check.sh's LIMIT: the seconds its step budgets must fit in (the script
    refuses to start when they do not; tests/test_gpu_check.py)."""
    text = (REPO / "benchmarks" / "gpu_check.sh").read_text()
    return int(re.search(r"^LIMIT=(\d+)$", text, re.M).group(1))


def blocks(text: str) -> list[tuple[str, str]]:
    """(text, context) of the paragraphs, list items and table rows of Markdown ``text``
    (example blocks left out; a ```bash block's comment lines kept). The context is where a
    marker may stand: the block itself, for a table row also the sentence before its table."""
    out, para, fence, intro = [], [], None, ""
    for line in text.splitlines() + [""]:
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence is not None:
            if fence == "bash" and "#" in line:
                comment = line[line.index("#") :]
                out.append((comment, comment))
            continue
        if line.startswith("|"):
            out.append((line, intro + "\n" + line))
            continue
        if not line.strip() or re.match(r"\s*- ", line):
            if para:
                block = "\n".join(para)
                out.append((block, block))
                intro = block
            para = [line] if line.strip() else []
            continue
        para.append(line)
    return out


def stated_numbers(text: str) -> list[tuple[str, str]]:
    """(phrase, where a marker for it may stand) for every number with a unit in ``text``."""
    found = []
    for block, context in blocks(text):
        for m in NUMBER.finditer(block):
            found.append((" ".join(m.group(0).split()), context))
    return found


def _commit_exists(commit: str) -> bool | None:
    proc = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO,
                          capture_output=True)  # fmt: skip
    if proc.returncode and b"not a git repository" in proc.stderr:
        return None
    return proc.returncode == 0


def test_stated_numbers_finds_counts_times_and_sizes():
    text = ("The demo has 110 training runs and takes ≈ 28 min.\n\n"
            "- 1,320 jobs in 0.66 device-hours\n\n```\n14:02 done (52s)\n```\n"
            "```bash\nsnakemake -n   # plans 12 jobs\n```\n"
            "ResNet-8 at 28 px, 5.3 s → 2.5 s (measured 2026-11-30 at e0a23c0), s0 and 0.2/0.4\n")  # fmt: skip
    phrases = [p for p, _ in stated_numbers(text)]
    assert phrases == ["110 training runs", "28 min", "1,320 jobs", "0.66 device-hours",
                       "12 jobs", "5.3 s", "2.5 s"]  # fmt: skip
    marked = [p for p, b in stated_numbers(text) if MARKER.search(b)]
    assert marked == ["5.3 s", "2.5 s"]


def test_every_number_the_readme_states_is_checked_or_dated():
    problems = []
    for name in FILES:
        for phrase, block in stated_numbers((REPO / name).read_text()):
            if phrase in CHECKED:
                continue
            marker = MARKER.search(block)
            if marker is None:
                where = " ".join(block.split())[:100]
                problems.append(f"{name}: {phrase!r} is neither checked nor dated: {where}")
                continue
            date.fromisoformat(marker.group(1))  # a real date
            if _commit_exists(marker.group(2)) is False:
                problems.append(f"{name}: {phrase!r}: commit {marker.group(2)} is not in git")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("phrase", sorted(CHECKED))
def test_checked_numbers_hold(phrase):
    assert CHECKED[phrase](), phrase
