"""Tests for LNMBench's classifier-based instance noise (pattern ``instance_classifier``).

The drawing is tested on hand-built logits (no training): conditional on a flip, sample i's noisy
label is Categorical(masked_softmax(z_i)), so per group of samples sharing the same logits the
flipped labels' counts are multinomial (chi-square goodness of fit, dof = groups * (C - 2),
p-value > 1e-3 for a correct implementation with probability 0.999); a flip happens with
probability q_i, q_i i.i.d. truncnorm, so the number of flips is Binomial(N, E[q]) and the
realised rate lies within 4 sigma of E[q] = 0.794 (rate 0.8). Seeds are fixed, so the tests are
deterministic. The generator's training is tested on the tiny synthetic HDF5 of conftest.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import lnm.noise.classifier as clf
from lnm.checksum import ChecksumError, sidecar, verify
from lnm.config import load_schema
from lnm.models import build_model
from lnm.noise.generate import expected_rate, generate_noise_file, make_noisy_labels
from lnm.noise.instance import masked_softmax
from lnm.noise.io import load_noise, save_noise
from lnm.noise.spec import NoiseError
from tests.conftest import make_h5

C = 5


def prototypes() -> np.ndarray:
    """Two logit rows per class (10 groups): the true class has the largest logit (masked anyway);
    prototype 0 of class k prefers k+1 among the wrong classes, prototype 1 prefers k+2."""
    rows = np.zeros((C, 2, C))
    for k in range(C):
        for p in range(2):
            rows[k, p, k] = 6.0
            rows[k, p, (k + 1 + p) % C] = 2.5
            rows[k, p, (k + 2 - p) % C] = 1.0
            rows[k, p, (k + 3) % C] = -0.5
    return rows


def problem(n: int, seed: int):
    """Labels, prototype ids and logits (N, C): sample i is prototype proto[i] of class y[i]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    proto = rng.integers(0, 2, n)
    return y, proto, prototypes()[y, proto].astype(np.float32)


def draw(rate=0.8, seed=0, n=20000, val=5000, **kw):
    y, proto, z = problem(n + val, 1)
    result = make_noisy_labels(
        "instance_classifier",
        rate,
        seed,
        C,
        {"train": y[:n], "val": y[n:]},
        logits={"train": z[:n], "val": z[n:]},
        **kw,
    )
    return result, y, proto, z


def test_masked_softmax():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    t = masked_softmax(z, np.array([2, 1]))
    e1, e2 = math.exp(1), math.exp(2)
    np.testing.assert_allclose(t[0], [e1 / (e1 + e2), e2 / (e1 + e2), 0.0], rtol=1e-15)
    assert t[0, 2] == 0 and t[1, 1] == 0
    np.testing.assert_allclose(t[1], [1.0, 0.0, 0.0])  # large logits stay finite (max subtracted)
    assert t.dtype == np.float64 and np.all(np.isfinite(t))
    z[1, 0] = np.nan
    with pytest.raises(NoiseError, match="row 1"):
        masked_softmax(z, np.array([2, 1]))


def test_flip_targets_follow_the_masked_softmax():
    r, y, proto, z = draw()
    targets = masked_softmax(prototypes().reshape(-1, C), np.repeat(np.arange(C), 2))
    stat, dof = 0.0, 0
    for split, sl in (("train", slice(0, 20000)), ("val", slice(20000, None))):
        flipped = ~r[f"{split}_is_clean"]
        for k in range(C):
            for p in range(2):
                sel = flipped & (y[sl] == k) & (proto[sl] == p)
                obs = np.bincount(r[f"{split}_noisy"][sel], minlength=C)
                assert obs[k] == 0  # a flip never keeps the class
                wrong = np.arange(C) != k
                exp = targets[2 * k + p][wrong] * sel.sum()
                stat += ((obs[wrong] - exp) ** 2 / exp).sum()
                dof += C - 2
    assert stats.chi2.sf(stat, dof) > 1e-3


def test_flips_concentrate_on_each_class_runner_up():
    r, y, proto, _ = draw()
    flipped = ~r["train_is_clean"]
    for k in range(C):
        for p in range(2):
            sel = flipped & (y[:20000] == k) & (proto[:20000] == p)
            counts = np.bincount(r["train_noisy"][sel], minlength=C)
            runner_up = (k + 1 + p) % C
            assert counts.argmax() == runner_up
            # target probability of the runner-up: e^2.5 / (e^2.5 + e^1 + e^0 + e^-0.5) = 0.740
            share = math.exp(2.5) / (math.exp(2.5) + math.exp(1) + 1 + math.exp(-0.5))
            assert abs(counts[runner_up] / sel.sum() - share) <= 4 * math.sqrt(
                share * (1 - share) / sel.sum()
            )


