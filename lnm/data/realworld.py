"""Real-world noisy-label image sets: DRTiD, KaggleDR+, CheXpert and any CSV-labelled set.

Nothing is downloaded (these sets need registration): the config points each dataset at the
folder where the user keeps it (``root``); an adapter reads that folder's CSVs into
:class:`SplitTables` (absolute image paths and labels per split), which
:func:`lnm.data.hdf5.preprocess_real` turns into the HDF5 every other stage reads.

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
  ``duplicates`` (:data:`DUPLICATE_POLICIES`).

Torch-free: pandas, numpy and (for the CheXpert split) scikit-learn only.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from ..grid import ADAPTERS, adapter_has_clean_train
from .medmnist_io import DataError

if TYPE_CHECKING:  # pandas is imported where CSVs are read: training never pays for it
    import pandas as pd

SPLITS = ("train", "val", "test")
#: How many missing images an error lists before giving the total.
SHOW_MISSING = 5


class RealWorldError(DataError):
    """A real-world dataset folder, CSV, row, image or adapter option is missing or invalid."""


# ------------------------------------------------------------------------------ adapter facts


@dataclass(frozen=True)
class _Fundus:
    files: dict  # split -> CSV name
    image_column: str
    image_dir: str
    ext: str
    noisy: str
    clean: str


#: LNMBench `CE/drtid.py`, `CE/kaggledr.py` (reference-protocol §1.3).
_FUNDUS = {
    "drtid": _Fundus(
        files={"train": "final_train.csv", "val": "final_val.csv", "test": "final_test.csv"},
        image_column="image_name",
        image_dir="image/newall_",
        ext=".jpg",
        noisy="Grade",
        clean="Grade_gt",
    ),
    "kaggledr": _Fundus(
        files={"train": "kaggle_train.csv", "val": "kaggle_val.csv", "test": "golden.csv"},
        image_column="image",
        image_dir="diabetic-retinopathy-detection/image",
        ext=".jpeg",
        noisy="level",
        clean="vote",
    ),
}
#: Diabetic-retinopathy grades 0 (none) .. 4 (proliferative).
DR_CLASSES = [f"grade {i}" for i in range(5)]

#: The 14 observation columns of the official CheXpert CSVs, in their order.
CHEXPERT_OBSERVATIONS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
#: The five competition findings, in the label order of LNMBench's 5-class task (assumed:
#: LNMBench's label order is not visible in its code; this is the alphabetical order of the
#: CheXpert competition tasks).
CHEXPERT_FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
CHEXPERT_FOLDERS = ("CheXpert-v1.0", "CheXpert-v1.0-small")
UNCERTAIN = ("zero", "one", "exclude")
_PATIENT = re.compile(r"(?:^|/)(patient\d+)(?:/|$)")

#: What to do with rows that name the same image (:class:`Duplicates`): ``refuse`` (default)
#: any duplicate; ``keep_first`` drops a later row of the same split whose labels equal the first
#: row's. Duplicates across splits and duplicates with different labels are refused under both.
DUPLICATE_POLICIES = ("refuse", "keep_first")
#: Options every adapter takes (besides its own, below).
_COMMON = {"duplicates": "refuse"}

_DEFAULTS = {
    "drtid": {},
    "kaggledr": {},
    "chexpert": {"val_fraction": 0.2, "split_seed": 0, "uncertain": "zero", "frontal_only": False},
    "csv": {
        "splits": {"train": "train.csv", "val": "val.csv", "test": "test.csv"},
        "image_column": None,
        "label_column": None,
        "clean_column": None,
        "annotator_columns": [],
        "classes": None,
    },
}


# ------------------------------------------------------------------------------------ options


def _check_adapter(adapter: str) -> None:
    if adapter not in ADAPTERS:
        raise RealWorldError(
            f"unknown real-world adapter {adapter!r}; allowed: {', '.join(ADAPTERS)}"
        )


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _name(v, key: str, adapter: str, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v.strip():
        raise RealWorldError(
            f"{adapter} option {key!r} = {v!r}: must be a non-empty column name (a string)"
            + ("" if not optional else " or null")
        )
    return v


def normalize_options(adapter: str, options: dict | None) -> dict:
    """``options`` validated and completed with the adapter's defaults (what the source record
    stores). Raises :class:`RealWorldError` naming the key, the value and what is allowed."""
    _check_adapter(adapter)
    options = dict(options or {})
    defaults = {**_DEFAULTS[adapter], **_COMMON}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise RealWorldError(
            f"{adapter}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(defaults)}"
        )
    out = {**defaults, **options}
    if out["duplicates"] not in DUPLICATE_POLICIES:
        raise RealWorldError(
            f"{adapter} option 'duplicates' = {out['duplicates']!r}: allowed: refuse (any image "
            "named by two rows stops the dataset, naming both rows; default), keep_first (a "
            "later row of the same split with the same labels as the first is dropped; "
            "duplicates across splits or with different labels are still refused)"
        )
    if adapter == "chexpert":
        vf = out["val_fraction"]
        if not _is_number(vf) or not 0 < vf <= 0.5:
            raise RealWorldError(
                f"chexpert option 'val_fraction' = {vf!r}: must be a number in (0, 0.5] (the share "
                "of training patients held out for validation; 0.2 = one fold in five)"
            )
        seed = out["split_seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise RealWorldError(
                f"chexpert option 'split_seed' = {seed!r}: must be an integer >= 0"
            )
        if out["uncertain"] not in UNCERTAIN:
            raise RealWorldError(
                f"chexpert option 'uncertain' = {out['uncertain']!r}: allowed: "
                "zero (U-Zeros: -1 counts as negative), one (U-Ones: -1 counts as positive), "
                "exclude (drop images with any -1 among the five findings)"
            )
        if not isinstance(out["frontal_only"], bool):
            raise RealWorldError(
                f"chexpert option 'frontal_only' = {out['frontal_only']!r}: must be true or false"
            )
        out["val_fraction"] = float(vf)
    elif adapter == "csv":
        splits = out["splits"]
        if not isinstance(splits, dict) or set(splits) != set(SPLITS):
            raise RealWorldError(
                f"csv option 'splits' = {splits!r}: must map each of train, val, test (all three, "
                "nothing else) to a CSV file name relative to the dataset folder"
            )
        for split in SPLITS:
            name = splits[split]
            if not isinstance(name, str) or not name.strip():
                raise RealWorldError(
                    f"csv option 'splits.{split}' = {name!r}: must be a CSV file name"
                )
            if Path(name).is_absolute() or ".." in PurePosixPath(name).parts:
                raise RealWorldError(
                    f"csv option 'splits.{split}' = {name!r}: must be relative to the dataset "
                    "folder (`root`) and stay inside it"
                )
        out["splits"] = {s: splits[s] for s in SPLITS}
        for key in ("image_column", "label_column"):
            out[key] = _name(out[key], key, adapter)
        out["clean_column"] = _name(out["clean_column"], "clean_column", adapter, optional=True)
        ann = out["annotator_columns"]
        if ann is None:
            ann = []
        if not isinstance(ann, (list, tuple)):
            raise RealWorldError(
                f"csv option 'annotator_columns' = {ann!r}: must be a list of column names"
            )
        ann = [_name(a, "annotator_columns", adapter) for a in ann]
        out["annotator_columns"] = ann
        used = [out["image_column"], out["label_column"], out["clean_column"], *ann]
        used = [c for c in used if c is not None]
        dup = sorted({c for c in used if used.count(c) > 1})
        if dup:
            raise RealWorldError(
                f"csv options name column(s) {', '.join(map(repr, dup))} more than once "
                "(image_column, label_column, clean_column and annotator_columns must differ)"
            )
        classes = out["classes"]
        if classes is not None:
            if (
                not isinstance(classes, (list, tuple))
                or len(classes) < 2
                or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)
            ):
                raise RealWorldError(
                    f"csv option 'classes' = {classes!r}: must be null (the classes are the "
                    "sorted labels seen in the CSVs) or a list of at least two class names"
                )
            classes = [str(c).strip() for c in classes]
            if len(set(classes)) != len(classes) or "" in classes:
                raise RealWorldError(
                    f"csv option 'classes' = {out['classes']!r}: names must be distinct and "
                    "non-empty"
                )
            out["classes"] = classes
    return out


def has_clean_train(adapter: str, options: dict | None) -> bool:
    """Whether the adapter gives clean train labels (static: read from the options only)."""
    return adapter_has_clean_train(adapter, normalize_options(adapter, options))


# ------------------------------------------------------------------------------------- layout


def expected_layout(adapter: str, options: dict | None = None) -> list[str]:
    """What the adapter's folder must hold, one line per file (for errors and docs)."""
    _check_adapter(adapter)
    if adapter in _FUNDUS:
        f = _FUNDUS[adapter]
        img = f"{f.image_dir}/<{f.image_column}>{f.ext}"
        return [
            f"{f.files['train']}: columns {f.image_column}, {f.noisy} (noisy grade 0-4), "
            f"{f.clean} (clean grade 0-4)",
            f"{f.files['val']}: columns {f.image_column}, {f.noisy} (noisy; an optional "
            f"{f.clean} column gives val clean labels)",
            f"{f.files['test']}: columns {f.image_column}, {f.noisy} (the expert reference)",
            f"{img}: one image per CSV row ({f.image_column} without the extension)",
        ]
    if adapter == "chexpert":
        obs = ", ".join(CHEXPERT_OBSERVATIONS)
        return [
            "either the official CheXpert-v1.0 or CheXpert-v1.0-small folder (root = that folder):",
            f"  train.csv: columns Path, Sex, Age, Frontal/Lateral, AP/PA, {obs} "
            "(values 1.0 / 0.0 / -1.0 / blank)",
            "  valid.csv: the same columns (radiologist labels; becomes the test split)",
            "  train/patient*/study*/view*.jpg, valid/...: the images (Path values start with "
            "the folder name)",
            "or LNMBench-prepared CSVs:",
            "  train.csv, val.csv, test.csv: columns Path (image path relative to root), "
            f"Label (0-4 = {', '.join(CHEXPERT_FINDINGS)})",
        ]
    opts = normalize_options(adapter, options or {})
    cols = [f"{opts['image_column']} (image path relative to root)", opts["label_column"]]
    if opts["clean_column"]:
        cols.append(f"{opts['clean_column']} (clean label; required in train)")
    if opts["annotator_columns"]:
        cols.append(f"{', '.join(opts['annotator_columns'])} (annotator votes; blank = none)")
    return [
        f"{opts['splits'][s]}: the {s} split, columns {', '.join(cols)}"
        + (" (label column = the reference labels)" if s == "test" else "")
        for s in SPLITS
    ] + ["the image files the image column names"]


