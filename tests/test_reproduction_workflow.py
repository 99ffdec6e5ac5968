"""End to end: the reproduction rule on the smoke grid (synthetic data), first against the shipped
tables (nothing comparable: one honest line), then against a small synthetic reference table
with hand-made verdicts."""

import pandas as pd
import pytest
from scipy import stats as sps

from lnm import grid
from lnm.checksum import verify
from lnm.report import reproduction as rep
from tests.conftest import snakemake


def with_config(cfg, *values):
    """``cfg`` (``--config k=v ... --allowed-rules ...``) with more ``--config`` values (a
    second ``--config`` flag would replace the first)."""
    at = cfg.index("--allowed-rules")
    return [*cfg[:at], *values, *cfg[at:]]


@pytest.mark.slow
def test_reproduction_stage_on_the_smoke_grid(synthetic_smoke, tmp_path):
    res, cfg = synthetic_smoke
    tables = res / "tables"
    for name in grid.TABLES["reproduction"]:
        verify(tables / name)
    verify(res / "figures" / grid.FIGURES["reproduction"])
    # the shipped tables: MedMNIST v2's clean CE of PathMNIST is a cell we ran, with ResNet-8
    md = (tables / "reproduction.md").read_text()
    assert rep.NO_OVERLAP in md
    shipped = pd.read_csv(tables / "reproduction.csv")
    assert (shipped["status"] == "not compared").all()
    assert set(shipped["reference"]) == {"medmnist_v2"}
    assert shipped["why"].str.contains("backbone: ours resnet8").all()
    listed = (res / "MANIFEST.sha256").read_text()
    assert "tables/reproduction.csv" in listed and "figures/reproduction.png" in listed

    runs = pd.read_csv(tables / "runs.csv").set_index(["noise", "method"])
    ce = float(runs.loc[("none", "ce"), grid.HEADLINE])
    cot = float(runs.loc[("symmetric", "coteaching"), grid.HEADLINE])
    far = cot - 40 if cot > 50 else cot + 40  # beyond the resolution of 60 test images
    lines = [
        f"synth,pathmnist,none,0,ce,resnet8,28,2,test_acc_last2,,{ce:.6f},,,ours exactly,",
        f"synth,pathmnist,symmetric,0.4,coteaching,resnet8,28,2,test_acc_last2,,{far:.6f},,,far,",
        "synth,pathmnist,symmetric,0.4,ce,resnet8,28,2,test_acc_last5,,50,,,other kind,",
        "synth,all,symmetric,,ce,resnet8,,,test_acc_last2,,40,,,figure,",
        "synth,all,symmetric,,coteaching,resnet8,,,test_acc_last2,,30,,,figure,",
    ]
    ref = tmp_path / "synth.csv"
    ref.write_text("\n".join([",".join(rep.COLUMNS), *lines]) + "\n")
    changed = with_config(cfg, f"reproduction={{references: [], extra: [{ref}]}}")
    try:
        snakemake(*changed, "--", str(tables / "reproduction.csv"))
        out = pd.read_csv(tables / "reproduction.csv").set_index(["pattern", "method"])
        assert out.loc[("none", "ce"), "verdict"] == rep.AGREES
        assert out.loc[("none", "ce"), "diff"] == pytest.approx(0, abs=1e-5)
        assert out.loc[("symmetric", "coteaching"), "verdict"] == rep.CANNOT_TELL
        assert out.loc[("symmetric", "ce"), "status"] == "not compared"
        assert "mean of the last 5 epochs" in out.loc[("symmetric", "ce"), "why"]
        ranks = pd.read_csv(tables / "reproduction_ranking.csv").set_index("method")
        ours = [float(runs.loc[("symmetric", "ce"), grid.HEADLINE]), cot]
        tau = sps.kendalltau(ours, [40, 30]).statistic  # NaN when ours tie (both collapsed)
        assert ranks["tau"].iloc[0] == pytest.approx(tau, nan_ok=True)
        assert ranks["n_methods"].iloc[0] == 2 and ranks["published"].to_dict() == {
            "ce": 40,
            "coteaching": 30,
        }
        html = (tables / "reproduction.html").read_text()
        assert "1 agrees, 0 differs, 1 cannot tell" in html and "Kendall τ" in html
    finally:  # the shared results folder back as the other tests expect it
        snakemake(*cfg)
    assert rep.NO_OVERLAP in (tables / "reproduction.md").read_text()
