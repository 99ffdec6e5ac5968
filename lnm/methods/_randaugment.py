"""A vectorised RandAugment-style strong augmentation (+ Cutout) for normalised image batches.

DISC's strong view (JackYFL/DISC; ``docs/deviations.md``) is the weak view followed by two randomly
chosen operations, each applied with probability 0.5 at a random magnitude in [1, max) on
RandAugment's 0–10 scale, then a Cutout of 15 % of the side. Here every operation acts on
the whole batch at once with per-sample parameters; images keep all their channels (LNMBench
converted colour images to grayscale by mistake, ``docs/deviations.md``). Random numbers come from
the given CPU generator (the batch generator), so views are identical across devices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# per-op maximal strength at magnitude 10 (as in FixMatch's RandAugment)
_MAX_ANGLE, _MAX_SHEAR, _MAX_TRANSLATE, _MAX_ENHANCE = 30.0, 0.3, 0.3, 0.9


def _clamp(x):
    return x.clamp_(0.0, 1.0)


def _blend(img, other, factor):  # PIL ImageEnhance: other + factor·(img − other)
    return _clamp(other + factor.view(-1, 1, 1, 1) * (img - other))


def _gray(img):
    return img.mean(1, keepdim=True).expand_as(img)


def _identity(img, v, s):
    return img


def _autocontrast(img, v, s):
    lo = img.amin((2, 3), keepdim=True)
    hi = img.amax((2, 3), keepdim=True)
    return torch.where(hi > lo, (img - lo) / (hi - lo).clamp_min(1e-6), img)


def _brightness(img, v, s):
    return _blend(img, torch.zeros_like(img), 1 + s * _MAX_ENHANCE * v)


def _contrast(img, v, s):
    mean = _gray(img).mean((1, 2, 3), keepdim=True).expand_as(img)
    return _blend(img, mean, 1 + s * _MAX_ENHANCE * v)


def _color(img, v, s):  # saturation; a no-op on one-channel images
    return _blend(img, _gray(img), 1 + s * _MAX_ENHANCE * v)


def _sharpness(img, v, s):
    c = img.shape[1]
    k = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=img.device) / 13
    blur = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), k.expand(c, 1, 3, 3), groups=c)
    return _blend(img, blur, 1 + s * _MAX_ENHANCE * v)


def _posterize(img, v, s):
    bits = (8 - torch.floor(v * 8)).clamp(4, 8)  # 8..5 bits for v in [0.1, 0.5)
    q = (2.0 ** (8 - bits)).view(-1, 1, 1, 1)
    return torch.floor(torch.round(img * 255) / q) * q / 255


def _solarize(img, v, s):
    t = (1 - v).view(-1, 1, 1, 1)
    return torch.where(img >= t, 1 - img, img)


def _affine(img, theta):
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _eye(n, dev):
    return torch.eye(2, 3, device=dev).repeat(n, 1, 1)


def _rotate(img, v, s):
    a = s * _MAX_ANGLE * v * math.pi / 180
    th = _eye(len(img), img.device)
    th[:, 0, 0], th[:, 0, 1], th[:, 1, 0], th[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    return _affine(img, th)


def _shear_x(img, v, s):
    th = _eye(len(img), img.device)
    th[:, 0, 1] = s * _MAX_SHEAR * v
    return _affine(img, th)


def _shear_y(img, v, s):
    th = _eye(len(img), img.device)
    th[:, 1, 0] = s * _MAX_SHEAR * v
    return _affine(img, th)


def _translate_x(img, v, s):
    th = _eye(len(img), img.device)
    th[:, 0, 2] = 2 * s * _MAX_TRANSLATE * v  # grid coordinates span 2
    return _affine(img, th)


def _translate_y(img, v, s):
    th = _eye(len(img), img.device)
    th[:, 1, 2] = 2 * s * _MAX_TRANSLATE * v
    return _affine(img, th)


OPS = (
    _identity,
    _autocontrast,
    _brightness,
    _contrast,
    _color,
    _sharpness,
    _posterize,
    _solarize,
    _rotate,
    _shear_x,
    _shear_y,
    _translate_x,
    _translate_y,
)


def cutout(img: torch.Tensor, frac: float, gen: torch.Generator, fill: float = 0.5):
    """Fill a random ``frac``·side square (centre anywhere) of each image with ``fill``."""
    b, _, h, w = img.shape
    if frac <= 0:
        return img
    side = max(1, int(round(frac * min(h, w))))
    cy = torch.randint(0, h, (b,), generator=gen).to(img.device)
    cx = torch.randint(0, w, (b,), generator=gen).to(img.device)
    rows = torch.arange(h, device=img.device)
    cols = torch.arange(w, device=img.device)
    y0, x0 = (cy - side // 2)[:, None], (cx - side // 2)[:, None]
    in_r = (rows[None] >= y0) & (rows[None] < y0 + side)  # (B, H)
    in_c = (cols[None] >= x0) & (cols[None] < x0 + side)  # (B, W)
    box = (in_r[:, :, None] & in_c[:, None, :])[:, None]  # (B, 1, H, W)
    return torch.where(box, torch.full_like(img, fill), img)


def rand_augment(
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    gen: torch.Generator,
    num_ops: int = 2,
    max_magnitude: float = 5.0,
    prob: float = 0.5,
    cutout_frac: float = 0.15,
) -> torch.Tensor:
    """Strong view of a normalised batch ``x`` (B, C, H, W); returns it normalised."""
    b, dev = len(x), x.device
    img = (x * std + mean).clamp(0.0, 1.0)
    # op choices stay on the CPU (no device syncs); magnitudes and signs go to the device
    choice = torch.randint(0, len(OPS), (num_ops, b), generator=gen)
    apply = torch.rand((num_ops, b), generator=gen) < prob
    mag = (1.0 + torch.rand((num_ops, b), generator=gen) * (max_magnitude - 1.0)) / 10.0
    sign = torch.where(torch.rand((num_ops, b), generator=gen) < 0.5, -1.0, 1.0)
    mag, sign = mag.to(dev), sign.to(dev)
    for j in range(num_ops):
        for k, op in enumerate(OPS):
            sel = torch.nonzero(apply[j] & (choice[j] == k)).squeeze(1)
            if k == 0 or len(sel) == 0:  # identity, or nobody drew this op
                continue
            sel = sel.to(dev)
            img = img.index_copy(0, sel, _clamp(op(img[sel], mag[j, sel], sign[j, sel])))
    img = cutout(img, cutout_frac, gen)
    return (img - mean) / std
