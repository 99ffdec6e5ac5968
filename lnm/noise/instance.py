"""Instance-dependent label noise after Xia et al., "Part-dependent Label Noise: Towards
Instance-dependent Label Noise", NeurIPS 2020 (public code: ``tools.py::get_instance_noisy_label``).

For a sample ``(x_i, y_i)`` with flattened, standardised image ``x_i`` (``d = H*W*Channels``):

1. flip rate ``q_i ~ TruncNormal(mean=rate, std, truncated to [0, 1])``;
2. a random projection ``W ~ N(0, 1)`` of shape ``(C, d, C)`` (one per noise seed, shared by the
   train and val splits, see :func:`instance_projection`);
3. ``z = x_i @ W[y_i]``, ``z[y_i] = -inf``, ``p = q_i * softmax(z)``, ``p[y_i] += 1 - q_i``;
4. ``ỹ_i ~ Categorical(p)``.

Differences from the reference code: numpy/scipy only (no torch), per-noise-seed streams instead of
the global RNG, HWC instead of CHW flattening order (irrelevant for an i.i.d. Gaussian ``W``), and
computation grouped by class in bounded-memory chunks instead of one sample at a time.

LNMBench's classifier-based variant (pattern ``instance_classifier``, see
:mod:`lnm.noise.classifier`) keeps steps 1 and 4 and replaces step 2-3 by a trained classifier's
logits: the flip targets are :func:`masked_softmax` of given logits. Both variants draw through
:func:`flip_to_targets` (first the flip rates, then one uniform per sample), so they share the
nested-across-rates property of :mod:`lnm.noise.spec`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .matrix import sample_rows
from .spec import NoiseError, check_labels, check_num_classes, check_rate, check_std

CHUNK_BYTES = 64 << 20  # bound on the float64 image block held at once (224px RGB: ~55 images)


def _as_nhwc(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise NoiseError(f"images of shape {images.shape}; allowed: (N, H, W) or (N, H, W, C)")
    return images


def _chunks(idx: np.ndarray, dim: int):
    step = max(1, CHUNK_BYTES // (8 * dim))
    for start in range(0, len(idx), step):
        yield idx[start : start + step]


def channel_stats(images) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of ``images / 255``, computed in chunks."""
    images = _as_nhwc(images)
    ch = images.shape[-1]
    count = max(1, images.size // ch)
    idx = np.arange(len(images))
    total = (
        sum(
            (
                images[c].reshape(-1, ch).sum(0, dtype=np.float64)
                for c in _chunks(idx, images[0].size)
            ),
            np.zeros(ch),
        )
        / 255.0
    )
    mean = total / count
    sq = sum(
        (((images[c].reshape(-1, ch) / 255.0) - mean) ** 2).sum(0)
        for c in _chunks(idx, images[0].size)
    )
    return mean, np.sqrt(np.asarray(sq, dtype=np.float64) / count)


def expected_flip_rate(rate: float, std: float = 0.1) -> float:
    """Mean of the truncated normal the per-sample flip rates are drawn from."""
    rate, std = check_rate("instance", rate), check_std(std)
    return float(stats.truncnorm.mean((0 - rate) / std, (1 - rate) / std, loc=rate, scale=std))


def flip_rates(n: int, rate: float, rng: np.random.Generator, std: float = 0.1) -> np.ndarray:
    """``q_i ~ TruncNormal(rate, std)`` on [0, 1] (scipy ``truncnorm``, ``random_state=rng``)."""
    rate, std = check_rate("instance", rate), check_std(std)
    dist = stats.truncnorm((0 - rate) / std, (1 - rate) / std, loc=rate, scale=std)
    return np.asarray(dist.rvs(size=n, random_state=rng), dtype=np.float64).reshape(n)


def instance_projection(dim: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Random projection ``W ~ N(0, 1)`` of shape ``(C, dim, C)``; draw once, use for all splits."""
    c = check_num_classes(num_classes)
    if int(dim) < 1:
        raise NoiseError(f"feature dimension {dim!r}; allowed: an integer >= 1")
    return rng.standard_normal((c, int(dim), c))


def instance_targets(images, labels, num_classes, W, channel_mean=None, channel_std=None):
    """Target distribution over the wrong classes, ``softmax(x_i @ W[y_i])`` with ``z[y_i] = -inf``.

    Returns an ``(N, C)`` array whose rows sum to 1 and are 0 at the true class. Images are scaled
    to [0, 1] and standardised per channel with ``channel_mean``/``channel_std`` (computed from
    ``images`` when not given; pass the same values for every split so that identical images map to
    identical rows).
    """
    c = check_num_classes(num_classes)
    images = _as_nhwc(images)
    y = check_labels(labels, c)
    if len(images) != len(y):
        raise NoiseError(f"{len(images)} images but {len(y)} labels")
    ch, dim = images.shape[-1], int(np.prod(images.shape[1:]))
    W = np.asarray(W, dtype=np.float64)
    if W.shape != (c, dim, c):
        raise NoiseError(f"projection W of shape {W.shape}; expected {(c, dim, c)}")
    if channel_mean is None or channel_std is None:
        channel_mean, channel_std = channel_stats(images)
    mean = np.asarray(channel_mean, dtype=np.float64).reshape(-1)
    sd = np.asarray(channel_std, dtype=np.float64).reshape(-1)
    if mean.shape != (ch,) or sd.shape != (ch,):
        raise NoiseError(f"channel mean/std of shapes {mean.shape}/{sd.shape}; expected ({ch},)")
    sd = np.where(sd > 0, sd, 1.0)  # a constant channel carries no information; avoid 0/0
    out = np.zeros((len(y), c))
    for k in range(c):
        for idx in _chunks(np.flatnonzero(y == k), dim):
            x = (images[idx].reshape(len(idx), -1, ch) / 255.0 - mean) / sd
            z = x.reshape(len(idx), dim) @ W[k]
            z[:, k] = -np.inf
            z = np.exp(z - z.max(axis=1, keepdims=True))
            out[idx] = z / z.sum(axis=1, keepdims=True)
    return out


def masked_softmax(logits, labels) -> np.ndarray:
    """Per row, the softmax of ``logits`` with the true class masked (``z[y_i] = -inf``).

    Float64 and numerically stable (the row maximum over the wrong classes is subtracted first);
    returns an ``(N, C)`` array whose rows sum to 1 and are 0 at the true class.
    """
    z = np.array(logits, dtype=np.float64)  # a copy: the caller's array is not modified
    if z.ndim != 2 or z.shape[1] < 2:
        raise NoiseError(f"logits of shape {z.shape}; allowed: (N, C) with C >= 2")
    y = check_labels(labels, z.shape[1])
    if len(y) != len(z):
        raise NoiseError(f"{len(z)} rows of logits but {len(y)} labels")
    if not np.all(np.isfinite(z)):
        bad = int(np.flatnonzero(~np.isfinite(z).all(axis=1))[0])
        raise NoiseError(f"logits row {bad} is not finite: {z[bad].tolist()}")
    rows = np.arange(len(y))
    z[rows, y] = -np.inf
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def flip_to_targets(targets, labels, rate, rng, std=0.1) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``q_i ~ TruncNormal(rate, std)`` (:func:`flip_rates`), then
    ``ỹ_i ~ Categorical(q_i * targets[i] + (1 - q_i) * onehot(y_i))`` (:func:`sample_rows`, one
    uniform per sample); returns ``(noisy labels, q)``.

    ``targets``: ``(N, C)`` flip-target distributions, rows summing to 1 and 0 at the true class
    (:func:`instance_targets` or :func:`masked_softmax`).
    """
    T = np.asarray(targets, dtype=np.float64)
    if T.ndim != 2 or T.shape[1] < 2:
        raise NoiseError(f"flip targets of shape {T.shape}; allowed: (N, C) with C >= 2")
    y = check_labels(labels, T.shape[1])
    if len(y) != len(T):
        raise NoiseError(f"{len(T)} rows of flip targets but {len(y)} labels")
    at_true = T[np.arange(len(y)), y]
    if not (np.all(T >= 0) and np.allclose(T.sum(axis=1), 1.0) and np.all(at_true == 0)):
        raise NoiseError(
            "flip targets must be non-negative, 0 at the true class, rows summing to 1"
        )
    q = flip_rates(len(y), rate, rng, std)
    P = q[:, None] * T
    P[np.arange(len(y)), y] += 1.0 - q
    return sample_rows(P, rng), q


def instance_noise(
    images,
    labels,
    num_classes,
    rate,
    rng,
    std=0.1,
    *,
    W=None,
    channel_mean=None,
    channel_std=None,
    targets=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Instance-dependent noise for one split; returns ``(noisy labels, q)``.

    Xia et al. (2020) by default: ``W`` defaults to a fresh :func:`instance_projection` drawn
    from ``rng`` (first, before the flip rates); pass a shared ``W`` to noise several splits with
    the same generator. ``targets`` (``(N, C)``, e.g. :func:`masked_softmax` of a classifier's
    logits) replaces the projection: ``images``, ``W`` and the channel statistics are then unused.
    """
    c = check_num_classes(num_classes)
    y = check_labels(labels, c)
    if targets is None:
        images = _as_nhwc(images)
        if W is None:
            W = instance_projection(int(np.prod(images.shape[1:])), c, rng)
        targets = instance_targets(images, y, c, W, channel_mean, channel_std)
    elif np.shape(targets) != (len(y), c):
        raise NoiseError(f"flip targets of shape {np.shape(targets)}; expected {(len(y), c)}")
    return flip_to_targets(targets, y, rate, rng, std)
