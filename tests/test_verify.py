"""`lnm verify`: artifacts against their sidecars and MANIFEST.sha256; missing sidecars."""

import json
import os
import re
from pathlib import Path

import pytest

from lnm.checksum import ChecksumError, sidecar, verify, write_sidecar, write_text
from lnm.cli import main as lnm
from lnm.verify import (
    is_artifact,
    missing_sidecars,
    missing_sidecars_message,
    require_verified,
    scan,
    verify_results,
)
from tests.conftest import SYNTHETIC_RULES, snakemake, synthetic_results

RUN = "runs/d/symmetric-0.4-n0/ce/resnet8/s0"


@pytest.fixture
def results(tmp_path):
    """A small results folder as the workflow leaves it, with its manifest."""
    res = tmp_path / "results"
    write_text(res / "raw" / "d_28.json", json.dumps({"dataset": "d", "sha256": "0" * 64}))
    for rel in (
        "data/d_28.h5",
        "noise/d/symmetric-0.4-n0.npz",
        f"{RUN}/metrics.json",
        f"{RUN}/per_epoch.csv",
        "tables/runs.csv",
        "figures/ranking_overall.png",
    ):
        write_text(res / rel, f"content of {rel}\n")
    lines = [f"{_sha(p)}  {rel.as_posix()}" for p, rel in _walk(res)]  # as `sha256sum` writes
    write_text(res / "MANIFEST.sha256", "\n".join(lines) + "\n")  # with its own sidecar
    # not artifacts: logs, benchmarks, hidden files, resume state, files at the top level
    for rel in (
        "logs/train/x.log",
        "benchmarks/train/x.tsv",
        ".snakemake/metadata/x",
        "data/.d_28.h5.abc.tmp",
        f"{RUN}/checkpoint.pt",
        f"{RUN}/checkpoint.log",
        f"{RUN}/checkpoint.pt.stale-20240101T000000Z",
        "report.html",
    ):
        (res / rel).parent.mkdir(parents=True, exist_ok=True)
        (res / rel).write_text("not an artifact\n")
    return res


