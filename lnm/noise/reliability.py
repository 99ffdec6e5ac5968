"""Whether a noise estimate's estimator can be told from always predicting the majority class
of the noisy labels (torch-free: the estimation stage logs it, the report marks it).

The estimate of :mod:`lnm.noise.estimate` is marked *unreliable* when the Wilson 95 % interval of
the estimator's out-of-fold accuracy over the N train labels reaches down to (or below) the
noisy labels' majority-class share. Why: a predictor that ignores the image scores at most that
share on the same labels (its accuracy is Σ_c q_c p_c ≤ max_c p_c for any prediction shares q);
confident learning reads label errors off where the out-of-fold probabilities disagree with the
given labels, so when the probabilities cannot be shown to carry information beyond the class
prior, the disagreements are the estimator's own errors and the estimated rate measures the
estimator, not the labels (a clean BreastMNIST cell was estimated at 0.28). In test terms: H0
"the estimator's accuracy is at most the majority-class share" is not rejected at the one-sided
2.5 % level. The majority share is of the same noisy labels, a number, not a second estimate.

The test is necessary, not sufficient: an estimator above the majority class can still
misestimate (the demo's RetinaMNIST symmetric 0.2: out-of-fold accuracy 0.461, interval from
0.432, against a majority share of 0.399 passes, and estimates 0.553 against a true 0.193; its
BreastMNIST symmetric 0.2, 0.606 against 0.608, is marked), which is why the report prints
the out-of-fold accuracy, and with clean labels the accuracy on them, beside every estimate.
Nothing here is stored in the estimate file: it is recomputed from the file
(:func:`file_reliability`), so estimate files, and the runs told them, are unchanged.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

NAN = float("nan")

#: Level of the out-of-fold accuracy's interval in :func:`estimator_reliability`.
RELIABILITY_LEVEL = 0.95


def wilson_interval(accuracy: float, n: int, level: float = RELIABILITY_LEVEL) -> tuple:
    """Wilson score interval (fractions) of a proportion ``accuracy`` observed over ``n``
    trials; unlike the normal approximation it stays inside [0, 1] and keeps its coverage near
    0 and 1 and for small ``n``. (NaN, NaN) when ``n`` is 0 or the accuracy is not finite."""
    if not n or accuracy is None or not math.isfinite(accuracy):
        return NAN, NAN
    z = NormalDist().inv_cdf(0.5 + level / 2)
    denom = 1 + z * z / n
    centre = (accuracy + z * z / (2 * n)) / denom
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def estimator_reliability(oof_accuracy: float, noisy_counts, level: float = RELIABILITY_LEVEL):
    """Whether the estimator can be told from always predicting the majority class of the noisy
    labels (module docstring, "Reliability"). ``noisy_counts``: the noisy train labels' class
    counts (N = their sum). Returns ``majority_rate`` (largest class share), the Wilson interval
    ``oof_accuracy_lo``/``oof_accuracy_hi`` of ``oof_accuracy`` over the N labels and
    ``unreliable``: the interval's lower end is at or below the majority rate (unknown, i.e. no
    accuracy or no labels, counts as unreliable)."""
    counts = np.asarray(noisy_counts, dtype=np.float64).ravel()
    n = int(round(float(counts.sum())))
    majority = float(counts.max() / counts.sum()) if n else NAN
    lo, hi = wilson_interval(oof_accuracy, n, level)
    return {
        "oof_accuracy": float(oof_accuracy) if oof_accuracy is not None else NAN,
        "oof_accuracy_lo": lo,
        "oof_accuracy_hi": hi,
        "majority_rate": majority,
        "unreliable": not (math.isfinite(lo) and lo > majority),
    }


def file_reliability(est: dict) -> dict:
    """:func:`estimator_reliability` of a loaded estimate file: the noisy class counts are the
    row sums of its calibrated joint times N (cleanlab rescales the joint's rows to the noisy
    label counts, so they are integers), N = its number of train samples; plus its
    ``oof_clean_accuracy`` (NaN without clean labels)."""
    joint = np.asarray(est["estimated_joint"], dtype=np.float64)
    n = int(np.asarray(est["label_issues"]).size)
    out = estimator_reliability(est.get("oof_accuracy", NAN), np.rint(joint.sum(axis=1) * n))
    clean = est.get("oof_clean_accuracy")
    out["oof_clean_accuracy"] = NAN if clean is None else float(clean)
    return out


def reliability_text(rel: dict) -> str:
    """The console/log words for :func:`estimator_reliability`."""
    text = (
        f"out-of-fold accuracy on the noisy labels {rel['oof_accuracy']:.3f} "
        f"(95 % interval {rel['oof_accuracy_lo']:.3f}-{rel['oof_accuracy_hi']:.3f}; majority "
        f"class of the noisy labels {rel['majority_rate']:.3f})"
    )
    clean = rel.get("oof_clean_accuracy", NAN)
    if clean is not None and math.isfinite(clean):
        text += f", on the clean labels {clean:.3f}"
    return text
