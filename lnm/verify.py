"""``lnm verify RESULTS``: check every artifact of a results folder against its SHA-256 sidecar
and against ``MANIFEST.sha256``.

Which files are artifacts (each must have a sidecar ``X.sha256`` that matches it):
every file below the folders :data:`lnm.grid.ARTIFACT_DIRS` names (``raw/``, ``data/``,
``noise/``, ``estimates/``, ``runs/``, ``tables/``, ``figures/``), except

- the sidecars themselves (``*.sha256``); a sidecar whose artifact is missing is a problem;
- hidden files and folders (``.snakemake/``, the ``.<name>.*.tmp`` of an atomic write under way);
- a training run's resume state, ``checkpoint.*`` (``checkpoint.pt``, its sidecar, its attempt
  log and the checkpoints set aside as ``checkpoint.pt.stale-*``/``.corrupt-*``): it is not a
  result, changes while a run trains, and the trainer verifies it itself before resuming.

Nothing else below the results folder is an artifact: Snakemake's ``logs/`` and
``benchmarks/``, ``report.html`` from ``snakemake --report``, another config's results folder
nested inside (the demo's ``results/demo`` inside the paper grid's ``results``), except ``MANIFEST.sha256``, which has a sidecar of its own (so a line
deleted from it is a SHA-256 mismatch): each of its lines must name an existing file (relative
to the results folder) whose SHA-256 is the one listed. Artifacts not listed in it (written
after it, or left from another config) are noted, not counted as problems. A missing manifest
is a problem: the results are incomplete (the workflow has not reached its last step), unless a
partial folder is checked on purpose (``lnm verify --partial``: then it is noted).

Problems, one line each: missing sidecar, malformed sidecar, SHA-256 mismatch (whatever the
file's modification time says), sidecar without its artifact, listed in MANIFEST but missing,
MANIFEST digest differs, malformed MANIFEST line, no MANIFEST. ``lnm verify`` exits 1 on any
problem.

:func:`start_check` serves the workflow when it is parsed (every start, also when nothing is
to be done): without hashing anything, every artifact below the results folder and the
manifest must have a sidecar and the size it records (a file's size is in its sidecar's second
line), except the outputs Snakemake has marked incomplete (an interrupted job's, rebuilt anyway).
See docs/verification.md for what a plain ``snakemake`` run detects and what only ``lnm verify``
does.

The ``manifest`` rule runs :func:`require_verified` over its inputs (every artifact) before it
writes the manifest, so a file tampered with after it was written, even with its old
modification time restored, fails the workflow when the tables and figures are gathered.
:func:`missing_sidecars` serves the Snakefile's ``onstart`` check: an artifact whose sidecar is
missing is an error naming it, never a cue for Snakemake to regenerate it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .checksum import SUFFIX, ChecksumError, read_sidecar, sha256, sidecar
from .grid import ARTIFACT_DIRS, MANIFEST

#: Name prefix of a training run's resume state (checked by the trainer, not here).
CHECKPOINT_PREFIX = "checkpoint."


@dataclass(frozen=True)
class Problem:
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


@dataclass
class Report:
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: path -> SHA-256 of every artifact that matched its sidecar
    digests: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, where: str | os.PathLike = "") -> str:
        head = f"{where}: " if str(where) else ""
        if self.ok:
            return f"{head}OK: {self.checked} artifacts match their sidecars and the manifest"
        n = len(self.problems)
        return f"{head}FAILED: {n} problem{'s' * (n != 1)} in {self.checked} artifacts"


def is_artifact(rel: str | os.PathLike) -> bool:
    """Whether a path relative to the results folder is an artifact (see the module doc)."""
    parts = Path(rel).parts
    if len(parts) < 2 or parts[0] not in ARTIFACT_DIRS:
        return False
    if any(p.startswith(".") for p in parts):
        return False
    name = parts[-1]
    return not name.endswith(SUFFIX) and not name.startswith(CHECKPOINT_PREFIX)


def _is_sidecar_of_artifact(rel: Path) -> bool:
    return rel.name.endswith(SUFFIX) and is_artifact(rel.with_name(rel.name[: -len(SUFFIX)]))


def scan(results: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(artifacts, sidecars whose artifact is missing) below ``results``, sorted."""
    root = Path(results)
    artifacts, orphans = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root)
            if is_artifact(rel):
                artifacts.append(path)
            elif _is_sidecar_of_artifact(rel) and not Path(str(path)[: -len(SUFFIX)]).exists():
                orphans.append(path)
    return artifacts, orphans


