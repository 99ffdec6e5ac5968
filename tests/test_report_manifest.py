"""Every artifact a job reads or writes below the results folder is in the manifest, and every
noise estimate a run reads is reported: checked over the planned DAG (Snakemake's API, in a
subprocess) of the smoke preset with the estimation stage and an estimated-rate variant, whose
clean cell's runs read the clean cell's estimate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

#: Plans the DAG (nothing runs) and prints {job: [rule, inputs, outputs]} as JSON.
PLAN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings,
        StorageSettings,
    )
    repo, configs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=configs),
            storage_settings=StorageSettings(),
            snakefile=repo / "Snakefile",
            workdir=repo,
        )
        w = wf._workflow
        w.dag_settings = wf.dag(dag_settings=DAGSettings()).dag_settings
        w._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        w._build_dag()
        jobs = [[j.rule.name, [str(f) for f in j.input], [str(f) for f in j.output]]
                for j in w.dag.jobs]
    print("PLAN" + json.dumps(jobs))
    """
)


def plan(tmp_path, extra: dict) -> list:
    cfg = tmp_path / "extra.yaml"
    cfg.write_text(yaml.safe_dump(extra))
    proc = subprocess.run(
        [sys.executable, "-c", PLAN, str(REPO), str(REPO / "presets" / "smoke.yaml"), str(cfg)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PLAN")), None)
    assert line, f"planning the DAG failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(line[4:])


@pytest.mark.slow
def test_manifest_lists_every_artifact_of_the_dag_and_every_estimate_is_reported(tmp_path):
    res = tmp_path / "results"
    jobs = plan(
        tmp_path,
        {
            "results": str(res),
            "methods": ["ce", "coteaching", "coteaching_est"],
            "method_variants": {
                "coteaching_est": {
                    "method": "coteaching",
                    "method_params": {"forget_rate": "estimated"},
                }
            },
            "estimation": {"enabled": True},
        },
    )
    (manifest,) = [set(i) for rule, i, _ in jobs if rule == "manifest"]
    below = f"{res}/"
    missing = sorted(
        f
        for rule, inputs, outputs in jobs
        if rule not in ("manifest", "all")
        for f in inputs + outputs
        if f.startswith(below)
        and "/logs/" not in f
        and "/benchmarks/" not in f
        and f not in manifest
    )
    assert not missing, f"artifacts of the DAG missing from MANIFEST.sha256: {missing}"
    # the clean cell's estimate: read by its estimated-rate run, reported and in the manifest
    clean = f"{res}/estimates/breastmnist/none-0.0-n0.npz"
    readers = [r for r, inputs, _ in jobs if r == "train" and clean in inputs]
    assert readers == ["train"]
    for rule in ("estimation", "aggregate", "manifest"):
        (inputs,) = [i for r, i, _ in jobs if r == rule]
        assert clean in inputs and f"{clean}.sha256" in inputs, rule
    # without a run told an estimate, no clean-cell estimate is planned (no job wasted)
    jobs = plan(tmp_path, {"results": str(res), "estimation": {"enabled": True}})
    planned = {f for _, _, outputs in jobs for f in outputs}
    assert clean not in planned and f"{res}/estimates/breastmnist/symmetric-0.4-n0.npz" in planned
