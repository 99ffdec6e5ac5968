"""Tests for lnm.noise (synthetic data, fixed seeds, a few seconds in total).

Tolerances: a realised count of N independent Bernoulli(r) events is Binomial(N, r), so a realised
rate deviates from r by more than 4 * sqrt(r (1 - r) / N) with probability < 1e-4 (normal
approximation, two-sided 4 sigma ~ 6e-5). The same bound applies per entry of an empirical
transition matrix with N = number of samples of the row's class. Seeds are fixed, so the tests are
deterministic; the bounds state how far a correct implementation may legitimately land.
"""

from __future__ import annotations

import hashlib
import math
import zipfile

import h5py
import numpy as np
import pytest
from scipy import stats

from lnm.checksum import ChecksumError, sidecar, verify, write_sidecar
from lnm.data.hdf5 import write_h5
from lnm.noise.generate import expected_rate, generate_noise_file, make_noisy_labels
from lnm.noise.instance import channel_stats, instance_projection, instance_targets
from lnm.noise.io import load_noise, save_noise
from lnm.noise.matrix import empirical_transition, flip_with_matrix, is_identifiable
from lnm.noise.patterns.pairflip import pairflip_matrix
from lnm.noise.patterns.symmetric import symmetric_matrix
from lnm.noise.spec import NoiseError, stream_rng


def binomial_bound(p: float, n: int, sigmas: float = 4.0) -> float:
    return sigmas * math.sqrt(p * (1 - p) / n)


def labels_and_images(n: int, num_classes: int, seed: int, shape=(4, 4, 3)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    return labels, images


def noisy(pattern, rate, seed=0, n=20000, val=5000, num_classes=9, **kw):
    y, x = labels_and_images(n + val, num_classes, 123)
    return make_noisy_labels(
        pattern,
        rate,
        seed,
        num_classes,
        {"train": y[:n], "val": y[n:]},
        {"train": x[:n], "val": x[n:]},
        **kw,
    )


# --- matrices -----------------------------------------------------------------------------------


def test_nominal_matrices():
    T = symmetric_matrix(4, 0.3)
    np.testing.assert_allclose(np.diag(T), 0.7)
    np.testing.assert_allclose(T[~np.eye(4, dtype=bool)], 0.1)  # rate/(C-1), not rate/C
    P = pairflip_matrix(4, 0.3)
    expected = np.array([[0.7, 0.3, 0, 0], [0, 0.7, 0.3, 0], [0, 0, 0.7, 0.3], [0.3, 0, 0, 0.7]])
    np.testing.assert_allclose(P, expected)
    for M in (T, P):
        np.testing.assert_allclose(M.sum(axis=1), 1.0)


def test_empirical_transition_counts_and_nan_rows():
    clean = np.array([0, 0, 0, 0, 2, 2])
    noisy_ = np.array([0, 1, 1, 2, 2, 0])
    T = empirical_transition(clean, noisy_, 3)
    np.testing.assert_allclose(T[0], [0.25, 0.5, 0.25])
    assert np.all(np.isnan(T[1]))  # class 1 has no samples
    np.testing.assert_allclose(T[2], [0.5, 0, 0.5])


def test_flip_with_matrix_identity_and_forbidden_cells():
    y = np.random.default_rng(0).integers(0, 5, 5000)
    np.testing.assert_array_equal(flip_with_matrix(y, np.eye(5), np.random.default_rng(1)), y)
    out = flip_with_matrix(y, pairflip_matrix(5, 0.4), np.random.default_rng(1))
    assert out.dtype == np.int64
    assert set(np.unique((out - y) % 5)) == {0, 1}  # only the diagonal and the next class


# --- realised rates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern,rate",
    [
        ("symmetric", 0.5),
        ("symmetric", 0.8),
        ("pairflip", 0.3),
        ("instance", 0.9),
        ("instance", 0.2),
    ],
)
def test_realised_rate_within_binomial_bound(pattern, rate):
    # Symmetric/pairflip: each sample flips with probability `rate`. Instance: sample i flips with
    # probability q_i, q_i i.i.d. truncnorm, so marginally Bernoulli(E[q]) = expected_rate; both
    # give Binomial counts. (Instance 0.9: E[q] = 0.871, 0.029 away from 0.9 >> the 0.0095 bound,
    # so an implementation that ignored the truncation would fail.)
    r = noisy(pattern, rate)
    m = expected_rate(pattern, rate)
    assert abs(r["realised_rate"] - m) <= binomial_bound(m, 20000)
    assert abs(r["realised_rate_val"] - m) <= binomial_bound(m, 5000)
    assert r["realised_rate"] == pytest.approx(1 - r["train_is_clean"].mean())
    np.testing.assert_array_equal(r["train_is_clean"], r["train_noisy"] == r["train_clean"])
    np.testing.assert_array_equal(r["val_is_clean"], r["val_noisy"] == r["val_clean"])


