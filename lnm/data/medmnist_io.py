"""MedMNIST raw files: names, expected MD5s (from ``medmnist.INFO``), verification, download.

A raw file that already exists with the MD5 medmnist lists is used as it is, without any
network access. A missing file is downloaded through the ``medmnist`` package into a temporary
folder, verified, and only then moved into place.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

from ..checksum import artifact, atomic_path, file_digest
from ..grid import MEDMNIST_SIZES

SIZES = MEDMNIST_SIZES


class DataError(RuntimeError):
    """Bad dataset name, size, missing or corrupt raw file."""


def _info() -> dict:
    import medmnist

    return medmnist.INFO


@functools.cache
def _single_label_2d() -> tuple[str, ...]:
    return tuple(
        flag
        for flag, inf in _info().items()
        if not flag.endswith("3d") and inf["task"] != "multi-label, binary-class"
    )


def __getattr__(name: str):
    # DATASETS (medmnist's 2-D single-label sets) is read from medmnist when first asked for:
    # importing medmnist imports torch, pandas and scikit-learn (seconds), which a process that
    # only reads an HDF5 file (training) must not pay for.
    if name == "DATASETS":
        return _single_label_2d()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dataset_info(flag: str) -> dict:
    info = _info()
    datasets = _single_label_2d()
    if flag not in datasets:
        why = (
            "it is multi-label"
            if flag in info and "multi-label" in info[flag]["task"]
            else "it is 3D"
            if flag in info
            else "it is not a MedMNIST dataset"
        )
        raise DataError(
            f"dataset {flag!r} is not supported ({why}); allowed: {', '.join(datasets)}"
        )
    return info[flag]


def _check_size(size: int) -> None:
    if size not in SIZES:
        raise DataError(
            f"image size {size!r} is not available; allowed: {', '.join(map(str, SIZES))}"
        )


def raw_filename(flag: str, size: int) -> str:
    """medmnist's own file name: ``<flag>.npz`` for 28 px, ``<flag>_<size>.npz`` otherwise."""
    _check_size(size)
    dataset_info(flag)
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def expected_md5(flag: str, size: int) -> str:
    _check_size(size)
    info = dataset_info(flag)
    return info["MD5"] if size == 28 else info[f"MD5_{size}"]


def _url(flag: str, size: int) -> str:
    info = dataset_info(flag)
    return info["url"] if size == 28 else info[f"url_{size}"]


def check_md5(path: Path, flag: str, size: int) -> str:
    want = expected_md5(flag, size)
    got = file_digest(path, "md5")
    if got != want:
        raise DataError(
            f"{path}: MD5 mismatch for {flag} at {size} px: expected {want} "
            f"(medmnist INFO), actual {got}. The file is corrupt or a different "
            "version; delete it and download it again."
        )
    return got


def _download(flag: str, size: int, dest: Path) -> None:
    """Download through the medmnist package into a temp folder, then move to ``dest``."""
    import medmnist

    cls = getattr(medmnist, dataset_info(flag)["python_class"])
    with tempfile.TemporaryDirectory(prefix="lnm-dl-") as tmp:
        try:
            cls(split="train", download=True, root=tmp, size=size)
        except Exception as err:  # network errors come in many types
            raise DataError(
                f"could not download {flag} ({size} px) through medmnist "
                f"({type(err).__name__}; no network?). Put the file at {dest} "
                f"(from {_url(flag, size)}, MD5 {expected_md5(flag, size)}), or point "
                f"`raw_dir` at a folder that holds {dest.name}."
            ) from None
        got = Path(tmp) / dest.name
        check_md5(got, flag, size)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as part:
            shutil.copyfile(got, part)


def fetch(
    flag: str, size: int, raw_dir: str | Path, record: str | Path, allow_download: bool = True
) -> dict:
    """Make sure ``raw_dir`` holds the verified raw file; write a JSON record of it.

    The record (``{"dataset", "size", "path", "md5", "sha256", "bytes"}``) is the download
    step's artifact; it is written only after the MD5 matched.
    """
    path = Path(raw_dir).expanduser() / raw_filename(flag, size)
    if not path.exists():
        if not allow_download:
            raise DataError(
                f"{path} does not exist and downloads are disabled; get it from "
                f"{_url(flag, size)} (MD5 {expected_md5(flag, size)})"
            )
        _download(flag, size, path)
    md5 = check_md5(path, flag, size)
    rec = {
        "dataset": flag,
        "size": size,
        "md5": md5,
        "sha256": file_digest(path, "sha256"),
        "bytes": path.stat().st_size,
    }
    with artifact(record) as tmp:
        tmp.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
    return path, rec


def raw_path(record: dict, raw_dir: str | Path) -> Path:
    """The raw file a download record describes, in ``raw_dir``, verified against the record's
    MD5 (the raw file may have changed since the record was written)."""
    flag, size = record["dataset"], int(record["size"])
    path = Path(raw_dir).expanduser() / raw_filename(flag, size)
    if not path.exists():
        raise DataError(
            f"{path} does not exist: the download record says {flag} ({size} px) is there "
            f"(MD5 {record['md5']}); put the file back or point `raw_dir` at its folder"
        )
    got = check_md5(path, flag, size)
    if got != record["md5"]:
        raise DataError(f"{path}: MD5 {got} differs from the download record's {record['md5']}")
    return path
