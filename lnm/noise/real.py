"""Real-world label noise: the noisy labels come with the data (pattern ``real``).

A real-world HDF5 (attr ``real_world`` true; see :mod:`lnm.data.hdf5`) stores per split
``/{split}/noisy_labels`` (train and val: the labels as given), ``/{split}/labels`` (the
reference, i.e. clean / expert, labels; ``-1`` where the data has none) and optionally
``/{split}/annotators`` (``(N, A)`` votes, ``-1`` = no vote). Nothing is drawn: the noise file
records the given labels, and the diagnostics wherever the clean labels are known:

- ``has_clean`` / ``val_has_clean``: every train / val sample has a clean label. Only then are
  ``{split}_is_clean``, the realised rates, the empirical transition matrix and
  ``identifiable`` computed; otherwise they are all False / NaN / all-NaN / False, never numbers
  computed against stand-in labels. A split whose clean labels are known for some samples only
  counts as unknown (its known clean labels are kept in ``{split}_clean``).
- ``rate`` is the cell's assumed rate (what methods that need a rate are told); it draws nothing,
  and ``expected_rate`` is NaN. ``noisy_val`` is recorded but has no effect (real val labels are
  as given), ``noise_seed`` and ``std`` are recorded only.
- With annotators: ``{split}_agreement`` (``(N,)`` float: the share of the sample's votes that
  equal its most frequent vote; NaN for a sample without votes) and ``annotator_disagreement``
  (train: 1 - mean agreement).

Pattern ``none`` on a real-world file is the clean ceiling: train on the clean train labels
(refused, naming the file, where they are not all known); val keeps its clean labels where all
are known, else its given labels (then ``val_has_clean`` is False).
"""

from __future__ import annotations

import os

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
import h5py
import numpy as np

from ..grid import CLEAN, REAL
from .matrix import empirical_transition, is_identifiable
from .spec import (
    SPLITS,
    NoiseError,
    check_labels,
    check_num_classes,
    check_rate,
    check_seed,
    check_std,
)

#: the patterns a real-world dataset allows: its noisy labels, and the clean ceiling
REAL_WORLD_PATTERNS = (CLEAN, REAL)


def is_real_world(h5_path) -> bool:
    """Whether the HDF5 carries its own noisy labels (attr ``real_world`` true)."""
    with h5py.File(h5_path, "r") as h5:
        return bool(h5.attrs.get("real_world", False))


