"""Real-world noisy-label image sets: DRTiD, KaggleDR+, CheXpert and any CSV-labelled set.

Nothing is downloaded (these sets need registration): the config points each dataset at the
folder where the user keeps it (``root``); an adapter (:func:`get_adapter`, one file each in
``lnm/data/adapters/``) reads that folder's CSVs into :class:`SplitTables` (absolute image
paths and labels per split), which :func:`lnm.data.hdf5.preprocess_real` turns into the HDF5
every other stage reads. This module is what the rest of the package calls: the registry, the
checks every adapter shares (folder, CSV files, images, duplicates) and reading.

Conventions shared by all adapters:

- ``given``: the labels as the data gives them: noisy for train and val, the expert / golden
  reference for test.
- ``clean``: the reference labels, ``-1`` where the data has none (CheXpert train and val; the
  ``csv`` adapter without a clean or annotator column). For test ``clean`` equals ``given``.
- Row numbers in errors are line numbers of the CSV file with the header as line 1, so the
  first data row is row 2 and the number matches what a text editor shows (for CSVs without
  quoted line breaks inside a cell).
- CSV cells are read as text (``dtype=str``, blanks kept as ""), so a blank or malformed label is
  reported as written, never silently turned into NaN. Integer labels may be written as ``3`` or
  ``3.0`` (pandas writes integer columns with blanks as floats).
- An image appears in one row of one split (:class:`Duplicates`): rows naming the same file are
  found when the CSVs are read (:func:`read_splits`), rows holding the same decoded pixels while
  the images are decoded (:func:`lnm.data.hdf5.preprocess_real`). Every adapter takes the option
  ``duplicates`` (:data:`lnm.data.adapters.base.DUPLICATE_POLICIES`).

Torch-free: pandas, numpy and (for the CheXpert split) scikit-learn only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import sys
from pathlib import Path

import numpy as np

from .. import grid
from .adapters._tables import SHOW_MISSING, RealWorldError, SplitTable, SplitTables, unique
from .adapters._tables import check_images as _check_images
from .adapters.base import Adapter

# ----------------------------------------------------------------------------------- registry


@functools.cache
def get_adapter(name: str) -> Adapter:
    """The adapter ``name`` (imports its module only; :func:`lnm.grid.adapter_catalog` finds
    it without importing). Raises :class:`RealWorldError` naming the adapters allowed."""
    if name not in grid.ADAPTERS:
        raise RealWorldError(
            f"unknown real-world adapter {name!r}; allowed: {', '.join(grid.ADAPTERS)}"
        )
    info = grid.adapter_info(name)
    cls = getattr(importlib.import_module(f".adapters.{info.module}", __package__), info.cls)
    if not (isinstance(cls, type) and issubclass(cls, Adapter) and cls.name == name):
        raise TypeError(f"{info.path}: {info.cls} is not the Adapter subclass named {name!r}")
    return cls()


def normalize_options(adapter: str, options: dict | None) -> dict:
    """``options`` validated and completed with the adapter's defaults (what the source record
    stores). Raises :class:`RealWorldError` naming the key, the value and what is allowed."""
    return get_adapter(adapter).normalize(options)


def has_clean_train(adapter: str, options: dict | None) -> bool:
    """Whether the adapter gives clean train labels (static: read from the options only)."""
    return get_adapter(adapter).has_clean_train(options)


# ------------------------------------------------------------------------------------ reading


def check_layout(adapter: str, root, options: dict | None) -> list[Path]:
    """Parse-time check: ``root`` and every CSV exist and the options are valid; return the CSV
    paths (the workflow makes them inputs). Does not read the CSVs' rows."""
    a = get_adapter(adapter)
    opts = a.normalize(options)
    root = a.locate(root, opts)
    files, _ = a.split_files(root, opts)
    missing = [p for p in unique(files.values()) if not p.is_file()]
    if missing:
        raise RealWorldError(
            f"{adapter}: missing {', '.join(map(str, missing))}. The folder {root} must hold:"
            f"{a.layout_text(opts)}"
        )
    return unique(files.values())


