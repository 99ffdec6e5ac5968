"""End to end on real-world layouts: DRTiD (clean labels known) and the official CheXpert folder
(none known) written by tests/realworld_fixtures.py, plus LNMBench's classifier-based instance
noise on real BreastMNIST; then corrupted inputs, read as errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lnm import grid
from lnm.checksum import verify
from lnm.noise.io import load_noise
from tests.conftest import REPO
from tests.realworld_fixtures import (
    append_row,
    copy_pixels,
    write_chexpert_official,
    write_drtid,
)


def run(*args, check=True):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}
    )
    if check and proc.returncode:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def write_config(tmp_path, datasets, patterns=None, classifier=None, **extra) -> Path:
    drtid = write_drtid(tmp_path / "data" / "drtid", n=(60, 20, 30), noise=0.3)
    cx = write_chexpert_official(tmp_path / "data", small=True, n_patients=40, n_test=20)
    cfg = {
        "results": str(tmp_path / "results"),
        "datasets": datasets,
        "noise": {
            "patterns": {"symmetric": [], "instance_classifier": patterns or []},
            "classifier": classifier or {},
        },
        "real_world": {
            "drtid": {
                "adapter": "drtid",
                "root": str(drtid.root),
                "size": 16,
                "assumed_rates": [0.3],
            },
            "chexpert": {
                "adapter": "chexpert",
                "root": str(cx.root),
                "size": 16,
                "assumed_rates": [0.4],
                "options": {"val_fraction": 0.25},
            },
        },
        "train": {"epochs": 1, "last_k": 1},
        "estimation": {"enabled": False},
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, drtid, cx


def configfiles(path):
    return ["--configfile", str(REPO / "presets" / "smoke.yaml"), str(path)]


@pytest.mark.slow
def test_real_world_noise_end_to_end(tmp_path, shared_medmnist):
    path, drtid, cx = write_config(
        tmp_path,
        ["breastmnist", "drtid", "chexpert"],
        patterns=[0.4],
        classifier={"folds": 3, "epochs": 2},
        raw_dir=str(shared_medmnist),
        # the noise-estimation stage, and Co-teaching told the estimate beside the oracle
        estimation={"enabled": True, "folds": 2, "epochs": 1},
        methods=["coteaching", "coteaching_est"],
        method_variants={
            "coteaching_est": {
                "method": "coteaching",
                "method_params": {"forget_rate": "estimated"},
            }
        },
    )
    run(*configfiles(path))
    res = tmp_path / "results"

    # DRTiD: the given labels, the clean ones, the realised rate of the data itself
    nz = load_noise(res / "noise" / "drtid" / "real-0.3-n0.npz")
    assert nz["has_clean"] and nz["pattern"] == "real" and nz["rate"] == 0.3
    np.testing.assert_array_equal(nz["train_noisy"], drtid.noisy["train"])
    np.testing.assert_array_equal(nz["train_clean"], drtid.clean["train"])
    drtid_rate = np.mean(drtid.noisy["train"] != drtid.clean["train"])
    assert nz["realised_rate"] == pytest.approx(drtid_rate)
    # CheXpert: no clean training labels: nothing computed against fake ones
    nz = load_noise(res / "noise" / "chexpert" / "real-0.4-n0.npz")
    assert not nz["has_clean"] and np.isnan(nz["realised_rate"])
    assert np.isnan(nz["transition"]).all()
    # instance_classifier: the generator is an artifact, recorded in the noise file and runs
    gen = res / "noise" / "breastmnist" / "classifier_generator.pt"
    nz = load_noise(res / "noise" / "breastmnist" / "instance_classifier-0.4-n0.npz")
    assert nz["generator_sha256"] == verify(gen)

    runs = pd.read_csv(res / "tables" / "runs.csv")
    # estimated rates: each run told the estimate reads exactly its cell's estimate file
    for r in runs.query("noise_rate_source == 'estimated'").itertuples():
        tag = f"{r.noise}-{grid.fmt_rate(r.rate)}-n{r.noise_seed}"
        est = load_noise(res / "estimates" / r.dataset / f"{tag}.npz")
        assert r.assumed_noise_rate == pytest.approx(est["estimated_rate"])
        assert not r.uses_true_noise_rate
    sources = dict(
        runs.query("noise != 'none'").groupby(["dataset", "method"]).noise_rate_source.first()
    )
    assert sources[("breastmnist", "coteaching")] == "oracle"
    assert sources[("breastmnist", "coteaching_est")] == "estimated"
    assert sources[("drtid", "coteaching")] == "estimated"  # real-world: no true rate
    est = load_noise(res / "estimates" / "drtid" / "real-0.3-n0.npz")
    assert est["true_rate"] == pytest.approx(drtid_rate)
    assert np.isnan(load_noise(res / "estimates" / "chexpert" / "real-0.4-n0.npz")["true_rate"])
    for table in ("estimation.md", "oracle_vs_estimated.md"):
        verify(res / "tables" / table)
    assert "| cleanlab |" in (res / "tables" / "selection.md").read_text()
    verify(res / "figures" / "estimated_vs_true.png")
    cells = {(r.dataset, r.noise) for r in runs.itertuples()}
    assert cells == {
        ("breastmnist", "none"),
        ("breastmnist", "instance_classifier"),
        ("drtid", "none"),  # the clean ceiling: trained on Grade_gt
        ("drtid", "real"),
        ("chexpert", "real"),  # no clean ceiling: no clean labels
    }
    cx_runs = runs.query("dataset == 'chexpert'")
    assert cx_runs.realised_rate.isna().all()
    assert cx_runs.clean_ratio.isna().all() and cx_runs.coverage.isna().all()
    dr = runs.query("dataset == 'drtid' and noise == 'real' and method == 'coteaching'")
    assert len(dr) == 1
    assert dr.clean_ratio.notna().all()
    for m in runs.query("noise == 'real' and base_method == 'coteaching'").metrics_path:
        metrics = json.loads(Path(m).read_text())
        assert metrics["uses_true_noise_rate"] is False  # the rate is an assumption
    m = json.loads(
        Path(runs.query("noise == 'instance_classifier'").metrics_path.iloc[0]).read_text()
    )
    assert m["inputs"]["generator"]["sha256"] == verify(gen)
    # n/a, never a number, in the tables: CheXpert's selection cannot be scored
    rows = (res / "tables" / "selection.md").read_text().splitlines()
    cx_row = next(r for r in rows if r.startswith("| chexpert | real | 0.4 | coteaching"))
    assert cx_row.endswith("| n/a | n/a |")
    assert "0.4 (assumed)" in (res / "tables" / "summary.md").read_text()
    listed = (res / "MANIFEST.sha256").read_text()
    assert "noise/breastmnist/classifier_generator.pt" in listed
    assert "figures/ranking_real.png" in listed

    # an edited CSV reruns its record, HDF5, noise and runs
    dry = run(*configfiles(path), "--dry-run", check=False)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    csv = drtid.root / "final_train.csv"
    csv.write_text(csv.read_text().replace("\n", "\r\n", 1))
    dry = run(*configfiles(path), "--dry-run", check=False).stdout
    assert "real_source" in dry and "preprocess" in dry


def test_missing_folder_fails_at_parse_time_naming_it(tmp_path):
    path, drtid, cx = write_config(tmp_path, ["drtid"])
    cfg = yaml.safe_load(path.read_text())
    cfg["real_world"]["drtid"]["root"] = str(tmp_path / "elsewhere")
    path.write_text(yaml.safe_dump(cfg))
    out = run(*configfiles(path), "--dry-run", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "real_world.drtid" in text and str(tmp_path / "elsewhere") in text
    assert "final_train.csv" in text  # what is expected there


@pytest.mark.slow
def test_a_test_image_copied_into_train_stops_the_workflow_before_training(tmp_path):
    """The golden test set holding a training image under another name: the preprocessing job
    refuses it, naming both rows, and writes no HDF5 (so nothing trains); `keep_first` does not
    let it through."""
    path, drtid, _ = write_config(tmp_path, ["drtid"])
    cfg = yaml.safe_load(path.read_text())
    cfg["real_world"]["drtid"]["options"] = {"duplicates": "keep_first"}
    path.write_text(yaml.safe_dump(cfg))
    train_image = drtid.images["train"][4]
    copy_pixels(train_image, train_image.with_name("golden_copy.jpg"))
    line = append_row(drtid.root / "final_test.csv", 0, {"image_name": "golden_copy"})
    target = str(tmp_path / "results" / grid.DATA_FILE.format(dataset="drtid", size=16))
    out = run(target, *configfiles(path), check=False)
    assert out.returncode != 0
    log = (tmp_path / "results" / "logs" / "preprocess" / "drtid_16.log").read_text()
    test_row = f"{drtid.root / 'final_test.csv'}, row {line} (header = row 1)"
    train_row = f"{drtid.root / 'final_train.csv'}, row 6 (header = row 1): {train_image}"
    assert f"{test_row}: {train_image.with_name('golden_copy.jpg')}\n    is the same image" in log
    assert f"{train_row}: in train and test (test images would train the model)" in log
    assert not Path(target).exists()
