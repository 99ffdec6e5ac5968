"""End-to-end Snakemake runs: real BreastMNIST (when present) and synthetic data; lint."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lnm.checksum import verify
from tests.conftest import REPO, snakemake


def nothing_to_do(*args):
    out = snakemake("--dry-run", *args)
    return "Nothing to be done" in out.stdout + out.stderr


def check_outputs(res: Path, datasets):
    runs = pd.read_csv(res / "tables" / "runs.csv")
    assert len(runs) == 2 * 2 * len(datasets)  # clean + symmetric 0.4, CE + Co-teaching, one seed
    assert runs.query("method == 'coteaching'").clean_ratio.notna().all()
    assert runs.query("method == 'ce'").clean_ratio.isna().all()
    assert set(runs.noise) == {"none", "symmetric"}
    assert runs.test_acc_last_k.between(0, 100).all()
    for f in [
        "tables/summary.csv",
        "tables/summary.md",
        "tables/ranking.csv",
        "figures/ranking_symmetric.png",
        "figures/ranking_overall.png",
        *[f"figures/acc_vs_rate_{d}.png" for d in datasets],
    ]:
        verify(res / f)
    listed = {line.split("  ", 1)[1] for line in (res / "MANIFEST.sha256").read_text().splitlines()}
    assert "tables/runs.csv" in listed and "figures/ranking_overall.png" in listed
    assert sum(p.startswith("runs/") for p in listed) == 3 * len(runs)
    for d in runs.metrics_path:
        m = json.loads(Path(d).read_text())
        assert m["inputs"]["data"]["sha256"] == verify(m["inputs"]["data"]["path"])
        assert m["inputs"]["noise"]["sha256"] == verify(m["inputs"]["noise"]["path"])


@pytest.mark.slow
def test_smoke_on_real_breastmnist(tmp_path, shared_medmnist):
    res = tmp_path / "results"
    cfg = ["--config", f"results={res}", f"raw_dir={shared_medmnist}"]
    snakemake(*cfg)
    check_outputs(res, ["breastmnist"])
    clean = pd.read_csv(res / "tables" / "runs.csv").query("noise == 'none'").iloc[0]
    assert clean.realised_rate == 0 and clean.identifiable
    assert nothing_to_do(*cfg)


@pytest.mark.slow
def test_smoke_on_synthetic_data(synthetic_smoke):
    """The data stages are skipped (--allowed-rules): the test supplies the HDF5 itself."""
    res, cfg = synthetic_smoke
    check_outputs(res, ["pathmnist"])
    runs = pd.read_csv(res / "tables" / "runs.csv")
    assert runs.num_classes.eq(3).all()
    assert nothing_to_do(*cfg)


def test_bad_config_fails_at_parse_time_naming_key_value_allowed(tmp_path):
    out = snakemake(
        "--dry-run", "--config", "methods=[ce,coteching]", f"results={tmp_path}", check=False
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "methods[1]" in text and "'coteching'" in text and "allowed values" in text
    out = snakemake(
        "--dry-run",
        "--config",
        "noise={patterns: {symmetric: [1.5]}}",
        f"results={tmp_path}",
        check=False,
    )
    assert out.returncode != 0 and "1.5" in out.stdout + out.stderr


def test_lint_is_clean():
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Lints for" not in out.stdout + out.stderr, out.stdout + out.stderr