@pytest.mark.parametrize("rate", [0.8, 0.9, 0.2])
def test_realised_rate_is_the_truncated_normal_mean(rate):
    r, *_ = draw(rate)
    m = expected_rate("instance_classifier", rate)
    assert r["expected_rate"] == m
    if rate == 0.8:
        assert m == pytest.approx(0.794, abs=5e-4)
    for key, n in (("realised_rate", 20000), ("realised_rate_val", 5000)):
        assert abs(r[key] - m) <= 4 * math.sqrt(m * (1 - m) / n)
    q = r["train_flip_prob"]
    assert q.min() >= 0 and q.max() <= 1 and abs(q.mean() - m) <= 4 * 0.1 / math.sqrt(20000)
    np.testing.assert_array_equal(r["nominal_transition"], r["transition"])
    assert r["has_clean"] is True and r["val_has_clean"] is True


def test_nested_across_rates_and_seeds_differ():
    runs = [draw(rate, seed=4, n=6000, val=2000)[0] for rate in (0.2, 0.5, 0.8)]
    for lo, hi in zip(runs, runs[1:]):
        for split in ("train", "val"):
            f_lo, f_hi = ~lo[f"{split}_is_clean"], ~hi[f"{split}_is_clean"]
            assert f_lo.sum() < f_hi.sum() and not (f_lo & ~f_hi).any()
        assert (hi["train_flip_prob"] >= lo["train_flip_prob"]).all()
    # ~3000 flips each: independent realisations disagree on hundreds of samples
    a, b = draw(0.5, seed=4, n=6000, val=2000)[0], draw(0.5, seed=5, n=6000, val=2000)[0]
    assert (a["train_noisy"] != b["train_noisy"]).mean() > 0.1
    np.testing.assert_array_equal(
        a["train_noisy"], draw(0.5, seed=4, n=6000, val=2000)[0]["train_noisy"]
    )
    # train and val have their own streams: the same samples in both splits flip differently
    y, _, z = problem(4000, 2)
    r = make_noisy_labels(
        "instance_classifier", 0.5, 0, C, {"train": y, "val": y}, logits={"train": z, "val": z}
    )
    assert (r["train_is_clean"] != r["val_is_clean"]).mean() > 0.1


def test_instance_classifier_needs_logits_of_the_right_shape():
    y = np.zeros(10, dtype=np.int64)
    with pytest.raises(NoiseError, match="logits"):
        make_noisy_labels("instance_classifier", 0.2, 0, 3, {"train": y, "val": y})
    with pytest.raises(NoiseError, match=r"\(10, 3\)"):
        make_noisy_labels(
            "instance_classifier",
            0.2,
            0,
            3,
            {"train": y, "val": y},
            logits={"train": np.zeros((10, 4)), "val": np.zeros((10, 3))},
        )


# --- noise files from a logits file -------------------------------------------------------------


def logits_file(tmp_path, h5, seed=0):
    """A hand-made generator logits file for the conftest HDF5 (96 train, 32 val, 3 classes)."""
    rng = np.random.default_rng(seed)
    path = tmp_path / f"logits{seed}.npz"
    save_noise(
        path,
        {
            "train_logits": rng.normal(size=(96, 3)).astype(np.float32),
            "val_logits": rng.normal(size=(32, 3)).astype(np.float32),
            "fold": np.zeros(96, dtype=np.int64),
            "generator_sha256": "ab" * 32,
            "data_sha256": verify(h5),
        },
    )
    return path


