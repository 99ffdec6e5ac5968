"""The trainer: epoch loop, evaluation on val and test every epoch, metrics, checkpoints.

Outputs of one run (all written atomically, each with a SHA-256 sidecar)::

    metrics.json    headline (mean test accuracy of the last k epochs) and secondary metrics
    per_epoch.csv   the curves: losses, val/test metrics, selection diagnostics per epoch
    test_probs.npz  test-set outputs of the final epoch, with the labels (see below)

The maximum test accuracy over epochs is never reported.

Evaluation view. Val and test metrics follow the spec's ``eval_view`` (one of
:data:`lnm.grid.EVAL_VIEWS`; :mod:`lnm.train.metrics` says which probabilities each view's
AUC/ECE/NLL use): ``softmax_mean`` (harmonized protocol; with one network, the network),
``mean_of_accuracies`` (LNMBench's Co-teaching family: every metric per network, then averaged)
or ``logit_sum`` (LNMBench's DivideMix). Runs with two networks also record every view's test
accuracy per epoch (``test_acc_<view>``, with ``test_acc_<view>_last_k`` in metrics.json) and
each network's (``test_acc_net<i>``, ``test_acc_last_k_per_net``). metrics.json says which view
the headline uses (``eval_view``, ``eval_view_text``) and the precision the networks computed in
(``precision``: ``fp32`` on a CPU even when ``bf16`` was configured, ``precision_configured``).

``test_probs.npz``: ``labels`` (N,); ``logits`` (K, N, C), every network's logits, from which
any view can be recomputed; ``probs`` (N, C), the probabilities of the headline view, or for
``mean_of_accuracies`` (which has none) the softmax mean of the networks; ``probs_view``, the
view ``probs`` belongs to, and ``eval_view``, the headline's; two-network runs also store
``probs_per_net`` (K, N, C), each network's softmax (what ``mean_of_accuracies`` scores).

Resume. While a run trains it keeps, in its folder and outside Snakemake's declared outputs
(so they survive a killed job):

    checkpoint.pt         state after the last finished epoch, with a SHA-256 sidecar
    checkpoint.pt.sha256  verified before the checkpoint is loaded
    checkpoint.log        every line the run logged, over all its attempts

A checkpoint is resumed only if its *resume identity* equals the run's: the canonical spec
digest, the kind of device and the precision the networks compute in (``cpu/fp32``,
``cuda/bf16``: a checkpoint never resumes switching device or precision), the SHA-256 of the
data and noise files and the digest of the code the run executes
(:func:`lnm.codedeps.code_digest` of the train rule's code inputs, or of
:func:`default_code_files`). The checkpoint's RNG states are loaded onto the CPU whatever the
device (torch takes them there); a CPU run neither saves nor touches any CUDA state. A checkpoint of another identity is set aside as
``checkpoint.pt.stale-<UTC time>``, one that fails its checksum or cannot be read as
``checkpoint.pt.corrupt-<UTC time>`` (with its sidecar and ``checkpoint.log``); the log says why
and the run starts from epoch 1. Set-aside files are never resumed; delete them at will.
A resumed run first replays ``checkpoint.log`` into its log (Snakemake deletes a job's log
before it runs), so the log covers every attempt. Epochs are counted from 1 in every log line;
``metrics.json`` records under ``provenance`` the epochs at which the run resumed
(``resumed_at_epochs``), the checkpoints it set aside and the code digest. Checkpoints are
deleted when the run completes unless ``keep_checkpoint``.

One process at a time. A run holds its folder's lock (:data:`RUN_LOCK`, ``flock``) while it
trains; a second process asked to train into the same folder fails at once naming the holder
(PID, host, start time), e.g. when a Snakemake killed with -9 left its jobs running and a new
one starts the same runs.

Determinism (:func:`configure_determinism`, recorded in ``provenance.deterministic``): cuDNN
deterministic without autotuning; on CUDA ``torch.use_deterministic_algorithms(True)`` with
``CUBLAS_WORKSPACE_CONFIG=:4096:8``.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import inspect
import io
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..checksum import ChecksumError, artifact, sidecar, verify, write_bytes, write_text
from ..codedeps import closure, code_digest
from ..gpu import CUBLAS_WORKSPACE, holder_text, read_holder
from ..grid import EVAL_VIEWS, RUN_KEYS, eval_view_text, method_info
from ..methods import get_method
from ..models import build_model
from ..noise.io import load_noise
from .data import TrainData
from .datasource import SharedInputs, open_data
from .metrics import binary_auc, selection_scores, view_accuracy, view_metrics, view_probs
from .provenance import provenance
from .spec import RunSpec, computed_precision

CHECKPOINT = "checkpoint.pt"
ATTEMPT_LOG = "checkpoint.log"
#: Held (``flock``) by the process training into a run folder (:func:`run_folder_lock`).
RUN_LOCK = ".train.lock"
#: The folder above the ``lnm`` package: code paths in the code digest are relative to it, so
#: the digest does not depend on where the repository is cloned.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The parts of a resume identity, in the order the log names them (``compute``: the kind of
#: device and the precision the networks compute in, :func:`compute_identity`).
IDENTITY_PARTS = ("spec", "compute", "data", "noise", "code", "estimate")


def default_code_files(spec: RunSpec) -> list[Path]:
    """The code a run executes outside Snakemake: the trainer's closure plus its method's."""
    pkg = REPO_ROOT / "lnm"
    method = pkg / "methods" / f"{method_info(spec.method_class).module}.py"
    return closure([pkg / "train" / "trainer.py", method], pkg)


def compute_identity(spec: RunSpec, device_type: str) -> str:
    """``<device type>/<precision computed>`` of a run on a device of ``device_type``, e.g.
    ``cpu/fp32`` (CPUs compute in fp32 whatever ``train.precision`` says) or ``cuda/bf16``:
    a checkpoint resumes only where it is the same (never switching precision mid-run)."""
    return f"{device_type}/{computed_precision(spec.precision, device_type)}"


def run_identity(
    spec: RunSpec,
    data_sha256: str,
    noise_sha256: str,
    code_sha256: str,
    estimate_sha256: str | None = None,
    compute: str | None = None,
) -> dict:
    """What a checkpoint must have been written for to be resumed (the estimate file's hash
    only for runs told an estimated noise rate; ``compute``: :func:`compute_identity`)."""
    identity = {"spec": spec.digest(), "data": data_sha256, "noise": noise_sha256}
    if compute is not None:
        identity["compute"] = compute
    identity["code"] = code_sha256
    if estimate_sha256 is not None:
        identity["estimate"] = estimate_sha256
    return identity


def _identity_diff(state: dict, identity: dict, spec: RunSpec) -> str | None:
    """Why a checkpoint's identity is not ``identity`` (None when it is)."""
    old = state.get("identity")
    if not isinstance(old, dict):
        return "it was written without a resume identity (by an older trainer)"
    parts = []
    for key in IDENTITY_PARTS:
        if old.get(key) == identity.get(key):
            continue
        if key == "spec":
            before = state.get("spec") or {}
            fields = sorted(k for k, v in spec.to_dict().items() if before.get(k) != v)
            parts.append(f"spec (differs in: {', '.join(fields) or 'its digest'})")
        elif key == "compute":
            parts.append(f"device/precision (written {old.get(key)}, now {identity.get(key)})")
        else:
            was, now = str(old.get(key))[:12], str(identity.get(key))[:12]
            parts.append(f"{key} (sha256 {was}... now {now}...)")
    return f"it was written for a different {', '.join(parts)}" if parts else None


