"""Run metadata for the report: the effective config, package versions and provenance.

``config.yaml``      the config the workflow ran with (after presets, overrides and defaults)
``versions.csv``     package versions recorded by the runs (``metrics.json`` provenance) and
                     those of the environment that built the tables and figures
``run_metadata.html`` both, plus git commits, devices, determinism flags and run counts
"""

from __future__ import annotations

import html
import json
import os
import platform
from collections import Counter
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from pathlib import Path

import pandas as pd
import yaml

from lnm.checksum import verify
from lnm.report import files
from lnm.report.render import Table, to_html

REPORT_PACKAGES = ("lnm", "numpy", "scipy", "pandas", "matplotlib", "snakemake", "PyYAML")


def _version(name: str) -> str:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def provenance_table(metrics_paths: Iterable[str | os.PathLike]) -> tuple[pd.DataFrame, dict]:
    """(versions, facts) from the verified ``metrics.json`` files: one row per (package,
    version) with the number of runs that used it; facts = Counters of commits, devices, ..."""
    versions: Counter = Counter()
    facts: dict[str, Counter] = {
        k: Counter()
        for k in ("git commit", "device", "python", "CUDA", "cuDNN", "determinism", "torch threads")
    }
    n = 0
    for path in metrics_paths:
        verify(path)
        prov = json.loads(Path(path).read_text()).get("provenance") or {}
        n += 1
        for pkg, ver in sorted((prov.get("packages") or {}).items()):
            versions[(pkg, str(ver))] += 1
        facts["git commit"][str(prov.get("git_commit"))] += 1
        facts["device"][str(prov.get("device") or prov.get("device_type"))] += 1
        facts["python"][str(prov.get("python"))] += 1
        facts["CUDA"][str(prov.get("cuda"))] += 1
        facts["cuDNN"][str(prov.get("cudnn"))] += 1
        facts["determinism"][json.dumps(prov.get("deterministic"), sort_keys=True)] += 1
        facts["torch threads"][str(prov.get("torch_threads"))] += 1
    rows = [
        {"scope": "training runs", "package": p, "version": v, "runs": c}
        for (p, v), c in sorted(versions.items())
    ]
    rows += [
        {"scope": "report environment", "package": p, "version": _version(p), "runs": None}
        for p in REPORT_PACKAGES
    ]
    rows.append(
        {
            "scope": "report environment",
            "package": "python",
            "version": platform.python_version(),
            "runs": None,
        }
    )
    facts["runs"] = Counter({str(n): n})
    versions = pd.DataFrame(rows, columns=["scope", "package", "version", "runs"])
    versions["runs"] = versions["runs"].astype("Int64")
    return versions, facts


CONFIG_HTML = [
    "<h2>Effective configuration</h2>",
    '<p class="note">After presets, <code>--config</code> overrides and schema '
    "defaults; the same as <code>config.yaml</code> next to this file.</p>",
]
CHECKSUMS_HTML = [
    "<h2>Checksums</h2>",
    '<p class="note">Every artifact has a SHA-256 sidecar; <code>MANIFEST.sha256</code> '
    "(its own entry in this report) lists them all: <code>cd results &amp;&amp; "
    "sha256sum -c MANIFEST.sha256</code>.</p>",
]


def _provenance_tables(versions: pd.DataFrame, facts: dict) -> list[Table]:
    """The provenance facts of the training runs (what differs between them) and the package
    versions (:func:`provenance_table`)."""
    several = [k for k, c in facts.items() if len(c) > 1 and k != "runs"]
    fact_rows = [
        [k, "; ".join(f"{v} ({c} runs)" if k != "runs" else v for v, c in cnt.most_common())]
        for k, cnt in facts.items()
    ]
    note = (
        f"Differs between runs: {', '.join(several)}."
        if several
        else "Every run has the same provenance."
    )
    if "git commit" in several:
        note += (
            " The git commit is the repository's at training time; the workflow redoes a run "
            "only when its own inputs or code change, so differing commits alone do not mean "
            "differing training code."
        )
    return [
        Table(
            "Provenance of the training runs",
            ["what", "value (number of runs)"],
            fact_rows,
            align="ll",
            notes=[note],
        ),
        Table(
            "Package versions",
            list(versions.columns),
            [[str(x) if pd.notna(x) else "" for x in r] for r in versions.itertuples(index=False)],
            align="lllr",
        ),
    ]


def write_metadata(
    config: dict, metrics_paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike
) -> dict[str, Path]:
    """Every table of ``lnm.grid.TABLES["run_metadata"]``: ``config.yaml``, ``versions.csv``
    and ``run_metadata.html``."""
    versions, facts = provenance_table(list(metrics_paths))
    config_text = yaml.safe_dump(
        json.loads(json.dumps(config, default=str)), sort_keys=False, allow_unicode=True
    )
    extra = [*CONFIG_HTML, f"<pre>{html.escape(config_text)}</pre>", *CHECKSUMS_HTML]
    head = "Run metadata: configuration, versions, provenance"
    return files.write_rule_tables(
        "run_metadata",
        out_dir,
        {
            "config.yaml": config_text,
            "versions.csv": files.csv(versions),
            "run_metadata.html": to_html(_provenance_tables(versions, facts), head, extra=extra),
        },
    )