def _read_sidecar(path: Path) -> tuple[tuple[str | None, int | None], Problem | None]:
    """((SHA-256, size) its sidecar records, None), or ((None, None), the problem: the sidecar
    is missing or malformed)."""
    side = sidecar(path)
    if not side.exists():
        return (None, None), Problem(str(path), f"missing sidecar {side.name}")
    try:
        return read_sidecar(path), None
    except ChecksumError:
        return (None, None), Problem(str(path), f"malformed sidecar {side.name}")


def check_artifact(path: str | os.PathLike) -> tuple[str | None, Problem | None]:
    """(actual SHA-256 or None, problem or None) of one artifact against its sidecar."""
    path = Path(path)
    if not path.is_file():
        return None, Problem(str(path), "missing")
    (want, _), problem = _read_sidecar(path)
    if problem:
        return None, problem
    actual = sha256(path)
    if actual != want:
        return actual, Problem(
            str(path),
            f"SHA-256 mismatch: sidecar records {want}, file has {actual} (modified or "
            "truncated after it was written)",
        )
    return actual, None


def check_manifest(
    results: Path, digests: dict[Path, str], report: Report, partial: bool = False
) -> None:
    """Compare MANIFEST.sha256 (itself checked against its sidecar) with the files it lists
    (``digests``: already computed ones). No manifest: a problem (the results are incomplete),
    or a note when ``partial``."""
    manifest = results / MANIFEST
    if not manifest.exists():
        if partial:
            report.notes.append(f"{manifest}: not present (a partial results folder; not checked)")
        else:
            report.problems.append(
                Problem(
                    str(manifest),
                    "missing: the results are incomplete (the workflow has not reached its "
                    "last step); run it to the end, or check the files there are with --partial",
                )
            )
        return
    report.checked += 1
    _, problem = check_artifact(manifest)
    if problem:
        report.problems.append(problem)
    listed: set[Path] = set()
    for i, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or not rel:
            report.problems.append(Problem(f"{manifest}:{i}", "malformed MANIFEST line"))
            continue
        path = results / rel
        key = Path(os.path.normpath(path))
        listed.add(key)
        if not path.is_file():
            report.problems.append(Problem(str(path), f"listed in {MANIFEST} but missing"))
            continue
        actual = digests.get(key) or sha256(path)
        if actual != digest:
            report.problems.append(
                Problem(
                    str(path),
                    f"{MANIFEST} digest differs: manifest lists {digest}, file has {actual} "
                    "(changed since the manifest was written)",
                )
            )
    unlisted = [p for p in digests if p not in listed]
    if unlisted:
        report.notes.append(
            f"{manifest}: {len(unlisted)} artifact(s) not listed (written after it or not "
            f"part of its run), e.g. {unlisted[0]}"
        )


def verify_results(results: str | os.PathLike, partial: bool = False) -> Report:
    """Check every artifact below ``results`` and ``results/MANIFEST.sha256`` (``partial``: a
    folder the workflow has not finished; a missing manifest is then a note)."""
    root = Path(results)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results folder")
    report = Report()
    artifacts, orphans = scan(root)
    digests: dict[Path, str] = {}
    for path in artifacts:
        actual, problem = check_artifact(path)
        report.checked += 1
        if actual is not None:
            digests[Path(os.path.normpath(path))] = actual
        if problem:
            report.problems.append(problem)
    for side in orphans:
        report.problems.append(
            Problem(str(side)[: -len(SUFFIX)], f"missing (its sidecar {side.name} exists)")
        )
    check_manifest(root, digests, report, partial)
    return report


def verify_files(paths: Iterable[str | os.PathLike]) -> Report:
    """Check the given artifacts (sidecar paths among them are skipped) against their sidecars."""
    report = Report()
    for path in sorted({str(p) for p in paths if not str(p).endswith(SUFFIX)}):
        report.checked += 1
        digest, problem = check_artifact(path)
        if problem:
            report.problems.append(problem)
        else:
            report.digests[path] = digest
    return report


