"""Whether a run collapsed to (nearly) one predicted class: the one criterion that ``lnm
train``'s final line uses, meant to be shared with the report's ``collapsed`` flag
(:func:`lnm.report.aggregate.collapse_flags`). numpy only (the training process imports no
pandas).

A run whose final-epoch test predictions put at least :data:`COLLAPSE_SHARE` of the test images
in one class is a near-constant predictor: its accuracy is about that class's share of the test
set (the majority-class rate, when it is the majority class), whatever the method did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Share of the test images predicted as one class from which a run counts as collapsed.
COLLAPSE_SHARE = 0.99


@dataclass(frozen=True)
class Collapse:
    """A collapsed run's predicted class and its share of the test images, and the test set's
    majority class and its rate (%)."""

    predicted_class: int
    share: float
    majority_class: int
    majority_rate: float

    def text(self) -> str:
        """``collapsed: predicts class 0 for 100 % of test images — the majority-class rate
        is 73.08``."""
        share = 100.0 * self.share
        share_text = f"{share:.0f}" if share == 100.0 or share < 99.5 else f"{share:.1f}"
        majority = f"the majority-class rate is {self.majority_rate:.2f}"
        if self.majority_class != self.predicted_class:
            majority += f" (class {self.majority_class})"
        return (f"collapsed: predicts class {self.predicted_class} for {share_text} % of test "
                f"images — {majority}")  # fmt: skip


def prediction_collapse(
    pred: np.ndarray, labels: np.ndarray, num_classes: int, share: float = COLLAPSE_SHARE
) -> Collapse | None:
    """A :class:`Collapse` when one class takes at least ``share`` of the predictions
    ``pred`` (class indices, one per test image with true class ``labels``); None otherwise
    (also for a one-class task or no predictions)."""
    pred = np.asarray(pred).astype(int).ravel()
    labels = np.asarray(labels).astype(int).ravel()
    if num_classes < 2 or not len(pred):
        return None
    counts = np.bincount(pred, minlength=num_classes)
    top = int(counts.argmax())
    frac = counts[top] / len(pred)
    if frac < share:
        return None
    truth = np.bincount(labels, minlength=num_classes)
    major = int(truth.argmax())
    return Collapse(top, float(frac), major, 100.0 * truth[major] / max(1, len(labels)))


def run_collapse(run_dir: str | Path, num_classes: int) -> Collapse | None:
    """:func:`prediction_collapse` of a finished run's final-epoch test predictions
    (``test_probs.npz`` in ``run_dir``: the headline view's probabilities and the labels)."""
    with np.load(Path(run_dir) / "test_probs.npz") as npz:
        probs, labels = np.asarray(npz["probs"]), np.asarray(npz["labels"])
    pred = probs.reshape(len(probs), -1).argmax(1) if probs.size else np.empty(0, int)
    return prediction_collapse(pred, labels, num_classes)
