"""Deterministic ``.npz`` noise files, written atomically with a SHA-256 sidecar.

``np.savez`` stamps the current time into every zip entry, so the archive is written here with
fixed entry metadata (date 1980-01-01, Unix attributes), keys in sorted order and no compression
(``ZIP_STORED``: the bytes then do not depend on the zlib build). Same inputs, same bytes, same
hash.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..checksum import artifact, verify
from .spec import NoiseError


def _npy_bytes(key: str, value) -> bytes:
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        raise NoiseError(
            f"noise file entry {key!r} has object dtype; allowed: plain arrays and scalars"
        )
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)  # keeps 0-d arrays 0-d
    return buf.getvalue()


def save_noise(path, result: dict) -> None:
    """Write ``result`` (arrays and scalars; scalars become 0-d arrays) to ``path``, readable by
    ``np.load``; byte-identical for identical ``result``."""
    entries = {key: _npy_bytes(key, result[key]) for key in sorted(result)}
    with artifact(Path(path)) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for key, data in entries.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def load_noise(path, check: bool = True) -> dict:
    """Load a noise file (after :func:`lnm.checksum.verify` when ``check``); 0-d arrays come back
    as python scalars (str, float, int, bool)."""
    if check:
        verify(path)
    out = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            arr = npz[key]
            out[key] = arr.item() if arr.ndim == 0 else arr
    return out
