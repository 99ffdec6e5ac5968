"""Provenance says whether the code differed from the commit it records, and a digest of what
differed (lnm.train.provenance); informational, never part of a run's identity."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]


@pytest.fixture
def checkout(tmp_path):
    """A git checkout holding a copy of the lnm package, committed."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    shutil.copytree(REPO / "lnm", root / "lnm", ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".gitignore").write_text("__pycache__/\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([*GIT, *cmd], cwd=root, check=True)
    return root


def _provenance(root) -> dict:
    """provenance() of a CPU run whose code is the lnm package of ``root``."""
    code = "import json, torch; from lnm.train.provenance import provenance; " \
           "print(json.dumps(provenance(torch.device('cpu'))))"  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout)


def test_provenance_records_a_new_untracked_method_file_as_a_difference(checkout):
    clean = _provenance(checkout)
    assert clean["git_dirty"] is False and not clean["git_commit"].endswith("+dirty")
    assert clean["git_diff_sha256"] is None and clean["git_changed"] == []
    (checkout / "lnm" / "methods" / "mine.py").write_text("NAME = 'mine'\n")
    dirty = _provenance(checkout)
    assert dirty["git_commit"] == clean["git_commit"] + "+dirty" and dirty["git_dirty"] is True
    assert dirty["git_changed"] == ["lnm/methods/mine.py (untracked)"]
    assert len(dirty["git_diff_sha256"]) == 64


def test_the_digest_follows_what_differed(checkout):
    from lnm.train.provenance import git_state

    ce = checkout / "lnm" / "methods" / "ce.py"
    original = ce.read_text()
    (checkout / "notes.txt").write_text("not code\n")  # untracked outside the code: not a change
    assert git_state(checkout)["git_dirty"] is False
    ce.write_text(original + "# edit 1\n")
    first = git_state(checkout)
    assert first["git_dirty"] and first["git_changed"] == ["lnm/methods/ce.py"]
    assert git_state(checkout)["git_diff_sha256"] == first["git_diff_sha256"]  # reproducible
    ce.write_text(original + "# edit 2\n")
    assert git_state(checkout)["git_diff_sha256"] != first["git_diff_sha256"]
    ce.write_text(original)
    assert git_state(checkout)["git_dirty"] is False


def test_outside_a_git_checkout_every_field_is_none(tmp_path):
    from lnm.train.provenance import git_state

    state = git_state(tmp_path)
    assert set(state) == {"git_commit", "git_dirty", "git_changed", "git_diff_sha256"}
    assert all(v is None for v in state.values())
