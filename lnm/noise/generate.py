"""Noisy labels for the train and val splits of one dataset, and the on-disk noise file.

What a pattern draws is its class in :mod:`lnm.noise.patterns`; here the arguments are checked,
the pattern gets its inputs and random streams (:class:`lnm.noise.patterns.Draw`), and what every
noise file records is computed from its labels (clean masks, realised rates, transition
matrices)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checksum import verify
from .io import data_name, load_noise, save_noise
from .matrix import empirical_transition, is_identifiable
from .patterns import Draw, Pattern, get_pattern
from .spec import (
    SPLITS,
    NoiseError,
    check_labels,
    check_nested,
    check_num_classes,
    check_rate,
    check_seed,
    check_std,
)


def expected_rate(pattern, rate, std=0.1) -> float:
    """Expected fraction of flipped labels, as the pattern says: 0 for ``none``, ``rate`` for a
    class-conditional pattern, the truncated-normal mean for ``instance`` and
    ``instance_classifier`` (e.g. 0.794 for rate 0.8, 0.871 for 0.9 at std 0.1) and NaN for
    ``real`` (the data's rate is what it is)."""
    rate = check_rate(pattern, rate)
    return get_pattern(pattern).expected_rate(rate, std)


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
    draw = _draw_of(pattern, rate, noise_seed, num_classes, labels, noisy_val, std, nested)
    draw.images, draw.logits = images, logits
    draw.channel_mean, draw.channel_std = channel_mean, channel_std
    pat = get_pattern(pattern)
    shared = pat.prepare(draw)
    result: dict = {}
    for split in SPLITS:
        result.update(_noised_split(pat, draw, split, shared))
    result.update(_summary(pat, draw, result, bool(noisy_val)))
    return result


def _draw_of(pattern, rate, noise_seed, num_classes, labels, noisy_val, std, nested) -> Draw:
    """The checked arguments of :func:`make_noisy_labels` (without its pattern's inputs)."""
    rate, seed = check_rate(pattern, rate), check_seed(noise_seed)
    c, std, nested = check_num_classes(num_classes), check_std(std), check_nested(nested)
    missing = [s for s in SPLITS if s not in labels]
    if missing:
        raise NoiseError(f"labels lack split(s) {missing}; required: {list(SPLITS)}")
    clean = {s: check_labels(labels[s], c, f"{s} labels") for s in SPLITS}
    noised = tuple(s for s in SPLITS if s == "train" or bool(noisy_val))
    # what enters the seed besides (noise_seed, pattern, stream): the rate, unless nested
    return Draw(pattern, rate, c, seed, std, clean, noised, None if nested else rate)


def _noised_split(pattern: Pattern, draw: Draw, split: str, shared) -> dict:
    """The noise-file entries of one split: noisy and clean labels, the clean mask and (for a
    ``flip_prob`` pattern) the per-sample flip probability (0 for a split left clean)."""
    y = draw.labels[split]
    noisy, q = pattern.draw(draw, split, shared) if split in draw.noised else (y.copy(), None)
    out = {f"{split}_noisy": noisy, f"{split}_clean": y.copy(), f"{split}_is_clean": noisy == y}
    if pattern.flip_prob:
        out[f"{split}_flip_prob"] = np.zeros(len(y)) if q is None else q
    return out


def _summary(pattern: Pattern, draw: Draw, result: dict, noisy_val: bool) -> dict:
    """What a noise file records beside the labels: transition matrices (the nominal one is the
    pattern's, else the empirical), realised and expected rates, identifiability, the draw's
    settings."""
    transition = empirical_transition(draw.labels["train"], result["train_noisy"], draw.num_classes)
    nominal = pattern.matrix(draw.rate, draw.num_classes)
    nominal = transition.copy() if nominal is None else nominal
    summary = dict(
        transition=transition,
        nominal_transition=nominal,
        realised_rate=_realised(result["train_is_clean"]),
        realised_rate_val=_realised(result["val_is_clean"]),
        identifiable=is_identifiable(nominal),
        pattern=draw.pattern,
        rate=draw.rate,
        noise_seed=draw.noise_seed,
        noisy_val=noisy_val,
        std=draw.std,
        expected_rate=pattern.expected_rate(draw.rate, draw.std),
        has_clean=True,  # the clean labels of both splits are known (synthetic noise)
        val_has_clean=True,
    )
    if draw.rate_key is not None:  # only then: nested noise files have no "draws" key
        summary["draws"] = "independent"
    return summary


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
    generator of a pattern that ``needs_generator`` (``instance_classifier``; ignored by the
    others); the noise file records its ``generator_sha256`` and ``generator_logits_sha256``.

    A real-world HDF5 (attr ``real_world``) allows ``real`` (its own noisy labels) and ``none``
    (its clean labels): see :mod:`lnm.noise.real`; ``real`` needs a real-world file.

    The file records the data it was drawn on: ``dataset`` (the HDF5's ``dataset`` attribute)
    and ``data_sha256`` (its verified SHA-256), which every consumer compares with the data
    file it is given (:func:`lnm.noise.io.check_drawn_on`). They add to the file's bytes, not
    to its draws: the labels are those :func:`make_noisy_labels` returns.
    """
    from .real import is_real_world, real_world_noise

    check_rate(pattern, rate)
    check_seed(noise_seed)
    check_std(std)
    check_nested(nested)
    if get_pattern(pattern).needs_generator and generator_logits is None:
        raise NoiseError(
            f"pattern {pattern!r} needs generator_logits: the logits file of its "
            "generator classifier (lnm.noise.classifier.train_generator)"
        )
    data_sha256 = verify(h5_path)
    if is_real_world(h5_path):
        result = real_world_noise(h5_path, pattern, rate, noise_seed, noisy_val, std)
        result.update(dataset=data_name(h5_path), data_sha256=data_sha256)
    else:
        args = (pattern, rate, noise_seed, noisy_val, std, nested, generator_logits)
        result = _drawn_on_file(h5_path, data_sha256, *args)
    save_noise(Path(out_path), result)
    return result


def _drawn_on_file(
    h5_path, data_sha256, pattern, rate, noise_seed, noisy_val, std, nested, generator_logits
) -> dict:
    """:func:`make_noisy_labels` on the labels (and the images or generator logits the pattern
    needs) of a verified MedMNIST-layout HDF5, with the keys of the files it was drawn from."""
    from ..data.hdf5 import load_h5

    pat = get_pattern(pattern)
    if pat.from_data:
        raise NoiseError(
            f"{h5_path}: pattern {pattern!r} needs a real-world dataset (noisy labels that come "
            "with the data); this file has none (attr real_world is not true)"
        )
    generator = (
        load_generator_logits(generator_logits, data_sha256) if pat.needs_generator else None
    )
    data = load_h5(h5_path, check=False, image_splits=SPLITS if pat.needs_images else ())
    result = make_noisy_labels(
        pattern,
        rate,
        noise_seed,
        data.num_classes,
        {s: data.labels[s] for s in SPLITS},
        data.images if pat.needs_images else None,
        noisy_val,
        std,
        channel_mean=data.attrs.get("mean"),
        channel_std=data.attrs.get("std"),
        nested=nested,
        logits=generator and generator["logits"],
    )
    if generator:
        result.update(generator["keys"])
    result.update(dataset=str(data.attrs["dataset"]), data_sha256=data_sha256)
    return result