def test_expected_rate_values():
    for rate, ref in ((0.8, 0.794), (0.9, 0.871)):
        a, b = (0 - rate) / 0.1, (1 - rate) / 0.1
        scipy_mean = stats.truncnorm.mean(a, b, loc=rate, scale=0.1)
        assert expected_rate("instance", rate) == pytest.approx(scipy_mean, abs=1e-12)
        assert expected_rate("instance", rate) == pytest.approx(ref, abs=5e-4)
    assert expected_rate("symmetric", 0.8) == 0.8
    assert expected_rate("pairflip", 0.3) == 0.3
    assert expected_rate("none", 0) == 0.0


def test_instance_flip_probabilities_follow_truncnorm():
    r = noisy("instance", 0.8)
    q = r["train_flip_prob"]
    assert q.shape == (20000,) and q.min() >= 0 and q.max() <= 1
    # mean of 20000 draws with sd <= 0.1: |mean - E[q]| <= 4 * 0.1 / sqrt(20000) = 0.0028
    assert abs(q.mean() - expected_rate("instance", 0.8)) <= 4 * 0.1 / math.sqrt(20000)
    # flips are driven by q: flipped samples have a larger mean q than kept ones
    assert q[~r["train_is_clean"]].mean() > q[r["train_is_clean"]].mean()


# --- symmetric specifics and transition matrices ------------------------------------------------


def test_symmetric_flips_spread_uniformly_over_other_classes():
    r = noisy("symmetric", 0.5, n=30000)
    clean, noisy_ = r["train_clean"], r["train_noisy"]
    C = 9
    counts = empirical_transition(clean, noisy_, C) * np.bincount(clean, minlength=C)[:, None]
    off = ~np.eye(C, dtype=bool)
    # Under H0 every flipped sample of class i lands on each of the C-1 other classes with
    # probability 1/(C-1): chi-square over the C(C-1) off-diagonal cells, C row totals fixed,
    # so dof = C(C-1) - C  ->  ddof = C - 1 in scipy's k - 1 - ddof.
    flipped_per_row = counts.sum(axis=1) - np.diag(counts)
    f_exp = np.repeat(flipped_per_row / (C - 1), C - 1)
    p = stats.chisquare(counts[off], f_exp, ddof=C - 1).pvalue
    assert p > 1e-3


@pytest.mark.parametrize("pattern,rate", [("symmetric", 0.6), ("pairflip", 0.35)])
def test_empirical_transition_matches_nominal(pattern, rate):
    r = noisy(pattern, rate, num_classes=5)
    T_hat, T = r["transition"], r["nominal_transition"]
    np.testing.assert_allclose(
        T,
        symmetric_matrix(5, rate) if pattern == "symmetric" else pairflip_matrix(5, rate),
    )
    n_i = np.bincount(r["train_clean"], minlength=5)
    # T_hat[i, j] = count / n_i with count ~ Binomial(n_i, T[i, j]); zero cells must be exactly 0
    bound = 4 * np.sqrt(T * (1 - T) / n_i[:, None])
    assert np.all(np.abs(T_hat - T) <= bound)


# --- identifiability ----------------------------------------------------------------------------


