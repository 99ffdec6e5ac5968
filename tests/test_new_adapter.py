"""A new real-world adapter is one file: dropped into a copy of the repository (and nothing else
changed), a CSV layout with its own default columns (the file docs/datasets.md shows) is listed
by the schema, accepted by ``lnm validate`` and run by the workflow end to end, appearing in
runs.csv and the tables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import h5py
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.realworld_fixtures import SPLITS, read_rows, write_csv, write_csv_dataset
from tests.test_readme import _copy_repository


def documented_adapter() -> str:
    """The adapter file docs/datasets.md shows under "Adding an adapter" (so the docs show
    what this test runs)."""
    text = (REPO / "docs" / "datasets.md").read_text().split("## Adding an adapter", 1)[1]
    return re.search(r"```python\n(.*?)```", text, re.S)[1]


#: The fixture's columns (tests/realworld_fixtures.py) -> the new layout's.
COLUMNS = {"path": "file", "label": "noisy", "clean": "expert"}


def _run(copy, *args, check=True):
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=copy, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if check and proc.returncode:
        raise AssertionError(f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _files(root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_new_csv_adapter_is_one_file(tmp_path):
    copy = _copy_repository(tmp_path / "repo")
    before = _files(copy)
    (copy / "lnm" / "data" / "adapters" / "mycsv.py").write_text(documented_adapter())
    assert _files(copy) - before == {"lnm/data/adapters/mycsv.py"}
    assert _files(copy) >= before

    # a tiny dataset in the new layout: the csv fixture with its columns renamed
    fx = write_csv_dataset(tmp_path / "data", annotators=0, n=(24, 8, 8), size=16)
    for split in SPLITS:
        header, rows = read_rows(fx.root / f"{split}.csv")
        write_csv(fx.root / f"{split}.csv", [COLUMNS.get(c, c) for c in header], rows)
    entry = {"adapter": "mycsv", "root": str(fx.root), "size": 16, "assumed_rates": [0.3]}
    cfg = {
        "results": str(tmp_path / "results"),
        "datasets": ["mycsv"],
        "real_world": {"mycsv": entry},  # no options: the adapter's defaults name the columns
        "methods": ["ce"],
        "train": {"epochs": 1, "last_k": 1},
    }
    path = tmp_path / "mycsv.yaml"
    path.write_text(yaml.safe_dump(cfg))
    smoke = copy / "presets" / "smoke.yaml"

    # the schema: the adapter's name and its options, with its own defaults
    code = (
        "import json; from lnm import grid; from lnm.config import load_schema\n"
        "entry = load_schema()['properties']['real_world']['additionalProperties']\n"
        "rules = {r['if']['properties']['adapter']['const']: r['then'] for r in entry['allOf']}\n"
        "print(json.dumps([entry['properties']['adapter']['enum'], rules,\n"
        "                  grid.adapter_info('mycsv').defaults]))\n"
    )
    enum, rules, defaults = json.loads(_run(copy, "-c", code).stdout)
    assert enum[-1] == "mycsv" and "csv" in enum
    mine, csv = rules["mycsv"]["properties"]["options"], rules["csv"]["properties"]["options"]
    assert set(mine["properties"]) == set(csv["properties"]) >= {"duplicates", "classes"}
    assert "required" not in mine and csv["required"] == ["image_column", "label_column"]
    assert (defaults["image_column"], defaults["label_column"]) == ("file", "noisy")
    assert defaults["clean_column"] == "expert" and defaults["duplicates"] == "refuse"

    # lnm validate: the folder read with the new defaults; a bad option named with its key
    out = _run(copy, "-m", "lnm.cli", "validate", smoke, path).stdout
    assert "config OK, 2 training runs" in out, out  # clean ceiling + real 0.3: expert labels
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"real_world": {"mycsv": {**entry, "options": {"file": "x"}}}}))
    proc = _run(copy, "-m", "lnm.cli", "validate", smoke, path, bad, check=False)
    assert proc.returncode != 0
    assert "unknown key(s) ['file'] under 'real_world.mycsv.options'" in proc.stdout + proc.stderr

    # the workflow, end to end
    _run(copy, "-m", "snakemake", "--cores", "2", "--configfile", smoke, path)
    res = tmp_path / "results"
    runs = pd.read_csv(res / "tables" / "runs.csv")
    assert set(zip(runs.dataset, runs.noise)) == {("mycsv", "none"), ("mycsv", "real")}
    real = runs.query("noise == 'real'").iloc[0]
    truth = (fx.noisy["train"] != fx.clean["train"]).mean()
    assert real.realised_rate == pytest.approx(truth)  # the expert column read as clean labels
    with h5py.File(res / "data" / "mycsv_16.h5") as h5:
        assert h5.attrs["source"] == "mycsv" and json.loads(h5.attrs["classes"]) == fx.classes
        assert (h5["train/labels"][:] == fx.clean["train"]).all()
    assert "## mycsv (resnet8)" in (res / "tables" / "summary.md").read_text()
    for table in ("cells.csv", "summary.csv", "variance.csv", "imbalance.csv", "statistics.md"):
        assert "mycsv" in (res / "tables" / table).read_text(), table
    assert (res / "figures" / "recall_mycsv.png").is_file()

    # the rules' code inputs: the dataset's adapter file (imported by name), not the others
    dry = ("-m", "snakemake", "--cores", "1", "--dry-run", "--configfile", smoke, path)
    with open(copy / "lnm" / "data" / "adapters" / "chexpert.py", "a") as fh:
        fh.write("# edited by a test\n")
    assert "Nothing to be done" in _run(copy, *dry).stdout
    with open(copy / "lnm" / "data" / "adapters" / "mycsv.py", "a") as fh:
        fh.write("# edited by a test\n")
    planned = _run(copy, *dry).stdout
    assert "rule real_source:" in planned and "rule preprocess:" in planned, planned
