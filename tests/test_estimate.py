"""Tests for the noise-estimation stage (lnm.noise.estimate: cleanlab confident learning).

The estimation core (:func:`estimate_from_probs`) is tested on hand-made out-of-fold
probabilities, so every expected number follows from the noise process and the simulated model:

- Noise: :func:`lnm.noise.generate.make_noisy_labels` (the generator's own symmetric / pairflip
  draws) on N = 2000 clean labels of C = 4 classes, rate r = 0.4.
- Model: a classifier of the *clean* class with error rate eps: it predicts the clean class with
  probability 1 - eps, else a uniformly drawn other class, with confidence 0.9 + 0.1 * a
  Dirichlet(1) share (so every sample's predicted class clears cleanlab's per-class threshold,
  about 0.6 here, and no other class does). Confident learning then counts every sample at
  (given = noisy label, true = predicted class), so its estimated rate is the share of samples
  whose noisy label differs from the prediction: Binomial(N, q) / N with
  ``q = r (1 - eps) + (1 - r) eps + r eps (C - 2) / (C - 1) = r + eps (1 - r C / (C - 1))``
  for symmetric *and* pairflip noise (a wrong prediction is uniform over the other classes). So
  ``q = r`` for a perfect classifier (eps = 0), and the known bias ``eps (1 - r C / (C - 1))``
  of an imperfect one (a cell without noise estimates eps, its error rate).
  Tolerance: 4 binomial standard deviations ``4 sqrt(q (1 - q) / N)`` (~0.044) plus ``C / N``
  (cleanlab rounds the calibrated joint to integer counts, row by row: < 1 count per row).

``estimate_noise`` (training included) is run end to end on the tiny HDF5 of conftest.
"""

from __future__ import annotations

import hashlib
import math

import h5py
import numpy as np
import pytest
import torch

from lnm.checksum import ChecksumError, sidecar, verify, write_sidecar
from lnm.noise.classifier import fold_assignment
from lnm.noise.estimate import (
    REQUIRED,
    TRUTH_KEYS,
    detection_scores,
    estimate_from_probs,
    estimate_noise,
    load_estimate,
    relative_l1,
    transition_from_joint,
)
from lnm.noise.generate import generate_noise_file, make_noisy_labels
from lnm.noise.io import load_noise, save_noise
from lnm.noise.spec import NoiseError
from tests.conftest import make_h5

C, N, RATE = 4, 2000, 0.4


def simulate(pattern: str, rate: float, eps: float, seed: int = 0):
    """Noise of ``pattern`` on N clean labels and the probabilities of the clean-class
    classifier with error rate ``eps`` (module docstring)."""
    rng = np.random.default_rng([seed, 17])
    y = rng.integers(0, C, N)
    noise = make_noisy_labels(pattern, rate, seed, C, {"train": y, "val": y[:10]})
    wrong = rng.random(N) < eps
    pred = np.where(wrong, (y + rng.integers(1, C, N)) % C, y)
    probs = 0.9 * np.eye(C)[pred] + 0.1 * rng.dirichlet(np.ones(C), N)
    return noise, probs


def expected_rate(rate: float, eps: float) -> float:
    return rate + eps * (1 - rate * C / (C - 1))


def tolerance(q: float) -> float:
    return 4 * math.sqrt(q * (1 - q) / N) + C / N


