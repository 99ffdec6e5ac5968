"""CheXpert (Irvin et al. 2019) as LNMBench's 5-class single-label task.

Two layouts, detected from the CSVs (:meth:`Chexpert.layout_of`):

- the official ``CheXpert-v1.0`` or ``CheXpert-v1.0-small`` folder (root = that folder):
  ``train.csv`` and ``valid.csv`` with the 14 observations valued 1.0 / 0.0 / -1.0 / blank.
  A row is kept when exactly one of the five competition findings is positive
  (:func:`chexpert_reduce`, options ``uncertain`` and ``frontal_only``); ``train.csv`` is split
  into train and val by patient (:func:`patient_split`); ``valid.csv`` (radiologist labels) is
  the test split. Train and val labels come from the report labeler: no clean training labels.
- LNMBench's prepared ``train.csv``, ``val.csv``, ``test.csv`` with ``Path``, ``Label`` (0-4).

sklearn is imported for the patient split only.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import numpy as np

from ._tables import (
    RealWorldError,
    SplitTable,
    SplitTables,
    bad,
    cells,
    first_cell,
    header,
    image_paths,
    int_labels,
    lines_of,
    read_csv,
    require,
    row,
    to_float,
)
from .base import Adapter

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
_PATIENT = re.compile(r"(?:^|/)(patient\d+)(?:/|$)")
#: The split files of each layout.
_FILES = {
    "official": {"train": "train.csv", "val": "train.csv", "test": "valid.csv"},
    "prepared": {"train": "train.csv", "val": "val.csv", "test": "test.csv"},
}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Chexpert(Adapter):
    name = "chexpert"
    order = 2
    options = {
        "val_fraction": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 0.5,
            "default": 0.2,
            "description": "the share of training patients held out for validation (official "
            "layout; 0.2 = one fold in five)",
        },
        "split_seed": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": "seed of the patient-level train/val split (official layout)",
        },
        "uncertain": {
            "enum": ["zero", "one", "exclude"],
            "default": "zero",
            "description": "an uncertain finding (-1) counts as negative (zero, U-Zeros), as "
            "positive (one, U-Ones), or drops the image (exclude)",
        },
        "frontal_only": {
            "type": "boolean",
            "default": False,
            "description": "keep frontal views only (every split; official layout)",
        },
    }
    clean_train = False
    lnmbench_size = 224

    def check_options(self, opts: dict) -> dict:
        vf = opts["val_fraction"]
        if not _is_number(vf) or not 0 < vf <= 0.5:
            raise RealWorldError(
                f"chexpert option 'val_fraction' = {vf!r}: must be a number in (0, 0.5] (the share "
                "of training patients held out for validation; 0.2 = one fold in five)"
            )
        seed = opts["split_seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise RealWorldError(
                f"chexpert option 'split_seed' = {seed!r}: must be an integer >= 0"
            )
        if opts["uncertain"] not in UNCERTAIN:
            raise RealWorldError(
                f"chexpert option 'uncertain' = {opts['uncertain']!r}: allowed: "
                "zero (U-Zeros: -1 counts as negative), one (U-Ones: -1 counts as positive), "
                "exclude (drop images with any -1 among the five findings)"
            )
        if not isinstance(opts["frontal_only"], bool):
            raise RealWorldError(
                f"chexpert option 'frontal_only' = {opts['frontal_only']!r}: must be true or false"
            )
        opts["val_fraction"] = float(vf)
        return opts

    def layout(self, options=None) -> list[str]:
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

    def split_files(self, root: Path, opts: dict) -> tuple[dict, str]:
        layout = self.layout_of(root)
        return {s: root / n for s, n in _FILES[layout].items()}, layout

    def layout_of(self, root: Path) -> str:
        """``"official"`` (train.csv with the observation columns) or ``"prepared"``
        (Path,Label); refused, saying what each lacks, when it is neither."""
        train = root / "train.csv"
        if not train.is_file():
            hint = [root / d for d in CHEXPERT_FOLDERS if (root / d / "train.csv").is_file()]
            raise RealWorldError(
                f"chexpert: {train} does not exist"
                + (f" (did you mean root: {hint[0]}?)" if hint else "")
                + f". The folder must hold:{self.layout_text(None)}"
            )
        cols = header(train)
        if "Path" in cols and "Label" in cols:
            return "prepared"
        official = ["Path", *CHEXPERT_FINDINGS]
        if all(c in cols for c in official):
            for path in (train, root / "valid.csv"):  # a missing valid.csv: check_layout names it
                if path.is_file():
                    check_chexpert_prefix(root, path, first_cell(path, "Path"))
            return "official"
        raise RealWorldError(
            f"chexpert: {train} fits neither layout: {_neither_why(cols)}. Its columns: "
            f"{', '.join(map(repr, cols))}. Expected:{self.layout_text(None)}"
        )

    def read(self, root: Path, opts: dict) -> SplitTables:
        layout = self.layout_of(root)
        if layout == "prepared":
            tables = {s: _prepared_split(root, s, n) for s, n in _FILES[layout].items()}
        else:
            tables = _official_splits(root, opts)
        return SplitTables(self.name, opts, root, list(CHEXPERT_FINDINGS), tables, layout)


#: How an uncertain finding (-1) counts (option ``uncertain``).
UNCERTAIN = tuple(Chexpert.options["uncertain"]["enum"])


def _neither_why(cols: list[str]) -> str:
    official = ["Path", *CHEXPERT_FINDINGS]
    miss_official = ", ".join(repr(c) for c in official if c not in cols)
    miss_prepared = ", ".join(repr(c) for c in ("Path", "Label") if c not in cols)
    if any(c in cols for c in CHEXPERT_OBSERVATIONS):  # meant to be the official CSV
        return (
            f"it has observation columns, as the official train.csv, but lacks {miss_official} "
            f"(the 5-class task needs Path and {', '.join(CHEXPERT_FINDINGS)})"
        )
    return (
        f"the official layout needs {miss_official}, which it lacks; the prepared one "
        f"needs {miss_prepared}, which it lacks"
    )


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


def chexpert_image(root: Path, rel: str) -> Path:
    """An official CSV's ``Path`` value: it starts with the folder's own name
    (``CheXpert-v1.0-small/train/...``), so it resolves against root's parent then; otherwise
    against root."""
    parts = PurePosixPath(rel).parts
    if parts and parts[0] == root.name:
        return root.parent / rel
    return root / rel


# ------------------------------------------------------------------------------------- prepared


def _prepared_split(root: Path, split: str, name: str) -> SplitTable:
    path = root / name
    df = read_csv(path)
    require(df, path, ["Path", "Label"], " (a prepared CheXpert CSV)")
    lines = lines_of(df)
    keys = cells(df, "Path")
    given = int_labels(cells(df, "Label"), path, lines, "Label", list(CHEXPERT_FINDINGS))
    clean = given.copy() if split == "test" else np.full(len(df), -1, np.int64)
    images = image_paths(root, keys, path, lines, "Path")
    return SplitTable(path, lines, keys.tolist(), images, given, clean)


# ------------------------------------------------------------------------------------- official


def _official_splits(root: Path, opts: dict) -> dict:
    """train.csv split by patient into train and val, valid.csv as test."""
    train_csv, test_csv = root / _FILES["official"]["train"], root / _FILES["official"]["test"]
    lines, keys, label = _official_rows(train_csv, root, opts)
    val = patient_split(
        label, _patients(train_csv, lines, keys), opts["val_fraction"], opts["split_seed"]
    )
    tables = {}
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
    lines, keys, label = _official_rows(test_csv, root, opts)
    images = [chexpert_image(root, p) for p in keys.tolist()]
    tables["test"] = SplitTable(test_csv, lines, keys.tolist(), images, label, label.copy())
    return tables


def _values(df, path, lines) -> np.ndarray:
    """(N, 5) int in {-1, 0, 1} for the five findings; blank (not mentioned) -> 0."""
    out = np.zeros((len(df), len(CHEXPERT_FINDINGS)), np.int64)
    for j, col in enumerate(CHEXPERT_FINDINGS):
        cs = cells(df, col)
        num = to_float(cs)
        blank = cs == ""
        ok = blank | np.isin(num, (-1.0, 0.0, 1.0))
        if not ok.all():
            bad(path, lines, col, cs, ~ok, "unknown value", "1.0, 0.0, -1.0 or blank")
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


def _official_rows(path: Path, root: Path, opts: dict):
    """The kept rows of an official CSV: their lines, Path values and labels."""
    df = read_csv(path)
    need = ["Path", *CHEXPERT_FINDINGS] + (["Frontal/Lateral"] if opts["frontal_only"] else [])
    require(df, path, need, " (an official CheXpert CSV)")
    lines = lines_of(df)
    label = chexpert_reduce(_values(df, path, lines), opts["uncertain"])
    keep = label >= 0
    if opts["frontal_only"]:
        view = cells(df, "Frontal/Lateral")
        ok = np.isin(view, ("Frontal", "Lateral"))
        if not ok.all():
            bad(path, lines, "Frontal/Lateral", view, ~ok, "unknown view", "Frontal or Lateral")
        keep &= view == "Frontal"
    keys = cells(df, "Path")
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
                f"{row(path, line)}, column 'Path': {key!r} names no patient folder "
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
