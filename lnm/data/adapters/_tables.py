"""The machinery every real-world adapter shares: its error, the tables it returns (one
:class:`SplitTable` per split) and reading CSV cells into labels and image paths with errors
that name the file, the row, the column and the value.

Row numbers are line numbers of the CSV file with the header as line 1 (:func:`row`). Cells are
read as text (``dtype=str``, blanks kept as ""), so a blank or malformed label is reported as
written, never silently turned into NaN. Torch-free; pandas is imported where a CSV is read.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..medmnist_io import DataError

if TYPE_CHECKING:  # pandas is imported where CSVs are read: training never pays for it
    import pandas as pd

SPLITS = ("train", "val", "test")
#: How many missing images (or duplicate rows) an error lists before giving the total.
SHOW_MISSING = 5


class RealWorldError(DataError):
    """A real-world dataset folder, CSV, row, image or adapter option is missing or invalid."""


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
        return f"{row(self.csv, int(self.lines[i]))}: {self.images[i]}"

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
        return unique(t.csv for t in self.splits.values())


def unique(paths) -> list[Path]:
    """``paths`` without repeats, in order."""
    return list(dict.fromkeys(paths))


# ---------------------------------------------------------------------------------- CSV cells


def row(path: Path, line: int) -> str:
    """A CSV row for messages: the file and the row number as a text editor shows it."""
    return f"{path}, row {line} (header = row 1)"


def read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text (blanks as ""), the header stripped; refused: unreadable or no rows."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RealWorldError(f"{path}: not a readable CSV ({err})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise RealWorldError(f"{path}: the CSV has a header but no rows")
    return df


def header(path: Path) -> list[str]:
    """A CSV's column names (read without pandas)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [c.strip() for c in next(csv.reader(fh), [])]


def first_cell(path: Path, col: str) -> str | None:
    """The ``col`` cell of the first data row (None: no data row or no such column)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        head = [c.strip() for c in next(reader, [])]
        first = next(reader, None)
    if first is None or col not in head or head.index(col) >= len(first):
        return None
    return first[head.index(col)].strip()


def lines_of(df: pd.DataFrame) -> np.ndarray:
    """The line of each data row (the header is line 1)."""
    return np.arange(len(df), dtype=np.int64) + 2


def require(df: pd.DataFrame, path: Path, cols, why: str = "") -> None:
    """Every column of ``cols`` is in ``df``; else name the missing ones and the file's."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise RealWorldError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}{why}; "
            f"the file has {', '.join(map(repr, df.columns))}"
        )


def cells(df: pd.DataFrame, col: str) -> np.ndarray:
    """The column's cells as stripped strings."""
    return np.asarray([str(v).strip() for v in df[col].tolist()], dtype=object)


def bad(path, lines, col, values, is_bad: np.ndarray, reason, allowed: str):
    """Raise naming the first bad cell (file, row, column, value), what is allowed and how many
    rows are bad; ``reason``: a text or a function of the value."""
    idx = np.flatnonzero(is_bad)
    i = int(idx[0])
    more = f"; {len(idx)} bad rows in all" if len(idx) > 1 else ""
    why = reason(values[i]) if callable(reason) else reason
    raise RealWorldError(
        f"{row(path, int(lines[i]))}, column {col!r}: {why} {values[i]!r}; allowed: {allowed}{more}"
    )


def blank_or_unknown(v) -> str:
    return "blank label" if v == "" else "unknown label"


def to_float(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)


def int_labels(values, path, lines, col, classes, blank_ok=False) -> np.ndarray:
    """Integer labels ``0..K-1`` as written (``3`` or ``3.0``); blank -> -1 if ``blank_ok``."""
    k = len(classes)
    num = to_float(values)
    blank = values == ""
    integral = np.isfinite(num) & (num == np.round(num))
    ok = integral & (num >= 0) & (num < k)
    if blank_ok:
        ok |= blank
    if not ok.all():
        allowed = f"integers 0..{k - 1} ({', '.join(classes)})"
        bad(path, lines, col, values, ~ok, blank_or_unknown, allowed)
    out = np.full(len(values), -1, np.int64)
    out[~blank] = num[~blank].astype(np.int64)
    return out


def image_paths(base: Path, keys, path, lines, col, ext="") -> list[Path]:
    """``base / (key + ext)`` per row; a blank image cell is refused."""
    keys = np.asarray(keys, dtype=object)
    blank = keys == ""
    if blank.any():
        bad(path, lines, col, keys, blank, "blank image name", "a file name")
    return [base / f"{k}{ext}" for k in keys.tolist()]


def check_images(tables: dict) -> None:
    """Every image exists; else list the first few missing (CSV, row, path) and the total."""
    missing = []
    for t in tables.values():
        for img, line in zip(t.images, t.lines.tolist()):
            if not os.path.isfile(img):
                missing.append(f"{row(t.csv, line)}: {img}")
    if missing:
        shown = "\n  ".join(dict.fromkeys(missing[:SHOW_MISSING]))
        raise RealWorldError(
            f"{len(missing)} image file(s) named in the CSVs do not exist; the first:\n  {shown}"
        )