def _layout_text(adapter: str, options) -> str:
    try:
        lines = expected_layout(adapter, options)
    except RealWorldError:
        return ""
    return "\n  " + "\n  ".join(lines)


def _root(adapter: str, root, options) -> Path:
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise RealWorldError(
            f"{adapter} dataset folder {root} {what}. Point the dataset's `root` in the config "
            f"at the folder that holds:{_layout_text(adapter, options)}"
        )
    return root


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [c.strip() for c in next(csv.reader(fh), [])]


def chexpert_layout(root: Path) -> str:
    """``"official"`` (train.csv with the observation columns) or ``"prepared"`` (Path,Label)."""
    train = root / "train.csv"
    if not train.is_file():
        hint = [root / d for d in CHEXPERT_FOLDERS if (root / d / "train.csv").is_file()]
        raise RealWorldError(
            f"chexpert: {train} does not exist"
            + (f" (did you mean root: {hint[0]}?)" if hint else "")
            + f". The folder must hold:{_layout_text('chexpert', None)}"
        )
    cols = _header(train)
    if "Path" in cols and "Label" in cols:
        return "prepared"
    official = ["Path", *CHEXPERT_FINDINGS]
    if all(c in cols for c in official):
        for path in (train, root / "valid.csv"):  # a missing valid.csv: check_layout names it
            if path.is_file():
                check_chexpert_prefix(root, path, _first_cell(path, "Path"))
        return "official"
    miss_official = ", ".join(repr(c) for c in official if c not in cols)
    miss_prepared = ", ".join(repr(c) for c in ("Path", "Label") if c not in cols)
    if any(c in cols for c in CHEXPERT_OBSERVATIONS):  # meant to be the official CSV
        why = (
            f"it has observation columns, as the official train.csv, but lacks {miss_official} "
            f"(the 5-class task needs Path and {', '.join(CHEXPERT_FINDINGS)})"
        )
    else:
        why = (
            f"the official layout needs {miss_official}, which it lacks; the prepared one "
            f"needs {miss_prepared}, which it lacks"
        )
    raise RealWorldError(
        f"chexpert: {train} fits neither layout: {why}. Its columns: "
        f"{', '.join(map(repr, cols))}. Expected:{_layout_text('chexpert', None)}"
    )


