"""Tests for pattern ``real`` (noisy labels from the data) and ``none`` on real-world data.

Small HDF5 files in the real-world layout of lnm.data.hdf5 are written here by hand, so every
expected number (realised rate, transition matrix, agreement) is computed on paper.
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from lnm.checksum import verify, write_sidecar
from lnm.data.hdf5 import write_h5
from lnm.noise.generate import generate_noise_file, make_noisy_labels
from lnm.noise.io import load_noise
from lnm.noise.real import annotator_agreement, real_noise
from lnm.noise.spec import NoiseError
from tests.conftest import make_h5

# 3 classes; train: 8 samples, 3 of them noisy
TRAIN_CLEAN = np.array([0, 0, 0, 1, 1, 2, 2, 2])
TRAIN_NOISY = np.array([0, 1, 0, 1, 1, 2, 0, 1])
VAL_CLEAN = np.array([0, 1, 2, 2])
VAL_NOISY = np.array([0, 2, 2, 2])
TEST = np.array([0, 1, 2])
# votes of 3 annotators per train sample, -1 = no vote
VOTES = np.array(
    [[0, 0, 1], [1, 1, 1], [2, -1, -1], [-1, -1, -1], [0, 1, 2], [2, 2, -1], [0, 0, 0], [1, 2, 1]]
)
# share of each sample's votes equal to its most frequent vote (NaN without votes)
AGREEMENT = np.array([2 / 3, 1, 1, np.nan, 1 / 3, 1, 1, 2 / 3])


def real_h5(path, train_clean=TRAIN_CLEAN, val_clean=VAL_CLEAN, votes=None):
    """A real-world HDF5 (4x4 RGB images) with the given reference labels (-1 = unknown)."""
    rng = np.random.default_rng(0)
    labels = {"train": train_clean, "val": val_clean, "test": TEST}
    images = {s: rng.integers(0, 256, (len(y), 4, 4, 3), dtype=np.uint8) for s, y in labels.items()}
    write_h5(path, images, labels, dataset="fixture", classes=["a", "b", "c"],
             noisy_labels={"train": TRAIN_NOISY, "val": VAL_NOISY},
             annotators={} if votes is None else {"train": votes}, chunked=True,
             mean=np.full(3, 0.5), std=np.full(3, 0.29), source="csv", real_world=True)  # fmt: skip
    return path


def generate(tmp_path, h5, pattern="real", rate=0.3, name="noise.npz", **kw):
    out = tmp_path / name
    result = generate_noise_file(h5, out, pattern, rate, 0, **kw)
    verify(out)
    loaded = load_noise(out)
    assert set(loaded) == set(result)
    return loaded


def test_real_with_clean_labels(tmp_path):
    r = generate(tmp_path, real_h5(tmp_path / "d.h5"))
    np.testing.assert_array_equal(r["train_noisy"], TRAIN_NOISY)
    np.testing.assert_array_equal(r["train_clean"], TRAIN_CLEAN)
    np.testing.assert_array_equal(r["val_noisy"], VAL_NOISY)
    np.testing.assert_array_equal(r["train_is_clean"], TRAIN_NOISY == TRAIN_CLEAN)
    assert r["realised_rate"] == 3 / 8 and r["realised_rate_val"] == 1 / 4
    expected = np.array([[2 / 3, 1 / 3, 0], [0, 1, 0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(r["transition"], expected)
    np.testing.assert_array_equal(r["nominal_transition"], r["transition"])
    assert r["identifiable"] is False  # row 2: diagonal 1/3 ties the off-diagonal 1/3
    assert r["has_clean"] is True and r["val_has_clean"] is True
    assert r["pattern"] == "real" and r["rate"] == 0.3 and math.isnan(r["expected_rate"])
    assert not any(k.startswith("test") for k in r) and "train_agreement" not in r
    # noisy_val has no effect on real labels; same call, same bytes
    r2 = generate(tmp_path, tmp_path / "d.h5", noisy_val=False, name="n2.npz")
    np.testing.assert_array_equal(r2["val_noisy"], VAL_NOISY)
    generate(tmp_path, tmp_path / "d.h5", name="n3.npz")
    assert (tmp_path / "noise.npz").read_bytes() == (tmp_path / "n3.npz").read_bytes()


def test_real_without_clean_labels_gives_nan_diagnostics(tmp_path):
    unknown = np.full(8, -1)
    r = generate(tmp_path, real_h5(tmp_path / "d.h5", unknown, np.full(4, -1)), rate=0.4)
    np.testing.assert_array_equal(r["train_noisy"], TRAIN_NOISY)
    np.testing.assert_array_equal(r["train_clean"], unknown)
    assert not r["train_is_clean"].any() and not r["val_is_clean"].any()
    assert math.isnan(r["realised_rate"]) and math.isnan(r["realised_rate_val"])
    assert r["transition"].shape == (3, 3) and np.isnan(r["transition"]).all()
    assert np.isnan(r["nominal_transition"]).all()
    assert r["identifiable"] is False and r["has_clean"] is False and r["val_has_clean"] is False
    assert r["rate"] == 0.4


def test_partially_known_or_val_only_unknown(tmp_path):
    partial = TRAIN_CLEAN.copy()
    partial[2] = -1
    r = generate(tmp_path, real_h5(tmp_path / "d.h5", partial), name="p.npz")
    assert r["has_clean"] is False and math.isnan(r["realised_rate"])  # never a partial count
    np.testing.assert_array_equal(r["train_clean"], partial)  # the known labels are kept
    assert r["val_has_clean"] is True and r["realised_rate_val"] == 1 / 4
    r = generate(tmp_path, real_h5(tmp_path / "e.h5", val_clean=np.full(4, -1)), name="v.npz")
    assert r["has_clean"] is True and r["realised_rate"] == 3 / 8
    assert r["val_has_clean"] is False and math.isnan(r["realised_rate_val"])


def test_annotator_agreement(tmp_path):
    np.testing.assert_allclose(annotator_agreement(VOTES, 3), AGREEMENT, equal_nan=True)
    r = generate(tmp_path, real_h5(tmp_path / "d.h5", votes=VOTES))
    np.testing.assert_allclose(r["train_agreement"], AGREEMENT, equal_nan=True)
    # mean over the 7 samples with votes: (2/3 + 1 + 1 + 1/3 + 1 + 1 + 2/3) / 7 = 17/21
    assert r["annotator_disagreement"] == pytest.approx(1 - 17 / 21, abs=1e-12)
    with pytest.raises(NoiseError, match="row 1, annotator 2 has vote 3"):
        annotator_agreement(np.array([[0, 0, 0], [1, 1, 3]]), 3)


def test_real_noise_without_file():
    r = real_noise(3, {"train": TRAIN_NOISY, "val": VAL_NOISY}, {"train": TRAIN_CLEAN}, 0.2)
    assert r["has_clean"] is True and r["val_has_clean"] is False  # val absent = unknown
    np.testing.assert_array_equal(r["val_clean"], np.full(4, -1))
    with pytest.raises(NoiseError, match="draws no labels"):
        make_noisy_labels("real", 0.2, 0, 3, {"train": TRAIN_CLEAN, "val": VAL_CLEAN})


def test_none_on_real_world_trains_on_clean_labels(tmp_path):
    r = generate(tmp_path, real_h5(tmp_path / "d.h5"), "none", 0.0)
    np.testing.assert_array_equal(r["train_noisy"], TRAIN_CLEAN)
    np.testing.assert_array_equal(r["val_noisy"], VAL_CLEAN)
    assert r["train_is_clean"].all() and r["realised_rate"] == 0.0
    assert r["realised_rate_val"] == 0.0 and r["has_clean"] and r["val_has_clean"]
    np.testing.assert_array_equal(r["nominal_transition"], np.eye(3))
    # val clean labels unknown: val keeps its given labels and says so
    r = generate(tmp_path, real_h5(tmp_path / "e.h5", val_clean=np.full(4, -1)), "none", 0.0)
    np.testing.assert_array_equal(r["train_noisy"], TRAIN_CLEAN)
    np.testing.assert_array_equal(r["val_noisy"], VAL_NOISY)
    assert r["val_has_clean"] is False and math.isnan(r["realised_rate_val"])


def test_none_on_real_world_without_clean_labels_is_refused(tmp_path):
    h5 = real_h5(tmp_path / "d.h5", np.full(8, -1))
    out = tmp_path / "n.npz"
    with pytest.raises(NoiseError, match=r"d\.h5.*8 of 8 train samples.*'real'"):
        generate_noise_file(h5, out, "none", 0.0, 0)
    assert not out.exists()


def test_wrong_pattern_for_the_data_is_refused(tmp_path):
    h5 = real_h5(tmp_path / "d.h5")
    with pytest.raises(
        NoiseError, match="'symmetric' on a real-world dataset; allowed: none, real"
    ):
        generate_noise_file(h5, tmp_path / "n.npz", "symmetric", 0.2, 0)
    medmnist = make_h5(tmp_path / "m.h5")
    with pytest.raises(NoiseError, match=r"m\.h5: pattern 'real' needs a real-world dataset"):
        generate_noise_file(medmnist, tmp_path / "n.npz", "real", 0.2, 0)
    assert not (tmp_path / "n.npz").exists()
    # MedMNIST-like files record that both splits' clean labels are known
    r = generate_noise_file(medmnist, tmp_path / "s.npz", "symmetric", 0.2, 0)
    assert r["has_clean"] is True and r["val_has_clean"] is True


def test_bad_labels_in_the_file_are_named(tmp_path):
    h5 = real_h5(tmp_path / "d.h5")
    with h5py.File(h5, "a") as f:
        f["train/labels"][3] = 7
    write_sidecar(h5)
    with pytest.raises(NoiseError, match=r"d\.h5: /train/labels: row 3 has value 7"):
        generate_noise_file(h5, tmp_path / "n.npz", "real", 0.2, 0)
    with h5py.File(h5, "a") as f:
        del f["val/noisy_labels"]
    write_sidecar(h5)
    with pytest.raises(NoiseError, match="without /val/noisy_labels"):
        generate_noise_file(h5, tmp_path / "n.npz", "real", 0.2, 0)
