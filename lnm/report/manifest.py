"""results/MANIFEST.sha256: every artifact of the run, verified, in ``sha256sum -c`` format."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..checksum import atomic_path, verify


def write_manifest(artifacts, root: str | Path, out: str | Path) -> int:
    """Verify each artifact against its sidecar and list ``<sha256>  <path relative to root>``.

    Raw-data records also contribute the raw ``.npz`` they point to (by its recorded SHA-256).
    Run ``cd <root> && sha256sum -c MANIFEST.sha256`` to check a results folder later.
    """
    lines = []
    for path in sorted(map(str, artifacts)):
        lines.append(f"{verify(path)}  {os.path.relpath(path, root)}")
        if path.endswith(".json") and f"{os.sep}raw{os.sep}" in path:
            rec = json.loads(Path(path).read_text())
            lines.append(f"{rec['sha256']}  {os.path.relpath(rec['path'], root)}")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return len(lines)