def _first_cell(path: Path, col: str) -> str | None:
    """The ``col`` cell of the first data row (None: no data row or no such column)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [c.strip() for c in next(reader, [])]
        row = next(reader, None)
    if row is None or col not in header or header.index(col) >= len(row):
        return None
    return row[header.index(col)].strip()


def check_chexpert_prefix(root: Path, csv_path: Path, rel: str | None) -> None:
    """An official CSV's ``Path`` values start with the name of the folder they are relative to
    the parent of (``CheXpert-v1.0-small/train/...``); :func:`chexpert_image` resolves them
    against root's parent when root has that name. A folder renamed after download
    (``chexpert_small/`` holding ``train.csv``) would resolve them to a doubled, missing prefix
    (``chexpert_small/CheXpert-v1.0-small/train/...``): refused here, naming the cause."""
    if not rel:
        return
    parts = PurePosixPath(rel).parts
    if len(parts) < 2 or parts[0] == root.name or parts[0] in ("train", "valid"):
        return
    if (root / parts[0]).is_dir():  # the prefix is a folder inside root: resolves as written
        return
    rest = root.joinpath(*parts[1:])
    seen = f"; {rest} exists" if rest.is_file() else ""
    raise RealWorldError(
        f"chexpert: the Path values of {csv_path} start with {parts[0] + '/'!r} (e.g. {rel!r}): "
        f"they are relative to the folder above {parts[0]}/, the official folder's name, but "
        f"root is named {root.name!r}, so they would resolve to {root / rel}, which does not "
        f"exist{seen}. The folder was renamed after download: rename it back to {parts[0]} "
        f"(root: {root.parent / parts[0]}), so that root is {parts[0]}/ itself and the Path "
        f"values resolve against the folder above it ({root.parent})"
    )


def _split_files(adapter: str, root: Path, opts: dict) -> tuple[dict, str | None]:
    """split -> CSV path, and the CheXpert layout (None for other adapters)."""
    if adapter in _FUNDUS:
        return {s: root / n for s, n in _FUNDUS[adapter].files.items()}, None
    if adapter == "chexpert":
        layout = chexpert_layout(root)
        if layout == "official":
            names = {"train": "train.csv", "val": "train.csv", "test": "valid.csv"}
        else:
            names = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
        return {s: root / n for s, n in names.items()}, layout
    return {s: root / n for s, n in opts["splits"].items()}, None


def _unique(paths) -> list[Path]:
    return list(dict.fromkeys(paths))


def check_layout(adapter: str, root, options: dict | None) -> list[Path]:
    """Parse-time check: ``root`` and every CSV exist and the options are valid; return the CSV
    paths (the workflow makes them inputs). Does not read the CSVs' rows."""
    opts = normalize_options(adapter, options)
    root = _root(adapter, root, opts)
    files, _ = _split_files(adapter, root, opts)
    missing = [p for p in _unique(files.values()) if not p.is_file()]
    if missing:
        raise RealWorldError(
            f"{adapter}: missing {', '.join(map(str, missing))}. The folder {root} must hold:"
            f"{_layout_text(adapter, opts)}"
        )
    return _unique(files.values())