def test_identifiability():
    assert not is_identifiable(symmetric_matrix(9, 0.9))  # 0.1 < 0.9/8 = 0.1125
    assert is_identifiable(symmetric_matrix(9, 0.8))  # 0.2 > 0.8/8 = 0.1
    assert not is_identifiable(symmetric_matrix(2, 0.5))  # tie 0.5 == 0.5
    assert not is_identifiable(pairflip_matrix(5, 0.5))
    assert is_identifiable(pairflip_matrix(5, 0.45))
    T = symmetric_matrix(3, 0.2)
    T[1] = np.nan
    assert is_identifiable(T)  # class without samples is ignored
    assert noisy("symmetric", 0.9)["identifiable"] is False
    assert noisy("symmetric", 0.8)["identifiable"] is True


@pytest.mark.parametrize("num_classes", [3, 7, 11])
def test_identifiability_at_the_exact_float_boundary(num_classes):
    """rate (C − 1)/C makes the diagonal equal the off-diagonal (1/C each), but in floats
    1 − 2/3 = 0.33333333333333337 > (2/3)/2 = 0.3333333333333333: a strict ">" called it
    identifiable."""
    c = num_classes
    T = symmetric_matrix(c, (c - 1) / c)
    assert np.diag(T).min() >= (T - np.diag(np.diag(T))).max()  # float error on the "wrong" side
    assert not is_identifiable(T)
    assert is_identifiable(symmetric_matrix(c, (c - 1) / c - 1e-6))
    assert not is_identifiable(symmetric_matrix(c, (c - 1) / c + 1e-6))


# --- seeding and reproducible files -------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["symmetric", "instance"])
def test_same_seed_gives_byte_identical_files(tmp_path, pattern):
    a, b = tmp_path / "a" / "noise.npz", tmp_path / "b" / "noise.npz"
    save_noise(a, noisy(pattern, 0.5, seed=3, n=3000, val=1000))
    save_noise(b, noisy(pattern, 0.5, seed=3, n=3000, val=1000))
    assert a.read_bytes() == b.read_bytes()
    assert (
        sidecar(a).read_text().split()[0]
        == sidecar(b).read_text().split()[0]
        == hashlib.sha256(a.read_bytes()).hexdigest()
    )
    with zipfile.ZipFile(a) as zf:  # np.savez would stamp the current time here
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    with np.load(a) as npz:  # plain numpy can read it
        assert npz["pattern"].shape == () and npz["pattern"].item() == pattern


@pytest.mark.parametrize("pattern", ["symmetric", "pairflip", "instance"])
def test_seeds_and_splits_give_independent_streams(pattern):
    y, x = labels_and_images(4000, 5, 7)

    def run(seed):
        return make_noisy_labels(
            pattern, 0.5, seed, 5, {"train": y, "val": y}, {"train": x, "val": x}
        )

    r0, r0b, r1 = run(0), run(0), run(1)
    np.testing.assert_array_equal(r0["train_noisy"], r0b["train_noisy"])
    np.testing.assert_array_equal(r0["val_noisy"], r0b["val_noisy"])
    # With ~2000 flips each, two independent realisations disagree on hundreds of samples;
    # identical outputs would mean the seed / split does not reach the stream.
    assert (r0["train_noisy"] != r1["train_noisy"]).mean() > 0.1
    assert (r0["train_is_clean"] != r0["val_is_clean"]).mean() > 0.1  # same inputs, other stream


@pytest.mark.parametrize("pattern", ["symmetric", "pairflip", "instance"])
def test_default_draws_are_nested_across_rates(pattern):
    """One noise seed, rates 0.2 < 0.5 < 0.8: every sample flipped at a lower rate is flipped at
    the higher one (common random numbers), and instance noise reuses its projection W (the same
    flip-target distributions; the per-sample flip rates only grow)."""
    rates = (0.2, 0.5, 0.8)
    runs = [noisy(pattern, r, seed=4, n=6000, val=2000) for r in rates]
    for lo, hi in zip(runs, runs[1:]):
        for split in ("train", "val"):
            flipped_lo, flipped_hi = ~lo[f"{split}_is_clean"], ~hi[f"{split}_is_clean"]
            assert flipped_lo.sum() < flipped_hi.sum()
            assert not (flipped_lo & ~flipped_hi).any()  # contained
        if pattern == "instance":
            assert (hi["train_flip_prob"] >= lo["train_flip_prob"]).all()
        assert "draws" not in lo  # the default adds no key: files stay byte-identical


