"""Preprocess a verified MedMNIST ``.npz`` or a real-world dataset into one HDF5 file.

Layout::

    /train/images  uint8 (N, H, W, C)      /train/labels  int64 (N,)
    /val/...                               /test/...
    attrs: dataset, size, task, n_channels, n_classes, classes (JSON list),
           source_md5, source_sha256, mean (per channel, train split, in [0, 1]), std

Real-world files (:func:`preprocess_real`) add, per split: ``images`` chunked one image per
chunk (``chunks=(1, H, W, C)``, ``compression="lzf"``: one image reads fast); ``labels`` = the
reference labels, ``-1`` where the data has none (CheXpert train/val); for train and val
``noisy_labels`` (the labels as given); with annotator columns ``annotators`` int64 (N, A),
``-1`` = no vote. Extra attrs: ``source`` (the adapter), ``real_world`` (True),
``has_clean_train``, ``val_has_clean``; ``source_sha256`` is the SHA-256 of the source record
(which lists every CSV's SHA-256), ``source_md5`` is "". ``duplicates_dropped`` (only when rows
were dropped under the adapter option ``duplicates: keep_first``): JSON list of the dropped rows
(split, CSV, row, image; the first row they repeat; ``same``: ``file`` or ``pixels``), so a
split may hold fewer images than its CSV rows. MedMNIST files are written exactly as
before (no extra attrs: :func:`load_h5` reads them as ``source="medmnist"``,
``real_world=False``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py
import numpy as np

from ..checksum import artifact, sha256, verify, write_text
from .medmnist_io import DataError, dataset_info, raw_path
from .realworld import RealWorldError, pixel_digest  # torch-free, light

SPLITS = ("train", "val", "test")


def preprocess(record_path: str | Path, raw_dir: str | Path, out_path: str | Path) -> None:
    """The raw file of a verified download record (found in ``raw_dir``, MD5 checked) -> HDF5."""
    verify(record_path)
    rec = json.loads(Path(record_path).read_text())
    flag = rec["dataset"]
    raw = raw_path(rec, raw_dir)
    info = dataset_info(flag)
    classes = [info["label"][str(i)] for i in range(len(info["label"]))]
    with np.load(raw) as npz:
        arrays = {s: (npz[f"{s}_images"], npz[f"{s}_labels"]) for s in SPLITS}
    images, labels = {}, {}
    for split, (x, y) in arrays.items():
        images[split] = x[..., None] if x.ndim == 3 else x
        labels[split] = y = y.reshape(-1).astype(np.int64)
        n = info["n_samples"][split]
        if len(x) != n or len(y) != n:
            raise DataError(
                f"{raw}: split {split} has {len(x)} images / {len(y)} "
                f"labels, medmnist INFO says {n}"
            )
        if y.min() < 0 or y.max() >= len(classes):
            raise DataError(f"{raw}: {split} labels outside 0..{len(classes) - 1}")
    write_h5(out_path, images, labels, dataset=flag, classes=classes, task=info["task"],
             source_md5=rec["md5"], source_sha256=rec["sha256"])  # fmt: skip


@dataclass
class Dataset:
    """One HDF5 file in memory: uint8 NHWC images of the loaded splits, int64 labels of all.

    ``labels`` are the reference labels (real-world train/val: ``-1`` where unknown).
    Real-world files also fill ``noisy_labels`` (train, val: the labels as given),
    ``clean_labels`` (the same splits: their reference labels, i.e. ``labels``) and, with
    annotator columns, ``annotators``; all three are empty for MedMNIST files.
    """

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    attrs: dict
    clean_labels: dict[str, np.ndarray] = field(default_factory=dict)
    noisy_labels: dict[str, np.ndarray] = field(default_factory=dict)
    annotators: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.attrs["n_classes"])

    @property
    def real_world(self) -> bool:
        return bool(self.attrs.get("real_world", False))


def load_h5(path: str | Path, check: bool = True, image_splits=SPLITS) -> Dataset:
    """Load labels of every split and images of ``image_splits`` (all by default) into memory;
    images of other splits are not read."""
    if check:
        verify(path)
    clean, noisy, ann = {}, {}, {}
    with h5py.File(path, "r") as h5:
        images = {s: h5[s]["images"][()] for s in image_splits}
        labels = {s: h5[s]["labels"][()] for s in SPLITS}
        for s in SPLITS:
            if "noisy_labels" in h5[s]:
                noisy[s] = h5[s]["noisy_labels"][()]
                clean[s] = labels[s]
            if "annotators" in h5[s]:
                ann[s] = h5[s]["annotators"][()]
        attrs = {
            k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v)
            for k, v in h5.attrs.items()
        }
    attrs["classes"] = json.loads(attrs["classes"])
    attrs.setdefault("source", "medmnist")
    attrs["real_world"] = bool(attrs.get("real_world", False))
    return Dataset(images, labels, attrs, clean, noisy, ann)


# --------------------------------------------------------------------------------- real world

#: Version of the source record format (:func:`write_source_record`).
RECORD_VERSION = 1


def _record(tables) -> dict:
    root = tables.root
    files = []
    for path in tables.csv_files:
        files.append(
            {
                "name": path.relative_to(root).as_posix(),
                "sha256": sha256(path),
                "rows": int(_csv_rows(path)),
            }
        )
    splits = {
        s: {
            "file": t.csv.relative_to(root).as_posix(),
            "n": len(t),
            "has_clean": t.has_clean,
            "annotators": 0 if t.annotators is None else int(t.annotators.shape[1]),
            "sha256": t.digest(),
        }
        for s, t in tables.splits.items()
    }
    return {
        "kind": "lnm real-world source",
        "version": RECORD_VERSION,
        "adapter": tables.adapter,
        "options": tables.options,
        "layout": tables.layout,
        "files": files,
        "splits": splits,
        "has_clean_train": tables.has_clean_train,
        "val_has_clean": tables.val_has_clean,
        "num_classes": tables.num_classes,
        "classes": tables.classes,
    }


def _csv_rows(path: Path) -> int:
    import pandas as pd

    return len(pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig"))


def write_source_record(adapter: str, root, options: dict | None, out_path) -> dict:
    """Read and check the dataset (every CSV row, every image file present), then write the
    JSON source record atomically with its SHA-256 sidecar and return it.

    The record holds the adapter, the normalised options, each CSV's name relative to ``root``
    with its SHA-256 and row count, each split's sample count and content digest (image keys and
    labels), ``has_clean_train``, ``val_has_clean``, the classes; never an absolute path, so it
    does not change when the data folder moves."""
    from .realworld import read_splits

    tables = read_splits(adapter, root, options)
    rec = _record(tables)
    write_text(out_path, json.dumps(rec, indent=2, sort_keys=True) + "\n")
    return rec


def _task(adapter: str, num_classes: int) -> str:
    """The adapter's declared task (the fundus sets: DR grades, ``ordinal-regression`` as
    MedMNIST names RetinaMNIST's), else by the number of classes."""
    from .realworld import get_adapter

    declared = get_adapter(adapter).task
    return declared or ("binary-class" if num_classes == 2 else "multi-class")