# ------------------------------------------------------------------------------------- tables


@dataclass
class SplitTable:
    """One split: per sample the CSV it comes from, its line there, image and labels."""

    csv: Path  # the CSV the rows come from
    lines: np.ndarray  # int64 (N,): line of each sample in ``csv`` (header = line 1)
    keys: list[str]  # the image cell as written (identifies the sample; no absolute root)
    images: list[Path]  # absolute image paths
    given: np.ndarray  # int64 (N,): labels as given (train/val noisy; test = the reference)
    clean: np.ndarray  # int64 (N,): reference labels, -1 where unknown (test: == given)
    annotators: np.ndarray | None = None  # int64 (N, A), -1 = no vote

    def __len__(self) -> int:
        return len(self.images)

    def where(self, i: int) -> str:
        """Row ``i`` for messages: the CSV, its row number and the image path."""
        return f"{_row(self.csv, int(self.lines[i]))}: {self.images[i]}"

    def subset(self, idx) -> SplitTable:
        """The rows ``idx`` (in that order), keeping their CSV row numbers."""
        idx = np.asarray(idx, np.int64)
        return SplitTable(
            self.csv,
            self.lines[idx],
            [self.keys[i] for i in idx.tolist()],
            [self.images[i] for i in idx.tolist()],
            self.given[idx],
            self.clean[idx],
            None if self.annotators is None else self.annotators[idx],
        )

    @property
    def has_clean(self) -> bool:
        return bool(len(self.clean)) and bool((self.clean >= 0).all())

    def digest(self) -> str:
        """SHA-256 of the split's content (image keys, labels, votes), independent of root."""
        h = hashlib.sha256()
        for key, g, c in zip(self.keys, self.given.tolist(), self.clean.tolist()):
            h.update(f"{key}\t{g}\t{c}\n".encode())
        if self.annotators is not None:
            h.update(np.ascontiguousarray(self.annotators, dtype="<i8").tobytes())
        return h.hexdigest()


