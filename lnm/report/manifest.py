"""results/MANIFEST.sha256: every artifact of the run, verified, in ``sha256sum -c`` format,
with a SHA-256 sidecar of its own (``MANIFEST.sha256.sha256``), so that a line deleted from it
is caught like any other change."""

from __future__ import annotations

from pathlib import Path

from ..checksum import artifact, verify


def write_manifest(
    artifacts, root: str | Path, out: str | Path, digests: dict[str, str] | None = None
) -> int:
    """List ``<sha256>  <path relative to root>`` of each artifact, verified against its sidecar
    (or taken from ``digests``, path -> SHA-256, when the caller has just verified them).

    Only files below ``root`` are listed, so the manifest stays valid when the results folder
    moves; the raw ``.npz`` files (outside it) are represented by their download records
    (``raw/*.json``: dataset, size, MD5, SHA-256), which are listed like any artifact.
    Run ``cd <root> && sha256sum -c MANIFEST.sha256`` to check a results folder later. The
    manifest gets its own sidecar, like every artifact.
    """
    root = Path(root).resolve()
    lines = []
    for path in sorted(map(str, artifacts)):
        rel = Path(path).resolve().relative_to(root)  # ValueError: not below the results folder
        digest = digests[path] if digests and path in digests else verify(path)
        lines.append(f"{digest}  {rel.as_posix()}")
    with artifact(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return len(lines)
