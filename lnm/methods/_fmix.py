"""FMix (Harris et al. 2020): mixing with a binarised low-frequency mask, as ProMix uses it
(``utils/fmix.py`` of Justherozen/ProMix, itself ecs-vlc/FMix: decay power 3, α 1, no
softening, no reformulation).

A mask is drawn as the real inverse FFT of Fourier coefficients ``N(0, 1)·max(f, 1/max(h, w))^−d``
over the frequencies ``f`` of an ``h × w`` image (with the original's indexing,
:func:`low_freq_image`), rescaled to [0, 1]; its ``num`` highest
pixels become 1 and the rest 0, with ``num = ceil(λ·hw)`` or ``floor(λ·hw)`` (a coin flip) and
``λ ~ Beta(α, α)``. The images are mixed as ``mask·x + (1 − mask)·x[perm]`` and the loss is
``λ·CE(z, y) + (1 − λ)·CE(z, y[perm])`` with the *drawn* λ. Randomness: λ and the coefficients
from the global numpy RNG, the coin flip from Python's ``random`` (as the original), the
permutation from the given CPU generator; the trainer checkpoints all of them.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F


def frequencies(h: int, w: int) -> np.ndarray:
    """``sqrt(fx² + fy²)`` on the half-spectrum grid of ``np.fft.irfftn`` (h, ⌊w/2⌋ + 1 or + 2)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + (2 if w % 2 else 1)]
    return np.sqrt(fx * fx + fy * fy)


def low_freq_image(h: int, w: int, decay_power: float) -> np.ndarray:
    """A random low-frequency image in [0, 1] of shape (h, w), computed as the original does.

    The original (``make_low_freq_image``) draws coefficients of shape (1, h, w_f, 2) and then
    takes ``spectrum[:, 0] + 1j·spectrum[:, 1]``, i.e. the first two *rows* of the frequency grid
    (not the real and imaginary parts of every frequency), a (1, w_f, 2) array that
    ``irfftn(·, (h, w))`` zero-pads over its last two axes. Kept as it is: it decides which masks
    ProMix mixes with.
    """
    freqs = frequencies(h, w)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
    coeffs = scale[None, :, :, None] * np.random.randn(1, *freqs.shape, 2)
    spectrum = coeffs[:, 0] + 1j * coeffs[:, 1]
    mask = np.real(np.fft.irfftn(spectrum, (h, w), axes=(-2, -1)))[0, :h, :w]
    mask = mask - mask.min()
    return mask / mask.max()


def binarise(mask: np.ndarray, lam: float) -> np.ndarray:
    """The ``num`` highest pixels 1, the rest 0 (``num``: ⌈λ·hw⌉ or ⌊λ·hw⌋, a coin flip)."""
    flat = mask.reshape(-1)
    order = flat.argsort()[::-1]
    num = math.ceil(lam * flat.size) if random.random() > 0.5 else math.floor(lam * flat.size)
    out = np.zeros_like(flat)
    out[order[:num]] = 1.0
    return out.reshape(mask.shape)


def sample_mask(h: int, w: int, alpha: float = 1.0, decay_power: float = 3.0):
    """(λ, binary mask of shape (h, w)) as ``fmix.sample_mask``."""
    lam = float(np.random.beta(alpha, alpha))
    return lam, binarise(low_freq_image(h, w, decay_power), lam)


def fmix(x: torch.Tensor, gen: torch.Generator | None, alpha: float = 1.0, decay: float = 3.0):
    """Mixed images, the permutation and λ (``FMix.__call__``)."""
    lam, mask = sample_mask(x.shape[-2], x.shape[-1], alpha, decay)
    perm = torch.randperm(len(x), generator=gen).to(x.device)
    m = torch.from_numpy(mask).to(x.device, x.dtype)
    return m * x + (1 - m) * x[perm], perm, lam


def fmix_loss(logits: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, lam: float):
    """``λ·CE(z, y) + (1 − λ)·CE(z, y[perm])`` (``fmix_loss`` with hard labels ``y``)."""
    return lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