def read_splits(
    adapter: str, root, options: dict | None, check_images: bool = True, log=None
) -> SplitTables:
    """Read the dataset's CSVs into :class:`SplitTables`; with ``check_images`` every image
    file must exist (the first few missing are reported with their CSV rows, and the total).
    Rows naming the same file are refused or dropped (:func:`drop_duplicate_files`). Notes
    (:attr:`SplitTables.notes`) and dropped rows are written to ``log`` (default: stderr)."""
    a = get_adapter(adapter)
    opts = a.normalize(options)
    root = a.locate(root, opts)
    check_layout(adapter, root, opts)
    tables = a.read(root, opts)
    for split, t in tables.splits.items():
        if len(t) == 0:
            raise RealWorldError(f"{adapter}: the {split} split is empty ({t.csv})")
    test = tables.splits["test"].clean
    assert (test >= 0).all()  # test labels are the reference: parsed without blanks
    log = log or _stderr
    for note in tables.notes:
        log(note)
    if check_images:
        _check_images(tables.splits)
    drop_duplicate_files(tables, log)
    return tables


def validate_source(adapter: str, root, options: dict | None, log=None) -> SplitTables:
    """Everything about a real-world dataset that can be checked without decoding an image (for
    ``lnm validate``; CSVs only, plus one ``stat`` per image): the layout, every row's labels,
    every image file present, no file named by two rows (:class:`Duplicates`); the notes (e.g.
    a ``csv`` set's inferred classes with their counts) go to ``log`` (default: stderr).
    Duplicates by decoded pixels are found while preprocessing (one decode per image)."""
    return read_splits(adapter, root, options, check_images=True, log=log)


# --------------------------------------------------------------------------------- duplicates


def file_key(path) -> str:
    """The identity of an image file named by a CSV row: its absolute path with symbolic links
    resolved and ``.``/``..`` and repeated separators removed (``os.path.realpath``), case-folded
    where the platform's paths are case-insensitive (``os.path.normcase``: Windows). So
    ``./a.png``, ``a.png``, ``x/../a.png`` and a link to it are one file; ``A.png`` and ``a.png``
    are two on a case-sensitive file system (on a case-insensitive one they are the same file,
    hence the same pixels: the decoded-image check finds them)."""
    return os.path.normcase(os.path.realpath(path))


def pixel_digest(rgb) -> bytes:
    """SHA-256 of a decoded image: its RGB pixels (a PIL image or a uint8 array) and their shape,
    not the file's bytes, so a copy under another name, a re-saved PNG or a grayscale copy of the
    same pixels has the same digest, whatever the container, compression or metadata."""
    arr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    h = hashlib.sha256(f"uint8 {arr.shape}".encode())
    h.update(memoryview(arr).cast("B"))
    return h.digest()


def _label_difference(tables: SplitTables, split: str, i: int, j: int) -> str:
    """How rows ``i`` and ``j`` of ``split`` differ in their labels ("" if they do not)."""
    t = tables.splits[split]

    def name(v):
        return tables.classes[v] if v >= 0 else "none"

    out = []
    given = "reference label" if split == "test" else "label as given"
    if t.given[i] != t.given[j]:
        out.append(f"{given} {name(t.given[j])!r} vs {name(t.given[i])!r}")
    if split != "test" and t.clean[i] != t.clean[j]:
        out.append(f"clean label {name(t.clean[j])!r} vs {name(t.clean[i])!r}")
    if t.annotators is not None and not np.array_equal(t.annotators[i], t.annotators[j]):
        votes = [[name(v) if v >= 0 else "" for v in t.annotators[k].tolist()] for k in (j, i)]
        out.append(f"annotator votes {votes[0]} vs {votes[1]}")
    return "; ".join(out)


