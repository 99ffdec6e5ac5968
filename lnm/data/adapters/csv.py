"""Any CSV-labelled image set: one CSV per split naming the image and its labels.

Options name the split files and the columns (:attr:`CsvAdapter.options`). Labels are class names
or integer indices; without ``classes`` the class set is the sorted union of the labels seen
(numerically when all are integers), listed with their counts so a misspelt label shows. The
clean label of a train or val row comes from the clean column, else from the annotators'
majority vote (:func:`majority_vote`), else it is unknown (-1). In test, the label column is
the reference (the clean column where the test CSV has one).

A dataset in another fixed layout is one file too: a subclass with its own ``name`` and
defaults, e.g. ``options = {**CsvAdapter.options, "label_column": {..., "default": "noisy"}}``
(docs/datasets.md).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import numpy as np

from ._tables import (
    SPLITS,
    RealWorldError,
    SplitTable,
    SplitTables,
    bad,
    blank_or_unknown,
    cells,
    image_paths,
    lines_of,
    read_csv,
    require,
    row,
)
from .base import Adapter


class CsvAdapter(Adapter):
    name = "csv"
    order = 3
    options = {
        "splits": {
            "type": "object",
            "required": ["train", "val", "test"],
            "additionalProperties": False,
            "properties": {
                "train": {"type": "string", "minLength": 1},
                "val": {"type": "string", "minLength": 1},
                "test": {"type": "string", "minLength": 1},
            },
            "default": {"train": "train.csv", "val": "val.csv", "test": "test.csv"},
            "description": "the CSV of each split, relative to root",
        },
        "image_column": {
            "type": "string",
            "minLength": 1,
            "default": None,
            "description": "image paths relative to root (or absolute)",
        },
        "label_column": {
            "type": "string",
            "minLength": 1,
            "default": None,
            "description": "the noisy label (test: the reference, unless clean_column)",
        },
        "clean_column": {
            "type": ["string", "null"],
            "minLength": 1,
            "default": None,
            "description": "clean labels (required in train; val and test where present)",
        },
        "annotator_columns": {
            "type": ["array", "null"],
            "items": {"type": "string", "minLength": 1},
            "default": [],
            "description": "one column per annotator, blank = no vote; without a clean column "
            "their majority vote is the clean label",
        },
        "classes": {
            "type": ["array", "null"],
            "minItems": 2,
            "items": {"type": ["string", "integer"]},
            "default": None,
            "description": "class names in index order (null: the sorted labels seen)",
        },
    }
    clean_train = ("clean_column", "annotator_columns")

    # ------------------------------------------------------------------------------- options

    def check_options(self, opts: dict) -> dict:
        opts["splits"] = self._check_splits(opts["splits"])
        for key in ("image_column", "label_column"):
            opts[key] = self._column(opts[key], key)
        opts["clean_column"] = self._column(opts["clean_column"], "clean_column", optional=True)
        ann = opts["annotator_columns"]
        if ann is None:
            ann = []
        if not isinstance(ann, (list, tuple)):
            raise RealWorldError(
                f"{self.name} option 'annotator_columns' = {ann!r}: must be a list of column names"
            )
        opts["annotator_columns"] = [self._column(a, "annotator_columns") for a in ann]
        used = [
            opts["image_column"],
            opts["label_column"],
            opts["clean_column"],
            *opts["annotator_columns"],
        ]
        used = [c for c in used if c is not None]
        dup = sorted({c for c in used if used.count(c) > 1})
        if dup:
            raise RealWorldError(
                f"{self.name} options name column(s) {', '.join(map(repr, dup))} more than once "
                "(image_column, label_column, clean_column and annotator_columns must differ)"
            )
        if opts["classes"] is not None:
            opts["classes"] = self._check_classes(opts["classes"])
        return opts

    def _check_splits(self, splits) -> dict:
        if not isinstance(splits, dict) or set(splits) != set(SPLITS):
            raise RealWorldError(
                f"{self.name} option 'splits' = {splits!r}: must map each of train, val, test "
                "(all three, nothing else) to a CSV file name relative to the dataset folder"
            )
        for split in SPLITS:
            name = splits[split]
            if not isinstance(name, str) or not name.strip():
                raise RealWorldError(
                    f"{self.name} option 'splits.{split}' = {name!r}: must be a CSV file name"
                )
            if Path(name).is_absolute() or ".." in PurePosixPath(name).parts:
                raise RealWorldError(
                    f"{self.name} option 'splits.{split}' = {name!r}: must be relative to the "
                    "dataset folder (`root`) and stay inside it"
                )
        return {s: splits[s] for s in SPLITS}

    def _column(self, v, key: str, optional: bool = False) -> str | None:
        if v is None and optional:
            return None
        if not isinstance(v, str) or not v.strip():
            raise RealWorldError(
                f"{self.name} option {key!r} = {v!r}: must be a non-empty column name (a string)"
                + ("" if not optional else " or null")
            )
        return v

    def _check_classes(self, classes) -> list[str]:
        if (
            not isinstance(classes, (list, tuple))
            or len(classes) < 2
            or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes)
        ):
            raise RealWorldError(
                f"{self.name} option 'classes' = {classes!r}: must be null (the classes are the "
                "sorted labels seen in the CSVs) or a list of at least two class names"
            )
        names = [str(c).strip() for c in classes]
        if len(set(names)) != len(names) or "" in names:
            raise RealWorldError(
                f"{self.name} option 'classes' = {classes!r}: names must be distinct and non-empty"
            )
        return names

    # -------------------------------------------------------------------------------- layout

    def layout(self, options=None) -> list[str]:
        opts = self.normalize(options or {})
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

    def split_files(self, root: Path, opts: dict) -> tuple[dict, None]:
        return {s: root / n for s, n in opts["splits"].items()}, None

    # ------------------------------------------------------------------------------- reading

    def read(self, root: Path, opts: dict) -> SplitTables:
        frames = {split: self._frame(root, split, opts) for split in SPLITS}
        labels = _Labels.of(self.name, frames, opts)
        tables = {
            split: _split_table(root, split, path, df, labels, opts)
            for split, (path, df) in frames.items()
        }
        return SplitTables(self.name, opts, root, list(labels.classes), tables, notes=labels.notes)

    @staticmethod
    def _frame(root: Path, split: str, opts: dict):
        """The split's CSV, checked for the columns the options name: (path, frame)."""
        ann_cols, clean_col = opts["annotator_columns"], opts["clean_column"]
        path = root / opts["splits"][split]
        df = read_csv(path)
        need = [opts["image_column"], opts["label_column"]]
        if split == "train":
            need += ([clean_col] if clean_col else []) + ann_cols
        require(df, path, need)
        present = [c for c in ann_cols if c in df.columns]
        if present and len(present) != len(ann_cols):
            require(df, path, ann_cols, " (give all annotator columns or none)")
        return path, df


