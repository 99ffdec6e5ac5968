"""The generator classifier of LNMBench's classifier-based instance noise (``instance_classifier``).

LNMBench (reference-protocol §2.2) takes each sample's flip-target distribution from the softmax,
true class masked, of a trained ResNet-50 whose weights were never released. Here the generator
is trained by its own workflow step on the dataset's *clean* labels, reproducibly (fixed seeds,
deterministic on a CPU), and its weights and logits are checksummed artifacts that every noise
file drawn from them records (``generator_sha256``, ``generator_logits_sha256``).

Which labels train it (``fit_on``):

- ``crossfit`` (default): stratified ``folds``-fold split of the train split
  (:func:`fold_assignment`); fold model ``k`` is trained on the other folds, and the train logits
  of the samples of fold ``k`` are its logits (out-of-fold: no sample's flips come from a model
  that saw it). Val logits: the mean over the fold models' logits.
- ``test`` (LNMBench compatibility: its checkpoint was named ``resnet50_<dataset>_test.pth``):
  one model trained on the test split; its logits for train and val.

The k-fold training (:func:`crossfit_logits`: the folds, a model per fold, its held-out logits)
is shared with the noise-estimation stage (:mod:`lnm.noise.estimate`), which trains the same
way on the *noisy* train labels.

Training: ``backbone`` from :func:`lnm.models.build_model`, cross-entropy, SGD (momentum 0.9,
Nesterov, weight decay 5e-4) with a per-epoch cosine schedule, on-device random crop + flip
(:class:`lnm.train.augment.Augmenter`, pixels normalised with the HDF5's channel mean/std),
batch order from :func:`lnm.train.data.epoch_generator` (``seed``, epoch, fold), initial weights
from a seed derived from (``seed``, fold). Full batches only (a partial last batch is dropped, as
in the trainer's default). Logits are computed unaugmented, in eval mode, as float32.

Outputs: ``out_weights`` (``torch.save`` of ``{"folds": [state_dict, ...], "fold_of_sample":
int64 tensor (N_train,), "config": {...}}``) and ``out_logits`` (a deterministic ``.npz`` of
:func:`lnm.noise.io.save_noise`: ``train_logits`` (N_train, C) float32, ``val_logits``,
``fold`` (N_train,) int64, the fold whose model the train logits come from, -1 for ``fit_on:
test``; ``generator_sha256``, ``data_sha256``, ``fit_on``, the config scalars, and the accuracy
of the logits on the clean train labels (``train_accuracy``; out-of-fold for crossfit) and val
labels (``val_accuracy``)). Both are written atomically with SHA-256 sidecars.
"""

from __future__ import annotations

import contextlib
import functools
import io
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..checksum import verify, write_bytes
from .io import save_noise
from .spec import NoiseError

#: Defaults: BreastMNIST-28 (546 train images, 5 folds) trains in ~12 s on 2 threads, ~25 s on 1
DEFAULTS = dict(
    fit_on="crossfit",
    folds=5,
    backbone="resnet8",
    epochs=10,
    batch_size=128,
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="cosine",
    crop_padding=4,
    hflip=True,
    seed=0,
    pretrained=False,
)
#: The training options that are no config keys (the config's are the schema's ``crossfit``
#: definition and ``noise.classifier.fit_on``), declared the same way.
OPTIONS = {
    "momentum": {"type": "number", "minimum": 0},
    "weight_decay": {"type": "number", "minimum": 0},
    "schedule": {"type": "string", "enum": ["cosine", "constant"]},
    "crop_padding": {"type": "integer", "minimum": 0},
    "hflip": {"type": "boolean"},
}


@functools.cache
def options_schema() -> dict:
    """The schema of :func:`check_config`'s options: the config schema's ``crossfit``
    definition (shared by ``noise.classifier`` and ``estimation``), ``fit_on`` and
    :data:`OPTIONS` (one definition of every key, one validation path)."""
    from ..config import load_schema

    root = load_schema()
    fit_on = root["properties"]["noise"]["properties"]["classifier"]["properties"]["fit_on"]
    return {
        "definitions": root["definitions"],
        "$ref": "#/definitions/crossfit",
        "properties": {"fit_on": fit_on, **OPTIONS},
        "unevaluatedProperties": False,
    }