def load_image(path: str | Path, size: int, draft: bool = True, digest: bool = False):
    """LNMBench's eval transform up to the tensor: PIL open, ``.convert("RGB")``, resize to
    (size, size) bilinear; uint8 (size, size, 3).

    ``draft``: a JPEG at least 4x the target on both sides is decoded at a reduced scale first
    (``Image.draft``: libjpeg's DCT scaling by 1/2, 1/4 or 1/8, chosen so the decoded image is
    still at least 2x the target), then resized as above. Decoding a 3000-px fundus photograph
    to 512 px then reads ~1/4 of the pixels; the result differs from a full decode by a few grey
    levels (DCT scaling instead of bilinear for the first factor). Smaller sources and other
    formats are decoded in full (identical to the plain transform).

    ``digest``: also return :func:`lnm.data.realworld.pixel_digest` of the decoded RGB pixels
    (before the resize), which finds the same image under two names."""
    from PIL import Image

    with Image.open(path) as img:
        if draft and img.format == "JPEG":
            img.draft(None, (2 * size, 2 * size))
        rgb = img.convert("RGB")
    out = np.asarray(rgb.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return (out, pixel_digest(rgb)) if digest else out


def _load_with_stats(path, size, draft, where):
    try:
        arr, digest = load_image(path, size, draft, digest=True)
    except Exception as err:  # PIL raises many types for a corrupt file
        raise RealWorldError(
            f"{where}: cannot read image {path} ({type(err).__name__}: {err})"
        ) from None
    flat = arr.reshape(-1, arr.shape[-1])
    sq = (flat.astype(np.int64) ** 2).sum(axis=0)
    return arr, flat.sum(axis=0, dtype=np.int64), sq, digest


def _write_images(
    dset, table, size: int, workers: int, draft: bool, log, split: str, dups, block: int = 64
):
    """Decode + resize ``table.images`` on ``workers`` threads (PIL releases the GIL), write them
    to ``dset`` in CSV order; return the exact integer per-channel sum and sum of squares of the
    images written and the indices of the rows written: a row that ``dups``
    (:class:`lnm.data.realworld.Duplicates` by pixels) drops is not written."""
    n = len(table)
    total, total_sq = np.zeros(3, np.int64), np.zeros(3, np.int64)
    buf = np.empty((min(block, n), size, size, 3), np.uint8)
    step = max(1, math.ceil(n / 20))  # progress every ~5 %
    window = max(8, 4 * workers)  # bounded look-ahead: memory stays O(window) images
    t0 = time.perf_counter()
    kept: list[int] = []
    flushed = 0  # rows of ``dset`` written
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        submitted = 0
        try:
            for i in range(n):
                while submitted < n and len(pending) < window:
                    j = submitted
                    where = f"{table.csv}, row {int(table.lines[j])} (header = row 1)"
                    pending.append(
                        pool.submit(_load_with_stats, table.images[j], size, draft, where)
                    )
                    submitted += 1
                arr, s, ss, digest = pending.popleft().result()
                if dups.see(split, i, digest):
                    buf[len(kept) % block] = arr
                    kept.append(i)
                    total += s
                    total_sq += ss
                w = len(kept)
                if w and (w % block == 0 or i + 1 == n) and w > flushed:
                    dset[flushed:w] = buf[: w - flushed]
                    flushed = w
                if (i + 1) % step == 0 or i + 1 == n:
                    dt = time.perf_counter() - t0
                    log(
                        f"{split}: {i + 1}/{n} images ({100 * (i + 1) / n:.0f} %), "
                        f"{(i + 1) / dt if dt > 0 else float('inf'):.0f} images/s"
                    )
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return total, total_sq, kept


def _checked_record(record_path, root: Path, options: dict | None) -> tuple[dict, str, dict]:
    """The source record (checked against its sidecar), its SHA-256 and the normalised
    ``options``; fails when they differ from the record's or when a CSV it lists is missing or
    changed since."""
    from .realworld import normalize_options

    record_sha = verify(record_path)
    rec = json.loads(Path(record_path).read_text())
    adapter = rec["adapter"]
    opts = normalize_options(adapter, options)
    if opts != rec["options"]:
        raise RealWorldError(
            f"{record_path}: the {adapter} options {opts} differ from the source record's "
            f"{rec['options']}; re-run the workflow so the record is rewritten"
        )
    for f in rec["files"]:
        path = root / f["name"]
        if not path.is_file():
            raise RealWorldError(f"{path}: missing; the source record {record_path} lists it")
        got = sha256(path)
        if got != f["sha256"]:
            raise RealWorldError(
                f"{path} changed after the source record {record_path} was written: SHA-256 "
                f"now {got}, recorded {f['sha256']}. Re-run the workflow so the record (and "
                "everything made from it) is rebuilt from the current CSVs"
            )
    return rec, record_sha, opts


def _write_split(h5, split: str, t, size: int, resizable: bool, write_images) -> tuple:
    """One split's group: its images (``write_images(dset, table, split=split)``: the pixel
    sums and the rows kept, :func:`_write_images`), reference labels, labels as given (not for
    test) and annotators; returns the pixel sums and the number of images kept."""
    g = h5.create_group(split)
    dset = g.create_dataset(
        "images",
        shape=(len(t), size, size, 3),
        maxshape=(None, size, size, 3) if resizable else None,
        dtype=np.uint8,
        chunks=(1, size, size, 3),
        compression="lzf",
    )
    *sums, kept = write_images(dset, t, split=split)
    if len(kept) < len(t):
        dset.resize(len(kept), axis=0)
        t = t.subset(kept)  # tables.splits keeps the rows: dups indexes them
    g.create_dataset("labels", data=t.clean.astype(np.int64))
    if split != "test":
        g.create_dataset("noisy_labels", data=t.given.astype(np.int64))
    if t.annotators is not None:
        g.create_dataset("annotators", data=t.annotators.astype(np.int64))
    return sums, len(t)


def _mean_std(sums, n_images: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std in [0, 1] from the exact integer sum and sum of squares of
    ``n_images`` images of ``size`` x ``size`` pixels."""
    n_pix = n_images * size * size
    s, ss = (v.tolist() for v in sums)  # Python ints: exact
    mean = np.array([si / (n_pix * 255) for si in s])
    var = [(ssi * n_pix - si * si) / (n_pix * n_pix * 255 * 255) for si, ssi in zip(s, ss)]
    return mean, np.sqrt(np.maximum(var, 0.0))


def preprocess_real(
    record_path,
    root,
    options: dict | None,
    out_path,
    size: int,
    workers: int = 1,
    log=print,
    *,
    dataset: str | None = None,
    draft: bool = True,
) -> None:
    """A verified source record + the dataset folder -> HDF5 at ``size`` px (module docstring).

    Fails (and writes nothing) when the record's checksum does not match, when ``options``
    differ from the record's, when a CSV's SHA-256 differs from the one recorded (the CSV changed
    after the record was written), when the re-read tables differ from the recorded digests or
    when two rows hold the same image (:class:`lnm.data.realworld.Duplicates`: by file when the
    CSVs are read, by decoded pixels here, hashed in the one decode; the first five such rows
    are listed with their total).
    ``mean``/``std`` of the train split are computed exactly from integer sums while streaming.
    ``dataset``: the ``dataset`` attribute (default: the adapter's name)."""
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 4096:
        raise RealWorldError(f"image size {size!r}: must be an integer in 8..4096")
    if not isinstance(workers, int) or workers < 1:
        raise RealWorldError(f"workers {workers!r}: must be an integer >= 1")
    from .realworld import Duplicates, read_splits

    root = Path(root).expanduser().absolute()
    rec, record_sha, opts = _checked_record(record_path, root, options)
    adapter = rec["adapter"]
    tables = read_splits(adapter, root, opts, log=log)
    now = _record(tables)
    for key in ("classes", "splits", "layout"):
        if now[key] != rec[key]:
            raise RealWorldError(
                f"{record_path}: the dataset read now differs from the source record in "
                f"{key!r} (record {rec[key]}, now {now[key]}), although the CSVs are unchanged "
                "(a different code or library version?); re-run the workflow"
            )
    t0 = time.perf_counter()
    n_all = sum(len(t) for t in tables.splits.values())
    log(f"{adapter}: {n_all} images -> {size}x{size} px, {workers} worker(s)")
    # the same image under two names: found by its decoded pixels in this (the only) decode
    dups = Duplicates(tables, "pixels")
    resizable = opts["duplicates"] == "keep_first"  # else a duplicate is refused, never dropped
    with artifact(out_path) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
        write = functools.partial(
            _write_images, size=size, workers=workers, draft=draft, log=log, dups=dups
        )
        stats = {s: _write_split(h5, s, tables.splits[s], size, resizable, write) for s in SPLITS}
        dups.check()  # after every split: all refused rows in one message
        dups.report(log)
        mean, std = _mean_std(*stats["train"], size)
        h5.attrs.update(
            dataset=dataset or adapter,
            size=size,
            task=_task(adapter, tables.num_classes),
            n_channels=3,
            n_classes=tables.num_classes,
            classes=json.dumps(tables.classes),
            source_md5="",
            source_sha256=record_sha,
            mean=mean,
            std=std,
            source=adapter,
            real_world=True,
            has_clean_train=tables.has_clean_train,
            val_has_clean=tables.val_has_clean,
        )
        dropped = tables.dropped + dups.dropped
        if dropped:  # duplicates: keep_first (by file when read, by pixels when decoded)
            h5.attrs["duplicates_dropped"] = json.dumps(dropped)
    log(f"{adapter}: done in {time.perf_counter() - t0:.1f} s")


# ----------------------------------------------------------------------------- the writer
def write_h5(
    path,
    images: dict,
    labels: dict,
    *,
    dataset: str,
    classes: list,
    task: str | None = None,
    mean=None,
    std=None,
    source_md5: str = "",
    source_sha256: str = "0" * 64,
    noisy_labels: dict | None = None,
    annotators: dict | None = None,
    chunked: bool = False,
    **attrs,
) -> None:
    """Write the layout of the module docstring atomically, with its SHA-256 sidecar. The one
    writer of that layout (:func:`preprocess`, the tests, the benchmarks).

    ``images``: split -> uint8 (N, H, W, C) (every split of :data:`SPLITS`); ``labels``,
    ``noisy_labels`` (real-world train/val), ``annotators``: split -> per-sample arrays, stored
    as int64. ``task``: default by the number of ``classes`` (binary-class or multi-class);
    ``mean``/``std``: default the train split's per channel, in [0, 1]. ``chunked``: one
    lzf-compressed image per chunk, as real-world files are written. ``attrs``: more file
    attributes after the standard ones (e.g. ``source``, ``real_world``)."""
    missing = [s for s in SPLITS if s not in images or s not in labels]
    if missing:
        raise ValueError(
            f"{path}: no images or labels of split(s) {missing}; every one of {SPLITS}"
        )
    optional = {"noisy_labels": noisy_labels or {}, "annotators": annotators or {}}
    with artifact(path) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
        for split in SPLITS:
            g = h5.create_group(split)
            x = np.ascontiguousarray(images[split], dtype=np.uint8)
            chunks = dict(chunks=(1, *x.shape[1:]), compression="lzf") if chunked else {}
            g.create_dataset("images", data=x, **chunks)
            g.create_dataset("labels", data=np.asarray(labels[split], np.int64))
            for name, arrays in optional.items():
                if split in arrays:
                    g.create_dataset(name, data=np.asarray(arrays[split], np.int64))
        train = images["train"]
        if mean is None or std is None:
            flat = train.reshape(len(train), -1, train.shape[-1]) / 255.0
            mean = flat.mean(axis=(0, 1)) if mean is None else mean
            std = flat.std(axis=(0, 1)) if std is None else std
        h5.attrs.update(
            dataset=dataset,
            size=int(train.shape[1]),
            task=task or ("binary-class" if len(classes) == 2 else "multi-class"),
            n_channels=int(train.shape[-1]),
            n_classes=len(classes),
            classes=json.dumps(list(classes)),
            source_md5=source_md5,
            source_sha256=source_sha256,
            mean=mean,
            std=std,
            **attrs,
        )
