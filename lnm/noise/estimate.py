"""The noise-estimation stage: a noise file's rate and transition matrix estimated from its
*noisy* train labels alone (no oracle), and the samples it flags as mislabelled.

Method: confident learning (Northcutt et al., JAIR 2021) as implemented by ``cleanlab``, on
out-of-fold predicted probabilities:

1. **Out-of-fold probabilities.** k-fold cross-fitting of a cross-entropy classifier on the noisy
   train labels (:func:`lnm.noise.classifier.crossfit_logits`, the generator's training code:
   stratified folds of the *noisy* labels, one model per fold trained on the other folds with
   the generator's recipe, i.e. SGD with Nesterov momentum 0.9, weight decay 5e-4, per-epoch
   cosine schedule, random crop (padding 4) + horizontal flip, full batches only; deterministic
   on a CPU). ``oof_probs`` = softmax of each sample's logits from the model that did not see
   it, stored as float32; everything below is computed from the stored float32 array, so it can
   be recomputed from the file (:func:`estimate_from_probs`).
2. **Joint.** ``estimated_joint = cleanlab.count.estimate_joint(noisy, oof_probs)``: the
   calibrated confident joint (:func:`cleanlab.count.compute_confident_joint` with
   ``calibrate=True``: per-class thresholds = mean self-confidence of the samples given that
   label; rows rescaled to the noisy label counts and rounded preserving row totals) divided by
   N. **Orientation (cleanlab's, pinned for cleanlab 2.x):** ``estimated_joint[i, j] =
   P(given = i, true = j)``: rows are the *given (noisy)* label, columns the *true* label; rows
   sum to the noisy-label frequencies, the whole to 1.
3. **Rate.** ``estimated_rate = 1 - trace(estimated_joint)`` (the estimated fraction of wrong
   train labels; a multiple of 1/N because the calibrated joint holds integer counts).
4. **Transition.** ``estimated_transition[i, j] = P(noisy = j | true = i) =
   estimated_joint[j, i] / sum_k estimated_joint[k, i]``: *our* orientation (rows = true class,
   row-stochastic, like the noise file's ``transition``), i.e. cleanlab's joint transposed and
   row-normalised. A class the joint gives no mass as a true class gets a NaN row (as
   :func:`lnm.noise.matrix.empirical_transition` does for a class without samples).
5. **Label issues.** ``label_issues = cleanlab.filter.find_label_issues(noisy, oof_probs,
   n_jobs=1)`` (default ``filter_by="prune_by_noise_rate"``, ``frac_noise=1``,
   ``min_examples_per_class=1``; ``n_jobs=1``: no process pool, same result), a boolean mask over
   the train samples; ``num_label_issues`` its count. It is not ``estimated_rate * N`` in general
   (cleanlab drops flagged samples whose predicted class is the given one, and keeps at least
   one sample per class).

Scores against the truth, where the noise file's clean train labels are all known
(``has_clean``; else every one of them is NaN, never computed against stand-in labels):
``true_rate`` (the noise file's ``realised_rate``: 1 - mean(noisy == clean)), ``rate_error =
estimated_rate - true_rate``, ``transition_error = sum|T_hat - T| / sum|T|`` (entrywise L1,
relative; ``T`` = the noise file's empirical ``transition``, over the rows it has, i.e. classes
with train samples) and the detection scores of the flagged set, in percent like the trainer's
selection scores: ``issue_precision`` (share of flagged samples that are truly mislabelled; NaN
when nothing is flagged), ``issue_recall`` (share of mislabelled samples flagged; NaN when no
sample is mislabelled, e.g. noise ``none``), and for the trusted set (= not flagged)
``clean_ratio`` and ``coverage`` from :func:`lnm.train.metrics.selection_scores` with every
sample seen, exactly as the trainer scores the selection methods' trusted sets.

The estimate file (:func:`estimate_noise`; a deterministic ``.npz`` of
:func:`lnm.noise.io.save_noise`, written atomically with a SHA-256 sidecar; same inputs and
settings, same bytes): the keys above and ``oof_probs`` (N, C) float32, ``fold`` (N,) int64,
``has_clean`` (copied from the noise file), ``oof_accuracy`` (accuracy of ``oof_probs`` on the
noisy labels) and ``oof_clean_accuracy`` (on the clean labels; NaN without them),
``noise_sha256``, ``data_sha256``, ``noise_pattern`` / ``noise_rate`` / ``noise_seed`` (the
noise file's ``pattern`` / ``rate`` / ``noise_seed``), ``dataset``, ``size``, ``num_classes``,
the training configuration scalars (``folds``, ``backbone``, ``pretrained``, ``epochs``,
``batch_size``, ``lr``, ``seed`` and the fixed ``momentum``, ``weight_decay``, ``schedule``,
``crop_padding``, ``hflip``) and ``cleanlab_version``.

Reliability (:mod:`lnm.noise.reliability`; computed from the file, never stored in it, so
estimate files and the runs told them are unchanged; logged with the estimate): the estimate is marked *unreliable* when
the estimator cannot be told from always predicting the majority class of the noisy labels —
the Wilson 95 % interval of its out-of-fold accuracy over the N train labels reaches down to
(or below) the noisy labels' majority-class share. A predictor that ignores the image scores at
most that share on the same labels; confident learning reads label errors off where the
out-of-fold probabilities disagree with the given labels, so if those probabilities cannot be
shown to carry information beyond the class prior, the disagreements are the estimator's own
errors and the estimated rate measures the estimator, not the labels (a clean cell estimated at
0.28). The test is necessary, not sufficient: an estimator above the majority class can still
misestimate, which is why its out-of-fold accuracy (and, with clean labels, its accuracy on
them) is printed beside every estimate.

Caveats: confident learning is consistent when the probabilities are good estimates of
P(noisy label | x); a weak classifier (few epochs, small data) miscounts, so a cell without
noise does not estimate exactly 0 (its OOF errors are counted as label issues) and a high rate
may be under-estimated. Instance-dependent noise violates its class-conditional assumption.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from ..checksum import verify
from ..grid import ESTIMATE_TRUTH_KEYS
from .classifier import DEFAULTS as CLASSIFIER_DEFAULTS
from .classifier import (
    _accuracy,
    check_config,
    crossfit_logits,
    deterministic,
    device_images,
    model_setup,
)
from .io import check_drawn_on, load_noise, save_noise
from .matrix import empirical_transition
from .reliability import estimator_reliability, reliability_text
from .spec import NoiseError, check_labels

#: the estimation settings of :func:`estimate_noise` (the config's ``estimation`` section)
DEFAULTS = {
    k: CLASSIFIER_DEFAULTS[k]
    for k in ("folds", "backbone", "pretrained", "epochs", "batch_size", "lr", "seed")
}
#: keys of the truth scores, NaN where the clean train labels are unknown
TRUTH_KEYS = ESTIMATE_TRUTH_KEYS
#: keys every estimate file has (checked by :func:`load_estimate`)
REQUIRED = (
    "oof_probs",
    "fold",
    "estimated_rate",
    "estimated_joint",
    "estimated_transition",
    "label_issues",
    "num_label_issues",
    "has_clean",
    *TRUTH_KEYS,
    "noise_sha256",
    "data_sha256",
    "cleanlab_version",
)
NAN = float("nan")


def transition_from_joint(joint) -> np.ndarray:
    """``T[i, j] = P(noisy = j | true = i)`` from cleanlab's ``joint[i, j] = P(given = i, true =
    j)``: the transpose, row-normalised; a true class without mass gets a NaN row."""
    jt = np.asarray(joint, dtype=np.float64).T
    rows = jt.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, jt / np.where(rows > 0, rows, 1.0), np.nan)


def relative_l1(estimate, truth) -> float:
    """``sum|estimate - truth| / sum|truth|`` over the rows of ``truth`` without NaN (NaN if it
    has none, or where ``estimate`` is NaN in those rows)."""
    est, tru = np.asarray(estimate, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    rows = np.isfinite(tru).all(axis=1)
    denom = float(np.abs(tru[rows]).sum())
    if not rows.any() or denom == 0:
        return NAN
    return float(np.abs(est[rows] - tru[rows]).sum() / denom)


def detection_scores(flagged, is_clean) -> dict:
    """Scores (%) of a flagged set (the samples called mislabelled) against the clean mask:
    ``issue_precision`` = flagged & wrong / flagged (NaN if nothing is flagged), ``issue_recall``
    = flagged & wrong / wrong (NaN if nothing is wrong), and ``clean_ratio`` / ``coverage`` of
    the trusted set (= not flagged) from :func:`lnm.train.metrics.selection_scores` (every
    sample seen)."""
    from ..train.metrics import selection_scores

    flagged, is_clean = np.asarray(flagged, dtype=bool), np.asarray(is_clean, dtype=bool)
    if flagged.shape != is_clean.shape or flagged.ndim != 1:
        raise NoiseError(f"flagged {flagged.shape} and clean {is_clean.shape} masks differ")
    hits, n_flagged = int((flagged & ~is_clean).sum()), int(flagged.sum())
    n_wrong = int((~is_clean).sum())
    trusted = selection_scores(~flagged, np.ones_like(flagged), is_clean)
    return {
        "issue_precision": 100.0 * hits / n_flagged if n_flagged else NAN,
        "issue_recall": 100.0 * hits / n_wrong if n_wrong else NAN,
        "clean_ratio": trusted["clean_ratio"],
        "coverage": trusted["coverage"],
    }


def estimate_from_probs(noisy_labels, oof_probs, clean_labels=None, transition=None) -> dict:
    """Confident-learning estimates (module docstring, steps 2-5) from out-of-fold
    probabilities ``oof_probs`` (N, C) of the ``noisy_labels`` (N,), and the truth scores.

    ``clean_labels``: the clean train labels (all known), or None (then ``has_clean`` is False
    and :data:`TRUTH_KEYS` are NaN). ``transition``: the true ``P(noisy = j | clean = i)``
    (default: the empirical one of ``clean_labels`` and ``noisy_labels``). Deterministic.
    """
    import cleanlab
    from cleanlab.count import estimate_joint
    from cleanlab.filter import find_label_issues

    probs = np.asarray(oof_probs)
    if probs.ndim != 2 or probs.shape[1] < 2 or not np.issubdtype(probs.dtype, np.floating):
        raise NoiseError(f"oof_probs: expected an (N, C >= 2) float array, got {probs.shape}")
    n, c = probs.shape
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise NoiseError("oof_probs: every probability must be finite and in [0, 1]")
    noisy = check_labels(noisy_labels, c, "noisy labels")
    if len(noisy) != n:
        raise NoiseError(f"{len(noisy)} noisy labels but {n} rows of probabilities")
    joint = np.asarray(estimate_joint(noisy, probs), dtype=np.float64)
    issues = np.asarray(find_label_issues(noisy, probs, n_jobs=1), dtype=bool)
    out = {
        "estimated_rate": float(1.0 - np.trace(joint)),
        "estimated_joint": joint,
        "estimated_transition": transition_from_joint(joint),
        "label_issues": issues,
        "num_label_issues": int(issues.sum()),
        "has_clean": clean_labels is not None,
        "oof_accuracy": _accuracy(probs, noisy),
        "cleanlab_version": str(cleanlab.__version__),
    }
    if clean_labels is None:
        return {**out, **dict.fromkeys(TRUTH_KEYS, NAN), "oof_clean_accuracy": NAN}
    clean = check_labels(clean_labels, c, "clean labels")
    if len(clean) != n:
        raise NoiseError(f"{len(clean)} clean labels but {n} noisy labels")
    T = empirical_transition(clean, noisy, c) if transition is None else np.asarray(transition)
    if T.shape != (c, c):
        raise NoiseError(f"transition of shape {T.shape}; expected {(c, c)}")
    is_clean = noisy == clean
    true_rate = float(1.0 - is_clean.mean()) if n else NAN  # = the noise file's realised_rate
    return {
        **out,
        "true_rate": true_rate,
        "rate_error": out["estimated_rate"] - true_rate,
        "transition_error": relative_l1(out["estimated_transition"], T),
        **detection_scores(issues, is_clean),
        "oof_clean_accuracy": _accuracy(probs, clean),
    }


def _softmax32(logits: np.ndarray) -> np.ndarray:
    from ..train.metrics import softmax

    return softmax(logits).astype(np.float32)


def estimate_noise(
    h5_path,
    noise_path,
    out_path,
    *,
    device: str = "cpu",
    threads: int = 1,
    log: Callable[[str], None] = print,
    **settings,
) -> dict:
    """Estimate the noise of the noise file ``noise_path`` (drawn for the HDF5 ``h5_path``) from
    its noisy train labels; write the estimate file ``out_path`` (module docstring) and return
    its dict (python scalars, numpy arrays).

    ``settings``: keys of :data:`DEFAULTS` (the others keep their default), validated before
    anything is read; both inputs are verified against their
    SHA-256 sidecars. A noise file of another data file is refused: one that records a
    ``data_sha256`` other than the HDF5's, or whose train split differs from the HDF5's (length,
    or recorded clean labels other than the HDF5's ``/train/labels``). Works on real-world
    files (noisy labels as given; without all clean train labels the truth scores are NaN).
    ``device``/``threads``: as for the generator (a CPU run is deterministic; the caller's
    global RNG and thread count are restored).
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"estimate_noise: no setting {unknown}; allowed: {', '.join(DEFAULTS)}")
    cfg = check_config("estimator", **settings)
    with deterministic(device, threads) as dev:
        return _estimate_noise(h5_path, noise_path, out_path, cfg, dev, log)