def check_config(what: str = "generator", **kw) -> dict:
    """The configuration (``DEFAULTS`` updated with ``kw``), validated against
    :func:`options_schema` (every problem at once); ``what`` names the classifier in error
    messages (``generator``, or ``estimator`` for :mod:`lnm.noise.estimate`). Numbers come back
    as the schema's types (an integer ``lr`` as a float)."""
    from ..config import schema_problems

    cfg = {k: v.item() if isinstance(v, np.generic) else v for k, v in {**DEFAULTS, **kw}.items()}
    schema = options_schema()
    problems = schema_problems(cfg, schema, prefix=(what,))
    if problems:
        raise NoiseError(f"invalid {what} options: " + "; ".join(problems))
    cast = {"integer": int, "number": float}
    return {k: cast.get(_type(k, schema), _same)(v) for k, v in cfg.items()}


def _same(value):
    return value


def _type(key: str, schema: dict) -> str | None:
    """The declared type of option ``key`` (following a ``$ref`` into the definitions)."""
    spec = schema["properties"].get(key) or schema["definitions"]["crossfit"]["properties"][key]
    if "$ref" in spec:
        spec = schema["definitions"][spec["$ref"].rsplit("/", 1)[-1]]
    return spec.get("type")


@contextlib.contextmanager
def deterministic(device, threads: int = 1) -> Iterator[torch.device]:
    """Yield ``torch.device(device)`` set up for reproducible training: on a CPU ``threads``
    intra-op threads, elsewhere deterministic cuDNN (left set); the global RNG and the thread
    count are restored afterwards."""
    dev = torch.device(device)
    threads_before = torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[] if dev.type == "cpu" else None):
            if dev.type == "cpu":
                torch.set_num_threads(max(1, int(threads)))
            else:
                torch.backends.cudnn.deterministic = True
                torch.backends.cudnn.benchmark = False
            yield dev
    finally:
        torch.set_num_threads(threads_before)