@pytest.mark.parametrize("nested", [True, False])
def test_instance_projection_is_reused_across_rates_only_when_nested(monkeypatch, nested):
    import lnm.noise.patterns.instance as pattern  # the instance pattern draws the projection

    drawn = []

    def spy(*args):
        drawn.append(instance_projection(*args))
        return drawn[-1]

    monkeypatch.setattr(pattern, "instance_projection", spy)
    for rate in (0.2, 0.5):
        noisy("instance", rate, seed=4, n=300, val=100, nested=nested)
    assert len(drawn) == 2 and np.array_equal(drawn[0], drawn[1]) is nested


@pytest.mark.parametrize("pattern", ["symmetric", "instance"])
def test_independent_draws_per_rate(tmp_path, pattern):
    """nested=False: the rate enters the seed. The flips at 0.2 are then not a subset of those
    at 0.5 (with ~20 % and ~50 % of 6000 samples flipped independently, about 0.2·0.5 of the
    lower set's flips should miss the higher set: hundreds), the files differ in bytes and carry
    draws = "independent", and the same seed still gives the same bytes."""
    lo = noisy(pattern, 0.2, seed=4, n=6000, val=2000, nested=False)
    hi = noisy(pattern, 0.5, seed=4, n=6000, val=2000, nested=False)
    missing = (~lo["train_is_clean"] & hi["train_is_clean"]).sum()
    assert missing > 0.3 * 0.2 * 0.5 * 6000
    assert lo["draws"] == hi["draws"] == "independent"
    nested = noisy(pattern, 0.2, seed=4, n=6000, val=2000)
    assert (lo["train_noisy"] != nested["train_noisy"]).any()  # not the nested draws either
    paths = {}
    for name, res in {
        "a": lo,
        "b": noisy(pattern, 0.2, seed=4, n=6000, val=2000, nested=False),
        "nested": nested,
    }.items():
        paths[name] = tmp_path / f"{name}.npz"
        save_noise(paths[name], res)
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    assert paths["a"].read_bytes() != paths["nested"].read_bytes()
    with pytest.raises(NoiseError, match="nested"):
        noisy(pattern, 0.2, nested="no")


def test_noisy_val_false_keeps_val_clean_and_test_untouched():
    y, _ = labels_and_images(3000, 4, 0)
    r = make_noisy_labels(
        "symmetric", 0.5, 0, 4, {"train": y[:2000], "val": y[2000:], "test": y}, noisy_val=False
    )
    np.testing.assert_array_equal(r["val_noisy"], y[2000:])
    assert r["realised_rate_val"] == 0.0 and r["realised_rate"] > 0.4
    assert not any(k.startswith("test") for k in r)


# --- instance noise -----------------------------------------------------------------------------


def test_instance_targets_depend_on_image_and_W_is_shared_across_splits():
    # 2-pixel gray images: logits z = x @ W[y] have sd ~ |x| ~ sqrt(2), so target rows are spread
    # (not one-hot) and a chi-square goodness of fit is well conditioned.
    C, K, reps, seed = 5, 6, 800, 11
    rng = np.random.default_rng(0)
    protos = rng.integers(0, 256, (K, 1, 2, 1), dtype=np.uint8)
    x = np.repeat(protos, reps, axis=0)
    y = np.zeros(K * reps, dtype=np.int64)  # all class 0: differences come from the pixels only
    proto_id = np.repeat(np.arange(K), reps)
    r = make_noisy_labels("instance", 0.5, seed, C, {"train": y, "val": y}, {"train": x, "val": x})
    # The documented generator: one W from the (seed, "instance") projection stream, pixel
    # statistics from the train images, used for both splits.
    W = instance_projection(2, C, stream_rng(seed, "instance", "projection"))
    mean, sd = channel_stats(x)
    rows = instance_targets(protos, np.zeros(K, dtype=np.int64), C, W, mean, sd)
    assert np.all(rows[:, 0] == 0) and np.allclose(rows.sum(axis=1), 1)
    # image dependence: same class, different pixels -> different target distributions
    tv = 0.5 * np.abs(rows[:, None, :] - rows[None, :, :]).sum(-1)
    assert tv.max() > 0.3
    # End to end, per split and prototype, flipped targets ~ Categorical(rows[k]) over classes 1..4:
    # pooled chi-square (dof = 2 * K * (C - 2)). A per-split W would make one split fail badly.
    stat, dof = 0.0, 0
    for split in ("train", "val"):
        flipped = ~r[f"{split}_is_clean"]
        for k in range(K):
            t = r[f"{split}_noisy"][flipped & (proto_id == k)]
            obs = np.bincount(t, minlength=C)[1:]
            exp = rows[k, 1:] * len(t)
            stat += ((obs - exp) ** 2 / exp).sum()
            dof += C - 2
    assert stats.chi2.sf(stat, dof) > 1e-3
    # and the two most different prototypes really produce different noisy labels
    i, j = np.unravel_index(tv.argmax(), tv.shape)
    table = [
        np.bincount(r["train_noisy"][~r["train_is_clean"] & (proto_id == k)], minlength=C)[1:]
        for k in (i, j)
    ]
    table = np.array(table)[:, np.array(table).sum(0) > 0]
    assert stats.chi2_contingency(table).pvalue < 1e-6


