"""Preprocess a verified MedMNIST ``.npz`` into one HDF5 file per dataset and size.

Layout::

    /train/images  uint8 (N, H, W, C)      /train/labels  int64 (N,)
    /val/...                               /test/...
    attrs: dataset, size, task, n_channels, n_classes, classes (JSON list),
           source_md5, source_sha256, mean (per channel, train split, in [0, 1]), std
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py  # noqa: E402
import numpy as np  # noqa: E402

from ..checksum import artifact, verify  # noqa: E402
from .medmnist_io import DataError, dataset_info, raw_path  # noqa: E402

SPLITS = ("train", "val", "test")


def preprocess(record_path: str | Path, raw_dir: str | Path, out_path: str | Path) -> None:
    """The raw file of a verified download record (found in ``raw_dir``, MD5 checked) -> HDF5."""
    verify(record_path)
    rec = json.loads(Path(record_path).read_text())
    flag, size = rec["dataset"], int(rec["size"])
    raw = raw_path(rec, raw_dir)
    info = dataset_info(flag)
    classes = [info["label"][str(i)] for i in range(len(info["label"]))]
    with np.load(raw) as npz:
        arrays = {s: (npz[f"{s}_images"], npz[f"{s}_labels"]) for s in SPLITS}
    with artifact(out_path) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
        for split, (images, labels) in arrays.items():
            if images.ndim == 3:
                images = images[..., None]
            labels = labels.reshape(-1).astype(np.int64)
            n = info["n_samples"][split]
            if len(images) != n or len(labels) != n:
                raise DataError(
                    f"{raw}: split {split} has {len(images)} images / {len(labels)} "
                    f"labels, medmnist INFO says {n}"
                )
            if labels.min() < 0 or labels.max() >= len(classes):
                raise DataError(f"{raw}: {split} labels outside 0..{len(classes) - 1}")
            g = h5.create_group(split)
            g.create_dataset("images", data=np.ascontiguousarray(images, dtype=np.uint8))
            g.create_dataset("labels", data=labels)
        train = arrays["train"][0].reshape(len(arrays["train"][0]), -1, images.shape[-1]) / 255.0
        h5.attrs.update(
            dataset=flag,
            size=size,
            task=info["task"],
            n_channels=images.shape[-1],
            n_classes=len(classes),
            classes=json.dumps(classes),
            source_md5=rec["md5"],
            source_sha256=rec["sha256"],
            mean=train.mean(axis=(0, 1)),
            std=train.std(axis=(0, 1)),
        )


@dataclass
class Dataset:
    """One HDF5 file, fully in memory (uint8 NHWC images, int64 labels per split)."""

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    attrs: dict

    @property
    def num_classes(self) -> int:
        return int(self.attrs["n_classes"])


def load_h5(path: str | Path, check: bool = True, image_splits=SPLITS) -> Dataset:
    """Load labels of every split and images of ``image_splits`` (all by default) into memory."""
    if check:
        verify(path)
    with h5py.File(path, "r") as h5:
        images = {s: h5[s]["images"][()] for s in image_splits}
        labels = {s: h5[s]["labels"][()] for s in SPLITS}
        attrs = {
            k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v)
            for k, v in h5.attrs.items()
        }
    attrs["classes"] = json.loads(attrs["classes"])
    return Dataset(images, labels, attrs)
