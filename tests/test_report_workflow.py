"""End to end: the smoke preset on synthetic data through every table and figure rule, then
`snakemake --report` builds one page holding every reported output."""

import re

import matplotlib.image as mpimg
import pandas as pd
import pytest

from lnm import grid
from lnm.checksum import verify
from lnm.report import figures, reproduction, tables
from tests.conftest import snakemake as run_snakemake

FIGURES = {
    "acc_vs_rate_pathmnist.png": figures.FIGSIZE_ACC,
    "ranking_symmetric.png": figures.FIGSIZE_RANKING,
    "ranking_overall.png": figures.FIGSIZE_RANKING,
    "selection_pathmnist_symmetric-0.4.png": figures.FIGSIZE_SELECTION,
    "cd_diagram.png": figures.FIGSIZE_CD,
    "recall_pathmnist.png": figures.FIGSIZE_RECALL,
    "reproduction.png": reproduction.FIGSIZE,
}


def snakemake(*args):
    proc = run_snakemake(*args)
    return proc.stdout + proc.stderr


def declared_tables():
    """The table files the report rules write (lnm.grid.TABLES, which the rules use); the
    smoke preset runs without the noise-estimation stage (test_realworld_workflow.py covers
    its tables)."""
    return [t for rule, names in grid.TABLES.items() if rule != "estimation" for t in names]


@pytest.mark.slow
def test_smoke_report(synthetic_smoke):
    res, cfg = synthetic_smoke

    names = declared_tables()
    assert set(tables.STAT_FILES) <= set(names)
    for name in grid.TABLES["estimation"]:  # estimation.enabled: false in the smoke preset
        assert not (res / "tables" / name).exists()
    for name in names:
        verify(res / "tables" / name)
    for name, size in FIGURES.items():
        path = res / "figures" / name
        verify(path)
        img = mpimg.imread(path)
        assert img.shape[:2] == (round(size[1] * figures.DPI), round(size[0] * figures.DPI))
        assert img[..., :3].std() > 0.01, name
    assert sorted(p.name for p in (res / "figures").glob("*.png")) == sorted(FIGURES)

    runs = pd.read_csv(res / "tables" / "runs.csv")
    assert runs["test_class_counts"].notna().all()
    cells = pd.read_csv(res / "tables" / "cells.csv")
    assert len(cells) == 4 and cells["note"].str.contains("needs ≥2 seeds").all()
    assert pd.read_csv(res / "tables" / "selection.csv")["method"].eq("coteaching").all()
    listed = (res / "MANIFEST.sha256").read_text()
    assert "tables/cells.csv" in listed and "figures/cd_diagram.png" in listed

    report = res / "report.html"
    log = snakemake(*cfg, "--report", str(report))
    html = report.read_text()
    assert report.stat().st_size > 100_000 and "Report created" in log
    for name in [
        *FIGURES,
        "cells.html",
        "ranks.html",
        "wilcoxon.html",
        "variance.html",
        "imbalance.html",
        "selection.html",
        "summary.html",
        "ranking.html",
        "run_metadata.html",
        "config.yaml",
        "versions.csv",
        "MANIFEST.sha256",
        "runs.csv",
        "cells.csv",
        "summary.tex",
        "cells.tex",
        "statistics.md",
    ]:
        assert name in html, name
    for category in (
        "1. Ranking",
        "3. Per-cell results",
        "4. Statistics",
        "5. Selection diagnostics",
        "6. Imbalance",
        "7. Run metadata",
        "8. Data files",
    ):
        assert category in html, category
    assert "How to read this report" in html and "{{" not in html
    assert "Undefined substitution" not in log and "ERROR/" not in log


def test_report_rules_write_what_grid_lists(tmp_path):
    """rules/common.smk derives the report rules' outputs: each report rule writes exactly the
    tables lnm.grid.TABLES lists for it and each figure rule its lnm.grid.FIGURES template,
    every file with its SHA-256 sidecar (a dry run of the smoke preset, estimation on)."""
    out = run_snakemake(
        "--dry-run",
        "--detailed-summary",
        "--config",
        f"results={tmp_path}",
        f"raw_dir={tmp_path / 'raw'}",
        "allow_download=false",
        "estimation={enabled: true}",
    ).stdout
    written: dict[str, set[str]] = {}
    for line in out.splitlines():
        path, _, rule, *_ = line.split("\t") + [""] * 3
        if path.startswith(f"{tmp_path}/"):
            written.setdefault(rule, set()).add(path.removeprefix(f"{tmp_path}/"))

    def with_sidecars(paths):
        return {q for p in paths for q in (p, f"{p}.sha256")}

    for rule, names in grid.TABLES.items():
        expected = with_sidecars(f"tables/{n}" for n in names)
        if rule in grid.FIGURES:  # reproduction: its tables and its figure
            expected |= with_sidecars([f"figures/{grid.FIGURES[rule]}"])
        assert written[rule] == expected, rule
    for rule, template in grid.FIGURES.items():
        pattern = re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(f"figures/{template}")))
        figs = {p for p in written[rule] if p.startswith("figures/")}
        assert figs and all(pattern.fullmatch(p.removesuffix(".sha256")) for p in figs), rule
    assert written["figure_selection"] == with_sidecars(
        ["figures/selection_breastmnist_symmetric-0.4.png"]
    )
