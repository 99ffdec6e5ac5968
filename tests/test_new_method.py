"""``lnm new-method NAME`` writes a method file that works as written: listed by ``lnm params``,
accepted by the config check and trained by ``lnm train`` (on a copy of the package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import pytest

from tests.conftest import REPO, make_h5


@pytest.fixture
def package(tmp_path):
    """A copy of the lnm package (and config.yaml, which lnm merges every config over)."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "lnm", root / "lnm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("config.yaml", "schemas"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    return root


def lnm(root, *args, check=True):
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "lnm.cli", *map(str, args)], cwd=root, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_new_method_writes_a_method_that_is_listed_and_trains(package, tmp_path):
    out = lnm(package, "new-method", "my_method").stdout
    path = package / "lnm" / "methods" / "my_method.py"
    assert path.exists() and "wrote lnm/methods/my_method.py" in out, out
    text = path.read_text()
    assert 'name = "my_method"' in text and "class MyMethod(Method)" in text
    assert "docs/deviations.md" in text and "params = {" in text

    listed = lnm(package, "params", "my_method").stdout
    assert "my_method  (lnm/methods/my_method.py, class MyMethod)" in listed
    assert "keep_fraction = 0.8" in listed

    h5 = make_h5(tmp_path / "breastmnist_28.h5", size=28, num_classes=2)
    with h5py.File(h5, "r+") as f:
        f.attrs["dataset"] = "breastmnist"
    from lnm.checksum import write_sidecar
    from lnm.noise.generate import generate_noise_file

    write_sidecar(h5)
    npz = tmp_path / "noise.npz"
    generate_noise_file(h5, npz, "symmetric", 0.4, 0)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("size: 28\ndatasets: [breastmnist]\npretrained: false\nmethods: [ce, my_method]\n"
                   "train: {epochs: 1, last_k: 1, batch_size: 32}\n"
                   "method_params: {my_method: {keep_fraction: 0.5}}\n")  # fmt: skip
    assert "config OK" in lnm(package, "validate", cfg).stdout
    run = tmp_path / "run"
    lnm(package, "train", "--config", cfg, "--data", h5, "--noise", npz, "--method", "my_method",
        "--device", "cpu", "--out", run)  # fmt: skip
    m = json.loads((run / "metrics.json").read_text())
    assert m["run"]["method"] == "my_method" and m["spec"]["epochs"] == 1
    assert 0 < m["selection"]["coverage"] < 100  # it reported the samples it trusted

    bad = tmp_path / "bad.yaml"
    bad.write_text("methods: [my_method]\nmethod_params: {my_method: {keep_fraction: 2}}\n")
    proc = lnm(package, "validate", bad, check=False)
    assert proc.returncode != 0 and "keep_fraction" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "name, why", [("ce", "exists already"), ("My-Method", "not allowed"), ("class", "not allowed")]
)
def test_new_method_refuses_a_taken_or_bad_name(package, name, why):
    proc = lnm(package, "new-method", name, check=False)
    assert proc.returncode == 1 and why in proc.stderr, proc.stderr
    assert sorted(p.name for p in (package / "lnm" / "methods").glob("*.py")) == sorted(
        p.name for p in (REPO / "lnm" / "methods").glob("*.py")
    )
