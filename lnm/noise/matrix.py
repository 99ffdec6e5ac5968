"""Class-conditional noise: sampling from transition matrices, and their diagnostics (each
pattern's own matrix is in its file in :mod:`lnm.noise.patterns`)."""

from __future__ import annotations

import numpy as np

from .spec import NoiseError, check_labels, check_num_classes


def sample_rows(P: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one category per row of the row-stochastic ``P`` (N, C) by inverse CDF.

    One uniform per row; category ``j`` is chosen iff ``cdf[j-1] <= u < cdf[j]``, so
    zero-probability categories are never drawn. Each row's CDF is divided by its last entry so
    that ``cdf[-1] == 1`` exactly.
    """
    P = np.asarray(P, dtype=np.float64)
    u = rng.random(P.shape[0])
    cdf = np.cumsum(P, axis=1)
    cdf /= cdf[:, -1:]
    return (cdf <= u[:, None]).sum(axis=1).astype(np.int64)


def check_transition(T) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 2 or T.shape[0] != T.shape[1] or T.shape[0] < 2:
        raise NoiseError(f"transition matrix of shape {T.shape}; allowed: square C x C, C >= 2")
    if not np.all(np.isfinite(T)) or T.min() < 0 or not np.allclose(T.sum(axis=1), 1.0, atol=1e-8):
        raise NoiseError("transition matrix must be finite, non-negative, rows summing to 1")
    return T


def flip_with_matrix(labels, T, rng: np.random.Generator) -> np.ndarray:
    """Per sample, draw the noisy label from row ``T[y_i]`` (one uniform per sample); int64."""
    T = check_transition(T)
    y = check_labels(labels, T.shape[0])
    return sample_rows(T[y], rng)


def empirical_transition(clean, noisy, num_classes) -> np.ndarray:
    """Row-normalised counts ``T[i, j] = P(noisy = j | clean = i)``; rows without samples: NaN."""
    c = check_num_classes(num_classes)
    clean, noisy = check_labels(clean, c, "clean"), check_labels(noisy, c, "noisy")
    if clean.shape != noisy.shape:
        raise NoiseError(f"clean {clean.shape} and noisy {noisy.shape} label shapes differ")
    counts = np.bincount(clean * c + noisy, minlength=c * c).reshape(c, c).astype(np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, counts / np.where(rows > 0, rows, 1), np.nan)


#: margin by which a diagonal entry must exceed its row's off-diagonal entries (float-error guard)
IDENTIFIABLE_TOL = 1e-9


def is_identifiable(T, tol: float = IDENTIFIABLE_TOL) -> bool:
    """True iff in every (non-NaN) row the diagonal exceeds every off-diagonal entry by more
    than ``tol``.

    E.g. symmetric noise is identifiable iff ``1 - rate > rate / (C - 1)``; at the boundary
    ``rate = (C - 1) / C`` both sides are equal and the answer is False, although float rounding
    makes ``1 - 2/3`` exceed ``(2/3) / 2`` by 6e-17 (hence the tolerance). Rows that are
    entirely NaN (classes without samples) are ignored, so an all-NaN matrix is vacuously
    identifiable.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.ndim != 2 or T.shape[0] != T.shape[1]:
        raise NoiseError(f"transition matrix of shape {T.shape}; allowed: square C x C")
    off = np.where(np.eye(len(T), dtype=bool), -np.inf, T)
    keep = ~np.all(np.isnan(T), axis=1)
    return bool(np.all(np.diag(T)[keep] - off[keep].max(axis=1) > tol))