def require_verified(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """Raise :class:`ChecksumError` listing *every* problem of ``paths``; else return their
    verified SHA-256 digests (path -> digest; sidecar paths among ``paths`` are skipped)."""
    report = verify_files(paths)
    if not report.ok:
        raise ChecksumError(
            "\n".join([*map(str, report.problems), report.summary()])
            + "\nDelete a damaged artifact (and its sidecar) to have the workflow rebuild it."
        )
    return report.digests


def missing_sidecars(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Existing artifacts among ``paths`` whose sidecar does not exist (paths ending in
    ``.sha256`` are sidecars and skipped)."""
    return sorted(
        {
            str(p)
            for p in paths
            if not str(p).endswith(SUFFIX) and os.path.exists(p) and not sidecar(p).exists()
        }
    )


def missing_sidecars_message(paths: Iterable[str | os.PathLike]) -> str | None:
    """The error for the Snakefile's ``onstart`` check, or None when every sidecar is there."""
    missing = missing_sidecars(paths)
    if not missing:
        return None
    lines = "\n".join(f"  {p}: missing sidecar {Path(p).name}{SUFFIX}" for p in missing)
    return (
        f"{len(missing)} artifact(s) have no SHA-256 sidecar, so they cannot be verified:\n"
        f"{lines}\nA missing sidecar means the record was deleted or the file was not written "
        "by this workflow; it is not regenerated silently. Restore the sidecar, or delete the "
        "artifact too to have it rebuilt."
    )


def incomplete_outputs(workdir: str | os.PathLike = ".") -> set[str]:
    """The files Snakemake has marked incomplete in the working directory ``workdir`` (outputs
    of jobs that started and did not finish: Snakemake reruns them with --rerun-incomplete,
    rebuilding them from scratch), as normalised absolute paths.

    Read from Snakemake's markers ``.snakemake/incomplete/``: one file per output, named by the
    URL-safe base64 of its path (split into folder names starting with ``@`` where longer than
    a file name may be)."""
    from base64 import urlsafe_b64decode

    root = Path(workdir) / ".snakemake" / "incomplete"
    out: set[str] = set()
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            parts = (Path(dirpath) / name).relative_to(root).parts
            if any(p.startswith("@") != (i < len(parts) - 1) for i, p in enumerate(parts)):
                continue  # not a marker (e.g. migration_underway)
            try:
                text = urlsafe_b64decode("".join(p.lstrip("@") for p in parts)).decode()
            except (ValueError, UnicodeDecodeError):
                continue
            out.add(os.path.normpath(os.path.join(os.path.abspath(workdir), text)))
    return out


def start_check(results: str | os.PathLike, workdir: str | os.PathLike = ".") -> str | None:
    """The workflow's check when it starts, cheap (no hashing): the error naming every artifact
    below ``results`` (and the manifest) whose sidecar is missing or malformed or whose size
    differs from the one its sidecar records, or None. Sidecars without a size (written before
    sizes were recorded) are checked for existence only; a missing artifact whose sidecar is
    there is no problem (its job rebuilds it); outputs Snakemake has marked incomplete
    (:func:`incomplete_outputs` of ``workdir``) are skipped."""
    root = Path(results)
    if not root.is_dir():
        return None
    artifacts, _ = scan(root)
    if (root / MANIFEST).is_file():
        artifacts.append(root / MANIFEST)
    skip = incomplete_outputs(workdir)
    problems = []
    for path in artifacts:
        if os.path.normpath(os.path.abspath(path)) in skip:
            continue
        (_, size), problem = _read_sidecar(path)
        if problem:
            problems.append(problem)
            continue
        actual = path.stat().st_size
        if size is not None and actual != size:
            problems.append(
                Problem(
                    str(path),
                    f"{actual} bytes, but its sidecar records {size} (changed or truncated "
                    "after it was written)",
                )
            )
    if not problems:
        return None
    lines = "\n".join(f"  {p}" for p in problems)
    return (
        f"{len(problems)} artifact(s) of {root} fail the start-up check (every artifact has its "
        f"SHA-256 sidecar and the size it records; nothing is hashed):\n{lines}\n"
        "Nothing was run. A missing sidecar is never a cue to rebuild silently: restore it, or "
        "delete the artifact too to have the workflow rebuild it; a file whose size changed "
        "was modified after it was written: delete it and its sidecar to have it rebuilt. "
        f"`lnm verify {root}` hashes every file."
    )


def main(results: str | os.PathLike, out=None, partial: bool = False) -> int:
    """Print one line per problem, notes and a summary; return the exit status (0 clean, 1 not).
    ``partial``: check a folder the workflow has not finished (no manifest: a note)."""
    import sys

    out = out or sys.stdout
    report = verify_results(results, partial)
    for problem in report.problems:
        print(problem, file=out)
    for note in report.notes:
        print(f"note: {note}", file=out)
    print(report.summary(results), file=out)
    return 0 if report.ok else 1
