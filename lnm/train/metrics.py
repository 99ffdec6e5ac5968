"""Classification metrics on predicted probabilities (scikit-learn where it has them)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm

ECE_BINS = 15


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al., 2017)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC: binary on p(class 1); multi-class one-vs-rest macro. NaN if undefined."""
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(skm.roc_auc_score(labels, probs[:, 1]))
    if (
        len(present) < probs.shape[1]
    ):  # OvR needs every class in the labels: average the present ones
        return float(np.mean([skm.roc_auc_score(labels == c, probs[:, c]) for c in present]))
    return float(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy-type metrics in %, AUC in [0, 1], ECE in [0, 1], NLL in nats."""
    num_classes = probs.shape[1]
    pred = probs.argmax(1)
    classes = np.arange(num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a split are fine here
        recall = skm.recall_score(labels, pred, labels=classes, average=None, zero_division=0)
        present = np.isin(classes, labels)
        return {
            "acc": 100.0 * float((pred == labels).mean()),
            "balanced_acc": 100.0 * float(recall[present].mean()),
            "macro_f1": 100.0
            * float(skm.f1_score(labels, pred, labels=classes, average="macro", zero_division=0)),
            "auc": auc(probs, labels),
            "ece": expected_calibration_error(probs, labels),
            "nll": float(skm.log_loss(labels, np.clip(probs, 1e-12, 1.0), labels=classes)),
            "per_class_recall": (100.0 * recall).tolist(),
        }


def selection_scores(selected: np.ndarray, seen: np.ndarray, is_clean: np.ndarray) -> dict:
    """Precision (clean ratio) and recall (coverage) of a selected set against the clean mask.

    ``selected`` and ``seen`` are boolean masks over training samples; coverage counts only the
    clean samples that were seen during the epoch (``drop_last`` may skip a few).
    """
    sel = selected & seen
    clean_seen = is_clean & seen
    n_sel = int(sel.sum())
    return {
        "clean_ratio": 100.0 * float((sel & is_clean).sum()) / n_sel if n_sel else float("nan"),
        "coverage": 100.0 * float((sel & is_clean).sum()) / max(int(clean_seen.sum()), 1),
        "selected_frac": 100.0 * n_sel / max(int(seen.sum()), 1),
    }