def _utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def set_aside(ckpt: Path, kind: str, reason: str, log: Callable[[str], None]) -> dict:
    """Rename ``ckpt`` (with its sidecar and attempt log) to ``<name>.<kind>-<UTC time>`` so it
    is never resumed; log why and return a record for metrics.json."""
    stamp, n = _utc_stamp(), 0
    while True:
        suffix = f".{kind}-{stamp}" + (f"-{n}" if n else "")
        target = ckpt.with_name(ckpt.name + suffix)
        if not any(p.exists() for p in (target, sidecar(target))):
            break
        n += 1
    os.replace(ckpt, target)
    if sidecar(ckpt).exists():
        os.replace(sidecar(ckpt), sidecar(target))
    attempt_log = ckpt.with_name(ATTEMPT_LOG)
    if attempt_log.exists():
        os.replace(attempt_log, attempt_log.with_name(attempt_log.name + suffix))
    log(f"set aside {ckpt} as {target.name}: {reason}; the run starts from epoch 1")
    return {"file": target.name, "kind": kind, "reason": reason}


def load_checkpoint(
    ckpt: Path, identity: dict, spec: RunSpec, dev: torch.device, log: Callable[[str], None]
) -> tuple[dict | None, dict | None]:
    """(state, None) for a verified checkpoint of this identity; (None, set-aside record) for a
    corrupt, unreadable or stale one; (None, None) when there is none."""
    if not ckpt.exists():
        return None, None
    try:
        verify(ckpt)
    except ChecksumError as err:
        return None, set_aside(ckpt, "corrupt", f"it failed its checksum ({err.reason})", log)
    try:
        state = _load_to(ckpt, dev)
    except Exception as err:  # any unreadable checkpoint is set aside, whatever the error
        reason = f"it could not be loaded ({type(err).__name__}: {err})"
        return None, set_aside(ckpt, "corrupt", reason, log)
    diff = _identity_diff(state, identity, spec)
    if diff:
        return None, set_aside(ckpt, "stale", diff, log)
    return state, None