def fold_assignment(labels, folds: int, seed: int, what: str = "generator") -> np.ndarray:
    """Stratified fold index (``0..folds-1``) of every sample (sklearn ``StratifiedKFold``,
    shuffled with ``random_state=seed``)."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    counts = np.bincount(y)
    if len(y) < folds or counts.max() < folds:
        raise NoiseError(
            f"{folds} folds need at least {folds} samples of some class; the train split has "
            f"{len(y)} samples, class counts {counts.tolist()}; lower the {what}'s folds"
        )
    fold = np.full(len(y), -1, dtype=np.int64)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(skf.split(np.zeros(len(y)), y)):
        fold[held_out] = k
    return fold


def _init_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream, 0x6E]).generate_state(1)[0])


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    idx: np.ndarray,
    cfg: dict,
    make_model: Callable[[], torch.nn.Module],
    augmenter,
    stream: int,
    log: Callable[[str], None],
    tag: str,
) -> torch.nn.Module:
    """Train one model on ``images[idx]`` (uint8 NCHW on the device) with ``labels[idx]``."""
    from ..train.data import epoch_generator
    from ..train.optim import apply_schedule, make_optimizer

    torch.manual_seed(_init_seed(cfg["seed"], stream))
    model = make_model().to(images.device)
    opt = make_optimizer(
        {
            "name": "sgd",
            "lr": cfg["lr"],
            "momentum": cfg["momentum"],
            "nesterov": cfg["momentum"] > 0,
            "weight_decay": cfg["weight_decay"],
        },
        model.parameters(),
    )
    n = len(idx)
    if n < 2:
        raise NoiseError(f"{tag}: {n} training sample(s); a classifier needs at least 2")
    b = min(cfg["batch_size"], n)
    idx_t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    for epoch in range(cfg["epochs"]):
        start = time.perf_counter()
        apply_schedule(opt, cfg["lr"], {"name": cfg["schedule"]}, epoch, cfg["epochs"])
        gen = epoch_generator(cfg["seed"], epoch, stream)
        perm = idx_t[torch.randperm(n, generator=gen)].to(images.device)
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for lo in range(0, n - n % b, b):
            batch = perm[lo : lo + b]
            x, y = augmenter(images[batch], gen), labels[batch]
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(batch)
            correct += int((out.argmax(1) == y).sum())
            seen += len(batch)
        log(
            f"{tag} epoch {epoch + 1}/{cfg['epochs']}: loss {loss_sum / seen:.4f}, "
            f"train acc {correct / seen:.3f}, lr {opt.param_groups[0]['lr']:.4g} "
            f"({time.perf_counter() - start:.1f}s)"
        )
    return model


@torch.no_grad()
def predict_logits(model, images: torch.Tensor, augmenter, batch_size: int = 512) -> np.ndarray:
    """Unaugmented eval-mode logits of uint8 NCHW ``images``, float32 (N, C), in order."""
    model.eval()
    outs = [
        model(augmenter.normalize(images[lo : lo + batch_size])).float().cpu()
        for lo in range(0, len(images), batch_size)
    ]
    return torch.cat(outs).numpy().astype(np.float32)


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else float("nan")


def _state(model) -> dict:
    return {key: v.detach().cpu().clone() for key, v in model.state_dict().items()}


def crossfit_logits(
    images: torch.Tensor,
    labels,
    num_classes: int,
    cfg: dict,
    make_model: Callable[[], torch.nn.Module],
    augmenter,
    log: Callable[[str], None],
    what: str = "generator",
    val_images: torch.Tensor | None = None,
) -> dict:
    """k-fold cross-fitting on the given ``labels`` (clean for the generator, noisy for the
    estimator) of the uint8 NCHW ``images`` (on the device).

    Folds: :func:`fold_assignment` of ``labels`` (``cfg["folds"]``, ``cfg["seed"]``); fold model
    ``k`` (:func:`fit_classifier`, stream ``k``) is trained on the other folds and predicts the
    samples of fold ``k`` (:func:`predict_logits`). Returns ``train_logits`` (N, C) float32
    (out-of-fold), ``fold`` (N,) int64, ``val_logits`` (the mean over the fold models' logits
    of ``val_images``, float32; None without them) and ``states`` (per fold its model's
    ``state_dict``, on the CPU).
    """
    y = np.asarray(labels, dtype=np.int64)
    y_t = torch.from_numpy(y).to(images.device)
    n, c, k_folds = len(y), int(num_classes), cfg["folds"]
    fold = fold_assignment(y, k_folds, cfg["seed"], what)
    train_logits = np.zeros((n, c), dtype=np.float32)
    val_sum = None if val_images is None else np.zeros((len(val_images), c), dtype=np.float64)
    states = []
    for k in range(k_folds):
        held_out, fit_idx = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        tag = f"{what} fold {k + 1}/{k_folds} ({len(fit_idx)} train images)"
        model = fit_classifier(images, y_t, fit_idx, cfg, make_model, augmenter, k, log, tag)
        train_logits[held_out] = predict_logits(model, images[held_out], augmenter)
        if val_sum is not None:
            val_sum += predict_logits(model, val_images, augmenter)
        log(
            f"{what} fold {k + 1}/{k_folds}: held-out accuracy "
            f"{_accuracy(train_logits[held_out], y[held_out]):.3f} on {len(held_out)} images"
        )
        states.append(_state(model))
    val_logits = None if val_sum is None else (val_sum / k_folds).astype(np.float32)
    return {"train_logits": train_logits, "fold": fold, "val_logits": val_logits, "states": states}


def train_generator(
    h5_path,
    out_weights,
    out_logits,
    *,
    device: str = "cpu",
    threads: int = 1,
    log: Callable[[str], None] = print,
    **options,
) -> dict:
    """Train the ``instance_classifier`` generator on the clean labels of the verified HDF5
    ``h5_path``; write ``out_weights`` and ``out_logits`` (module docstring). Returns the
    logits file's dict. ``options``: keys of :data:`DEFAULTS` (the others keep their default),
    validated by :func:`check_config` before anything is read; each output is written
    atomically (no half-written file under its name).
    """
    cfg = check_config(**options)
    with deterministic(device, threads) as dev:  # the global RNG and thread count are restored
        return _train_generator(h5_path, out_weights, out_logits, cfg, dev, log)


def model_setup(attrs: dict, num_classes: int, cfg: dict, dev) -> tuple[Callable, object]:
    """A factory of the classifier ``cfg`` describes, for the images of an HDF5 with
    ``attrs``, and its augmenter on ``dev`` (random crop and flip, pixels normalised with the
    HDF5's channel mean/std)."""
    from ..models import build_model
    from ..train.augment import Augmenter

    in_chans, size = int(attrs["n_channels"]), int(attrs["size"])
    mean, std = np.atleast_1d(attrs["mean"]), np.atleast_1d(attrs["std"])
    augmenter = Augmenter(
        mean, std, crop_padding=cfg["crop_padding"], hflip=cfg["hflip"], device=dev
    )
    make = functools.partial(
        build_model, cfg["backbone"], in_chans, num_classes, size, cfg["pretrained"]
    )
    return make, augmenter


def device_images(images: np.ndarray, dev) -> torch.Tensor:
    """uint8 NHWC images as an NCHW tensor on ``dev``."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(dev)


def _train_generator(h5_path, out_weights, out_logits, cfg: dict, dev, log) -> dict:
    data_sha256 = verify(h5_path)
    threads = f", {torch.get_num_threads()} threads" if dev.type == "cpu" else ""
    log(f"generator of {h5_path} on {dev}{threads}: {cfg}")
    fit_split = "train" if cfg["fit_on"] == "crossfit" else "test"
    splits = ("train", "val") + (("test",) if fit_split == "test" else ())
    attrs, c, labels, images = _generator_data(h5_path, splits, dev)
    make_model, augmenter = model_setup(attrs, c, cfg, dev)
    started = time.perf_counter()
    if fit_split == "train":
        out = crossfit_logits(
            images["train"],
            labels["train"],
            c,
            cfg,
            make_model,
            augmenter,
            log,
            val_images=images["val"],
        )
    else:
        out = _fit_on_test(images, labels, cfg, make_model, augmenter, log)
    record = {
        **cfg,
        "folds": cfg["folds"] if fit_split == "train" else 1,
        "dataset": str(attrs.get("dataset", "")),
        "size": int(attrs["size"]),
        "num_classes": c,
        "data_sha256": data_sha256,
    }
    result = _write_generator(out_weights, out_logits, record, out, labels)
    log(
        f"generator ({cfg['fit_on']}, {cfg['backbone']}, {cfg['epochs']} epochs): accuracy of "
        f"its logits on the clean labels: train {result['train_accuracy']:.3f}"
        f"{' (out-of-fold)' if fit_split == 'train' else ''}, val {result['val_accuracy']:.3f}; "
        f"{time.perf_counter() - started:.1f}s"
    )
    return result


def _generator_data(h5_path, splits, dev) -> tuple[dict, int, dict, dict]:
    """The HDF5's attributes, class count, clean labels (checked to be in ``0..C-1``) and
    uint8 NCHW images on ``dev`` of ``splits``."""
    from ..data.hdf5 import load_h5

    data = load_h5(h5_path, check=False, image_splits=splits)
    c = data.num_classes
    labels = {s: np.asarray(data.labels[s], dtype=np.int64) for s in splits}
    for s in splits:
        bad = np.flatnonzero((labels[s] < 0) | (labels[s] >= c))
        if bad.size:
            raise NoiseError(
                f"{h5_path}: /{s}/labels row {bad[0]} is {labels[s][bad[0]]}; the generator "
                f"trains on and is scored against clean labels in 0..{c - 1}"
            )
    return data.attrs, c, labels, {s: device_images(data.images[s], dev) for s in splits}


def _fit_on_test(images, labels, cfg, make_model, augmenter, log) -> dict:
    """``fit_on: test``: one model trained on the test split; its logits of train and val."""
    tag = f"generator on the test split ({len(labels['test'])} images)"
    idx = np.arange(len(labels["test"]))
    y_test = torch.from_numpy(labels["test"]).to(images["test"].device)
    model = fit_classifier(images["test"], y_test, idx, cfg, make_model, augmenter, 0, log, tag)
    return {
        "train_logits": predict_logits(model, images["train"], augmenter),
        "fold": np.full(len(labels["train"]), -1, dtype=np.int64),
        "val_logits": predict_logits(model, images["val"], augmenter),
        "states": [_state(model)],
    }


def _write_generator(out_weights, out_logits, record: dict, out: dict, labels: dict) -> dict:
    """Write the weights (with ``record``, the configuration) and the logits file; return the
    logits file's dict."""
    fold, train_logits, val_logits = out["fold"], out["train_logits"], out["val_logits"]
    buf = io.BytesIO()
    weights = {"folds": out["states"], "fold_of_sample": torch.from_numpy(fold), "config": record}
    torch.save(weights, buf)
    generator_sha256 = write_bytes(out_weights, buf.getvalue())
    result = {
        **record,
        "train_logits": train_logits,
        "val_logits": val_logits,
        "fold": fold,
        "generator_sha256": generator_sha256,
        "train_accuracy": _accuracy(train_logits, labels["train"]),
        "val_accuracy": _accuracy(val_logits, labels["val"]),
    }
    save_noise(out_logits, result)
    return result
