"""Whether a run collapsed: its final test predictions carry no class information. The one
criterion that ``lnm train``'s final line uses, written to agree with the report's ``collapsed``
flag (``lnm.report.aggregate.collapse_flags`` and ``lnm.report.stats``, "Collapse"; a test
compares the two where both exist). numpy and the standard library only: the training process
imports no pandas or SciPy.

The final test predictions ``ŷ`` have class shares ``q_c`` over the test images, and the test set
has ``n_c`` images of each of the C' classes present. A predictor that ignores the image (it
draws ``ŷ`` with probabilities ``q`` whatever the class) has a balanced accuracy of mean
``b₀ = 100 Σ_c q_c / C'`` and variance ``100² Σ_c q_c (1 − q_c) / n_c / C'²``. A run is collapsed
when its balanced accuracy lies within ``z_{0.975}`` standard deviations of ``b₀``: the test set
cannot tell its predictions from ones that ignore the image. A constant predictor (every test
image one class) is the limit; its accuracy is that class's share of the test set — the
majority-class rate when it predicts the majority class — whatever the method did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

#: Two-sided level of the band around an uninformed predictor's balanced accuracy.
LEVEL = 0.95


def balanced_accuracy(pred, labels, num_classes: int) -> float:
    """Mean per-class recall (%) of ``pred`` over the classes present in ``labels``; NaN
    without labels."""
    pred, labels = np.asarray(pred, int).ravel(), np.asarray(labels, int).ravel()
    counts = np.bincount(labels, minlength=num_classes)
    if not counts.sum():
        return float("nan")
    hits = np.bincount(labels[pred == labels], minlength=num_classes)
    present = counts > 0
    return float(100.0 * np.mean(hits[present] / counts[present]))


def uninformed_balanced(pred, labels, num_classes: int, level: float = LEVEL):
    """(mean, half-width), in %, of the balanced accuracy of a predictor that ignores the image
    and predicts class c with the share ``q_c`` of ``pred``; (NaN, NaN) without labels."""
    pred, labels = np.asarray(pred, int).ravel(), np.asarray(labels, int).ravel()
    counts = np.bincount(labels, minlength=num_classes)
    if not len(labels):
        return float("nan"), float("nan")
    q = np.bincount(pred, minlength=num_classes)[: len(counts)] / len(pred)
    present = counts > 0
    k = int(present.sum())
    var = float(np.sum(q[present] * (1 - q[present]) / counts[present])) / k**2
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return float(100.0 * q[present].sum() / k), float(100.0 * z * math.sqrt(var))


@dataclass(frozen=True)
class Collapse:
    """A collapsed run: its most predicted class and that class's share of the test images,
    its balanced accuracy, the uninformed predictor's mean and half-width (%), and the test
    set's majority class and its rate (%)."""

    predicted_class: int
    share: float
    balanced: float
    baseline: float
    half_width: float
    majority_class: int
    majority_rate: float

    @property
    def constant(self) -> bool:
        return self.share >= 1.0

    def text(self) -> str:
        """e.g. ``collapsed: predicts class 0 for 100 % of test images — the majority-class
        rate is 73.08``."""
        majority = f"the majority-class rate is {self.majority_rate:.2f}"
        if self.majority_class != self.predicted_class:
            majority += f" (class {self.majority_class})"
        share = f"{100 * self.share:.0f} %"
        if self.constant:
            return f"collapsed: predicts class {self.predicted_class} for {share} of test images — {majority}"  # fmt: skip
        return (f"collapsed: predicts class {self.predicted_class} for {share} of test images, "
                f"balanced accuracy {self.balanced:.1f} % as if it ignored the image "
                f"({self.baseline:.1f} ± {self.half_width:.1f}) — {majority}")  # fmt: skip


def prediction_collapse(pred, labels, num_classes: int) -> Collapse | None:
    """A :class:`Collapse` when the predictions ``pred`` (class indices, one per test image
    with true class ``labels``) carry no class information (module docstring); None otherwise,
    and for a one-class task or no predictions."""
    pred = np.asarray(pred).astype(int).ravel()
    labels = np.asarray(labels).astype(int).ravel()
    if num_classes < 2 or not len(pred) or not len(labels):
        return None
    classes, counts = np.unique(pred, return_counts=True)
    bal = balanced_accuracy(pred, labels, num_classes)
    base, hw = uninformed_balanced(pred, labels, num_classes)
    if len(classes) > 1 and not abs(bal - base) <= hw + 1e-9:
        return None
    truth = np.bincount(labels, minlength=num_classes)
    major = int(truth.argmax())
    return Collapse(
        predicted_class=int(classes[counts.argmax()]),
        share=float(counts.max() / len(pred)),
        balanced=bal,
        baseline=base,
        half_width=hw,
        majority_class=major,
        majority_rate=100.0 * truth[major] / len(labels),
    )


def run_collapse(run_dir: str | Path, num_classes: int) -> Collapse | None:
    """:func:`prediction_collapse` of a finished run's final-epoch test predictions
    (``test_probs.npz`` in ``run_dir``: the headline view's probabilities and the labels)."""
    with np.load(Path(run_dir) / "test_probs.npz") as npz:
        probs, labels = np.asarray(npz["probs"]), np.asarray(npz["labels"])
    pred = probs.reshape(len(probs), -1).argmax(1) if probs.size else np.empty(0, int)
    return prediction_collapse(pred, labels, num_classes)