@pytest.mark.parametrize("pattern", ["symmetric", "pairflip"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_rate_and_transition_on_class_conditional_noise(pattern, eps):
    noise, probs = simulate(pattern, RATE, eps)
    est = estimate_from_probs(
        noise["train_noisy"], probs, noise["train_clean"], noise["transition"]
    )
    q = expected_rate(RATE, eps)  # = RATE for a perfect classifier; + its known bias otherwise
    assert abs(est["estimated_rate"] - q) <= tolerance(q)
    # the truth is the noise file's own record
    assert est["true_rate"] == noise["realised_rate"] and est["has_clean"] is True
    assert est["rate_error"] == est["estimated_rate"] - noise["realised_rate"]
    # T: closer to the truth than the identity (which is 2r = 0.8 away in relative L1)
    identity = relative_l1(np.eye(C), noise["transition"])
    assert identity == pytest.approx(2 * RATE, abs=tolerance(RATE) * 2)
    assert est["transition_error"] < identity / 2
    T = est["estimated_transition"]
    np.testing.assert_allclose(T.sum(axis=1), 1.0, rtol=1e-12)
    # rows = true class; the diagonal (~(1 - eps)(1 - r) >= 0.54) dominates each row, as in T
    assert (T.argmax(axis=1) == np.arange(C)).all()
    if pattern == "pairflip" and eps == 0:  # the flips go to the next class, nowhere else
        off = T - np.diag(np.diag(T)) - np.roll(np.eye(C), 1, axis=1) * T
        assert np.abs(off).max() <= C / N
    if eps == 0:  # a perfect classifier: the calibrated joint is the empirical joint
        assert abs(est["estimated_rate"] - noise["realised_rate"]) <= C / N
        assert est["transition_error"] <= 2 * C / N
        assert est["issue_precision"] >= 99 and est["issue_recall"] >= 99
    assert est["num_label_issues"] == int(est["label_issues"].sum())
    assert est["oof_accuracy"] == pytest.approx(
        float((probs.argmax(1) == noise["train_noisy"]).mean())
    )


@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_no_noise_estimates_the_classifier_error(eps):
    noise, probs = simulate("none", 0.0, eps)
    est = estimate_from_probs(noise["train_noisy"], probs, noise["train_clean"])
    q = expected_rate(0.0, eps)  # = eps: without noise, the classifier's errors are counted
    assert abs(est["estimated_rate"] - q) <= tolerance(q)
    assert est["true_rate"] == 0.0 and math.isnan(est["issue_recall"])  # nothing is mislabelled
    assert est["clean_ratio"] == 100.0 and est["coverage"] == pytest.approx(
        100.0 * (1 - est["num_label_issues"] / N)
    )
    if eps == 0:  # a perfect classifier on clean labels: exactly no noise, nothing flagged
        assert est["estimated_rate"] == 0.0 and est["num_label_issues"] == 0
        np.testing.assert_array_equal(est["estimated_transition"], np.eye(C))
        assert est["transition_error"] == 0.0 and math.isnan(est["issue_precision"])


def test_cleanlab_joint_orientation_and_our_transition():
    # cleanlab's joint is P(given = i, true = j): pairflip moves true class k to given k + 1, so
    # the mass is at [k + 1, k]; our transition (rows = true) puts it at [k, k + 1]
    noise, probs = simulate("pairflip", RATE, 0.0)
    est = estimate_from_probs(noise["train_noisy"], probs, noise["train_clean"])
    joint, T = est["estimated_joint"], est["estimated_transition"]
    assert joint.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(
        joint.sum(axis=1), np.bincount(noise["train_noisy"], minlength=C) / N, atol=1e-12
    )  # rows = given labels: their frequencies
    for k in range(C):
        assert joint[(k + 1) % C, k] > 0.05 and joint[k, (k + 1) % C] == 0
        assert T[k, (k + 1) % C] == pytest.approx(RATE, abs=tolerance(RATE) * 2)
    assert est["estimated_rate"] == pytest.approx(1 - np.trace(joint))
    # by hand: true class 0 has mass 0.3 (all given 0), true class 1 has 0.1 given 0, 0.6 given 1
    np.testing.assert_allclose(
        transition_from_joint([[0.3, 0.1], [0.0, 0.6]]), [[1.0, 0.0], [1 / 7, 6 / 7]]
    )
    T = transition_from_joint([[0.5, 0.0], [0.5, 0.0]])  # no mass for true class 1
    np.testing.assert_array_equal(T[0], [0.5, 0.5])
    assert np.isnan(T[1]).all()


def test_detection_scores_by_hand():
    flagged = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    is_clean = np.array([0, 1, 0, 1, 0, 1, 1, 0, 1, 1], dtype=bool)
    # mislabelled: 0, 2, 4, 7 (4); flagged: 0, 1, 4, 8 (4), of them mislabelled: 0, 4 (2)
    # trusted (= not flagged): 2, 3, 5, 6, 7, 9 (6), of them clean: 3, 5, 6, 9 (4);
    # clean in all: 1, 3, 5, 6, 8, 9 (6)
    s = detection_scores(flagged, is_clean)
    assert s == pytest.approx(
        {
            "issue_precision": 100 * 2 / 4,
            "issue_recall": 100 * 2 / 4,
            "clean_ratio": 100 * 4 / 6,
            "coverage": 100 * 4 / 6,
        }
    )
    flagged[[1, 8]] = False  # drop the two wrongly flagged: precision 2/2
    s = detection_scores(flagged, is_clean)
    assert s["issue_precision"] == 100.0 and s["issue_recall"] == 50.0
    assert s["clean_ratio"] == pytest.approx(100 * 6 / 8) and s["coverage"] == 100.0
    none = detection_scores(np.zeros(4, bool), np.array([1, 1, 0, 1], bool))
    assert math.isnan(none["issue_precision"]) and none["issue_recall"] == 0.0
    assert none["clean_ratio"] == 75.0 and none["coverage"] == 100.0
    assert math.isnan(detection_scores(np.ones(3, bool), np.ones(3, bool))["issue_recall"])
    # estimate_from_probs scores its own flagged set the same way
    noise, probs = simulate("symmetric", RATE, 0.1)
    est = estimate_from_probs(noise["train_noisy"], probs, noise["train_clean"])
    mine = detection_scores(est["label_issues"], noise["train_is_clean"])
    assert {k: est[k] for k in mine} == mine


def test_without_clean_labels_the_truth_scores_are_nan():
    noise, probs = simulate("symmetric", RATE, 0.0)
    est = estimate_from_probs(noise["train_noisy"], probs, None)
    assert est["has_clean"] is False
    assert all(math.isnan(est[k]) for k in TRUTH_KEYS) and math.isnan(est["oof_clean_accuracy"])
    with_clean = estimate_from_probs(noise["train_noisy"], probs, noise["train_clean"])
    assert est["estimated_rate"] == with_clean["estimated_rate"]  # the truth only scores
    np.testing.assert_array_equal(est["label_issues"], with_clean["label_issues"])


def test_bad_probabilities_are_refused():
    y = np.array([0, 1, 1, 0])
    with pytest.raises(NoiseError, match="rows of probabilities"):
        estimate_from_probs(y, np.full((3, 2), 0.5))
    with pytest.raises(NoiseError, match="finite"):
        estimate_from_probs(y, np.full((4, 2), np.nan))
    with pytest.raises(NoiseError, match="noisy labels"):
        estimate_from_probs(np.array([0, 1, 2, 0]), np.full((4, 2), 0.5))


# --- estimate_noise end to end -------------------------------------------------------------------

FAST = dict(folds=3, epochs=2, batch_size=32, log=lambda s: None)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_estimate_noise_end_to_end(tmp_path):
    h5 = make_h5(tmp_path / "d.h5")
    npz = tmp_path / "noise.npz"
    noise = generate_noise_file(h5, npz, "symmetric", 0.4, 0)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    threads, rng_state = torch.get_num_threads(), torch.get_rng_state()
    lines = []
    res = estimate_noise(h5, npz, a, **{**FAST, "log": lines.append})
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng_state)
    assert any("estimated rate" in line for line in lines)
    est = load_estimate(a)  # verified, with every key
    assert set(REQUIRED) <= set(est) and verify(a) == sidecar(a).read_text().split()[0]
    probs = est["oof_probs"]
    assert probs.shape == (96, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # folds stratified on the noisy labels; the estimates are those of the stored probabilities
    np.testing.assert_array_equal(est["fold"], fold_assignment(noise["train_noisy"], 3, 0))
    again = estimate_from_probs(noise["train_noisy"], probs, noise["train_clean"])
    for key in ("estimated_rate", "num_label_issues", *TRUTH_KEYS):
        assert est[key] == again[key] == res[key]
    assert est["true_rate"] == noise["realised_rate"] and est["has_clean"] is True
    assert est["noise_sha256"] == verify(npz) and est["data_sha256"] == verify(h5)
    assert est["noise_pattern"] == "symmetric" and est["noise_rate"] == 0.4
    assert (est["folds"], est["epochs"], est["batch_size"], est["seed"]) == (3, 2, 32, 0)
    assert isinstance(est["cleanlab_version"], str) and est["cleanlab_version"]
    # deterministic: same inputs and settings, same bytes; another seed, other probabilities
    estimate_noise(h5, npz, b, **FAST)
    assert sha(a) == sha(b)
    c = tmp_path / "c.npz"
    estimate_noise(h5, npz, c, **{**FAST, "seed": 1})
    assert sha(a) != sha(c)


def real_world_h5(path):
    """The conftest HDF5 in the real-world layout: noisy labels given, clean labels known for
    half of the train samples only (so ``has_clean`` is False)."""
    make_h5(path)
    with h5py.File(path, "a") as h5:
        for split in ("train", "val"):
            clean = h5[f"{split}/labels"][()]
            noisy = clean.copy()
            noisy[::4] = (noisy[::4] + 1) % 3
            h5[f"{split}/noisy_labels"] = noisy
            if split == "train":
                clean[1::2] = -1
                h5[f"{split}/labels"][...] = clean
        h5.attrs["real_world"] = True
    write_sidecar(path)
    return path


def test_estimate_noise_on_real_world_data_without_clean_labels(tmp_path):
    h5 = real_world_h5(tmp_path / "r.h5")
    npz = tmp_path / "noise.npz"
    noise = generate_noise_file(h5, npz, "real", 0.3, 0)
    assert noise["has_clean"] is False
    est = estimate_noise(h5, npz, tmp_path / "e.npz", **FAST)
    assert est["has_clean"] is False and all(math.isnan(est[k]) for k in TRUTH_KEYS)
    assert 0 <= est["estimated_rate"] <= 1 and est["noise_pattern"] == "real"
    assert load_estimate(tmp_path / "e.npz")["num_label_issues"] == est["num_label_issues"]


def test_estimate_noise_refuses_foreign_or_tampered_inputs(tmp_path):
    h5 = make_h5(tmp_path / "d.h5")
    other = make_h5(tmp_path / "other.h5", seed=1)
    npz = tmp_path / "noise.npz"
    generate_noise_file(other, npz, "symmetric", 0.4, 0)
    out = tmp_path / "e.npz"
    with pytest.raises(NoiseError, match="another data file"):
        estimate_noise(h5, npz, out, **FAST)
    # a noise file that records the hash of another data file
    rec = load_noise(npz)
    generate_noise_file(h5, npz, "symmetric", 0.4, 0)
    save_noise(npz, {**load_noise(npz), "data_sha256": verify(other)})
    with pytest.raises(NoiseError, match="drawn for data with SHA-256"):
        estimate_noise(h5, npz, out, **FAST)
    save_noise(npz, rec)
    with open(npz, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ChecksumError):
        estimate_noise(h5, npz, out, **FAST)
    with pytest.raises(NoiseError, match="estimator.folds: 1 is not allowed"):
        estimate_noise(h5, npz, out, **{**FAST, "folds": 1})
    assert not out.exists() and not sidecar(out).exists()
    plain = tmp_path / "plain.npz"
    save_noise(plain, {"estimated_rate": 0.1})
    with pytest.raises(NoiseError, match="not a noise-estimate file"):
        load_estimate(plain)


def test_an_estimator_that_learned_nothing_is_said_to_be_unreliable(tmp_path):
    """The same symmetric-0.2 cell (240 training images), estimated twice: an estimator trained
    for 1 epoch cannot be told from always predicting the majority class of the noisy labels,
    so its estimate is logged UNRELIABLE (and it is far off); one trained for 10 epochs can, and
    is not (lnm.noise.reliability). The file holds no verdict: the report recomputes it."""
    from lnm.noise.reliability import file_reliability

    h5 = make_h5(tmp_path / "d.h5", n=(240, 32, 48))
    npz = tmp_path / "noise.npz"
    noise = generate_noise_file(h5, npz, "symmetric", 0.2, 0)
    verdicts = {}
    for epochs in (1, 10):
        lines = []
        out = tmp_path / f"e{epochs}.npz"
        res = estimate_noise(h5, npz, out, **{**FAST, "epochs": epochs, "log": lines.append})
        last = lines[-1]
        majority = np.bincount(noise["train_noisy"]).max() / 240
        assert f"majority class of the noisy labels {majority:.3f}" in last
        assert f"on the clean labels {res['oof_clean_accuracy']:.3f}" in last
        verdicts[epochs] = ("UNRELIABLE" in last, abs(res["rate_error"]))
        rel = file_reliability(load_estimate(out))
        assert rel["unreliable"] == ("UNRELIABLE" in last)
        assert rel["majority_rate"] == pytest.approx(majority)
        assert "unreliable" not in load_noise(out)
    (bad, bad_error), (good, good_error) = verdicts[1], verdicts[10]
    assert bad and not good and bad_error > good_error
