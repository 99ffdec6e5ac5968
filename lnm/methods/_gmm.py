"""Loss-based clean/noisy division with a two-component Gaussian mixture (DivideMix).

Per-sample losses are min–max normalised to [0, 1]; a 2-component 1-D GMM is fitted
(scikit-learn, ``max_iter=10, tol=1e-2, reg_covar=5e-4`` as in the original code, with a
fixed ``random_state`` so the fit is deterministic); the clean probability of a sample is
its posterior under the component with the smaller mean.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture


def minmax_normalise(losses) -> np.ndarray:
    """Losses rescaled to [0, 1] (all-equal losses map to zeros)."""
    x = np.asarray(losses, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("per-sample losses must all be finite")
    lo, hi = x.min(), x.max()
    return (x - lo) / max(hi - lo, 1e-12)


def gmm_clean_probability(
    values, random_state: int = 0, max_iter: int = 10, tol: float = 1e-2, reg_covar: float = 5e-4
) -> np.ndarray:
    """Posterior of the low-mean component of a 2-component GMM fitted to ``values``.

    ``values`` should already be normalised (see :func:`minmax_normalise`).
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    gmm = GaussianMixture(
        n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=random_state
    )
    with warnings.catch_warnings():  # 10 EM steps is the method's choice, not a failure
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(x)
    return gmm.predict_proba(x)[:, int(gmm.means_.argmin())]


def clean_probability(losses, **kw) -> np.ndarray:
    """Min–max normalise per-sample losses, then :func:`gmm_clean_probability`."""
    return gmm_clean_probability(minmax_normalise(losses), **kw)