# ----------------------------------------------------------------------------------- labels

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


def _label_cols(df, opts: dict) -> list[str]:
    """The columns of ``df`` that hold labels: label, clean (where present), annotators."""
    clean_col = opts["clean_column"]
    cols = [opts["label_column"]] + ([clean_col] if clean_col and clean_col in df.columns else [])
    return cols + [c for c in opts["annotator_columns"] if c in df.columns]


class _Labels:
    """The class set and how a cell is read as a class index (``lookup``: None = unknown)."""

    def __init__(self, classes: list[str], lookup, allowed: str, notes: list[str]):
        self.classes, self.lookup, self.allowed, self.notes = classes, lookup, allowed, notes

    @classmethod
    def of(cls, name: str, frames: dict, opts: dict) -> _Labels:
        classes = opts["classes"]
        if classes is None:
            return cls._inferred(name, frames, opts)
        index = {c: i for i, c in enumerate(classes)}

        def lookup(v):
            if v in index:
                return index[v]
            i = _as_int(v)
            return i if i is not None and 0 <= i < len(classes) else None

        allowed = f"{', '.join(classes)} or their indices 0..{len(classes) - 1}"
        return cls(classes, lookup, allowed, [])

    @classmethod
    def _inferred(cls, name: str, frames: dict, opts: dict) -> _Labels:
        seen = [
            v
            for _, df in frames.values()
            for col in _label_cols(df, opts)
            for v in cells(df, col).tolist()
            if v != ""
        ]
        classes = _class_set(seen)
        if len(classes) < 2:
            raise RealWorldError(
                f"{name}: the CSVs' labels hold {len(classes)} class(es) {classes}; at least two "
                "are needed (or list them in the `classes` option)"
            )
        numeric = all(_as_int(c) is not None for c in classes)
        index = {c: i for i, c in enumerate(classes)}
        lookup = (lambda v: index.get(str(_as_int(v)))) if numeric else index.get
        note = _inferred_classes_note(name, frames, opts, classes, lookup)
        return cls(classes, lookup, ", ".join(classes), [note])

    def parse(self, path, lines, df, col, blank_ok=False) -> np.ndarray:
        """The column's class indices (-1 for a blank where ``blank_ok``); a blank or unknown
        label is refused naming the row."""
        values = cells(df, col)
        out = np.full(len(values), -1, np.int64)
        is_bad = np.zeros(len(values), bool)
        for i, v in enumerate(values.tolist()):
            if v == "":
                is_bad[i] = not blank_ok
                continue
            j = self.lookup(v)
            if j is None:
                is_bad[i] = True
            else:
                out[i] = j
        if is_bad.any():
            bad(path, lines, col, values, is_bad, blank_or_unknown, self.allowed)
        return out


