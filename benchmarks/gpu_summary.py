"""The closing table of ``benchmarks/gpu_check.sh``: every check, its figure and its verdict.

    python benchmarks/gpu_summary.py OUT_DIR

Reads what the check's steps left in ``OUT_DIR`` (standard library only: it runs wherever the
check runs):

- ``steps.tsv``: one line per step, ``name<TAB>budget s<TAB>seconds<TAB>status<TAB>detail``
  with status ``ok``, ``failed``, ``timeout``, ``skipped`` (something it needs is missing) or
  ``n/a`` (not applicable here);
- ``pytest_gpu.xml``: the JUnit report of ``pytest -m gpu``;
- ``throughput.json``: ``benchmarks/throughput.py --compare --json``;
- ``grid_cost_28.json``: ``benchmarks/grid_cost.py --json`` of the paper grid at 28 px with
  ResNet-18;
- ``checks/*.json``: rows any other step adds, each ``{"check", "figure", "target",
  "verdict"}`` with verdict ``met``, ``MISSED`` or ``FAILED`` (a step added to the check's
  table writes its rows there).

The GPU targets (issue 14): ResNet-18 at 28 px, lnm's pipeline at >= 10x the DataLoader + PIL
pipeline's training images/s and >= 85 % of pure compute; ResNet-50 at 224 px >= 2.5x and
>= 85 %; the 28 px paper grid (ResNet-18) projected at <= 8 H100-hours.

Exit status: 0 every step ran and every target is met; 1 a step failed, timed out or was
skipped for a reason other than "not applicable", or ``pytest -m gpu`` failed, skipped or ran
no test (the figures cannot be trusted); 3 every check ran but a target is missed.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

#: (backbone, size) -> (min ours/dataloader, min ours/compute)
THROUGHPUT_TARGETS = {("resnet18", 28): (10.0, 0.85), ("resnet50", 224): (2.5, 0.85)}
GRID_HOURS_TARGET = 8.0
#: a skip whose reason says this is fine (nothing to check on this machine)
NOT_APPLICABLE = "not applicable"
OK, MISSED, FAILED = "met", "MISSED", "FAILED"


def read_steps(out: Path) -> list[dict]:
    path = out / "steps.tsv"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        name, budget, seconds, status, detail = (line.split("\t") + [""] * 5)[:5]
        steps.append(
            {"name": name, "budget": budget, "seconds": seconds, "status": status, "detail": detail}
        )
    return steps


def pytest_rows(out: Path) -> list[tuple]:
    """One row: tests passed / failed / skipped of ``pytest -m gpu`` (FAILED for any failure,
    error, a skip that is not "not applicable", or no test at all)."""
    path = out / "pytest_gpu.xml"
    if not path.exists():
        return [("pytest -m gpu", "no report", "all pass, none skipped", FAILED)]
    root = ET.parse(path).getroot()
    passed, bad, skipped_ok = 0, [], 0
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag: child for child in case}
        if "failure" in kinds or "error" in kinds:
            bad.append(f"{name} failed")
        elif "skipped" in kinds:
            reason = kinds["skipped"].get("message", "")
            if NOT_APPLICABLE in reason:
                skipped_ok += 1
            else:
                bad.append(f"{name} skipped ({reason})")
        else:
            passed += 1
    figure = f"{passed} passed, {len(bad)} failed or skipped, {skipped_ok} not applicable"
    verdict = OK if passed and not bad else FAILED
    rows = [("pytest -m gpu", figure, "all pass, none skipped", verdict)]
    rows += [("  " + b[:90], "", "", FAILED) for b in bad[:10]]
    return rows


def throughput_rows(out: Path) -> list[tuple]:
    path = out / "throughput.json"
    rows = []
    found = {}
    if path.exists():
        for r in json.loads(path.read_text()).get("rows", []):
            found[(r["backbone"], int(r["size"]))] = r
    for (backbone, size), (min_dl, min_compute) in THROUGHPUT_TARGETS.items():
        r = found.get((backbone, size))
        label = f"{backbone} {size} px"
        if r is None or r.get("device") != "cuda":
            rows.append((f"{label}: ours / DataLoader", "not measured", f">= {min_dl:g}x", FAILED))
            rows.append(
                (f"{label}: ours / compute", "not measured", f">= {min_compute:.0%}", FAILED)
            )
            continue
        dl, comp = float(r["ours/dataloader"]), float(r["ours/compute"])
        rows.append(
            (
                f"{label}: ours / DataLoader + PIL",
                f"{dl:.2f}x ({r['ours']:.0f} vs {r['dataloader']:.0f} img/s)",
                f">= {min_dl:g}x",
                OK if dl >= min_dl else MISSED,
            )
        )
        rows.append(
            (
                f"{label}: ours / pure compute",
                f"{comp:.1%} ({r['ours']:.0f} of {r['compute']:.0f} img/s)",
                f">= {min_compute:.0%}",
                OK if comp >= min_compute else MISSED,
            )
        )
    return rows


def grid_rows(out: Path) -> list[tuple]:
    path = out / "grid_cost_28.json"
    label = "28 px paper grid (ResNet-18), projected"
    if not path.exists():
        return [(label, "not measured", f"<= {GRID_HOURS_TARGET:g} H100-h", FAILED)]
    doc = json.loads(path.read_text())
    hours = float(doc["total_hours"])
    device = str(doc.get("device", "?"))
    if doc.get("not_measured"):
        return [(label, f"incomplete: {doc['not_measured']}", "", FAILED)]
    figure = f"{hours:.2f} device-h on {device} ({doc.get('training_runs', '?')} runs)"
    verdict = OK if hours <= GRID_HOURS_TARGET else MISSED
    if "H100" not in device:
        figure += " (not an H100: compare with care)"
    return [(label, figure, f"<= {GRID_HOURS_TARGET:g} H100-h", verdict)]


def extra_rows(out: Path) -> list[tuple]:
    rows = []
    for path in sorted((out / "checks").glob("*.json")):
        try:
            items = json.loads(path.read_text())
            for r in items if isinstance(items, list) else [items]:
                rows.append(
                    (str(r["check"]), str(r["figure"]), str(r["target"]), str(r["verdict"]))
                )
        except (ValueError, KeyError, TypeError) as err:
            rows.append((path.name, f"unreadable ({err})", "", FAILED))
    return rows


def summarize(out: Path, print_=print) -> int:
    steps = read_steps(out)
    rows = []
    broken = False
    for s in steps:
        status = s["status"]
        if status == "ok":
            verdict = "ran"
        elif status == "n/a":
            verdict = "n/a"
        else:
            verdict, broken = FAILED, True
        figure = f"{s['seconds']} s of {s['budget']} s"
        rows.append(
            (
                f"step: {s['name']}",
                figure,
                status + (f": {s['detail']}" if s["detail"] else ""),
                verdict,
            )
        )
    if not steps:
        rows.append(("steps", "none ran", "", FAILED))
        broken = True
    checks = pytest_rows(out) + throughput_rows(out) + grid_rows(out) + extra_rows(out)
    rows += checks
    broken = broken or any(r[3] == FAILED for r in checks)
    missed = any(r[3] == MISSED for r in checks)
    widths = [
        max(len(str(r[i])) for r in rows + [("check", "figure", "target", "verdict")])
        for i in range(4)
    ]
    widths = [min(w, 60) for w in widths]
    head = ("check", "figure", "target / status", "verdict")
    line = "  ".join(f"{h:{w}s}" for h, w in zip(head, widths))
    print_(line)
    print_("-" * len(line))
    for r in rows:
        print_("  ".join(f"{str(c)[:60]:{w}s}" for c, w in zip(r, widths)))
    if broken:
        print_("RESULT: a check failed or did not run (see above): nothing here can be trusted")
        return 1
    if missed:
        print_("RESULT: every check ran; a target is MISSED")
        return 3
    print_("RESULT: every check ran and every target is met")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: gpu_summary.py OUT_DIR")
    sys.exit(summarize(Path(sys.argv[1])))
