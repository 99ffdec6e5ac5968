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


# ---------------------------------------------------------------- evaluation views
# How the predictions of a run's networks become one set of metrics (lnm.grid.EVAL_VIEWS; the
# spec's ``eval_view``). Inputs: per-network logits (K, N, C) and their softmax (K, N, C).
#
# - ``softmax_mean``: the argmax of the mean of the K softmaxes; every metric, the
#   probability-based ones (AUC, ECE, NLL) included, is computed on that mean probability.
# - ``logit_sum``: the argmax of the sum of the K logits (DivideMix's test); the probabilities
#   are the softmax of the summed logits (float64).
# - ``mean_of_accuracies``: each metric (accuracy, balanced accuracy, macro F1, per-class
#   recall, AUC, ECE, NLL) is computed per network on its own softmax and then averaged over the
#   K networks; there is no single probability of this view.
#
# With K = 1 every view is the network's own prediction (``softmax_mean`` then uses the
# network's softmax exactly; ``logit_sum`` recomputes it in float64).


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def view_probs(view: str, logits: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(N, C) probabilities of ``view`` (``softmax_mean`` or ``logit_sum``) from per-network
    ``logits`` and their softmax ``probs`` (K, N, C). ``mean_of_accuracies`` has none."""
    if view == "softmax_mean":
        return probs.mean(0)
    if view == "logit_sum":
        return softmax(np.asarray(logits, dtype=np.float64).sum(0))
    raise ValueError(f"eval view {view!r} has no single probability per sample")


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float((probs.argmax(1) == labels).mean())


def view_accuracy(view: str, logits: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy (%) of ``view`` (see the notes above :func:`softmax`)."""
    if view == "mean_of_accuracies":
        return float(np.mean([_accuracy(p, labels) for p in probs]))
    return _accuracy(view_probs(view, logits, probs), labels)


def view_metrics(view: str, logits: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> dict:
    """:func:`classification_metrics` of ``view`` (see the notes above :func:`softmax`)."""
    if view != "mean_of_accuracies":
        return classification_metrics(view_probs(view, logits, probs), labels)
    per_net = [classification_metrics(p, labels) for p in probs]
    out = {
        k: float(np.mean([m[k] for m in per_net])) for k in per_net[0] if k != "per_class_recall"
    }
    out["per_class_recall"] = np.mean([m["per_class_recall"] for m in per_net], 0).tolist()
    return out


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