def test_noise_file_identical_bytes_and_generator_record(tmp_path):
    h5 = make_h5(tmp_path / "d.h5")
    gl = logits_file(tmp_path, h5)
    a, b, c = (tmp_path / f"{n}.npz" for n in "abc")
    ra = generate_noise_file(h5, a, "instance_classifier", 0.5, 3, generator_logits=gl)
    generate_noise_file(h5, b, "instance_classifier", 0.5, 3, generator_logits=gl)
    generate_noise_file(h5, c, "instance_classifier", 0.5, 4, generator_logits=gl)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    loaded = load_noise(a)
    assert loaded["generator_sha256"] == "ab" * 32
    assert loaded["generator_logits_sha256"] == verify(gl) == sidecar(gl).read_text().split()[0]
    assert loaded["pattern"] == "instance_classifier" and ra["val_flip_prob"].shape == (32,)
    assert loaded["realised_rate_val"] > 0 and not any(k.startswith("test") for k in loaded)
    assert (loaded["val_noisy"] != loaded["val_clean"]).any()
    clean_val = generate_noise_file(
        h5, tmp_path / "v.npz", "instance_classifier", 0.5, 3, False, generator_logits=gl
    )
    np.testing.assert_array_equal(clean_val["val_noisy"], clean_val["val_clean"])
    np.testing.assert_array_equal(clean_val["train_noisy"], ra["train_noisy"])


def test_noise_file_refuses_missing_foreign_or_tampered_logits(tmp_path):
    h5 = make_h5(tmp_path / "d.h5")
    out = tmp_path / "n.npz"
    with pytest.raises(NoiseError, match="generator_logits"):
        generate_noise_file(h5, out, "instance_classifier", 0.5, 0)
    other = make_h5(tmp_path / "other.h5", seed=1)
    with pytest.raises(NoiseError, match="another|retrain"):
        generate_noise_file(
            h5, out, "instance_classifier", 0.5, 0, generator_logits=logits_file(tmp_path, other)
        )
    gl = logits_file(tmp_path, h5, seed=2)
    with open(gl, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ChecksumError):
        generate_noise_file(h5, out, "instance_classifier", 0.5, 0, generator_logits=gl)
    assert not out.exists()


# --- training the generator ---------------------------------------------------------------------

FAST = dict(folds=3, epochs=2, batch_size=32, crop_padding=1, log=lambda s: None)