class Duplicates:
    """Finds the rows of a dataset that name the same image, by a key per row given in split
    order (train, val, test) and CSV order: :func:`file_key` when the CSVs are read
    (``by="file"``), :func:`pixel_digest` while the images are decoded (``by="pixels"``).

    A row whose key an earlier row already has is

    - refused when the two rows are in different splits (always: an image in train and test
      trains the model on test data; in train and val, or val and test, the splits are not
      independent);
    - refused when the two rows' labels differ (always: keeping either would pick a label for
      the user and change the noise rate);
    - dropped (:meth:`see` returns False) under the ``keep_first`` policy when it is in the
      first row's split with the same labels (the given, clean and annotator labels), else
      refused (``refuse``, the default).

    Refusals are collected (:attr:`problems`, each naming both rows: CSV, row number, image
    path) and raised together by :meth:`check`; drops are listed in :attr:`dropped`."""

    def __init__(self, tables: SplitTables, by: str):
        if by not in ("file", "pixels"):
            raise ValueError(f"by={by!r}; allowed: file, pixels")
        self.tables, self.by = tables, by
        self.policy = tables.options.get("duplicates", "refuse")
        self._first: dict = {}  # key -> (split, row index) of its first row
        self.problems: list[str] = []
        self.dropped: list[dict] = []

    @property
    def same(self) -> str:
        return "the same file" if self.by == "file" else "the same image (identical pixels)"

    def see(self, split: str, i: int, key) -> bool:
        """Register row ``i`` of ``split``; False: drop it (a kept-first duplicate)."""
        first = self._first.setdefault(key, (split, i))
        if first == (split, i):
            return True
        s0, i0 = first
        t0, t = self.tables.splits[s0], self.tables.splits[split]
        pair = f"{t.where(i)}\n    is {self.same} as {t0.where(i0)}"
        if s0 != split:
            self.problems.append(f"{pair}: in {s0} and {split} ({_across(s0, split)})")
            return True
        diff = _label_difference(self.tables, split, i0, i)
        if diff:
            self.problems.append(f"{pair}: twice in {split} with different labels ({diff})")
            return True
        if self.policy != "keep_first":
            self.problems.append(f"{pair}: twice in {split} with the same labels")
            return True
        root = self.tables.root
        self.dropped.append(
            {
                "split": split,
                **_where(t, i, root),
                **{f"first_{k}": v for k, v in _where(t0, i0, root).items()},
                "same": self.by,
            }
        )
        return False

    def check(self) -> None:
        """Raise :class:`RealWorldError` listing the first few refused rows and their total."""
        if not self.problems:
            return
        n = len(self.problems)
        shown = "\n  ".join(self.problems[:SHOW_MISSING])
        fix = (
            "Each image may appear in one row of one split. Remove the repeated rows from the "
            "CSVs. Rows that repeat a row of the same split with the same labels can instead be "
            "dropped with `duplicates: keep_first` in the dataset's `options` (the first row is "
            "kept); an image in two splits, or twice with different labels, is refused under "
            "every policy."
        )
        raise RealWorldError(
            f"{self.tables.adapter}: {n} row(s) name {self.same} as an earlier row; the first "
            f"{min(n, SHOW_MISSING)}:\n  {shown}\n{fix}"
        )

    def report(self, log) -> None:
        """Log the dropped rows (the first few and their total)."""
        if not self.dropped:
            return
        lines = [
            f"{d['csv']}, row {d['row']} ({d['image']}) = {d['first_csv']}, row "
            f"{d['first_row']} ({d['first_image']})"
            for d in self.dropped
        ]
        log(
            f"{self.tables.adapter}: duplicates: keep_first dropped {len(lines)} row(s) naming "
            f"{self.same} as an earlier row of the same split with the same labels; the first "
            f"{min(len(lines), SHOW_MISSING)}:\n  " + "\n  ".join(lines[:SHOW_MISSING])
        )


def _across(first: str, split: str) -> str:
    """Why an image may not be in the two splits ``first`` and ``split``."""
    if "test" in (first, split):
        other = first if split == "test" else split
        if other == "train":
            return "test images would train the model"
        return "the model would be validated on test images"
    return "validation images would train the model"


def _where(t: SplitTable, i: int, root: Path) -> dict:
    """Row ``i`` of ``t`` in a dropped-row record: its CSV (relative to root), row, image."""
    return {"csv": _rel(t.csv, root), "row": int(t.lines[i]), "image": t.keys[i]}


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def drop_duplicate_files(tables: SplitTables, log=None) -> None:
    """Rows naming the same image file (:func:`file_key`), within and across splits, refused or
    dropped as :class:`Duplicates` says; ``tables`` is updated in place (``dropped`` lists
    the dropped rows)."""
    dups = Duplicates(tables, "file")
    keep = {
        split: [i for i, img in enumerate(t.images) if dups.see(split, i, file_key(img))]
        for split, t in tables.splits.items()
    }
    dups.check()
    for split, idx in keep.items():
        if len(idx) < len(tables.splits[split]):
            tables.splits[split] = tables.splits[split].subset(idx)
    tables.dropped.extend(dups.dropped)
    dups.report(log or _stderr)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
