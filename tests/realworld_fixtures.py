"""Small format-faithful copies of the real-world datasets, for tests and demos.

Each writer lays out the dataset's real folder structure, CSV names, column names and value codes
(CheXpert: the 14 observations with 1.0 / 0.0 / -1.0 / blank) with tiny synthetic images whose
class is visible as a bright horizontal band (band ``c`` of ``K`` for class ``c``), so a small
net can learn it. Noisy labels are the clean labels with ``round(noise * n)`` samples flipped to
a different class chosen at random. Every writer returns a :class:`Fixture` holding the ground
truth, so tests compare against what was written, not against a re-implementation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "val", "test")
DR_CLASSES = [f"grade {i}" for i in range(5)]
#: The official CSV header, written out here on purpose rather than imported from
#: lnm.data.realworld: the fixture states the format independently, so a wrong name in the
#: adapter fails the tests instead of being copied into the fixture.
CHEXPERT_COLUMNS = [
    "Path",
    "Sex",
    "Age",
    "Frontal/Lateral",
    "AP/PA",
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
]
FINDINGS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
POLICIES = ("zero", "one", "exclude")


@dataclass
class Fixture:
    """What a writer produced. ``clean``/``noisy``/``images`` map split -> per-row arrays in
    CSV order (``clean`` -1 where the data has no clean label; ``noisy`` of test = the reference);
    ``extra`` holds adapter-specific truth (CheXpert rows, annotator votes...)."""

    root: Path
    classes: list[str]
    clean: dict = field(default_factory=dict)
    noisy: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def band_image(label: int, num_classes: int, size: int, rng, mode: str = "RGB") -> Image.Image:
    """A ``size`` px image, dim noise plus a bright band of rows for ``label``."""
    channels = 3 if mode == "RGB" else 1
    x = rng.integers(0, 60, (size, size, channels))
    if label >= 0:
        rows = slice(label * size // num_classes, (label + 1) * size // num_classes)
        x[rows] += 160
    x = x.clip(0, 255).astype(np.uint8)
    return Image.fromarray(x[..., 0] if channels == 1 else x, mode=None)


def save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, format="JPEG", quality=95)
    else:
        img.save(path)
    return path


def flip(labels: np.ndarray, rate: float, num_classes: int, rng) -> np.ndarray:
    """``round(rate * n)`` labels moved to a different class, chosen at random."""
    out = labels.copy()
    idx = rng.choice(len(labels), round(rate * len(labels)), replace=False)
    for i in idx:
        out[i] = (labels[i] + rng.integers(1, num_classes)) % num_classes
    return out


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _fundus(root, n, seed, noise, size, names, image_dir, ext, image_col, noisy, clean, name_of):
    root = Path(root)
    rng = np.random.default_rng(seed)
    fx = Fixture(root, list(DR_CLASSES))
    for split, count, csv_name in zip(SPLITS, n, names):
        y = rng.integers(0, 5, count)
        given = y if split == "test" else flip(y, noise, 5, rng)
        keys = [name_of(split, i) for i in range(count)]
        paths = [
            save(band_image(int(c), 5, size, rng), root / image_dir / f"{k}{ext}")
            for k, c in zip(keys, y)
        ]
        if split == "train":
            header = ["", image_col, noisy, clean]  # pandas' index column, as to_csv leaves it
            rows = [[i, k, g, c] for i, (k, g, c) in enumerate(zip(keys, given, y))]
        else:
            header = ["", image_col, noisy]
            rows = [[i, k, g] for i, (k, g) in enumerate(zip(keys, given))]
        write_csv(root / csv_name, header, rows)
        fx.clean[split] = y if split in ("train", "test") else np.full(count, -1)
        fx.noisy[split] = given
        fx.images[split] = paths
        fx.extra.setdefault("truth", {})[split] = y
    return fx


def write_drtid(root, n=(40, 12, 20), seed=0, noise=0.3, size=32) -> Fixture:
    """DRTiD: final_{train,val,test}.csv (image_name, Grade, train also Grade_gt),
    images image/newall_/<image_name>.jpg."""
    return _fundus(
        root, n, seed, noise, size,
        ("final_train.csv", "final_val.csv", "final_test.csv"),
        "image/newall_", ".jpg", "image_name", "Grade", "Grade_gt",
        lambda split, i: f"{split}_{i:04d}_{'l' if i % 2 else 'r'}",
    )  # fmt: skip


def write_kaggledr(root, n=(40, 12, 20), seed=0, noise=0.3, size=32) -> Fixture:
    """KaggleDR+: kaggle_train.csv (image, level, vote), kaggle_val.csv, golden.csv (image,
    level), images diabetic-retinopathy-detection/image/<image>.jpeg."""
    offset = {"train": 10, "val": 5000, "test": 9000}
    return _fundus(
        root, n, seed, noise, size,
        ("kaggle_train.csv", "kaggle_val.csv", "golden.csv"),
        "diabetic-retinopathy-detection/image", ".jpeg", "image", "level", "vote",
        lambda split, i: f"{offset[split] + i // 2}_{'left' if i % 2 == 0 else 'right'}",
    )  # fmt: skip


def _value(v) -> str:
    return "" if v is None else f"{float(v):.1f}"


#: Kinds of training rows and the label each uncertainty policy gives (-1 = dropped).
def _expected(kind: str, a: int, b: int) -> dict:
    return {
        "single": {"zero": a, "one": a, "exclude": a},
        "single+u": {"zero": a, "one": -1, "exclude": -1},
        "u_only": {"zero": -1, "one": a, "exclude": -1},
        "multi": {"zero": -1, "one": -1, "exclude": -1},
        "none": {"zero": -1, "one": -1, "exclude": -1},
    }[kind]


def _chexpert_row(kind, a, b, rng, test=False) -> list:
    """The 14 observation values of a row of ``kind`` (a, b: two different finding indices)."""
    five = [None if rng.random() < 0.5 and not test else 0.0 for _ in FINDINGS]
    if kind == "single":
        five[a] = 1.0
    elif kind == "single+u":
        five[a], five[b] = 1.0, -1.0
    elif kind == "u_only":
        five[a] = -1.0
    elif kind == "multi":
        five[a], five[b] = 1.0, 1.0
    obs = {f: v for f, v in zip(FINDINGS, five)}
    other = [c for c in CHEXPERT_COLUMNS[5:] if c not in FINDINGS]
    for c in other:  # ignored by the reduction, but written with every code
        obs[c] = rng.choice([1.0, 0.0]) if test else [None, 1.0, 0.0, -1.0][int(rng.integers(0, 4))]
    obs["No Finding"] = 1.0 if kind == "none" else (0.0 if test else None)
    return [_value(obs[c]) for c in CHEXPERT_COLUMNS[5:]]


def write_chexpert_official(
    root_parent, small=True, n_patients=70, n_test=24, seed=0, size=32
) -> Fixture:
    """The official folder ``root_parent/CheXpert-v1.0(-small)`` with train.csv and valid.csv
    (all 19 columns; Path values start with the folder name), grayscale JPEGs under
    train/patientNNNNN/studyN/viewN_frontal|lateral.jpg and valid/...

    ``extra["train_rows"]``: per train.csv row ``path``, ``patient``, ``frontal`` and
    ``expected`` = {policy: label or -1}; ``extra["test_labels"]``/``extra["test_paths"]``: the
    valid.csv rows kept (single positive), in order."""
    folder = "CheXpert-v1.0-small" if small else "CheXpert-v1.0"
    root = Path(root_parent) / folder
    rng = np.random.default_rng(seed)
    kinds = ["single"] * 12 + ["single+u", "u_only", "multi", "none"] * 2
    train_rows, rows = [], []
    for p in range(1, n_patients + 1):
        for s in range(1, int(rng.integers(1, 3)) + 1):
            for v in range(1, int(rng.integers(1, 3)) + 1):
                kind = kinds[int(rng.integers(len(kinds)))]
                a, b = rng.choice(5, 2, replace=False).tolist()
                frontal = v == 1 or rng.random() < 0.3
                rel = f"{folder}/train/patient{p:05d}/study{s}/view{v}_{'frontal' if frontal else 'lateral'}.jpg"
                exp = _expected(kind, a, b)
                label = exp["zero"] if exp["zero"] >= 0 else exp["one"]
                save(band_image(label, 5, size, rng, mode="L"), root.parent / rel)
                sex = ["Male", "Female"][int(rng.integers(2))]
                ap = ["AP", "PA"][int(rng.integers(2))] if frontal else ""
                rows.append(
                    [rel, sex, int(rng.integers(18, 90)), "Frontal" if frontal else "Lateral", ap]
                    + _chexpert_row(kind, a, b, rng)
                )
                train_rows.append(
                    {"path": rel, "patient": f"patient{p:05d}", "frontal": frontal, "expected": exp}
                )
    write_csv(root / "train.csv", CHEXPERT_COLUMNS, rows)
    test_rows, test_labels, test_paths, test_frontal = [], [], [], []
    for i in range(n_test):
        kind = "single" if i % 6 else ["multi", "none"][i // 6 % 2]
        a, b = rng.choice(5, 2, replace=False).tolist()
        frontal = i % 4 != 3
        rel = f"{folder}/valid/patient{64541 + i:05d}/study1/view1_{'frontal' if frontal else 'lateral'}.jpg"
        save(band_image(a if kind == "single" else -1, 5, size, rng, mode="L"), root.parent / rel)
        test_rows.append(
            [rel, "Female", 60, "Frontal" if frontal else "Lateral", "AP" if frontal else ""]
            + _chexpert_row(kind, a, b, rng, test=True)
        )
        if kind == "single":
            test_labels.append(a)
            test_paths.append(rel)
            test_frontal.append(frontal)
    write_csv(root / "valid.csv", CHEXPERT_COLUMNS, test_rows)
    fx = Fixture(root, list(FINDINGS))
    fx.extra.update(
        train_rows=train_rows,
        test_labels=np.array(test_labels),
        test_paths=test_paths,
        test_frontal=np.array(test_frontal),
    )
    return fx


def write_chexpert_prepared(root, n=(40, 12, 20), seed=0, size=32) -> Fixture:
    """LNMBench-prepared CheXpert: train.csv, val.csv, test.csv with Path (relative to root),
    Label (0-4); images under train/, valid/ as in the official folder."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    fx = Fixture(root, list(FINDINGS))
    for split, count in zip(SPLITS, n):
        y = rng.integers(0, 5, count)
        sub = "valid" if split == "test" else "train"
        rels = [f"{sub}/patient{split[:2]}{i:05d}/study1/view1_frontal.jpg" for i in range(count)]
        for rel, c in zip(rels, y):
            save(band_image(int(c), 5, size, rng, mode="L"), root / rel)
        write_csv(root / f"{split}.csv", ["Path", "Label"], [[r, int(c)] for r, c in zip(rels, y)])
        fx.noisy[split] = y
        fx.clean[split] = y if split == "test" else np.full(count, -1)
        fx.images[split] = [root / r for r in rels]
    return fx