def _to_device(obj, dev: torch.device):
    """``obj`` with every tensor in it (through dicts, lists and tuples) moved to ``dev``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(dev)
    if isinstance(obj, dict):
        return type(obj)((k, _to_device(v, dev)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_to_device(v, dev) for v in obj)
    return obj


def _load_to(ckpt: Path, dev: torch.device) -> dict:
    """A checkpoint's state with its tensors on ``dev``, except the RNG states: those stay on
    the CPU, as ``torch.set_rng_state`` / ``torch.cuda.set_rng_state`` take them (loading them
    onto a GPU made every resume on CUDA fail)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or dev.type == "cpu":
        return state
    return {k: v if k == "rng" else _to_device(v, dev) for k, v in state.items()}


class _RunLog:
    """Send each line to ``log`` and append it to the run's attempt log (``checkpoint.log``)."""

    def __init__(self, path: Path, log: Callable[[str], None]):
        self.path, self.log, self.fh = path, log, None

    def open(self, resume: bool) -> None:
        """Resuming: replay the earlier attempts' lines into ``log``, then append; else start a
        new attempt log."""
        if resume and self.path.exists():
            self.log(f"--- earlier attempt(s) of this run, from {self.path} ---")
            for line in self.path.read_text().splitlines():
                self.log(line)
            self.log("--- end of earlier attempt(s) ---")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a" if resume else "w", buffering=1)

    def __call__(self, line: str) -> None:
        if self.fh is not None:
            self.fh.write(line + "\n")
        self.log(line)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def resolve_device(pref: str = "auto") -> torch.device:
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {pref!r} requested but CUDA is not available; use 'auto' or 'cpu'"
        )
    return torch.device(pref)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # (CUDA generators too, lazily: no CUDA call before CUDA is used)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def configure_determinism(dev: torch.device) -> None:
    """Deterministic kernels for a run on ``dev``: cuDNN deterministic without autotuning
    always; on CUDA also ``torch.use_deterministic_algorithms(True)`` (an op without a
    deterministic CUDA kernel raises instead of silently varying) with cuBLAS's deterministic
    workspace (``CUBLAS_WORKSPACE_CONFIG``, set by the GPU pool before CUDA is initialised;
    set here too, before the first cuBLAS call, for runs started without the pool). A CPU run
    leaves deterministic algorithms off (its kernels are deterministic already; the switch only
    adds work there) and makes no CUDA call."""
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(dev.type == "cuda", warn_only=False)


