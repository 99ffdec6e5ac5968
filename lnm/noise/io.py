"""Deterministic ``.npz`` noise files, written atomically with a SHA-256 sidecar.

``np.savez`` stamps the current time into every zip entry, so the archive is written here with
fixed entry metadata (date 1980-01-01, Unix attributes), keys in sorted order and no compression
(``ZIP_STORED``: the bytes then do not depend on the zlib build). Same inputs, same bytes, same
hash.

A noise file made from a data file (:func:`lnm.noise.generate.generate_noise_file`) records
the data it was drawn on: ``dataset`` (the HDF5's ``dataset`` attribute) and ``data_sha256``.
Its consumers (the trainer, the estimation stage) refuse a noise file drawn on another data file
before any work (:func:`check_drawn_on`, or ``load_noise(..., data_path=...)``).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..checksum import artifact, sha256, verify
from .spec import SPLITS, NoiseError


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


def load_noise(path, check: bool = True, data_path=None, data_sha256: str | None = None) -> dict:
    """Load a noise file (after :func:`lnm.checksum.verify` when ``check``); 0-d arrays come back
    as python scalars (str, float, int, bool).

    ``data_path``: the HDF5 the labels are for (``data_sha256``: its SHA-256 when the caller has
    verified it); a noise file drawn on another data file is refused (:func:`check_drawn_on`)."""
    if check:
        verify(path)
    out = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            arr = npz[key]
            out[key] = arr.item() if arr.ndim == 0 else arr
    if data_path is not None:
        check_drawn_on(out, path, data_path, data_sha256 or sha256(data_path))
    return out


def data_name(data_path) -> str:
    """The ``dataset`` attribute of an HDF5 data file ('?' where it has none)."""
    import h5py

    with h5py.File(data_path, "r") as h5:
        return str(h5.attrs.get("dataset", "?"))


def check_drawn_on(noise: dict, noise_path, data_path, data_sha256: str) -> None:
    """Raise :class:`NoiseError`, naming both files and their datasets, unless the noise file
    ``noise`` (read from ``noise_path``) was drawn on the data file ``data_path`` (SHA-256
    ``data_sha256``).

    A noise file records the SHA-256 of its data file (``data_sha256``): it must be this one. A
    noise file written before noise files recorded it is checked as far as it can be: its train
    and val splits have as many labels as the data file's, and its clean labels (where known)
    are the data file's labels; anything else about it cannot be checked (draw it again to have
    the full check)."""
    recorded = noise.get("data_sha256")
    drawn_on = noise.get("dataset", "?")
    if recorded is not None:
        if recorded == data_sha256:
            return
        raise NoiseError(
            f"{noise_path}: drawn for data with SHA-256 {recorded[:16]}... ({drawn_on}), but "
            f"{data_path} ({data_name(data_path)}) has SHA-256 {data_sha256[:16]}...: the noise "
            "file was drawn on another data file and fits only that one; draw it again from "
            f"this one (lnm noise --data {data_path} ...) or give the data file it was drawn on"
        )
    import h5py

    with h5py.File(data_path, "r") as h5:
        labels = {s: np.asarray(h5[s]["labels"][()], dtype=np.int64) for s in SPLITS}
    for split in SPLITS:
        noisy = noise.get(f"{split}_noisy")
        clean = noise.get(f"{split}_clean")
        if noisy is None or len(noisy) != len(labels[split]):
            n = "no" if noisy is None else len(noisy)
            raise NoiseError(
                f"{noise_path}: {n} {split} labels, but {data_path} "
                f"({data_name(data_path)}) has {len(labels[split])} {split} samples: the noise "
                "file was drawn on another data file; draw it again from this one"
            )
        if clean is not None:
            clean = np.asarray(clean, dtype=np.int64)
            known = (clean >= 0) & (labels[split] >= 0)
            if not np.array_equal(clean[known], labels[split][known]):
                raise NoiseError(
                    f"{noise_path}: its clean {split} labels are not those of {data_path} "
                    f"({data_name(data_path)}): the noise file was drawn on another data file; "
                    "draw it again from this one"
                )