def test_crossfit_logits_are_out_of_fold_and_reproducible(tmp_path, monkeypatch):
    h5 = make_h5(tmp_path / "d.h5")
    seen = {}
    real_fit = clf.fit_classifier

    def spy(images, labels, idx, cfg, make_model, augmenter, stream, log, tag):
        seen[stream] = (len(images), np.array(idx))
        return real_fit(images, labels, idx, cfg, make_model, augmenter, stream, log, tag)

    monkeypatch.setattr(clf, "fit_classifier", spy)
    w1, l1 = tmp_path / "g1.pt", tmp_path / "g1.npz"
    res = clf.train_generator(h5, w1, l1, **FAST)
    fold = res["fold"]
    y = load_noise(l1)  # verified, readable
    assert res["train_logits"].shape == (96, 3) and res["train_logits"].dtype == np.float32
    assert res["val_logits"].shape == (32, 3) and y["fit_on"] == "crossfit"
    assert sorted(seen) == [0, 1, 2] and set(np.unique(fold)) == {0, 1, 2}
    for k, (n_images, idx) in seen.items():
        assert n_images == 96  # the train split
        held_out = np.flatnonzero(fold == k)
        assert not np.isin(held_out, idx).any()  # fold k's model never saw fold k
        np.testing.assert_array_equal(np.sort(np.concatenate([idx, held_out])), np.arange(96))
    # stratified: every class spread over the folds in near-equal parts
    import h5py

    with h5py.File(h5) as f:
        labels = f["train/labels"][()]
        images = f["train/images"][()].transpose(0, 3, 1, 2)
        val_images = f["val/images"][()].transpose(0, 3, 1, 2)
    for c in range(3):
        counts = np.bincount(fold[labels == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    # the weights file reproduces the logits: train rows from their fold's model, val the mean
    state = torch.load(w1, weights_only=True)
    assert verify(w1) == res["generator_sha256"] == y["generator_sha256"]
    np.testing.assert_array_equal(state["fold_of_sample"].numpy(), fold)
    from lnm.train.augment import Augmenter

    aug = Augmenter([0.35], [0.3], crop_padding=0)
    val_sum = np.zeros((32, 3))
    for k, sd in enumerate(state["folds"]):
        model = build_model("resnet8", 1, 3, 8)
        model.load_state_dict(sd)
        held_out = np.flatnonzero(fold == k)
        logits = clf.predict_logits(model, torch.from_numpy(images[held_out]), aug)
        np.testing.assert_allclose(logits, res["train_logits"][held_out], rtol=1e-5, atol=1e-5)
        val_sum += clf.predict_logits(model, torch.from_numpy(val_images), aug)
    np.testing.assert_allclose(val_sum / 3, res["val_logits"], rtol=1e-5, atol=1e-5)
    # same seed: the same bytes; another seed: other weights
    w2, l2 = tmp_path / "g2.pt", tmp_path / "g2.npz"
    clf.train_generator(h5, w2, l2, **FAST)
    assert w1.read_bytes() == w2.read_bytes() and l1.read_bytes() == l2.read_bytes()
    w3, l3 = tmp_path / "g3.pt", tmp_path / "g3.npz"
    clf.train_generator(h5, w3, l3, seed=1, **FAST)
    assert w1.read_bytes() != w3.read_bytes()
    # and the noise drawn from it records both digests
    out = generate_noise_file(
        h5, tmp_path / "n.npz", "instance_classifier", 0.4, 0, generator_logits=l1
    )
    assert out["generator_sha256"] == verify(w1) and out["generator_logits_sha256"] == verify(l1)


def test_fit_on_test(tmp_path, monkeypatch):
    h5 = make_h5(tmp_path / "d.h5")
    seen = {}
    real_fit = clf.fit_classifier

    def spy(images, labels, idx, *args):
        seen["n"], seen["idx"] = len(images), np.array(idx)
        return real_fit(images, labels, idx, *args)

    monkeypatch.setattr(clf, "fit_classifier", spy)
    threads, rng_state = torch.get_num_threads(), torch.get_rng_state()
    res = clf.train_generator(
        h5, tmp_path / "g.pt", tmp_path / "g.npz", fit_on="test", threads=threads + 1, **FAST
    )
    # the caller's thread count and global RNG are left as they were
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng_state)
    assert seen["n"] == 48 and np.array_equal(seen["idx"], np.arange(48))  # the test split
    assert (res["fold"] == -1).all() and res["fit_on"] == "test" and res["folds"] == 1
    assert res["train_logits"].shape == (96, 3) and res["val_logits"].shape == (32, 3)
    assert len(torch.load(tmp_path / "g.pt", weights_only=True)["folds"]) == 1


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"fit_on": "val"}, "generator.fit_on: 'val' is not allowed"),
        ({"folds": 1}, "generator.folds: 1 is not allowed; must be >= 2"),
        ({"epochs": 0}, "generator.epochs: 0 is not allowed"),
        ({"lr": -1.0}, "generator.lr: -1.0 is not allowed"),
        ({"schedule": "step"}, "generator.schedule: 'step' is not allowed"),
        ({"backbone": "resnet9"}, "generator.backbone: 'resnet9' is not allowed"),
    ],
)
def test_bad_generator_options(tmp_path, kw, needle):
    h5 = make_h5(tmp_path / "d.h5")
    with pytest.raises(NoiseError, match=needle):
        clf.train_generator(h5, tmp_path / "g.pt", tmp_path / "g.npz", **kw)
    assert not (tmp_path / "g.pt").exists() and not (tmp_path / "g.npz").exists()


def test_classifier_options_are_checked_against_the_config_schema():
    """One definition of the cross-fitted classifier's settings (the schema's ``crossfit``, also
    behind noise.classifier and estimation): an unknown key and every bad value are named at
    once, numbers come back as the schema's types."""
    with pytest.raises(NoiseError) as err:
        clf.check_config("estimator", fold=3, lr=0, hflip="yes")
    msg = str(err.value)
    assert "unknown key(s) ['fold'] under 'estimator'" in msg and "'folds'" in msg
    assert "estimator.lr: 0 is not allowed; must be > 0" in msg
    assert "estimator.hflip: 'yes' is not allowed; must be of type boolean" in msg
    cfg = clf.check_config(lr=1, folds=np.int64(3), seed=2.0, pretrained=np.bool_(True))
    assert type(cfg["lr"]) is float and type(cfg["folds"]) is int and type(cfg["seed"]) is int
    assert cfg["pretrained"] is True
    schema = load_schema()["definitions"]["crossfit"]["properties"]
    assert set(schema) | {"fit_on"} | set(clf.OPTIONS) == set(clf.DEFAULTS)


def test_too_many_folds_for_the_data():
    with pytest.raises(NoiseError, match="lower the generator's folds"):
        clf.fold_assignment(np.array([0, 0, 1, 1]), 5, 0)
