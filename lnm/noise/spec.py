"""Noise patterns, argument validation and seed derivation shared by the noise module.

Every random stream is derived from ``np.random.SeedSequence([noise_seed, pattern_code, stream])``
so that (i) the same ``noise_seed`` always reproduces the same labels, (ii) different noise seeds
give different labels, (iii) train and val get independent streams, and (iv) the instance-noise
projection ``W`` has its own stream keyed on ``(noise_seed, pattern)`` only, shared by both splits.
``pattern_code`` is the ``code`` the pattern's file in :mod:`lnm.noise.patterns` declares (fixed
for ever: a new pattern takes a code no pattern ever had). ``instance_classifier`` draws its flip
rates and labels exactly as ``instance`` does, from its own streams, and needs no projection (its
flip targets come from the generator's logits); ``real`` draws nothing.

The rate is not part of that seed, so the draws of one noise seed are *nested* across rates
(common random numbers): every sample uses the same uniform at every rate, and its label flips
iff that uniform falls outside an interval of length ``1 − rate`` (symmetric, pairflip) or
``1 − q_i`` (instance, with ``q_i`` a quantile of the truncated normal, non-decreasing in the
rate) that shrinks as the rate grows; so the flipped set at a lower rate is contained in the one
at a higher rate, and instance noise reuses the same ``W`` (flip-target distributions). With
``nested=False`` (:func:`stream_rng` ``rate=...``) the rate's float64 bit pattern is appended to
the seed, giving independent draws per rate.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..grid import NOISY_PATTERNS, PATTERNS, pattern_info

SPLITS = ("train", "val")
# Stream identifiers inside one (noise_seed, pattern): one per split, one for the projection W.
STREAM_CODES = {"train": 0, "val": 1, "projection": 2}


class NoiseError(ValueError):
    """Invalid noise specification (pattern, rate, seed, class count, labels, ...)."""


def check_pattern(pattern) -> str:
    if pattern not in PATTERNS:
        raise NoiseError(f"unknown noise pattern {pattern!r}; allowed: {', '.join(PATTERNS)}")
    return pattern


def check_rate(pattern, rate) -> float:
    """Validate ``rate`` for ``pattern``: the clean pattern needs 0, the others 0 <= rate < 1."""
    check_pattern(pattern)
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate):
        raise NoiseError(f"noise rate {rate!r} is not a finite number; allowed: 0 <= rate < 1")
    rate = float(rate)
    if pattern_info(pattern).is_clean and rate != 0.0:
        raise NoiseError(
            f"noise rate {rate!r} with pattern {pattern!r}; allowed: rate 0 only "
            f"(use one of {', '.join(NOISY_PATTERNS)} for noise)"
        )
    if not 0.0 <= rate < 1.0:
        raise NoiseError(f"noise rate {rate!r} out of range; allowed: 0 <= rate < 1")
    return rate


def _integer(value, minimum: int, what: str) -> int:
    """``value`` as an int when it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise NoiseError(f"{what} {value!r} invalid; allowed: an integer >= {minimum}")
    return int(value)


def check_num_classes(num_classes) -> int:
    return _integer(num_classes, 2, "num_classes")


def check_seed(noise_seed) -> int:
    return _integer(noise_seed, 0, "noise_seed")


def check_std(std) -> float:
    if (
        isinstance(std, bool)
        or not isinstance(std, numbers.Real)
        or not (math.isfinite(std) and std > 0)
    ):
        raise NoiseError(f"flip-rate std {std!r} invalid; allowed: a finite number > 0")
    return float(std)


def check_nested(nested) -> bool:
    if not isinstance(nested, (bool, np.bool_)):
        raise NoiseError(f"nested {nested!r} invalid; allowed: true or false")
    return bool(nested)


def check_labels(labels, num_classes: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D int64 array with values in ``0..num_classes-1``."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise NoiseError(
            f"{name}: expected a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}"
        )
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise NoiseError(
            f"{name}: values {arr.min()}..{arr.max()} outside the allowed 0..{num_classes - 1}"
        )
    return arr


def rate_key(rate: float) -> int:
    """The float64 bit pattern of ``rate`` as an integer (exact: distinct rates, distinct keys)."""
    return int(np.float64(rate).view(np.uint64))


def stream_rng(
    noise_seed: int, pattern: str, stream: str, rate: float | None = None
) -> np.random.Generator:
    """Independent generator for ``stream`` ('train', 'val' or 'projection').

    ``rate`` None: the nested draws (the same stream at every rate); a number: that rate enters
    the seed sequence (independent draws per rate).
    """
    code = pattern_info(check_pattern(pattern)).code  # the pattern's code enters its streams
    entropy = [check_seed(noise_seed), code, STREAM_CODES[stream]]
    if rate is not None:
        entropy.append(rate_key(rate))
    return np.random.default_rng(np.random.SeedSequence(entropy))
