"""Noisy labels for the train and val splits of one dataset, and the on-disk noise file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .instance import channel_stats, expected_flip_rate, instance_noise, instance_projection
from .io import save_noise
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


def expected_rate(pattern, rate, std=0.1) -> float:
    """Expected fraction of flipped labels: 0 for ``none``, ``rate`` for symmetric/pairflip, and the
    truncated-normal mean for ``instance`` (e.g. 0.794 for rate 0.8, 0.871 for 0.9 at std 0.1)."""
    rate = check_rate(pattern, rate)
    if pattern == "instance":
        return expected_flip_rate(rate, std)
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
) -> dict:
    """Noise ``labels["train"]`` and (if ``noisy_val``) ``labels["val"]``; other keys are ignored.

    Each split draws from its own stream of ``(noise_seed, pattern)``; instance noise additionally
    draws one projection ``W`` from a separate stream shared by both splits and needs
    ``images["train"]`` (and ``images["val"]`` when ``noisy_val``). Its pixel standardisation uses
    ``channel_mean``/``channel_std`` (defaults: computed from ``images["train"]``) for both splits.

    ``nested`` (default): the rate is not part of the seed, so for one noise seed the flipped set
    at a lower rate is contained in the one at a higher rate and instance noise reuses ``W`` (see
    :mod:`lnm.noise.spec`). ``nested=False``: the rate enters the seed sequence of every stream
    (independent draws per rate), recorded as ``draws = "independent"``; the key is absent
    from nested results, so their files stay as they were.
    Returns the dict documented in :mod:`lnm.noise` (python scalars, numpy arrays).
    """
    rate, seed = check_rate(pattern, rate), check_seed(noise_seed)
    c, std, noisy_val = check_num_classes(num_classes), check_std(std), bool(noisy_val)
    nested = check_nested(nested)
    key = None if nested else rate  # what enters the seed besides (noise_seed, pattern, stream)
    missing = [s for s in SPLITS if s not in labels]
    if missing:
        raise NoiseError(f"labels lack split(s) {missing}; required: {list(SPLITS)}")
    clean = {s: check_labels(labels[s], c, f"{s} labels") for s in SPLITS}
    noised = [s for s in SPLITS if s == "train" or noisy_val]

    W = None
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
        if pattern == "instance":
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
    )
    if not nested:  # only then: default (nested) noise files stay byte-identical
        result["draws"] = "independent"
    return result


def generate_noise_file(
    h5_path, out_path, pattern, rate, noise_seed, noisy_val=True, std=0.1, nested=True
) -> dict:
    """Read a verified HDF5 (``lnm.data.hdf5.load_h5``), noise train/val, write ``out_path``.

    Arguments are validated before anything is read; on any error no output (nor sidecar) appears.
    Instance noise standardises pixels with the HDF5's recorded train-split channel mean/std.
    ``nested``: see :func:`make_noisy_labels`.
    """
    from ..data.hdf5 import load_h5

    check_rate(pattern, rate)
    check_seed(noise_seed)
    check_std(std)
    check_nested(nested)
    data = load_h5(h5_path, image_splits=SPLITS if pattern == "instance" else ())
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
    )
    save_noise(Path(out_path), result)
    return result