def _inferred_classes_note(name: str, frames: dict, opts, classes: list[str], lookup) -> str:
    """Without a ``classes`` option every distinct label is a class, so a typo (``fish`` among
    bird / cat / dog) would be a class of its own: the note lists each class with the number of
    label cells holding it and where it is first seen, so such a class shows."""
    counts = [0] * len(classes)
    first: list = [None] * len(classes)
    for path, df in frames.values():
        for col in _label_cols(df, opts):
            for i, v in enumerate(cells(df, col).tolist()):
                j = None if v == "" else lookup(v)
                if j is None:
                    continue
                counts[j] += 1
                if first[j] is None:
                    first[j] = f"first in {row(path, i + 2)}, column {col!r}"
    width = max(len(c) for c in classes)
    lines = [
        f"  {c:<{width}}  {n:>7} cell(s) ({where})" for c, n, where in zip(classes, counts, first)
    ]
    return (
        f"{name}: no `classes` option, so the classes are the {len(classes)} distinct labels of "
        "the label, clean and annotator columns of all splits (a misspelt label would be a "
        "class of its own: list the classes in `classes` to refuse any other value):\n"
        + "\n".join(lines)
    )


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


# ------------------------------------------------------------------------------------ tables


def _split_table(root: Path, split: str, path: Path, df, labels: _Labels, opts) -> SplitTable:
    lines = lines_of(df)
    keys = cells(df, opts["image_column"])
    given = labels.parse(path, lines, df, opts["label_column"])
    present = [c for c in opts["annotator_columns"] if c in df.columns]
    votes = None
    if present:
        votes = np.stack([labels.parse(path, lines, df, c, blank_ok=True) for c in present], 1)
    clean_col = opts["clean_column"]
    has_clean_col = bool(clean_col) and clean_col in df.columns
    if has_clean_col:
        clean = labels.parse(path, lines, df, clean_col)
    elif split == "test":
        clean = given.copy()
    elif votes is not None:
        clean = _voted(path, lines, votes, present, len(labels.classes))
    else:
        clean = np.full(len(df), -1, np.int64)
    if split == "test":  # the reference: the clean column where the test CSV has one
        given = clean if has_clean_col else given
        clean = given.copy()
    images = image_paths(root, keys, path, lines, opts["image_column"])
    return SplitTable(path, lines, keys.tolist(), images, given, clean, votes)


def _voted(path: Path, lines, votes, present: list[str], num_classes: int) -> np.ndarray:
    """The annotators' majority vote as the clean label; a row without any vote is refused."""
    clean = majority_vote(votes, num_classes)
    none = np.flatnonzero(clean < 0)
    if len(none):
        raise RealWorldError(
            f"{row(path, int(lines[none[0]]))}: no annotator vote (columns "
            f"{', '.join(map(repr, present))} all blank) and no clean column, so the row "
            f"has no clean label; {len(none)} such row(s) in all"
        )
    return clean