def _sha(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _walk(res):
    for p in sorted(res.rglob("*")):
        if p.is_file() and not p.name.endswith(".sha256"):
            yield p, p.relative_to(res)


def run_verify(res, capsys):
    rc = lnm(["verify", str(res)])
    out = capsys.readouterr().out
    return rc, out.strip().splitlines()


def problems(lines):
    return [line for line in lines[:-1] if not line.startswith("note:")]


def tamper_keeping_mtime(path: Path):
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[3] ^= 0x20  # one byte
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def test_clean_results_pass_and_only_artifacts_are_checked(results, capsys):
    rc, lines = run_verify(results, capsys)
    assert rc == 0, lines
    assert problems(lines) == [] and "OK: 8 artifacts" in lines[-1]  # the manifest is one
    artifacts, orphans = scan(results)
    assert {p.relative_to(results).as_posix() for p in artifacts} == {
        "raw/d_28.json",
        "data/d_28.h5",
        "noise/d/symmetric-0.4-n0.npz",
        f"{RUN}/metrics.json",
        f"{RUN}/per_epoch.csv",
        "tables/runs.csv",
        "figures/ranking_overall.png",
    }
    assert orphans == []
    assert not is_artifact("MANIFEST.sha256") and not is_artifact("report.html")
    assert not is_artifact(f"{RUN}/checkpoint.pt") and not is_artifact("logs/train/x.log")


def test_one_byte_change_with_old_mtime_is_caught(results, capsys):
    target = results / RUN / "metrics.json"
    tamper_keeping_mtime(target)
    rc, lines = run_verify(results, capsys)
    assert rc == 1
    found = problems(lines)
    assert any(line.startswith(f"{target}: SHA-256 mismatch") for line in found), lines
    assert any(line.startswith(f"{target}: MANIFEST.sha256 digest differs") for line in found)
    assert len(found) == 2 and "FAILED: 2 problems" in lines[-1]


def test_deleted_sidecar_is_a_problem_naming_the_file(results, capsys):
    target = results / "noise" / "d" / "symmetric-0.4-n0.npz"
    sidecar(target).unlink()
    rc, lines = run_verify(results, capsys)
    assert rc == 1
    assert problems(lines) == [f"{target}: missing sidecar symmetric-0.4-n0.npz.sha256"]


def test_missing_artifact_and_stale_manifest(results, capsys):
    gone = results / "tables" / "runs.csv"
    gone.unlink()  # its sidecar stays
    rewritten = results / "figures" / "ranking_overall.png"
    listed = _sha(rewritten)
    write_text(rewritten, "a new figure\n")  # consistent sidecar, but not what the manifest lists
    rc, lines = run_verify(results, capsys)
    assert rc == 1
    assert sorted(problems(lines)) == sorted(
        [
            f"{gone}: missing (its sidecar runs.csv.sha256 exists)",
            f"{gone}: listed in MANIFEST.sha256 but missing",
            f"{rewritten}: MANIFEST.sha256 digest differs: manifest lists {listed}, file has "
            f"{_sha(rewritten)} (changed since the manifest was written)",
        ]
    ), lines
    assert len(verify_results(results).problems) == 3


def test_missing_results_folder_is_an_error(tmp_path, capsys):
    assert lnm(["verify", str(tmp_path / "nope")]) == 1
    assert "no such results folder" in capsys.readouterr().err


def test_require_verified_names_every_problem_at_once(results):
    a, b = results / "data" / "d_28.h5", results / RUN / "per_epoch.csv"
    tamper_keeping_mtime(a)
    sidecar(b).unlink()
    inputs = [a, sidecar(a), b, results / "tables" / "runs.csv"]
    with pytest.raises(ChecksumError) as err:
        require_verified(inputs)
    text = str(err.value)
    assert f"{a}: SHA-256 mismatch" in text and f"{b}: missing sidecar" in text
    runs = results / "tables" / "runs.csv"
    assert require_verified([runs, sidecar(runs)]) == {str(runs): verify(runs)}


def test_missing_sidecars_for_the_onstart_check(results):
    a = results / RUN / "metrics.json"
    outputs = [a, sidecar(a), results / RUN / "per_epoch.csv", results / "tables" / "nope.csv"]
    assert missing_sidecars(outputs) == [] and missing_sidecars_message(outputs) is None
    sidecar(a).unlink()
    assert missing_sidecars(outputs) == [str(a)]
    assert f"{a}: missing sidecar metrics.json.sha256" in missing_sidecars_message(outputs)


@pytest.fixture
def noise_file(tmp_path):
    """A results folder with synthetic data and one noise file made by the workflow."""
    res = tmp_path / "results"
    synthetic_results(res, n=(64, 20, 30))
    target = res / "noise" / "pathmnist" / "symmetric-0.4-n0.npz"
    cfg = ["--config", f"results={res}", "datasets=[pathmnist]", "--allowed-rules"]
    snakemake(*cfg, *SYNTHETIC_RULES, "--", str(target))
    verify(target)
    return target, cfg


@pytest.mark.slow
def test_workflow_refuses_to_regenerate_an_artifact_whose_sidecar_is_missing(noise_file):
    target, cfg = noise_file
    sidecar(target).unlink()
    before = (target.read_bytes(), target.stat().st_mtime_ns)
    out = snakemake(*cfg, *SYNTHETIC_RULES, "--", f"{target}.sha256", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"{target}: missing sidecar {target.name}.sha256" in text, text[-3000:]
    assert not re.search(r"^\d\d:\d\d:\d\d done |Finished jobid", text, re.M)  # no job ran
    assert (target.read_bytes(), target.stat().st_mtime_ns) == before  # neither rerun nor deleted
    assert not sidecar(target).exists()
    target.unlink()  # the documented way out: delete the artifact too, and it is rebuilt
    snakemake(*cfg, *SYNTHETIC_RULES, "--", f"{target}.sha256")
    verify(target)


def test_malformed_manifest_line_and_a_manifest_of_the_workflow(results, capsys):
    from lnm.report.manifest import write_manifest

    write_manifest(scan(results)[0], results, results / "MANIFEST.sha256")
    assert run_verify(results, capsys)[0] == 0
    with open(results / "MANIFEST.sha256", "a") as fh:
        fh.write("not a checksum line\n")
    write_sidecar(results / "MANIFEST.sha256")  # the line added with its sidecar renewed
    rc, lines = run_verify(results, capsys)
    assert rc == 1 and problems(lines) == [
        f"{results / 'MANIFEST.sha256'}:8: malformed MANIFEST line"
    ]


def test_a_deleted_manifest_line_is_an_error(results, capsys):
    manifest = results / "MANIFEST.sha256"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    rc, out = run_verify(results, capsys)
    assert rc == 1
    (problem,) = problems(out)
    assert problem.startswith(f"{manifest}: SHA-256 mismatch")
    assert any("1 artifact(s) not listed" in line for line in out if line.startswith("note:"))
    sidecar(manifest).unlink()
    rc, out = run_verify(results, capsys)
    assert rc == 1 and problems(out) == [f"{manifest}: missing sidecar MANIFEST.sha256.sha256"]


def test_an_unfinished_run_is_incomplete_unless_checked_as_partial(results, capsys):
    """No MANIFEST.sha256: the workflow has not reached its last step."""
    manifest = results / "MANIFEST.sha256"
    manifest.unlink()
    sidecar(manifest).unlink()
    rc, lines = run_verify(results, capsys)
    assert rc == 1 and "FAILED: 1 problem in 7 artifacts" in lines[-1]
    assert problems(lines) == [
        f"{manifest}: missing: the results are incomplete (the workflow has not reached its "
        "last step); run it to the end, or check the files there are with --partial"
    ]
    assert lnm(["verify", "--partial", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "OK: 7 artifacts" in out[-1] and any("partial results folder" in line for line in out)
    tamper_keeping_mtime(results / RUN / "metrics.json")  # --partial still checks the files
    assert lnm(["verify", "--partial", str(results)]) == 1


def test_start_check_names_missing_sidecars_and_size_changes_without_hashing(results, monkeypatch):
    """The workflow's start-up check: existence and size against the sidecar, for every
    artifact and the manifest; a one-byte change keeping the size is for lnm verify."""
    import lnm.verify
    from lnm.verify import start_check

    assert start_check(results, workdir=results) is None
    monkeypatch.setattr(lnm.verify, "sha256", None)  # nothing is hashed
    noise = results / "noise" / "d" / "symmetric-0.4-n0.npz"
    sidecar(noise).unlink()
    table = results / "tables" / "runs.csv"
    with open(table, "a") as fh:
        fh.write("one more row\n")
    manifest = results / "MANIFEST.sha256"
    deleted, rest = manifest.read_text().split("\n", 1)
    manifest.write_text(rest)  # a line deleted
    tamper_keeping_mtime(results / RUN / "metrics.json")  # same size: not seen here
    (results / "figures" / "ranking_overall.png").unlink()  # its job rebuilds it: no problem
    msg = start_check(results, workdir=results)
    size = lambda p: p.stat().st_size
    assert msg.splitlines()[1:4] == [
        f"  {noise}: missing sidecar symmetric-0.4-n0.npz.sha256",
        f"  {table}: {size(table)} bytes, but its sidecar records "
        f"{len('content of tables/runs.csv') + 1} (changed or truncated after it was written)",
        f"  {manifest}: {size(manifest)} bytes, but its sidecar records "
        f"{size(manifest) + len(deleted) + 1} (changed or truncated after it was written)",
    ]
    assert msg.startswith("3 artifact(s) of") and "Nothing was run" in msg


def test_another_configs_results_nested_inside_are_not_this_configs_artifacts(results, capsys):
    """The paper grid's results folder (``results``) holds the demo's (``results/demo``), with
    its own logs, timings and report: none of it is an artifact of the outer folder, so neither
    the start-up check nor lnm verify of ``results`` names it (the README runs the demo, then
    dry-runs the paper grid)."""
    from lnm.verify import start_check

    nested = results / "demo"
    for rel in ("logs/aggregate.log", "benchmarks/train/x.tsv", "report.html", "tables/runs.csv"):
        (nested / rel).parent.mkdir(parents=True, exist_ok=True)
        (nested / rel).write_text("no sidecar\n")
    (results / "cli" / "run").mkdir(parents=True)  # lnm train --out results/cli/run
    (results / "cli" / "run" / "metrics.json").write_text("{}")
    assert not is_artifact("demo/tables/runs.csv") and not is_artifact("cli/run/metrics.json")
    assert start_check(results, workdir=results) is None
    rc, lines = run_verify(results, capsys)
    assert rc == 0 and "OK: 8 artifacts" in lines[-1], lines


def test_start_check_skips_what_snakemake_marked_incomplete(results, tmp_path):
    """An interrupted job's outputs (Snakemake's markers in .snakemake/incomplete) may lack
    their sidecar: --rerun-incomplete rebuilds them."""
    from base64 import urlsafe_b64encode

    from lnm.verify import incomplete_outputs, start_check

    target = results / RUN / "metrics.json"
    sidecar(target).unlink()
    assert "missing sidecar metrics.json.sha256" in start_check(results, workdir=tmp_path)
    marker = urlsafe_b64encode(str(target).encode()).decode()
    chunks = [marker[i : i + 40] for i in range(0, len(marker), 40)]  # as Snakemake splits
    path = tmp_path / ".snakemake" / "incomplete"
    for chunk in chunks[:-1]:
        path = path / f"@{chunk}"
    path.mkdir(parents=True)
    (path / chunks[-1]).write_text("{}")
    (tmp_path / ".snakemake" / "incomplete" / "migration_underway").write_text("")
    assert incomplete_outputs(tmp_path) == {str(target)}
    assert start_check(results, workdir=tmp_path) is None


def test_sidecars_record_the_size_as_a_comment_sha256sum_skips(tmp_path):
    import shutil
    import subprocess

    target = tmp_path / "x.csv"
    write_text(target, "a,b\n1,2\n")
    assert sidecar(target).read_text() == f"{verify(target)}  x.csv\n# size 8\n"
    if shutil.which("sha256sum"):
        out = subprocess.run(
            ["sha256sum", "--strict", "-c", "x.csv.sha256"], cwd=tmp_path, capture_output=True
        )
        assert out.returncode == 0 and out.stdout == b"x.csv: OK\n"
