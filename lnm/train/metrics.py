"""Classification metrics on predicted probabilities.

Recall, macro F1, log loss and ROC AUC are scikit-learn's definitions, computed here in numpy
with the operations scikit-learn performs, in the same order, so the floats are identical
(checked against scikit-learn in ``tests/test_startup.py``); the training process then
never imports scikit-learn (with SciPy, about a second of start-up). Inputs outside what a run
produces (labels outside ``0..C-1``) are handed to scikit-learn itself.
"""

from __future__ import annotations

import warnings

import numpy as np

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


def _check_finite(a: np.ndarray) -> None:
    if not np.isfinite(a).all():  # scikit-learn refuses these too (ValueError)
        raise ValueError("Input contains NaN or infinity.")


def binary_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of the scores ``score`` against the binary labels ``y_true`` (the larger of
    its two values is the positive class, as in scikit-learn); NaN when only one class is
    present. scikit-learn's ``roc_auc_score`` step by step: a stable descending sort, the
    counts at each distinct score, the collinear points dropped, the trapezoidal rule."""
    y_true = np.asarray(y_true).reshape(-1)
    score = np.asarray(score).reshape(-1)
    if len(y_true) != len(score):
        raise ValueError(f"{len(y_true)} labels but {len(score)} scores")
    _check_finite(score)
    values = np.unique(y_true)
    if len(values) != 2:
        return float("nan")
    pos = y_true == values[1]
    # descending, ties in their original order (scikit-learn's argsort(descending=True))
    order = (len(score) - 1) - np.flip(np.argsort(np.flip(score), kind="stable"))
    score, y = score[order], pos[order].astype(np.int32).astype(np.float64)
    idx = np.concatenate([np.nonzero(np.diff(score))[0], np.asarray([len(y) - 1])])
    tps = np.cumsum(y * 1.0, dtype=np.float64)[idx]
    fps = 1 + idx.astype(np.float64) - tps
    if fps.shape[0] > 2:  # drop points collinear with their neighbours
        corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.nonzero(np.concatenate([[True], corner, [True]]))[0]
        fps, tps = fps[keep], tps[keep]
    tps = np.concatenate([np.asarray([0.0]), tps])
    fps = np.concatenate([np.asarray([0.0]), fps])
    fpr, tpr = fps / fps[-1], tps / tps[-1]
    d = fpr[1:] - fpr[:-1]
    return float(np.sum(d * (tpr[1:] + tpr[:-1]) / 2.0, axis=-1, dtype=np.float64))


def _in_range(labels: np.ndarray, num_classes: int) -> bool:
    """Whether ``labels`` is what the numpy paths handle: a non-empty 1-D integer array of
    classes ``0..num_classes-1`` (anything else goes to scikit-learn, errors included)."""
    labels = np.asarray(labels)
    return (
        labels.ndim == 1
        and labels.dtype.kind in "iu"
        and len(labels) > 0
        and labels.min() >= 0
        and labels.max() < num_classes
    )


def auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC: binary on p(class 1); multi-class one-vs-rest macro. NaN if undefined."""
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if not _in_range(labels, probs.shape[1]):
        return _sklearn_auc(probs, labels, present)
    if probs.shape[1] == 2:
        return binary_auc(labels, probs[:, 1])
    if (
        len(present) < probs.shape[1]
    ):  # OvR needs every class in the labels: average the present ones
        return float(np.mean([binary_auc(labels == c, probs[:, c]) for c in present]))
    _check_finite(probs)
    if not np.allclose(1, probs.sum(axis=1)):
        raise ValueError(
            "Target scores need to be probabilities for multiclass roc_auc, i.e. they should "
            "sum up to 1.0 over classes"
        )
    scores = np.zeros(probs.shape[1])
    for c in range(probs.shape[1]):
        scores[c] = binary_auc((labels == c).astype(np.int64), probs[:, c])
    return float(np.average(scores))


def _sklearn_auc(probs: np.ndarray, labels: np.ndarray, present: np.ndarray) -> float:
    from sklearn import metrics as skm

    if probs.shape[1] == 2:
        return float(skm.roc_auc_score(labels, probs[:, 1]))
    if len(present) < probs.shape[1]:
        return float(np.mean([skm.roc_auc_score(labels == c, probs[:, c]) for c in present]))
    return float(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` in float64, 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    mask = den == 0
    den = np.array(den, dtype=np.float64)
    den[mask] = 1
    out = np.asarray(num, dtype=np.float64) / den
    out[mask] = 0.0
    return out


def recall_f1(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, float]:
    """Per-class recall (``recall_score(average=None, zero_division=0)``) and macro F1
    (``f1_score(average="macro", zero_division=0)``) over the classes ``0..num_classes-1``."""
    labels, pred = np.asarray(labels), np.asarray(pred)
    if not (_in_range(labels, num_classes) and _in_range(pred, num_classes)):
        from sklearn import metrics as skm

        classes = np.arange(num_classes)
        kw = dict(labels=classes, zero_division=0)
        recall = skm.recall_score(labels, pred, average=None, **kw)
        return recall, float(skm.f1_score(labels, pred, average="macro", **kw))
    tp = np.bincount(labels[labels == pred], minlength=num_classes)
    true = np.bincount(labels, minlength=num_classes)
    predicted = np.bincount(pred, minlength=num_classes)
    recall = _divide(tp, true)
    f1 = _divide(2 * tp.astype(np.float64), 1 * true.astype(np.float64) + predicted)
    return recall, float(np.nanmean(f1))


def log_loss(labels: np.ndarray, probs: np.ndarray, num_classes: int) -> float:
    """Mean negative log-likelihood of ``labels`` (scikit-learn's ``log_loss`` with
    ``labels=range(num_classes)``: probabilities clipped to ``[eps, 1 - eps]``)."""
    labels = np.asarray(labels)
    if (
        num_classes < 2
        or not _in_range(labels, num_classes)
        or probs.ndim != 2
        or probs.shape[1] != num_classes
    ):
        from sklearn import metrics as skm

        return float(skm.log_loss(labels, probs, labels=np.arange(num_classes)))
    _check_finite(probs)
    if probs.dtype not in (np.float32, np.float64):
        probs = probs.astype(np.float64)
    if probs.max() > 1 or probs.min() < 0:
        raise ValueError("y_prob contains values outside [0, 1]")
    eps = np.finfo(probs.dtype).eps
    probs = np.clip(probs, eps, 1 - eps)
    onehot = (labels[:, None] == np.arange(num_classes)[None, :]).astype(probs.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = onehot * np.log(probs)
    terms = np.where(onehot == 0.0, np.asarray(0.0, dtype=terms.dtype), terms)
    return float(np.average(-np.sum(terms, axis=1)))


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy-type metrics in %, AUC in [0, 1], ECE in [0, 1], NLL in nats."""
    num_classes = probs.shape[1]
    pred = probs.argmax(1)
    classes = np.arange(num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a split are fine here
        recall, f1 = recall_f1(labels, pred, num_classes)
        present = np.isin(classes, labels)
        return {
            "acc": 100.0 * float((pred == labels).mean()),
            "balanced_acc": 100.0 * float(recall[present].mean()),
            "macro_f1": 100.0 * f1,
            "auc": auc(probs, labels),
            "ece": expected_calibration_error(probs, labels),
            "nll": log_loss(labels, np.clip(probs, 1e-12, 1.0), num_classes),
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