def test_instance_noise_chunks_give_same_result(monkeypatch):
    y, x = labels_and_images(600, 4, 5, shape=(6, 6, 3))
    W = instance_projection(108, 4, np.random.default_rng(0))
    full = instance_targets(x, y, 4, W)
    import lnm.noise.instance as inst

    monkeypatch.setattr(inst, "CHUNK_BYTES", 8 * 108 * 7)  # 7 images per chunk
    np.testing.assert_allclose(instance_targets(x, y, 4, W), full, rtol=1e-12, atol=1e-15)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern,rate,needles",
    [
        ("gaussian", 0.2, ["'gaussian'", "none, symmetric, pairflip, instance"]),
        ("symmetric", 1.5, ["1.5", "0 <= rate < 1"]),
        ("instance", -0.1, ["-0.1", "0 <= rate < 1"]),
        ("pairflip", 1.0, ["1.0", "0 <= rate < 1"]),
        ("none", 0.2, ["0.2", "rate 0 only"]),
    ],
)
def test_bad_pattern_or_rate_is_rejected(pattern, rate, needles):
    y = np.zeros(10, dtype=np.int64)
    with pytest.raises(NoiseError) as err:
        make_noisy_labels(pattern, rate, 0, 3, {"train": y, "val": y})
    for needle in needles:
        assert needle in str(err.value)
    with pytest.raises(NoiseError):
        expected_rate(pattern, rate)


def test_bad_num_classes_labels_and_seed():
    with pytest.raises(NoiseError, match="num_classes 1.*>= 2"):
        symmetric_matrix(1, 0.2)
    with pytest.raises(NoiseError, match=r"0\.\.2"):
        make_noisy_labels("symmetric", 0.2, 0, 3, {"train": np.array([0, 3]), "val": np.array([0])})
    with pytest.raises(NoiseError, match="noise_seed -1"):
        make_noisy_labels("symmetric", 0.2, -1, 3, {"train": np.array([0]), "val": np.array([0])})
    with pytest.raises(NoiseError, match="needs images"):
        make_noisy_labels("instance", 0.2, 0, 3, {"train": np.array([0]), "val": np.array([0])})


# --- files end to end ---------------------------------------------------------------------------


def make_h5(path, n=(400, 100, 100), num_classes=4, shape=(5, 5, 3)):
    rng = np.random.default_rng(42)
    images, labels = {}, {}
    for split, size in zip(("train", "val", "test"), n):
        images[split] = rng.integers(0, 256, (size, *shape), dtype=np.uint8)
        labels[split] = rng.integers(0, num_classes, size)
    classes = [str(i) for i in range(num_classes)]
    write_h5(path, images, labels, dataset="synthmnist", classes=classes, source_md5="0" * 32)
    return path


KEYS = {
    "has_clean",
    "val_has_clean",
    "train_noisy",
    "train_clean",
    "train_is_clean",
    "val_noisy",
    "val_clean",
    "val_is_clean",
    "realised_rate",
    "realised_rate_val",
    "transition",
    "nominal_transition",
    "identifiable",
    "pattern",
    "rate",
    "noise_seed",
    "noisy_val",
    "std",
    "expected_rate",
    "dataset",  # the data file it was drawn on: its dataset attribute and SHA-256
    "data_sha256",
}