def check_clean(labels, num_classes: int, name: str) -> np.ndarray:
    """Clean labels as int64, each in ``-1..C-1`` (``-1``: unknown)."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise NoiseError(f"{name}: expected a 1-D integer array, got shape {arr.shape}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < -1) | (arr >= num_classes))
    if bad.size:
        raise NoiseError(
            f"{name}: row {bad[0]} has value {arr[bad[0]]}; allowed: 0..{num_classes - 1}, "
            "or -1 for unknown"
        )
    return arr


def all_known(clean: np.ndarray) -> bool:
    return bool(clean.size) and bool((clean >= 0).all())


def annotator_agreement(votes, num_classes: int, name: str = "annotators") -> np.ndarray:
    """Per sample, the share of its votes equal to its most frequent vote (NaN without votes).

    ``votes``: ``(N, A)`` integers in ``0..C-1``, ``-1`` where annotator ``a`` gave no vote.
    """
    c = check_num_classes(num_classes)
    v = np.asarray(votes)
    if v.ndim != 2 or not np.issubdtype(v.dtype, np.integer):
        raise NoiseError(f"{name}: expected an (N, A) integer array, got shape {v.shape}")
    bad = np.argwhere((v < -1) | (v >= c))
    if len(bad):
        i, a = bad[0]
        raise NoiseError(
            f"{name}: row {i}, annotator {a} has vote {v[i, a]}; allowed: 0..{c - 1}, or -1"
        )
    counts = np.stack([(v == k).sum(axis=1) for k in range(c)], axis=1)  # (N, C)
    total = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts.max(axis=1) / np.maximum(total, 1), np.nan)


def _diagnostics(noisy: np.ndarray, clean: np.ndarray, known: bool) -> tuple[np.ndarray, float]:
    """``(is_clean, realised rate)``: noisy == clean and 1 - its mean, or all False / NaN."""
    if not known:
        return np.zeros(len(noisy), dtype=bool), float("nan")
    is_clean = noisy == clean
    return is_clean, float(1.0 - is_clean.mean())


def real_noise(
    num_classes,
    noisy: dict,
    clean: dict,
    rate,
    noise_seed=0,
    noisy_val=True,
    std=0.1,
    annotators: dict | None = None,
    source: str = "",
) -> dict:
    """The noise-file dict of pattern ``real`` from the given labels (module docstring).

    ``noisy``: per split (``train``, ``val``) the labels as given (``0..C-1``); ``clean``: the
    reference labels (``-1`` = unknown; a split absent from ``clean`` is unknown);
    ``annotators``: optional per split ``(N, A)`` votes. ``source`` prefixes error messages
    (e.g. the file name).
    """
    pre = f"{source}: " if source else ""
    rate, seed = check_rate(REAL, rate), check_seed(noise_seed)
    c, std, noisy_val = check_num_classes(num_classes), check_std(std), bool(noisy_val)
    result: dict = {}
    for split in SPLITS:
        result.update(_given_split(split, noisy, clean, c, pre))
    known = {s: all_known(result[f"{s}_clean"]) for s in SPLITS}
    if known["train"]:
        T = empirical_transition(result["train_clean"], result["train_noisy"], c)
        identifiable = is_identifiable(T)
    else:
        T, identifiable = np.full((c, c), np.nan), False
    result.update(
        transition=T,
        nominal_transition=T.copy(),
        identifiable=identifiable,
        pattern=REAL,
        rate=rate,
        noise_seed=seed,
        noisy_val=noisy_val,
        std=std,
        expected_rate=float("nan"),
        has_clean=known["train"],
        val_has_clean=known["val"],
    )
    for split, votes in (annotators or {}).items():
        if split in SPLITS:
            result.update(_agreement(split, votes, len(result[f"{split}_noisy"]), c, pre))
    return result


def _given_split(split: str, noisy: dict, clean: dict, c: int, pre: str) -> dict:
    """One split's noise-file entries from its given labels: noisy and clean labels (-1 where
    unknown), the clean mask and the realised rate (False / NaN unless every clean label is
    known)."""
    if split not in noisy:
        raise NoiseError(f"noisy labels lack split {split!r}; required: {list(SPLITS)}")
    y_noisy = check_labels(noisy[split], c, f"{pre}{split} noisy labels")
    if split in clean:
        y_clean = check_clean(clean[split], c, f"{pre}{split} clean labels")
    else:
        y_clean = np.full(len(y_noisy), -1, dtype=np.int64)
    if len(y_clean) != len(y_noisy):
        raise NoiseError(
            f"{pre}{split}: {len(y_noisy)} noisy labels but {len(y_clean)} clean labels"
        )
    is_clean, realised = _diagnostics(y_noisy, y_clean, all_known(y_clean))
    return {
        f"{split}_noisy": y_noisy,
        f"{split}_clean": y_clean,
        f"{split}_is_clean": is_clean,
        "realised_rate" if split == "train" else "realised_rate_val": realised,
    }


def _agreement(split: str, votes, n: int, c: int, pre: str) -> dict:
    """``{split}_agreement`` of the annotators' ``votes`` (and, for train, the
    ``annotator_disagreement``)."""
    agreement = annotator_agreement(votes, c, f"{pre}{split} annotators")
    if len(agreement) != n:
        raise NoiseError(
            f"{pre}{split}: {len(agreement)} rows of annotator votes but {n} noisy labels"
        )
    out = {f"{split}_agreement": agreement}
    if split == "train":
        voted = agreement[np.isfinite(agreement)]
        out["annotator_disagreement"] = float(1.0 - voted.mean()) if voted.size else float("nan")
    return out


def clean_ceiling(
    num_classes, noisy: dict, clean: dict, noise_seed=0, noisy_val=True, std=0.1, source="data"
) -> dict:
    """Pattern ``none`` on real-world data: the clean train labels (all must be known); val: its
    clean labels where all are known, else its given labels (``val_has_clean`` False)."""
    seed, c = check_seed(noise_seed), check_num_classes(num_classes)
    std, noisy_val = check_std(std), bool(noisy_val)
    y = {s: check_clean(clean[s], c, f"{source}: {s} clean labels") for s in SPLITS}
    if not all_known(y["train"]):
        unknown = int((y["train"] < 0).sum())
        raise NoiseError(
            f"{source}: noise {CLEAN!r} trains on the clean train labels, but {unknown} of "
            f"{len(y['train'])} train samples have none (-1); use pattern {REAL!r} for this "
            "dataset"
        )
    val_known = all_known(y["val"])
    val_noisy = y["val"] if val_known else check_labels(noisy["val"], c, f"{source}: val labels")
    val_is_clean, realised_val = _diagnostics(val_noisy, y["val"], val_known)
    T = empirical_transition(y["train"], y["train"], c)
    return {
        "train_noisy": y["train"].copy(),
        "train_clean": y["train"],
        "train_is_clean": np.ones(len(y["train"]), dtype=bool),
        "val_noisy": val_noisy.copy(),
        "val_clean": y["val"],
        "val_is_clean": val_is_clean,
        "transition": T,
        "nominal_transition": np.eye(c),
        "realised_rate": 0.0,
        "realised_rate_val": realised_val,
        "identifiable": True,
        "pattern": CLEAN,
        "rate": 0.0,
        "noise_seed": seed,
        "noisy_val": noisy_val,
        "std": std,
        "expected_rate": 0.0,
        "has_clean": True,
        "val_has_clean": val_known,
    }


def read_real_labels(h5_path) -> dict:
    """``num_classes`` and, per split (train, val), ``noisy`` / ``clean`` labels and
    ``annotators`` (where stored) of a real-world HDF5 (read as stored; not verified here)."""
    out: dict = {"noisy": {}, "clean": {}, "annotators": {}}
    with h5py.File(h5_path, "r") as h5:
        out["num_classes"] = int(h5.attrs["n_classes"])
        for split in SPLITS:
            if split not in h5 or "noisy_labels" not in h5[split]:
                raise NoiseError(
                    f"{h5_path}: real-world file without /{split}/noisy_labels; expected the "
                    "layout of lnm.data.hdf5 (noisy labels of train and val)"
                )
            g = h5[split]
            out["noisy"][split] = g["noisy_labels"][()]
            if "labels" in g:
                out["clean"][split] = g["labels"][()]
            if "annotators" in g:
                out["annotators"][split] = g["annotators"][()]
    return out


def real_world_noise(h5_path, pattern, rate, noise_seed, noisy_val=True, std=0.1) -> dict:
    """The noise-file dict of ``pattern`` (``real`` or ``none``) for a real-world HDF5 (the
    caller verifies its checksum)."""
    if pattern not in REAL_WORLD_PATTERNS:
        check_rate(pattern, rate)  # an unknown pattern is named as such
        raise NoiseError(
            f"{h5_path}: noise pattern {pattern!r} on a real-world dataset; allowed: "
            f"{', '.join(REAL_WORLD_PATTERNS)} (its noisy labels come with the data)"
        )
    check_rate(pattern, rate)
    labels = read_real_labels(h5_path)
    c = labels["num_classes"]
    name = str(h5_path)
    clean = {s: check_clean(v, c, f"{name}: /{s}/labels") for s, v in labels["clean"].items()}
    noisy = {
        s: check_labels(v, c, f"{name}: /{s}/noisy_labels") for s, v in labels["noisy"].items()
    }
    if pattern == CLEAN:
        clean = {s: clean.get(s, np.full(len(noisy[s]), -1, np.int64)) for s in SPLITS}
        return clean_ceiling(c, noisy, clean, noise_seed, noisy_val, std, source=name)
    return real_noise(
        c, noisy, clean, rate, noise_seed, noisy_val, std, labels["annotators"], source=name
    )