@dataclass
class SplitTables:
    adapter: str
    options: dict  # normalised
    root: Path
    classes: list[str]
    splits: dict  # split -> SplitTable
    layout: str | None = None  # CheXpert: "official" or "prepared"
    #: rows dropped as duplicates (``duplicates: keep_first``; :attr:`Duplicates.dropped`)
    dropped: list = field(default_factory=list)
    #: what the reader wants the user to see (e.g. inferred classes with their counts)
    notes: list = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_clean_train(self) -> bool:
        return self.splits["train"].has_clean

    @property
    def val_has_clean(self) -> bool:
        return self.splits["val"].has_clean

    @property
    def csv_files(self) -> list[Path]:
        return _unique(t.csv for t in self.splits.values())


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
            if "test" in (s0, split):
                other = s0 if split == "test" else split
                why = (
                    "test images would train the model"
                    if other == "train"
                    else "the model would be validated on test images"
                )
            else:
                why = "validation images would train the model"
            self.problems.append(f"{pair}: in {s0} and {split} ({why})")
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
                "csv": _rel(t.csv, root),
                "row": int(t.lines[i]),
                "image": t.keys[i],
                "first_csv": _rel(t0.csv, root),
                "first_row": int(t0.lines[i0]),
                "first_image": t0.keys[i0],
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


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RealWorldError(f"{path}: not a readable CSV ({err})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise RealWorldError(f"{path}: the CSV has a header but no rows")
    return df


def _require(df: pd.DataFrame, path: Path, cols, why: str = "") -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise RealWorldError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}{why}; "
            f"the file has {', '.join(map(repr, df.columns))}"
        )


def _cells(df: pd.DataFrame, col: str) -> np.ndarray:
    return np.asarray([str(v).strip() for v in df[col].tolist()], dtype=object)


def _row(path: Path, line: int) -> str:
    return f"{path}, row {line} (header = row 1)"


def _bad(path, lines, col, values, bad: np.ndarray, reason, allowed: str):
    idx = np.flatnonzero(bad)
    i = int(idx[0])
    more = f"; {len(idx)} bad rows in all" if len(idx) > 1 else ""
    why = reason(values[i]) if callable(reason) else reason
    raise RealWorldError(
        f"{_row(path, int(lines[i]))}, column {col!r}: {why} {values[i]!r}; allowed: {allowed}{more}"
    )


def _to_float(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)


def _int_labels(values, path, lines, col, classes, blank_ok=False) -> np.ndarray:
    """Integer labels ``0..K-1`` as written (``3`` or ``3.0``); blank -> -1 if ``blank_ok``."""
    k = len(classes)
    num = _to_float(values)
    blank = values == ""
    integral = np.isfinite(num) & (num == np.round(num))
    ok = integral & (num >= 0) & (num < k)
    if blank_ok:
        ok |= blank

    def reason(v):
        return "blank label" if v == "" else "unknown label"

    if not ok.all():
        allowed = f"integers 0..{k - 1} ({', '.join(classes)})"
        _bad(path, lines, col, values, ~ok, reason, allowed)
    out = np.full(len(values), -1, np.int64)
    out[~blank] = num[~blank].astype(np.int64)
    return out


def _image_paths(base: Path, keys, path, lines, col, ext="") -> list[Path]:
    keys = np.asarray(keys, dtype=object)
    blank = keys == ""
    if blank.any():
        _bad(path, lines, col, keys, blank, "blank image name", "a file name")
    return [base / f"{k}{ext}" for k in keys.tolist()]


def _check_images(tables: dict) -> None:
    """Every image exists; else list the first few missing (CSV, row, path) and the total."""
    missing = []
    for t in tables.values():
        for img, line in zip(t.images, t.lines.tolist()):
            if not os.path.isfile(img):
                missing.append(f"{_row(t.csv, line)}: {img}")
    if missing:
        shown = "\n  ".join(dict.fromkeys(missing[:SHOW_MISSING]))
        raise RealWorldError(
            f"{len(missing)} image file(s) named in the CSVs do not exist; the first:\n  {shown}"
        )


def _fundus(adapter: str, root: Path, opts: dict) -> SplitTables:
    f = _FUNDUS[adapter]
    tables = {}
    for split, name in f.files.items():
        path = root / name
        df = _read_csv(path)
        need = [f.image_column, f.noisy] + ([f.clean] if split == "train" else [])
        _require(df, path, need)
        lines = np.arange(len(df), dtype=np.int64) + 2
        keys = _cells(df, f.image_column)
        given = _int_labels(_cells(df, f.noisy), path, lines, f.noisy, DR_CLASSES)
        if split == "test":
            clean = given.copy()
        elif f.clean in df.columns:
            clean = _int_labels(_cells(df, f.clean), path, lines, f.clean, DR_CLASSES)
        else:
            clean = np.full(len(df), -1, np.int64)
        images = _image_paths(root / f.image_dir, keys, path, lines, f.image_column, f.ext)
        tables[split] = SplitTable(path, lines, keys.tolist(), images, given, clean)
    return SplitTables(adapter, opts, root, list(DR_CLASSES), tables)


# ----------------------------------------------------------------------------------- CheXpert