@pytest.mark.parametrize(
    "pattern,noisy_val",
    [("symmetric", True), ("instance", True), ("instance", False), ("none", True)],
)
def test_generate_noise_file_end_to_end(tmp_path, pattern, noisy_val):
    h5_path = make_h5(tmp_path / "data.h5")
    out = tmp_path / "noise" / "out.npz"
    rate = 0.0 if pattern == "none" else 0.4
    result = generate_noise_file(h5_path, out, pattern, rate, 5, noisy_val=noisy_val)
    verify(out)
    loaded = load_noise(out)
    extra = {"train_flip_prob", "val_flip_prob"} if pattern == "instance" else set()
    assert set(loaded) == KEYS | extra == set(result)
    with h5py.File(h5_path, "r") as h5:
        np.testing.assert_array_equal(loaded["train_clean"], h5["train/labels"][()])
        np.testing.assert_array_equal(loaded["val_clean"], h5["val/labels"][()])
    for key in KEYS | extra:
        if isinstance(result[key], np.ndarray):
            np.testing.assert_array_equal(loaded[key], result[key])
            assert loaded[key].dtype == result[key].dtype
        else:
            assert loaded[key] == result[key] and type(loaded[key]) is type(result[key])
    assert loaded["train_noisy"].dtype == np.int64 and loaded["train_is_clean"].dtype == bool
    assert loaded["pattern"] == pattern and loaded["noise_seed"] == 5
    assert loaded["noisy_val"] is noisy_val and loaded["rate"] == rate
    if pattern == "none" or not noisy_val:
        np.testing.assert_array_equal(loaded["val_noisy"], loaded["val_clean"])
    if pattern == "none":
        assert loaded["realised_rate"] == 0.0
        np.testing.assert_array_equal(loaded["nominal_transition"], np.eye(4))
    if pattern == "instance":
        np.testing.assert_array_equal(loaded["nominal_transition"], loaded["transition"])
    else:
        assert (loaded["val_noisy"] != loaded["val_clean"]).any() == (pattern != "none")


def test_generate_noise_file_independent_draws_key(tmp_path):
    h5_path = make_h5(tmp_path / "data.h5")
    out = tmp_path / "noise" / "out.npz"
    generate_noise_file(h5_path, out, "symmetric", 0.4, 5, nested=False)
    loaded = load_noise(out)
    assert set(loaded) == KEYS | {"draws"} and loaded["draws"] == "independent"


def test_load_noise_refuses_tampered_file(tmp_path):
    h5_path = make_h5(tmp_path / "data.h5")
    out = tmp_path / "out.npz"
    generate_noise_file(h5_path, out, "symmetric", 0.3, 0)
    data = bytearray(out.read_bytes())
    data[-30] ^= 0xFF
    out.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        load_noise(out)
    sidecar(out).unlink()
    with pytest.raises(ChecksumError, match="no checksum record"):
        load_noise(out)


def test_generate_noise_file_refuses_tampered_hdf5(tmp_path):
    h5_path = make_h5(tmp_path / "data.h5")
    with open(h5_path, "ab") as fh:
        fh.write(b"x")
    out = tmp_path / "out.npz"
    with pytest.raises(ChecksumError):
        generate_noise_file(h5_path, out, "symmetric", 0.3, 0)
    assert not out.exists() and not sidecar(out).exists()


def test_failed_generation_leaves_no_file(tmp_path):
    h5_path = make_h5(tmp_path / "data.h5")
    out = tmp_path / "out" / "noise.npz"
    with pytest.raises(NoiseError, match="'gauss'"):
        generate_noise_file(h5_path, out, "gauss", 0.3, 0)
    assert not out.exists() and not sidecar(out).exists()
    # a failure while writing (object array) leaves neither the file, its sidecar nor a temp file
    with pytest.raises(NoiseError, match="object dtype"):
        save_noise(out, {"a": np.arange(3), "b": np.array([None], dtype=object)})
    assert not out.exists() and not sidecar(out).exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# --- the data a noise file was drawn on --------------------------------------------------------


