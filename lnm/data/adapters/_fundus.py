"""The diabetic-retinopathy sets as LNMBench reads them (``CE/drtid.py``, ``CE/kaggledr.py``;
reference-protocol §1.3): three CSVs (train, val, test) with an image-name column, the noisy
grade and, in train (optionally in val), the clean grade; one image file per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._tables import (
    SplitTable,
    SplitTables,
    cells,
    image_paths,
    int_labels,
    lines_of,
    read_csv,
    require,
)
from .base import Adapter

#: Diabetic-retinopathy grades 0 (none) .. 4 (proliferative).
DR_CLASSES = [f"grade {i}" for i in range(5)]


class FundusAdapter(Adapter):
    """A fundus set: a subclass names its files and columns (literals, below)."""

    files = {}  # split -> CSV name
    image_column = ""  # the image's name, without directory and extension
    image_dir = ""  # the images' folder below root
    ext = ""  # the images' extension
    noisy = ""  # the noisy grade (test: the expert reference)
    clean = ""  # the clean grade (train; optional in val)
    clean_train = True
    task = "ordinal-regression"  # DR grades, as MedMNIST names RetinaMNIST's task
    lnmbench_size = 512

    def layout(self, options=None) -> list[str]:
        img = f"{self.image_dir}/<{self.image_column}>{self.ext}"
        col, noisy, clean = self.image_column, self.noisy, self.clean
        return [
            f"{self.files['train']}: columns {col}, {noisy} (noisy grade 0-4), "
            f"{clean} (clean grade 0-4)",
            f"{self.files['val']}: columns {col}, {noisy} (noisy; an optional "
            f"{clean} column gives val clean labels)",
            f"{self.files['test']}: columns {col}, {noisy} (the expert reference)",
            f"{img}: one image per CSV row ({col} without the extension)",
        ]

    def split_files(self, root: Path, opts: dict) -> tuple[dict, None]:
        return {s: root / n for s, n in self.files.items()}, None

    def read(self, root: Path, opts: dict) -> SplitTables:
        tables = {split: self._split(root, split, name) for split, name in self.files.items()}
        return SplitTables(self.name, opts, root, list(DR_CLASSES), tables)

    def _split(self, root: Path, split: str, name: str) -> SplitTable:
        path = root / name
        df = read_csv(path)
        require(
            df, path, [self.image_column, self.noisy] + ([self.clean] if split == "train" else [])
        )
        lines = lines_of(df)
        keys = cells(df, self.image_column)
        given = int_labels(cells(df, self.noisy), path, lines, self.noisy, DR_CLASSES)
        if split == "test":
            clean = given.copy()
        elif self.clean in df.columns:
            clean = int_labels(cells(df, self.clean), path, lines, self.clean, DR_CLASSES)
        else:
            clean = np.full(len(df), -1, np.int64)
        images = image_paths(root / self.image_dir, keys, path, lines, self.image_column, self.ext)
        return SplitTable(path, lines, keys.tolist(), images, given, clean)