def chexpert_image(root: Path, rel: str) -> Path:
    """An official CSV's ``Path`` value: it starts with the folder's own name
    (``CheXpert-v1.0-small/train/...``), so it resolves against root's parent then; otherwise
    against root."""
    parts = PurePosixPath(rel).parts
    if parts and parts[0] == root.name:
        return root.parent / rel
    return root / rel


def _chexpert_values(df, path, lines) -> np.ndarray:
    """(N, 5) int in {-1, 0, 1} for the five findings; blank (not mentioned) -> 0."""
    out = np.zeros((len(df), len(CHEXPERT_FINDINGS)), np.int64)
    for j, col in enumerate(CHEXPERT_FINDINGS):
        cells = _cells(df, col)
        num = _to_float(cells)
        blank = cells == ""
        ok = blank | np.isin(num, (-1.0, 0.0, 1.0))
        if not ok.all():
            _bad(path, lines, col, cells, ~ok, "unknown value", "1.0, 0.0, -1.0 or blank")
        out[~blank, j] = num[~blank].astype(np.int64)
    return out


def chexpert_reduce(values: np.ndarray, uncertain: str) -> np.ndarray:
    """LNMBench's 5-class single-label task from the five findings' values (N, 5) in {-1, 0, 1}:
    the index of the single positive finding, -1 where the row is dropped (none or several
    positive; with ``exclude``, any uncertain)."""
    if uncertain not in UNCERTAIN:
        raise RealWorldError(f"uncertain policy {uncertain!r}; allowed: {', '.join(UNCERTAIN)}")
    pos = (values == 1) | ((values == -1) if uncertain == "one" else False)
    keep = pos.sum(axis=1) == 1
    if uncertain == "exclude":
        keep &= ~(values == -1).any(axis=1)
    return np.where(keep, pos.argmax(axis=1), -1).astype(np.int64)


def _chexpert_official_rows(path: Path, root: Path, opts: dict):
    df = _read_csv(path)
    need = ["Path", *CHEXPERT_FINDINGS] + (["Frontal/Lateral"] if opts["frontal_only"] else [])
    _require(df, path, need, " (an official CheXpert CSV)")
    lines = np.arange(len(df), dtype=np.int64) + 2
    label = chexpert_reduce(_chexpert_values(df, path, lines), opts["uncertain"])
    keep = label >= 0
    if opts["frontal_only"]:
        view = _cells(df, "Frontal/Lateral")
        ok = np.isin(view, ("Frontal", "Lateral"))
        if not ok.all():
            _bad(path, lines, "Frontal/Lateral", view, ~ok, "unknown view", "Frontal or Lateral")
        keep &= view == "Frontal"
    keys = _cells(df, "Path")
    firsts = {}  # one Path value per distinct first folder, checked against root's name
    for k in keys.tolist():
        firsts.setdefault(PurePosixPath(k).parts[:1], k)
    for k in firsts.values():
        check_chexpert_prefix(root, path, k)
    if not keep.any():
        raise RealWorldError(
            f"{path}: no image has exactly one positive among {', '.join(CHEXPERT_FINDINGS)} "
            f"(uncertain: {opts['uncertain']}, frontal_only: {opts['frontal_only']})"
        )
    return lines[keep], keys[keep], label[keep]


def _patients(path: Path, lines, keys) -> np.ndarray:
    out = []
    for key, line in zip(keys.tolist(), lines.tolist()):
        m = _PATIENT.search(key)
        if m is None:
            raise RealWorldError(
                f"{_row(path, line)}, column 'Path': {key!r} names no patient folder "
                "(patient<digits>); the patient-level train/val split needs it"
            )
        out.append(m.group(1))
    return np.asarray(out, dtype=object)