def determinism_record() -> dict:
    """The determinism settings in force (recorded under ``provenance.deterministic``)."""
    return {
        "cudnn.deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn.benchmark": bool(torch.backends.cudnn.benchmark),
        "use_deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "deterministic_warn_only": bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def _rng_state(dev: torch.device) -> dict:
    """Every RNG state a run draws from, on the CPU; the CUDA generator's only for a run on
    CUDA (a CPU run makes no CUDA call: asking would create a context on every GPU)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
    }


def _cpu_bytes(t) -> torch.Tensor:
    return torch.as_tensor(t).to("cpu", torch.uint8)


def _set_rng_state(s: dict, dev: torch.device) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(_cpu_bytes(s["torch"]))  # a CPU ByteTensor, wherever it was loaded
    if s["cuda"] is not None and dev.type == "cuda":
        state = s["cuda"][0] if isinstance(s["cuda"], (list, tuple)) else s["cuda"]
        torch.cuda.set_rng_state(_cpu_bytes(state), dev)


class Outputs(NamedTuple):
    """What the networks predict on a split: ``logits`` (float32) and their softmax
    (``probs``, float64), each of shape (num_nets, N, C)."""

    logits: np.ndarray
    probs: np.ndarray


@torch.no_grad()
def predict_outputs(method, data: TrainData, split: str) -> Outputs:
    """Per-network logits and softmax probabilities of ``split``, from one pass over it (every
    evaluation view is computed from these)."""
    logits, probs = [], []
    for x in data.eval_batches(split):  # kept on the device: one transfer per split, no sync
        z = method.predict_logits(x)
        logits.append(z.float())
        probs.append(torch.softmax(z, -1))
    logits_host, probs_host = torch.cat(logits, 1).cpu(), torch.cat(probs, 1).cpu()
    return Outputs(logits_host.numpy(), probs_host.numpy().astype(np.float64))


def evaluate(method, data: TrainData, view: str | None = None) -> tuple[dict, Outputs]:
    """Val accuracy on noisy and clean labels and test metrics, all of ``view`` (by default
    the spec's ``eval_view``); with several networks also every view's test accuracy and each
    network's. Without clean val labels (``data.val_has_clean`` False, a real-world set) the
    clean-label val accuracy is NaN (n/a), never computed against unknown labels. Returns the
    row and the test outputs."""
    view = view or method.spec.eval_view
    row = {}
    val = predict_outputs(method, data, "val")
    row["val_acc"] = view_accuracy(view, *val, data.labels["val"].cpu().numpy())
    row["val_acc_clean"] = (
        view_accuracy(view, *val, data.labels["val_clean"].cpu().numpy())
        if data.val_has_clean
        else float("nan")
    )
    test = predict_outputs(method, data, "test")
    y = data.labels["test"].cpu().numpy()
    m = view_metrics(view, *test, y)
    row.update({f"test_{k}": v for k, v in m.items() if k != "per_class_recall"})
    row["test_per_class_recall"] = json.dumps([round(r, 4) for r in m["per_class_recall"]])
    if len(test.probs) > 1:
        for v in EVAL_VIEWS:
            row[f"test_acc_{v}"] = view_accuracy(v, *test, y)
        for i, p in enumerate(test.probs):
            row[f"test_acc_net{i}"] = 100.0 * float((p.argmax(1) == y).mean())
    return row, test


def probs_file_arrays(view: str, test: Outputs, labels: np.ndarray) -> dict:
    """The arrays of ``test_probs.npz`` (described in the module docstring)."""
    probs_view = "softmax_mean" if view == "mean_of_accuracies" else view
    arrays = {
        "probs": view_probs(probs_view, *test).astype(np.float32),
        "labels": labels,
        "logits": test.logits.astype(np.float32),
        "eval_view": np.array(view),
        "probs_view": np.array(probs_view),
    }
    if len(test.probs) > 1:
        arrays["probs_per_net"] = test.probs.astype(np.float32)
    return arrays


def _selection_keys(diag: dict) -> list[str]:
    """The sets a method reported as selected (``selected``, ``selected_net<i>``)."""
    return [k for k in diag if k == "selected" or k.startswith("selected_")]


def _unscorable(diag: dict) -> list[str]:
    """The scores a method's reported sets would get: n/a without clean training labels."""
    na = {"clean_ratio", "coverage"} if _selection_keys(diag) else set()
    for key, score in (("T_hat", "t_error"), ("clean_prob", "gmm_auc")):
        if diag.get(key) is not None:
            na.add(score)
    if diag.get("corrected") is not None:
        na.add("purified_ratio")
    return sorted(na)


def _diagnostics(diag: dict, data: TrainData) -> dict:
    """Turn a method's reported sets into scores against the clean mask; keep scalar values.
    Without clean training labels (``data.has_clean`` False) there is nothing to score against:
    only the scalar values are kept (the scores are n/a, never numbers against fake labels)."""
    out = {k: float(v) for k, v in diag.items() if np.isscalar(v)}
    if not data.has_clean:  # the scores the method's sets would get, present and NaN (n/a)
        return {**out, **{k: float("nan") for k in _unscorable(diag)}}
    is_clean = data.is_clean
    if diag.get("T_hat") is not None:  # relative L1 error against the empirical matrix
        t_hat, t = np.asarray(diag["T_hat"], dtype=float), np.nan_to_num(data.transition)
        out["t_error"] = float(np.abs(t_hat - t).sum() / np.abs(t).sum())
    if diag.get("clean_prob") is not None and 0 < is_clean.mean() < 1:
        out["gmm_auc"] = binary_auc(is_clean, np.asarray(diag["clean_prob"]))
    seen = diag.get("seen")
    seen = np.ones_like(is_clean) if seen is None else np.asarray(seen, dtype=bool)
    for key in _selection_keys(diag):
        suffix = key[len("selected") :]
        scores = selection_scores(np.asarray(diag[key], dtype=bool), seen, is_clean)
        out.update({f"{k}{suffix}": v for k, v in scores.items()})
    for score in ("clean_ratio", "coverage"):  # two-net methods: the mean over their nets
        per_net = [v for k, v in out.items() if k.startswith(f"{score}_net")]
        if score not in out and per_net:
            out[score] = float(np.mean(per_net))
    if diag.get("corrected") is not None:
        idx, new = (np.asarray(a) for a in diag["corrected"])
        clean = data.train_clean_labels[idx]
        out["purified_ratio"] = 100.0 * float((new == clean).mean()) if len(idx) else float("nan")
        out["corrected_frac"] = 100.0 * len(idx) / len(is_clean)
    return out


def _finite(obj):
    """JSON-safe copy: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


class EpochTable:
    """The per-epoch rows (one dict per epoch) as the columns ``pandas.DataFrame(rows)`` holds:
    every key in order of first appearance, NaN where a row lacks it. :meth:`write_csv` writes
    them as ``DataFrame.to_csv(index=False, float_format="%.6g")`` does, byte for byte, without
    importing pandas (rows of int, float and str values; anything else goes through pandas)."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.columns = list(dict.fromkeys(k for row in rows for k in row))
        self._names = set(self.columns)

    def __contains__(self, col: str) -> bool:
        return col in self._names

    def __iter__(self):
        return iter(self.columns)

    def __getitem__(self, col: str) -> list:
        return [row.get(col, float("nan")) for row in self.rows]

    @staticmethod
    def _cells(values: list) -> list[str] | None:
        """The CSV cells of a column as pandas writes them (None: a column pandas must write):
        ints -> ``str``; numbers with a float or a missing value -> float64, ``%.6g`` and "" for
        NaN; strings (missing ones NaN) -> as they are, "" for NaN."""
        kinds = {type(v) for v in values}
        if kinds == {int}:
            return [str(v) for v in values]
        if kinds <= {int, float} and float in kinds:
            fmt = "%.6g"  # pandas applies float_format with %
            return ["" if v != v else fmt % float(v) for v in values]
        if kinds <= {str, float} and str in kinds:
            if all(isinstance(v, str) or v != v for v in values):
                return [v if isinstance(v, str) else "" for v in values]
        return None

    def write_csv(self, path, drop: Iterable[str] = ()) -> None:
        cols = [c for c in self.columns if c not in set(drop)]
        cells = [self._cells(self[c]) for c in cols]
        if any(c is None for c in cells):
            import pandas as pd  # a value type the light writer does not know

            pd.DataFrame(self.rows).drop(columns=[c for c in drop if c in self]).to_csv(
                path, index=False, float_format="%.6g"
            )
            return
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator=os.linesep)
            writer.writerow(cols)
            writer.writerows(zip(*cells))


def _last_k_mean(history: EpochTable, col: str, k: int) -> float | None:
    """The mean of the last ``k`` values of ``col`` without its NaNs (None: no such column or
    only NaNs); pandas' ``Series.mean`` arithmetic (NaNs summed as 0, divided by the count)."""
    if col not in history:
        return None
    vals = np.array(history[col][-k:], dtype=np.float64)
    missing = np.isnan(vals)
    if missing.all():
        return None
    vals[missing] = 0
    return float(vals.sum(None, dtype=np.float64) / np.float64(missing.size - missing.sum()))


def summarize(
    spec: RunSpec, history: EpochTable, noise: dict, inputs: dict, method, dev: torch.device
) -> dict:
    k = spec.last_k  # <= epochs (checked when the run starts)
    # the first epoch with the best noisy-val accuracy
    best = int(np.array(history["val_acc"], dtype=np.float64).argmax())
    recalls = np.array([json.loads(r) for r in history["test_per_class_recall"][-k:]])
    sel = {
        c: _last_k_mean(history, c, k)
        for c in ("clean_ratio", "coverage", "purified_ratio", "t_error", "gmm_auc")
    }
    if not noise["has_clean"]:  # reported by the method, unscorable without clean labels
        sel = {c: "n/a" if c in history else v for c, v in sel.items()}
    out = {
        "run": {f: getattr(spec, f) for f in RUN_KEYS},
        # unknown without clean labels (real-world noise): null, never a guess
        "identifiable": bool(noise["identifiable"]) if noise["has_clean"] else None,
        "num_classes": method.num_classes,
        "num_test": int(len(method.data.labels["test"])),
        "has_clean_labels": bool(noise["has_clean"]),
        # several annotators per training image (a csv set): 1 - mean share agreeing with the
        # majority vote (None: one label per image)
        "annotator_disagreement": (
            float(noise["annotator_disagreement"]) if "annotator_disagreement" in noise else None
        ),
        "noise_rate_realised": float(noise["realised_rate"]),
        "noise_rate_realised_val": float(noise["realised_rate_val"]),
        "noise_generation": {"noisy_val": bool(noise["noisy_val"]), "std": float(noise["std"])},
        "last_k": k,
        "eval_view": spec.eval_view,
        "eval_view_text": eval_view_text(spec.eval_view, method.num_nets),
        "precision": method.precision,
        "compile": spec.compile,
        "precision_configured": spec.precision,
        "test_acc_last_k": _last_k_mean(history, "test_acc", k),
        "test_acc_best_val": float(history["test_acc"][best]),
        "best_val_epoch": best,
        "val_acc_last_k": _last_k_mean(history, "val_acc", k),
        **{
            f"{m}_last_k": _last_k_mean(history, f"test_{m}", k)
            for m in ("balanced_acc", "macro_f1", "auc", "ece", "nll")
        },
        "per_class_recall_last_k": recalls.mean(0).tolist(),
        "selection": sel,
        "assumed_noise_rate": method.assumed_noise_rate,
        "uses_true_noise_rate": method.uses_true_noise_rate,
        "noise_rate_source": method.noise_rate_source,
        "spec": spec.to_dict(),
        "inputs": inputs,
        "provenance": provenance(dev),
    }
    nets = [c for c in history if c.startswith("test_acc_net")]
    if nets:
        out["test_acc_last_k_per_net"] = [_last_k_mean(history, c, k) for c in sorted(nets)]
        for v in EVAL_VIEWS:
            out[f"test_acc_{v}_last_k"] = _last_k_mean(history, f"test_acc_{v}", k)
    return out


def _hash_inputs(
    spec: RunSpec, data_path, noise_path, estimate_path, shared: SharedInputs | None
) -> tuple[dict, dict | None]:
    """The run's input files with their SHA-256 (for metrics.json) and the cell's noise
    estimate (None: not given), after checking ``last_k`` against ``epochs``."""
    if not 1 <= spec.last_k <= spec.epochs:
        raise ValueError(
            f"last_k = {spec.last_k} must be between 1 and epochs = {spec.epochs}: the headline "
            "averages the last last_k epochs"
        )
    check = verify if shared is None else shared.verify
    inputs = {
        k: {"path": str(p), "sha256": check(p)}
        for k, p in (("data", data_path), ("noise", noise_path))
    }
    if estimate_path is None:
        return inputs, None
    # the cell's noise estimate: forget_rate: estimated
    inputs["estimate"] = {"path": str(estimate_path), "sha256": check(estimate_path)}
    return inputs, load_noise(estimate_path, check=False)


def _run_noise(spec: RunSpec, noise_path, data_path, data_sha256: str, inputs: dict) -> dict:
    """The noise file, checked to be the spec's (pattern, rate, noise seed); an
    ``instance_classifier`` file adds the classifier that drew its flips to ``inputs``."""
    noise = load_noise(noise_path, check=False, data_path=data_path, data_sha256=data_sha256)
    for key, want in (
        ("pattern", spec.noise),
        ("rate", spec.rate),
        ("noise_seed", spec.noise_seed),
    ):
        if noise[key] != want:
            raise ValueError(
                f"{noise_path}: noise file has {key}={noise[key]!r}, run expects {want!r}"
            )
    if "generator_sha256" in noise:
        inputs["generator"] = {
            "sha256": str(noise["generator_sha256"]),
            "logits_sha256": str(noise["generator_logits_sha256"]),
        }
    return noise


def _data_and_method(
    spec: RunSpec, data_path, noise: dict, dev: torch.device, estimate: dict | None, **options
) -> tuple[TrainData, object]:
    """The run's data (:func:`open_data` with ``options``) and its method, with deterministic
    kernels and every RNG seeded by the spec first."""
    configure_determinism(dev)
    seed_everything(spec.seed)
    data = open_data(
        data_path, noise, dev, spec.augment, spec.batch_size, spec.drop_last, **options
    )
    data.noise_estimate = estimate  # forget_rate: estimated reads it (None: not given)
    factory = functools.partial(
        build_model, spec.backbone, int(data.in_chans), data.num_classes, spec.size,
        spec.pretrained,
    )  # fmt: skip
    return data, get_method(spec.method_class)(spec, factory, data.num_classes, dev, data)


@dataclass
class _Run:
    """A run being trained: its method and data, where it stands (the per-epoch rows, the
    first epoch still to train, the epochs it resumed at, the checkpoints it set aside) and
    what its checkpoints and outputs record."""

    spec: RunSpec
    out_dir: Path
    dev: torch.device
    identity: dict
    data: TrainData
    method: object
    log: _RunLog
    history: list[dict] = field(default_factory=list)
    start: int = 0
    resumed_at: list[int] = field(default_factory=list)
    set_aside: list[dict] = field(default_factory=list)

    def resume(self, state: dict | None, record: dict | None) -> None:
        """Take up a loaded checkpoint's state (or note the one set aside)."""
        if state is None:
            self.set_aside = [] if record is None else [record]
            return
        self.method.load_state_dict(state["method"])
        _set_rng_state(state["rng"], self.dev)
        self.history, self.start = state["history"], state["epoch"] + 1
        self.resumed_at = [*state.get("resumed_at_epochs", []), self.start + 1]
        self.set_aside = list(state.get("checkpoints_set_aside", []))
        start, epochs = self.start, self.spec.epochs
        self.log(
            f"resuming {self.out_dir} after epoch {start}/{epochs} "
            + (
                f"(epochs 1-{start} restored from {CHECKPOINT}), at epoch {start + 1}/{epochs}"
                if start < epochs
                else "(every epoch restored from the checkpoint; writing the outputs)"
            )
        )

    def train(self) -> Outputs:
        """Train the epochs still to train, each logged and checkpointed; the test outputs of
        the last epoch."""
        spec, method, data, test = self.spec, self.method, self.data, None
        for epoch in range(self.start, spec.epochs):
            t0 = time.perf_counter()
            method.start_epoch(epoch)
            diag = method.train_epoch(epoch, data.epoch_batches(spec.seed, epoch))
            row = {"epoch": epoch, **_diagnostics(diag, data)}  # per_epoch.csv: 0-based index
            ev, test = evaluate(method, data)
            row.update(ev, seconds=time.perf_counter() - t0)
            self.history.append(row)
            self.log(self._epoch_line(epoch, row))
            self._checkpoint(epoch)
        if test is None:  # resumed after the last epoch had already been checkpointed
            test = predict_outputs(method, data, "test")
        return test

    def _epoch_line(self, epoch: int, row: dict) -> str:
        spec, loss = self.spec, row.get("train_loss", float("nan"))
        if np.isfinite(loss):
            loss_text = f"loss {loss:.4f}"
        else:  # the method made no parameter update in this epoch (a NaN mean of no losses)
            idle = sum(not np.isfinite(r.get("train_loss", float("nan"))) for r in self.history)
            loss_text = f"no update ({idle} of {epoch + 1} epochs without one)"
        return (
            f"[{spec.method} {spec.dataset} {spec.noise}-{spec.rate} s{spec.seed}] epoch "
            f"{epoch + 1}/{spec.epochs} {loss_text} "
            f"val {row['val_acc']:.2f} test {row['test_acc']:.2f} ({row['seconds']:.1f}s)"
        )

    def _checkpoint(self, epoch: int) -> None:
        """The state after ``epoch``, written atomically with its SHA-256 sidecar."""
        state = {
            "epoch": epoch,
            "spec": self.spec.to_dict(),
            "identity": self.identity,
            "method": self.method.state_dict(),
            "rng": _rng_state(self.dev),
            "history": self.history,
            "resumed_at_epochs": self.resumed_at,
            "checkpoints_set_aside": self.set_aside,
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        write_bytes(self.out_dir / CHECKPOINT, buf.getvalue())

    def write_outputs(self, test: Outputs, noise: dict, inputs: dict) -> dict:
        """metrics.json, per_epoch.csv and test_probs.npz, each atomically with its sidecar;
        returns the metrics."""
        table = EpochTable(self.history)
        metrics = summarize(self.spec, table, noise, inputs, self.method, self.dev)
        prov = metrics["provenance"]
        prov.update(
            code_sha256=self.identity["code"],
            resumed_at_epochs=self.resumed_at,
            checkpoints_set_aside=self.set_aside,
        )
        prov.setdefault("deterministic", {})["bf16_autocast"] = self.method.precision == "bf16"
        prov["deterministic"].update(determinism_record())
        prov["compute"] = self.identity["compute"]
        with artifact(self.out_dir / "per_epoch.csv") as tmp:
            table.write_csv(tmp, drop=["seconds"])
        buf = io.BytesIO()
        labels = self.data.labels["test"].cpu().numpy()
        np.savez_compressed(buf, **probs_file_arrays(self.spec.eval_view, test, labels))
        write_bytes(self.out_dir / "test_probs.npz", buf.getvalue())
        text = json.dumps(_finite(metrics), indent=2, sort_keys=True, allow_nan=False)
        write_text(self.out_dir / "metrics.json", text + "\n")
        return metrics


def _train_run(
    spec: RunSpec,
    data_path: str | Path,
    noise_path: str | Path,
    out_dir: str | Path,
    device: str = "auto",
    threads: int = 1,
    keep_checkpoint: bool = False,
    log: Callable[[str], None] | None = None,
    code_files: Iterable[str | Path] | None = None,
    stream: str = "auto",
    memory_budget_mb: int | None = None,
    estimate_path: str | Path | None = None,
    shared: SharedInputs | None = None,
) -> dict:
    """Train one run and write its outputs; resume from ``out_dir/checkpoint.pt`` when it is
    intact and has this run's resume identity (else set it aside and start fresh).

    ``estimate_path``: the cell's noise estimate (lnm.noise.estimate), for methods told an
    estimated noise rate (``forget_rate: estimated``); part of the resume identity.

    ``stream`` / ``memory_budget_mb``: whether the images are held on the device or streamed
    from the HDF5 file (:func:`lnm.train.data.open_data`; the same batches either way, so
    neither is part of the run's identity).

    ``code_files``: the code the run executes (the train rule passes its code inputs); by
    default :func:`default_code_files`.

    ``shared``: what this run may share with the other runs of the process (input hashes, the
    images held on the device; :func:`lnm.train.pack.train_runs`). The result is the same.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    inputs, estimate = _hash_inputs(spec, data_path, noise_path, estimate_path, shared)
    code_files = default_code_files(spec) if code_files is None else list(code_files)
    dev = resolve_device(device)
    data_sha = inputs["data"]["sha256"]
    identity = run_identity(
        spec,
        data_sha,
        inputs["noise"]["sha256"],
        code_digest(code_files, REPO_ROOT),
        inputs.get("estimate", {}).get("sha256"),
        compute=compute_identity(spec, dev.type),
    )
    noise = _run_noise(spec, noise_path, data_path, data_sha, inputs)
    if dev.type == "cpu":
        torch.set_num_threads(max(1, int(threads)))
    notes: list[str] = []  # said before the attempt log is open; copied into it
    budget = None if memory_budget_mb is None else int(memory_budget_mb) << 20
    data, method = _data_and_method(
        spec, data_path, noise, dev, estimate, log=notes.append, stream=stream,
        memory_budget_bytes=budget, shared=shared, sha256=data_sha,
    )  # fmt: skip
    state, record = load_checkpoint(out_dir / CHECKPOINT, identity, spec, dev, notes.append)
    run_log = _RunLog(out_dir / ATTEMPT_LOG, log)
    run_log.open(resume=state is not None)
    try:
        for line in notes:
            run_log(line)
        run = _Run(spec, out_dir, dev, identity, data, method, run_log)
        run.resume(state, record)
        metrics = run.write_outputs(run.train(), noise, inputs)
    finally:
        run_log.close()
        if hasattr(data, "close"):  # streamed data: its file handle, now rather than at exit
            data.close()
    if not keep_checkpoint:
        remove_checkpoint(out_dir)
    return metrics


@functools.wraps(_train_run)
def train_run(*args, **kwargs) -> dict:
    out_dir = inspect.signature(_train_run).bind(*args, **kwargs).arguments["out_dir"]
    with run_folder_lock(Path(out_dir)):
        return _train_run(*args, **kwargs)


class RunFolderBusy(RuntimeError):
    """Another process is training into the run folder."""


@contextlib.contextmanager
def run_folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s :data:`RUN_LOCK` (``flock``, released by the kernel when the holder
    dies) while a run trains into it; a second process finds it held and raises
    :class:`RunFolderBusy` naming the holder (PID, host, start) instead of training into the
    same folder at the same time (e.g. a job of a Snakemake killed with -9, still running,
    and the same run started by a new Snakemake). The file is removed when the run ends, and a
    folder this made is removed again if the run left nothing in it (a run refused before any
    work leaves no folder behind)."""
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RUN_LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderBusy(
                f"{out_dir} is being trained by another process ({read_holder(path)}), e.g. a "
                "job of an earlier Snakemake that was killed while its jobs went on: let it "
                "finish or end it, then rerun; this job does not train into the same folder "
                "at the same time"
            ) from None
        try:  # its last holder may have removed the file between our open and our lock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder_text() + "\n").encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        if made:
            with contextlib.suppress(OSError):  # not empty: the run wrote something
                out_dir.rmdir()
        os.close(fd)


def remove_checkpoint(out_dir: str | Path) -> None:
    """Delete a run's checkpoint, its sidecar and its attempt log (what a completed run keeps
    only with ``keep_checkpoint``)."""
    ckpt = Path(out_dir) / CHECKPOINT
    for path in (ckpt, sidecar(ckpt), ckpt.with_name(ATTEMPT_LOG)):
        path.unlink(missing_ok=True)