def other_h5(path, n=(300, 80, 100), seed=7, name="otherset"):
    """Another data file: other sizes and labels, another dataset name."""
    make_h5(path, n=n)
    rng = np.random.default_rng(seed)
    with h5py.File(path, "a") as h5:
        for split, size in zip(("train", "val", "test"), n):
            h5[f"{split}/labels"][...] = rng.integers(0, 4, size)
        h5.attrs["dataset"] = name
    write_sidecar(path)
    return path


@pytest.mark.parametrize("pattern", ["symmetric", "instance", "none"])
def test_a_noise_file_records_its_data_and_keeps_the_labels_it_always_drew(tmp_path, pattern):
    """``dataset`` and ``data_sha256`` are added to the file; the draws are those of
    make_noisy_labels, as before they were recorded (so training is unchanged)."""
    h5 = make_h5(tmp_path / "data.h5")
    rate = 0.0 if pattern == "none" else 0.4
    generate_noise_file(h5, tmp_path / "n.npz", pattern, rate, 3)
    loaded = load_noise(tmp_path / "n.npz")
    assert loaded["dataset"] == "synthmnist" and loaded["data_sha256"] == verify(h5)
    with h5py.File(h5, "r") as f:
        labels = {s: f[f"{s}/labels"][()] for s in ("train", "val")}
        images = {s: f[f"{s}/images"][()] for s in ("train", "val")}
        mean, std = f.attrs["mean"], f.attrs["std"]
    drawn = make_noisy_labels(
        pattern, rate, 3, 4, labels, images, channel_mean=mean, channel_std=std
    )
    assert set(loaded) == set(drawn) | {"dataset", "data_sha256"}
    for key, value in drawn.items():
        np.testing.assert_array_equal(loaded[key], value)


def test_a_noise_file_of_another_data_file_is_refused_by_name(tmp_path):
    from lnm.noise.io import check_drawn_on

    h5, other = make_h5(tmp_path / "data.h5"), other_h5(tmp_path / "other.h5")
    npz = tmp_path / "n.npz"
    generate_noise_file(other, npz, "symmetric", 0.4, 0)
    assert load_noise(npz, data_path=other)["dataset"] == "otherset"
    with pytest.raises(NoiseError) as err:
        load_noise(npz, data_path=h5)
    msg = str(err.value)
    assert msg.startswith(f"{npz}: drawn for data with SHA-256 {verify(other)[:16]}... (otherset)")
    assert f"but {h5} (synthmnist) has SHA-256 {verify(h5)[:16]}" in msg
    assert "drawn on another data file" in msg
    # same labels, other bytes (the data file made again with other images): still refused,
    # the noise file fits the data file it was drawn on only
    generate_noise_file(h5, npz, "symmetric", 0.4, 0)
    with h5py.File(h5, "a") as f:
        f["train/images"][0] = 255 - f["train/images"][0]
    write_sidecar(h5)
    with pytest.raises(NoiseError, match="drawn for data with SHA-256"):
        check_drawn_on(load_noise(npz), npz, h5, verify(h5))


def test_a_noise_file_without_its_data_record_is_checked_as_far_as_it_can_be(tmp_path):
    """Noise files written before they recorded their data: the split sizes and clean labels
    must be the data file's."""
    h5 = make_h5(tmp_path / "data.h5")
    npz = tmp_path / "n.npz"
    generate_noise_file(h5, npz, "symmetric", 0.4, 0)
    old = {k: v for k, v in load_noise(npz).items() if k not in ("dataset", "data_sha256")}
    save_noise(npz, old)
    assert set(load_noise(npz, data_path=h5)) == set(old)  # it fits: accepted
    other = other_h5(tmp_path / "other.h5")  # other sizes
    with pytest.raises(NoiseError, match=r"400 train labels, but .*other\.h5 \(otherset\) has 300"):
        load_noise(npz, data_path=other)
    same_size = other_h5(tmp_path / "same.h5", n=(400, 100, 100))  # same sizes, other labels
    with pytest.raises(NoiseError, match="its clean train labels are not those of"):
        load_noise(npz, data_path=same_size)