def _read_inputs(h5_path, noise_path):
    from ..data.hdf5 import load_h5

    data_sha256 = verify(h5_path)
    noise_sha256 = verify(noise_path)
    noise = load_noise(noise_path, check=False)
    missing = [k for k in ("train_noisy", "train_clean", "has_clean") if k not in noise]
    if missing:
        raise NoiseError(f"{noise_path}: not a noise file (lacks {', '.join(missing)})")
    check_drawn_on(noise, noise_path, h5_path, data_sha256)  # the data file it was drawn on
    data = load_h5(h5_path, check=False, image_splits=("train",))
    h5_labels = np.asarray(data.labels["train"], dtype=np.int64)
    noisy, clean = np.asarray(noise["train_noisy"]), np.asarray(noise["train_clean"])
    if len(noisy) != len(h5_labels) or not np.array_equal(clean, h5_labels):
        raise NoiseError(
            f"{noise_path}: its {len(noisy)} train labels (and their clean labels) are not those "
            f"of {h5_path} ({len(h5_labels)} train samples); the noise file was drawn for "
            "another data file"
        )
    return data, noise, data_sha256, noise_sha256


def _estimate_noise(h5_path, noise_path, out_path, cfg: dict, dev, log) -> dict:
    started = time.perf_counter()
    data, noise, data_sha256, noise_sha256 = _read_inputs(h5_path, noise_path)
    attrs, c = data.attrs, data.num_classes
    noisy = check_labels(noise["train_noisy"], c, f"{noise_path}: train_noisy")
    has_clean = bool(noise["has_clean"])
    threads = f", {torch.get_num_threads()} threads" if dev.type == "cpu" else ""
    train_cfg = {k: v for k, v in cfg.items() if k != "fit_on"}
    log(
        f"estimator of {noise_path} ({noise.get('pattern')} {noise.get('rate')}, "
        f"{len(noisy)} train labels) on {h5_path}, {dev}{threads}: {train_cfg}"
    )
    images = device_images(data.images["train"], dev)
    del data
    make_model, augmenter = model_setup(attrs, c, cfg, dev)
    fit = crossfit_logits(images, noisy, c, cfg, make_model, augmenter, log, what="estimator")
    del images
    oof_probs = _softmax32(fit["train_logits"])
    est = estimate_from_probs(
        noisy,
        oof_probs,
        noise["train_clean"] if has_clean else None,
        noise.get("transition") if has_clean else None,
    )
    result = {
        **train_cfg,
        **est,
        "oof_probs": oof_probs,
        "fold": fit["fold"],
        "noise_sha256": noise_sha256,
        "data_sha256": data_sha256,
        "noise_pattern": str(noise.get("pattern", "")),
        "noise_rate": float(noise.get("rate", NAN)),
        "noise_seed": int(noise.get("noise_seed", -1)),
        "dataset": str(attrs.get("dataset", "")),
        "size": int(attrs["size"]),
        "num_classes": c,
    }
    save_noise(out_path, result)
    truth = (
        f"true {result['true_rate']:.4f}, error {result['rate_error']:+.4f}; "
        f"{result['num_label_issues']} label issues: precision "
        f"{result['issue_precision']:.1f}%, recall {result['issue_recall']:.1f}%"
        if has_clean
        else f"true rate unknown; {result['num_label_issues']} label issues"
    )
    rel = estimator_reliability(result["oof_accuracy"], np.bincount(noisy, minlength=c))
    rel["oof_clean_accuracy"] = result["oof_clean_accuracy"]
    verdict = (
        " UNRELIABLE: the estimator cannot be told from always predicting the majority class, "
        "so the estimate counts its own errors as label noise."
        if rel["unreliable"]
        else ""
    )
    log(
        f"estimator: {reliability_text(rel)}; estimated rate {result['estimated_rate']:.4f} "
        f"({truth}); {time.perf_counter() - started:.1f}s.{verdict}"
    )
    return result


def load_estimate(path) -> dict:
    """The verified estimate file ``path`` (:func:`estimate_noise`); 0-d entries come back as
    python scalars."""
    verify(path)
    est = load_noise(path, check=False)
    missing = [k for k in REQUIRED if k not in est]
    if missing:
        raise NoiseError(f"{path}: not a noise-estimate file (lacks {', '.join(missing)})")
    return est
