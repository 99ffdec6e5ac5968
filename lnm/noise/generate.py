"""Noisy labels for the train and val splits of one dataset, and the on-disk noise file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checksum import verify
from .instance import (
    channel_stats,
    expected_flip_rate,
    instance_noise,
    instance_projection,
    masked_softmax,
)
from .io import data_name, load_noise, save_noise
from .matrix import (
    empirical_transition,
    flip_with_matrix,
    is_identifiable,
    pairflip_matrix,
    symmetric_matrix,
)
from .spec import (
    SPLITS,
    NoiseError,
    check_labels,
    check_nested,
    check_num_classes,
    check_rate,
    check_seed,
    check_std,
    stream_rng,
)

#: patterns whose per-sample flip rate is drawn from the truncated normal (``*_flip_prob`` keys)
INSTANCE_PATTERNS = ("instance", "instance_classifier")


def expected_rate(pattern, rate, std=0.1) -> float:
    """Expected fraction of flipped labels: 0 for ``none``, ``rate`` for symmetric/pairflip, the
    truncated-normal mean for ``instance`` and ``instance_classifier`` (e.g. 0.794 for rate 0.8,
    0.871 for 0.9 at std 0.1) and NaN for ``real`` (the data's rate is what it is)."""
    rate = check_rate(pattern, rate)
    if pattern in INSTANCE_PATTERNS:
        return expected_flip_rate(rate, std)
    if pattern == "real":
        return float("nan")
    return rate


def nominal_matrix(pattern: str, rate: float, num_classes: int) -> np.ndarray | None:
    """The class-conditional matrix of ``pattern`` (None for instance noise, which has none)."""
    if pattern == "symmetric":
        return symmetric_matrix(num_classes, rate)
    if pattern == "pairflip":
        return pairflip_matrix(num_classes, rate)
    if pattern == "none":
        return np.eye(check_num_classes(num_classes))
    return None


def _realised(is_clean: np.ndarray) -> float:
    return float(1.0 - is_clean.mean()) if is_clean.size else float("nan")


def make_noisy_labels(
    pattern,
    rate,
    noise_seed,
    num_classes,
    labels,
    images=None,
    noisy_val=True,
    std=0.1,
    channel_mean=None,
    channel_std=None,
    nested=True,
    logits=None,
) -> dict:
    """Noise ``labels["train"]`` and (if ``noisy_val``) ``labels["val"]``; other keys are ignored.

    Each split draws from its own stream of ``(noise_seed, pattern)``; instance noise additionally
    draws one projection ``W`` from a separate stream shared by both splits and needs
    ``images["train"]`` (and ``images["val"]`` when ``noisy_val``). Its pixel standardisation uses
    ``channel_mean``/``channel_std`` (defaults: computed from ``images["train"]``) for both splits.
    ``instance_classifier`` needs the generator's ``logits["train"]`` (and ``logits["val"]`` when
    ``noisy_val``), ``(N, C)`` per split: flip targets = :func:`~lnm.noise.instance.masked_softmax`
    of them, flip rates and draws as for ``instance`` (same streams scheme, no projection).
    ``real`` draws nothing: see :func:`lnm.noise.real.real_noise`.

    ``nested`` (default): the rate is not part of the seed, so for one noise seed the flipped set
    at a lower rate is contained in the one at a higher rate and instance noise reuses ``W`` (see
    :mod:`lnm.noise.spec`). ``nested=False``: the rate enters the seed sequence of every stream
    (independent draws per rate), recorded as ``draws = "independent"``; the key is absent
    from nested results, so their files stay as they were.
    Returns the dict documented in :mod:`lnm.noise` (python scalars, numpy arrays).
    """
    rate, seed = check_rate(pattern, rate), check_seed(noise_seed)
    if pattern == "real":
        raise NoiseError(
            "pattern 'real' draws no labels: its noisy labels come with the data "
            "(lnm.noise.real.real_noise, or generate_noise_file on a real-world HDF5)"
        )
    c, std, noisy_val = check_num_classes(num_classes), check_std(std), bool(noisy_val)
    nested = check_nested(nested)
    key = None if nested else rate  # what enters the seed besides (noise_seed, pattern, stream)
    missing = [s for s in SPLITS if s not in labels]
    if missing:
        raise NoiseError(f"labels lack split(s) {missing}; required: {list(SPLITS)}")
    clean = {s: check_labels(labels[s], c, f"{s} labels") for s in SPLITS}
    noised = [s for s in SPLITS if s == "train" or noisy_val]

    W, targets = None, {}
    if pattern == "instance_classifier":
        if logits is None or any(s not in logits for s in noised):
            raise NoiseError(
                f"instance_classifier noise needs the generator's logits for split(s) {noised}"
            )
        for s in noised:
            if np.shape(logits[s]) != (len(clean[s]), c):
                raise NoiseError(
                    f"{s} logits of shape {np.shape(logits[s])}; expected {(len(clean[s]), c)} "
                    f"(one row of {c} class logits per {s} sample)"
                )
            targets[s] = masked_softmax(logits[s], clean[s])
    if pattern == "instance":
        if images is None or any(s not in images for s in noised):
            raise NoiseError(f"instance noise needs images for split(s) {noised}")
        shape = np.shape(images["train"])[1:]
        if any(np.shape(images[s])[1:] != shape for s in noised):
            raise NoiseError("train and val images differ in shape; instance noise needs one W")
        if channel_mean is None or channel_std is None:
            channel_mean, channel_std = channel_stats(images["train"])
        W = instance_projection(
            int(np.prod(shape)), c, stream_rng(seed, pattern, "projection", key)
        )

    result: dict = {}
    T_nominal = nominal_matrix(pattern, rate, c)
    for split in SPLITS:
        y = clean[split]
        if split not in noised or pattern == "none":
            noisy, q = y.copy(), np.zeros(len(y))
        elif pattern == "instance_classifier":
            rng = stream_rng(seed, pattern, split, key)
            noisy, q = instance_noise(None, y, c, rate, rng, std, targets=targets[split])
        elif pattern == "instance":
            noisy, q = instance_noise(
                images[split],
                y,
                c,
                rate,
                stream_rng(seed, pattern, split, key),
                std,
                W=W,
                channel_mean=channel_mean,
                channel_std=channel_std,
            )
        else:
            noisy = flip_with_matrix(y, T_nominal, stream_rng(seed, pattern, split, key))
        result[f"{split}_noisy"] = noisy
        result[f"{split}_clean"] = y.copy()
        result[f"{split}_is_clean"] = noisy == y
        if pattern in INSTANCE_PATTERNS:
            result[f"{split}_flip_prob"] = q

    result["transition"] = empirical_transition(clean["train"], result["train_noisy"], c)
    result["nominal_transition"] = result["transition"].copy() if T_nominal is None else T_nominal
    result.update(
        realised_rate=_realised(result["train_is_clean"]),
        realised_rate_val=_realised(result["val_is_clean"]),
        identifiable=is_identifiable(result["nominal_transition"]),
        pattern=pattern,
        rate=rate,
        noise_seed=seed,
        noisy_val=noisy_val,
        std=std,
        expected_rate=expected_rate(pattern, rate, std),
        has_clean=True,  # the clean labels of both splits are known (synthetic noise)
        val_has_clean=True,
    )
    if not nested:  # only then: nested noise files have no "draws" key
        result["draws"] = "independent"
    return result


def load_generator_logits(path, data_sha256: str | None = None) -> dict:
    """The verified logits file of the ``instance_classifier`` generator
    (:func:`lnm.noise.classifier.train_generator`): ``{"train": ..., "val": ...}`` logits and the
    noise-file keys ``generator_sha256`` / ``generator_logits_sha256``.

    ``data_sha256``: the HDF5 the noise is drawn for; a logits file computed on another data file
    is refused.
    """
    digest = verify(path)
    gen = load_noise(path, check=False)
    missing = [k for k in ("train_logits", "val_logits", "generator_sha256") if k not in gen]
    if missing:
        raise NoiseError(f"{path}: not a generator logits file (lacks {', '.join(missing)})")
    if data_sha256 is not None and gen.get("data_sha256") != data_sha256:
        raise NoiseError(
            f"{path}: generator logits computed on data with SHA-256 {gen.get('data_sha256')}, "
            f"but the noise is drawn for data with SHA-256 {data_sha256}; retrain the generator"
        )
    return {
        "logits": {"train": gen["train_logits"], "val": gen["val_logits"]},
        "keys": {"generator_sha256": gen["generator_sha256"], "generator_logits_sha256": digest},
    }


def generate_noise_file(
    h5_path,
    out_path,
    pattern,
    rate,
    noise_seed,
    noisy_val=True,
    std=0.1,
    nested=True,
    generator_logits=None,
) -> dict:
    """Read a verified HDF5 (``lnm.data.hdf5.load_h5``), noise train/val, write ``out_path``.

    Arguments are validated before anything is read; on any error no output (nor sidecar) appears.
    Instance noise standardises pixels with the HDF5's recorded train-split channel mean/std.
    ``nested``: see :func:`make_noisy_labels`. ``generator_logits``: the logits file of the
    ``instance_classifier`` generator (required by that pattern, ignored by the others); the
    noise file records its ``generator_sha256`` and ``generator_logits_sha256``.

    A real-world HDF5 (attr ``real_world``) allows ``real`` (its own noisy labels) and ``none``
    (its clean labels): see :mod:`lnm.noise.real`; ``real`` needs a real-world file.

    The file records the data it was drawn on: ``dataset`` (the HDF5's ``dataset`` attribute)
    and ``data_sha256`` (its verified SHA-256), which every consumer compares with the data
    file it is given (:func:`lnm.noise.io.check_drawn_on`). They add to the file's bytes, not
    to its draws: the labels are those :func:`make_noisy_labels` returns.
    """
    from ..data.hdf5 import load_h5
    from .real import is_real_world, real_world_noise

    check_rate(pattern, rate)
    check_seed(noise_seed)
    check_std(std)
    check_nested(nested)
    if pattern == "instance_classifier" and generator_logits is None:
        raise NoiseError(
            "pattern 'instance_classifier' needs generator_logits: the logits file of its "
            "generator classifier (lnm.noise.classifier.train_generator)"
        )
    data_sha256 = verify(h5_path)
    if is_real_world(h5_path):
        result = real_world_noise(h5_path, pattern, rate, noise_seed, noisy_val, std)
        result.update(dataset=data_name(h5_path), data_sha256=data_sha256)
        save_noise(Path(out_path), result)
        return result
    if pattern == "real":
        raise NoiseError(
            f"{h5_path}: pattern 'real' needs a real-world dataset (noisy labels that come with "
            "the data); this file has none (attr real_world is not true)"
        )
    generator = None
    if pattern == "instance_classifier":
        generator = load_generator_logits(generator_logits, data_sha256)
    data = load_h5(h5_path, check=False, image_splits=SPLITS if pattern == "instance" else ())
    images = data.images if pattern == "instance" else None
    mean, sd = data.attrs.get("mean"), data.attrs.get("std")
    result = make_noisy_labels(
        pattern,
        rate,
        noise_seed,
        data.num_classes,
        {s: data.labels[s] for s in SPLITS},
        images,
        noisy_val,
        std,
        channel_mean=mean,
        channel_std=sd,
        nested=nested,
        logits=generator and generator["logits"],
    )
    if generator:
        result.update(generator["keys"])
    result.update(dataset=str(data.attrs["dataset"]), data_sha256=data_sha256)
    save_noise(Path(out_path), result)
    return result