def patient_split(labels, patients, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the validation rows: scikit-learn's ``StratifiedGroupKFold`` with
    ``n_splits = round(1 / val_fraction)``, shuffled with ``seed``; its first fold is val. So no
    patient is in both splits, the class shares are kept as far as whole patients allow, and the
    val share is ``1 / n_splits`` of the patients (0.2 -> exactly one in five)."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, round(1 / val_fraction))
    n_groups = len(set(patients.tolist()))
    if n_groups < n_splits:
        raise RealWorldError(
            f"chexpert: {n_groups} patient(s) cannot be split into {n_splits} folds "
            f"(val_fraction {val_fraction}); more training patients are needed"
        )
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits"
        warnings.simplefilter("ignore", UserWarning)
        try:
            _, val_idx = next(cv.split(np.zeros(len(labels)), labels, patients))
        except ValueError as err:  # e.g. every class has fewer images than folds
            counts = np.bincount(np.asarray(labels, np.int64), minlength=len(CHEXPERT_FINDINGS))
            raise RealWorldError(
                f"chexpert: the train/val split by patient ({n_splits} folds, val_fraction "
                f"{val_fraction}) is impossible: {err} (training images per class "
                f"{dict(zip(CHEXPERT_FINDINGS, counts.tolist()))}); more training images or a "
                "larger val_fraction are needed"
            ) from None
    mask = np.zeros(len(labels), bool)
    mask[val_idx] = True
    return mask


def _chexpert(root: Path, opts: dict) -> SplitTables:
    layout = chexpert_layout(root)
    classes = list(CHEXPERT_FINDINGS)
    tables = {}
    if layout == "prepared":
        for split, name in (("train", "train.csv"), ("val", "val.csv"), ("test", "test.csv")):
            path = root / name
            df = _read_csv(path)
            _require(df, path, ["Path", "Label"], " (a prepared CheXpert CSV)")
            lines = np.arange(len(df), dtype=np.int64) + 2
            keys = _cells(df, "Path")
            given = _int_labels(_cells(df, "Label"), path, lines, "Label", classes)
            clean = given.copy() if split == "test" else np.full(len(df), -1, np.int64)
            images = _image_paths(root, keys, path, lines, "Path")
            tables[split] = SplitTable(path, lines, keys.tolist(), images, given, clean)
        return SplitTables("chexpert", opts, root, classes, tables, layout)
    train_csv, test_csv = root / "train.csv", root / "valid.csv"
    lines, keys, label = _chexpert_official_rows(train_csv, root, opts)
    val = patient_split(
        label, _patients(train_csv, lines, keys), opts["val_fraction"], opts["split_seed"]
    )
    for split, rows in (("train", ~val), ("val", val)):
        k = keys[rows]
        tables[split] = SplitTable(
            train_csv,
            lines[rows],
            k.tolist(),
            [chexpert_image(root, p) for p in k.tolist()],
            label[rows],
            np.full(int(rows.sum()), -1, np.int64),
        )
    lines, keys, label = _chexpert_official_rows(test_csv, root, opts)
    tables["test"] = SplitTable(
        test_csv,
        lines,
        keys.tolist(),
        [chexpert_image(root, p) for p in keys.tolist()],
        label,
        label.copy(),
    )
    return SplitTables("chexpert", opts, root, classes, tables, layout)


# ---------------------------------------------------------------------------------------- csv

_INT = re.compile(r"^[+-]?\d+(\.0*)?$")


def _as_int(v: str) -> int | None:
    return int(float(v)) if _INT.match(v) else None


def _class_set(values: list[str]) -> list[str]:
    """No ``classes`` option: the sorted set of labels seen; numerically when all are integers
    (written as ``3`` or ``3.0``), else as strings."""
    seen = set(values)
    ints = {_as_int(v) for v in seen}
    if None not in ints:
        return [str(i) for i in sorted(ints)]
    return sorted(seen)


def majority_vote(votes: np.ndarray, num_classes: int) -> np.ndarray:
    """Per row the most frequent vote (-1 = no vote ignored); ties go to the smallest class
    index; -1 for a row without any vote."""
    votes = np.asarray(votes, np.int64)
    counts = np.zeros((len(votes), num_classes), np.int64)
    for j in range(votes.shape[1]):
        v = votes[:, j]
        has = v >= 0
        np.add.at(counts, (np.flatnonzero(has), v[has]), 1)
    out = counts.argmax(axis=1)  # first maximum = smallest index
    return np.where(counts.sum(axis=1) > 0, out, -1).astype(np.int64)


def _csv(root: Path, opts: dict) -> SplitTables:
    img_col, lab_col = opts["image_column"], opts["label_column"]
    clean_col, ann_cols = opts["clean_column"], opts["annotator_columns"]
    frames = {}
    for split in SPLITS:
        path = root / opts["splits"][split]
        df = _read_csv(path)
        need = [img_col, lab_col]
        if split == "train":
            need += ([clean_col] if clean_col else []) + ann_cols
        _require(df, path, need)
        present = [c for c in ann_cols if c in df.columns]
        if present and len(present) != len(ann_cols):
            _require(df, path, ann_cols, " (give all annotator columns or none)")
        frames[split] = (path, df)

    def label_cols(df):
        cols = [lab_col] + ([clean_col] if clean_col and clean_col in df.columns else [])
        return cols + [c for c in ann_cols if c in df.columns]

    classes = opts["classes"]
    if classes is None:
        seen = [
            v
            for _, df in frames.values()
            for col in label_cols(df)
            for v in _cells(df, col).tolist()
            if v != ""
        ]
        classes = _class_set(seen)
        if len(classes) < 2:
            raise RealWorldError(
                f"csv: the CSVs' labels hold {len(classes)} class(es) {classes}; at least two "
                "are needed (or list them in the `classes` option)"
            )
        numeric = all(_as_int(c) is not None for c in classes)
        index = {c: i for i, c in enumerate(classes)}
        lookup = (lambda v: index.get(str(_as_int(v)))) if numeric else index.get
        notes = [_inferred_classes_note(frames, label_cols, classes, lookup)]
    else:
        notes = []
        index = {c: i for i, c in enumerate(classes)}

        def lookup(v):
            if v in index:
                return index[v]
            i = _as_int(v)
            return i if i is not None and 0 <= i < len(classes) else None

    allowed = f"{', '.join(classes)}" + (
        " or their indices 0.." + str(len(classes) - 1) if opts["classes"] else ""
    )

    def parse(path, lines, df, col, blank_ok=False):
        cells = _cells(df, col)
        out = np.full(len(cells), -1, np.int64)
        bad = np.zeros(len(cells), bool)
        for i, v in enumerate(cells.tolist()):
            if v == "":
                bad[i] = not blank_ok
                continue
            j = lookup(v)
            if j is None:
                bad[i] = True
            else:
                out[i] = j
        if bad.any():
            _bad(
                path,
                lines,
                col,
                cells,
                bad,
                lambda v: "blank label" if v == "" else "unknown label",
                allowed,
            )
        return out

    tables = {}
    for split, (path, df) in frames.items():
        lines = np.arange(len(df), dtype=np.int64) + 2
        keys = _cells(df, img_col)
        given = parse(path, lines, df, lab_col)
        present = [c for c in ann_cols if c in df.columns]
        votes = None
        if present:
            votes = np.stack([parse(path, lines, df, c, blank_ok=True) for c in present], axis=1)
        if clean_col and clean_col in df.columns:
            clean = parse(path, lines, df, clean_col)
        elif split == "test":
            clean = given.copy()
        elif votes is not None:
            clean = majority_vote(votes, len(classes))
            none = np.flatnonzero(clean < 0)
            if len(none):
                raise RealWorldError(
                    f"{_row(path, int(lines[none[0]]))}: no annotator vote (columns "
                    f"{', '.join(map(repr, present))} all blank) and no clean column, so the row "
                    f"has no clean label; {len(none)} such row(s) in all"
                )
        else:
            clean = np.full(len(df), -1, np.int64)
        if split == "test":
            given = clean if clean_col and clean_col in df.columns else given
            clean = given.copy()
        images = _image_paths(root, keys, path, lines, img_col)
        tables[split] = SplitTable(path, lines, keys.tolist(), images, given, clean, votes)
    return SplitTables("csv", opts, root, list(classes), tables, notes=notes)


def _inferred_classes_note(frames: dict, label_cols, classes: list[str], lookup) -> str:
    """Without a ``classes`` option every distinct label is a class, so a typo (``fish`` among
    bird / cat / dog) would be a class of its own: the note lists each class with the number of
    label cells holding it and where it is first seen, so such a class shows."""
    counts = [0] * len(classes)
    first: list = [None] * len(classes)
    for path, df in frames.values():
        for col in label_cols(df):
            for i, v in enumerate(_cells(df, col).tolist()):
                j = None if v == "" else lookup(v)
                if j is None:
                    continue
                counts[j] += 1
                if first[j] is None:
                    first[j] = f"first in {_row(path, i + 2)}, column {col!r}"
    width = max(len(c) for c in classes)
    lines = [
        f"  {c:<{width}}  {n:>7} cell(s) ({where})" for c, n, where in zip(classes, counts, first)
    ]
    return (
        f"csv: no `classes` option, so the classes are the {len(classes)} distinct labels of "
        "the label, clean and annotator columns of all splits (a misspelt label would be a "
        "class of its own: list the classes in `classes` to refuse any other value):\n"
        + "\n".join(lines)
    )


# ------------------------------------------------------------------------------------ reading


def read_splits(
    adapter: str, root, options: dict | None, check_images: bool = True, log=None
) -> SplitTables:
    """Read the dataset's CSVs into :class:`SplitTables`; with ``check_images`` every image
    file must exist (the first few missing are reported with their CSV rows, and the total).
    Rows naming the same file are refused or dropped (:func:`drop_duplicate_files`). Notes
    (:attr:`SplitTables.notes`) and dropped rows are written to ``log`` (default: stderr)."""
    opts = normalize_options(adapter, options)
    root = _root(adapter, root, opts)
    check_layout(adapter, root, opts)
    if adapter in _FUNDUS:
        tables = _fundus(adapter, root, opts)
    elif adapter == "chexpert":
        tables = _chexpert(root, opts)
    else:
        tables = _csv(root, opts)
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