def _votes(clean: int, k: int, a: int, rng) -> tuple[list[int], str]:
    """``a`` annotator votes (-1 = blank) whose majority (ties -> smallest index) is ``clean``."""
    votes = [-1] * a
    style = ["agree", "majority", "tie", "single"][int(rng.integers(4))]
    if style == "tie" and (a < 2 or clean == k - 1):
        style = "majority"
    if style == "majority" and a < 3:
        style = "agree"
    if style == "agree":
        votes = [clean] * a
        votes[int(rng.integers(a))] = -1 if a > 1 else clean
    elif style == "majority":
        votes = [clean] * a
        votes[int(rng.integers(a))] = (clean + 1 + int(rng.integers(k - 1))) % k
    elif style == "tie":  # one vote each for clean and a larger class: the tie goes to clean
        i, j = rng.choice(a, 2, replace=False).tolist()
        votes[i], votes[j] = clean, int(rng.integers(clean + 1, k))
    else:
        votes[int(rng.integers(a))] = clean
    return votes, style


def write_csv_dataset(
    root,
    annotators=3,
    n=(40, 12, 20),
    seed=0,
    noise=0.3,
    size=32,
    classes=("benign", "malignant", "normal"),
    label_style="name",
    clean_column=True,
) -> Fixture:
    """A user's own dataset for the ``csv`` adapter: train.csv, val.csv, test.csv with columns
    ``path`` (images/<split>/<i>.png), ``label`` (noisy; test: reference), ``clean`` (optional,
    train and val) and ``ann1``..``annA`` (votes, blank = none). Labels are written as class
    names (``label_style="name"``) or indices (``"int"``).

    ``extra["options"]``: the adapter options; ``extra["annotators"]``: split -> (N, A) votes;
    ``extra["styles"]``: how each row's votes were made (agree / majority / tie / single)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    k = len(classes)
    fx = Fixture(root, list(classes))

    def cell(v: int) -> str:
        return "" if v < 0 else (classes[v] if label_style == "name" else str(v))

    ann_cols = [f"ann{j + 1}" for j in range(annotators)]
    for split, count in zip(SPLITS, n):
        y = rng.integers(0, k, count)
        given = y if split == "test" else flip(y, noise, k, rng)
        votes, styles = [], []
        for c in y.tolist():
            v, st = _votes(c, k, annotators, rng) if annotators else ([], "")
            votes.append(v)
            styles.append(st)
        rels = [f"images/{split}/{i:04d}.png" for i in range(count)]
        for rel, c in zip(rels, y):
            save(band_image(int(c), k, size, rng), root / rel)
        with_clean = clean_column and split != "test"
        header = ["path", "label"] + (["clean"] if with_clean else []) + ann_cols
        rows = [
            [rel, cell(int(g))] + ([cell(int(c))] if with_clean else []) + [cell(x) for x in v]
            for rel, g, c, v in zip(rels, given, y, votes)
        ]
        write_csv(root / f"{split}.csv", header, rows)
        fx.noisy[split] = given
        fx.clean[split] = (
            y if (clean_column or annotators or split == "test") else np.full(count, -1)
        )
        fx.images[split] = [root / r for r in rels]
        fx.extra.setdefault("annotators", {})[split] = np.array(votes, np.int64).reshape(
            count, annotators
        )
        fx.extra.setdefault("styles", {})[split] = styles
    fx.extra["options"] = {
        "splits": {s: f"{s}.csv" for s in SPLITS},
        "image_column": "path",
        "label_column": "label",
        "clean_column": "clean" if clean_column else None,
        "annotator_columns": ann_cols,
        "classes": list(classes) if label_style == "name" else None,
    }
    return fx


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """A CSV's header and data rows, as written."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def append_row(path: Path, like: int, cells: dict) -> int:
    """Append a copy of data row ``like`` (0-based) of the CSV at ``path`` with the columns in
    ``cells`` set; return the new row's number (header = row 1, as the adapters count)."""
    header, rows = read_rows(path)
    row = list(rows[like])
    for col, value in cells.items():
        row[header.index(col)] = str(value)
    write_csv(path, header, [*rows, row])
    return len(rows) + 2


def copy_pixels(src: Path, dst: Path) -> Path:
    """The image at ``src`` under the name ``dst`` with the same pixels: a PNG is re-saved with
    another compression level (different file bytes), a JPEG is copied byte for byte (re-encoding
    would change its pixels)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix.lower() == ".png":
        with Image.open(src) as img:
            img.load()
            img.save(dst, compress_level=1)  # the fixtures' PNGs are written at PIL's 6
    else:
        dst.write_bytes(src.read_bytes())
    return dst
