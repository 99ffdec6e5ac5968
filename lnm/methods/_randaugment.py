"""Vectorised RandAugment-style strong augmentations (+ Cutout) for normalised image batches.

DISC's strong view is a crop/flip view followed by two randomly chosen operations, each applied
with probability 0.5 at a random magnitude on RandAugment's 0–10 scale, then a Cutout of 15 % of
the side. Two pools (``disc.strong_pool``; ``docs/deviations.md``):

- :func:`rand_augment` (harmonized): a FixMatch-style pool of 13 operations at a continuous
  magnitude, on [0, 1] floats with bilinear geometry;
- :func:`lnmbench_rand_augment` (reference): the pool the official DISC and LNMBench actually use
  (``RandAugmentwogeo``: 16 operations, integer magnitudes), exactly as Pillow computes it on
  8-bit images (second half of this file).

Every operation acts on the whole batch at once with per-sample parameters; images keep all
their channels (LNMBench converted colour images to grayscale by mistake). Random numbers come
from the given CPU generator (the batch generator), so views are identical across devices.
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


# ---------------------------------------------------------------------------------------------
# LNMBench's pool (reference protocol)
#
# LNMBench's DISC (DISC/datasets/randaugment.py, identical to the official JackYFL/DISC file) makes
# its strong view with ``RandAugmentwogeo(n=2, m=5)``: ``n`` operations drawn with replacement
# from the 16-operation ``new_augment_pool``, each with an integer magnitude v uniform in
# {1, …, m − 1} and applied with probability 0.5, then a Cutout of ``int(0.15·width)`` pixels, all
# on the 8-bit PIL image. The functions below are those PIL operations on a float batch holding
# integer values in [0, 255], vectorised with per-sample magnitudes, and round exactly as Pillow
# does (tests/test_augment.py compares every operation with Pillow pixel for pixel):
#
# - enhancements (Brightness, Color, Contrast, Sharpness with factor 0.1 + 0.18·v, i.e. 0.28 to
#   0.82: they only ever weaken) blend ``degenerate + f·(image − degenerate)`` in float32 and
#   truncate (Pillow's ``Image.blend``); Color's degenerate is the luma
#   ``(19595 R + 38470 G + 7471 B + 2^15) >> 16``, Contrast's the rounded mean luma, Sharpness's the
#   SMOOTH filter (3x3, centre 5, /13, rounded; the border pixels kept);
# - AutoContrast and Equalize use Pillow's per-channel lookup tables;
# - Rotate (±3v degrees), ShearX/Y (±0.01v), TranslateX/Y (±int(0.005v·side) pixels) are Pillow's
#   nearest-neighbour affine transform in its 16.16 fixed-point arithmetic, filled with 0;
# - Posterize keeps 4 + int(0.4v) bits, Solarize inverts from 256 − int(25.6v) up, SolarizeAdd adds
#   ±11v (clipped) and inverts from 128 up, Invert is 255 − x;
# - Cutout (in the pool: ``int(0.01v·side)`` pixels) and the final Cutout fill a square with 127:
#   top-left corner ``int(max(0, u·side − s/2))``, both ends inclusive (Pillow's rectangle), so
#   ``s + 1`` pixels a side unless clipped.
# ---------------------------------------------------------------------------------------------

LNMBENCH_OPS = (
    "autocontrast",
    "brightness",
    "color",
    "contrast",
    "cutout",
    "equalize",
    "invert",
    "posterize",
    "rotate",
    "sharpness",
    "shear_x",
    "shear_y",
    "solarize",
    "solarize_add",
    "translate_x",
    "translate_y",
)
#: (max_v, bias) of each operation (``_float_parameter``/``_int_parameter`` of LNMBench's pool)
_LNMBENCH_RANGES = {
    "brightness": (1.8, 0.1),
    "color": (1.8, 0.1),
    "contrast": (1.8, 0.1),
    "cutout": (0.1, 0.0),
    "posterize": (4, 4),
    "rotate": (30, 0),
    "sharpness": (1.8, 0.1),
    "shear_x": (0.1, 0.0),
    "shear_y": (0.1, 0.0),
    "solarize": (256, 0),
    "solarize_add": (110, 0),
    "translate_x": (0.05, 0.0),
    "translate_y": (0.05, 0.0),
}
_PARAMETER_MAX = 10
#: operations whose magnitude is an integer (``int(v·max_v/10) + bias``); the others are floats
_INT_OPS = ("posterize", "rotate", "solarize", "solarize_add")
#: operations whose sign is drawn (``if random.random() < 0.5: v = -v``)
_SIGNED_OPS = ("rotate", "shear_x", "shear_y", "solarize_add", "translate_x", "translate_y")
CUTOUT_FILL = 127.0


def lnmbench_magnitude(op: str, v: int) -> float:
    """The operation's parameter for the integer magnitude ``v`` (before its sign), computed as
    LNMBench does in Python floats."""
    max_v, bias = _LNMBENCH_RANGES[op]
    if op in _INT_OPS:
        return int(v * max_v / _PARAMETER_MAX) + bias
    return float(v) * max_v / _PARAMETER_MAX + bias


def _per_sample(values: list[float], v: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """``values[v - 1]`` per sample (``v``: magnitudes on the device)."""
    return torch.tensor(values, dtype=dtype, device=v.device)[v - 1]


def _blend32(degenerate: torch.Tensor, img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Pillow's ``Image.blend(degenerate, img, f)``: ``degenerate + f·(img − degenerate)`` in
    float32, truncated and clipped to [0, 255]."""
    t = degenerate + factor.view(-1, 1, 1, 1) * (img - degenerate)
    return t.trunc().clamp_(0.0, 255.0)


def _luma(img: torch.Tensor) -> torch.Tensor:
    """Pillow's ``convert("L")`` as (B, 1, H, W): ``(19595 R + 38470 G + 7471 B + 2^15) >> 16``;
    a one-channel image is its own luma."""
    if img.shape[1] == 1:
        return img
    w = torch.tensor([19595, 38470, 7471], dtype=torch.int32, device=img.device)
    s = (img.to(torch.int32) * w.view(1, 3, 1, 1)).sum(1, keepdim=True) + 32768
    return (s >> 16).to(img.dtype)


def _lut(img: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Apply per-(image, channel) lookup tables ``lut`` (B, C, 256) to ``img``."""
    b, c, h, w = img.shape
    idx = img.reshape(b, c, h * w).long()
    return lut.to(img.dtype).gather(2, idx).view(b, c, h, w)


def _lnm_autocontrast(img, v, neg):
    """Pillow's ``autocontrast`` (cutoff 0): per channel ``int(i·scale + offset)`` with
    ``scale = 255/(hi − lo)``, ``offset = −lo·scale`` (float64), clipped; identity if hi ≤ lo."""
    lo = img.amin((2, 3)).double()[..., None]
    hi = img.amax((2, 3)).double()[..., None]
    i = torch.arange(256, dtype=torch.float64, device=img.device)
    # tensor / tensor: torch computes `scalar / tensor` as a reciprocal times the scalar
    scale = torch.full_like(hi, 255.0) / (hi - lo).clamp_min(1.0)
    lut = (i * scale + (-lo * scale)).trunc().clamp(0.0, 255.0)
    return _lut(img, torch.where(hi > lo, lut, i.expand_as(lut)))


def _lnm_equalize(img, v, neg):
    """Pillow's ``equalize``: per channel, ``step = (N − count of the highest value) // 255`` and
    ``lut[i] = (step // 2 + #pixels below i) // step`` (clipped at 255); identity with one value
    or step 0."""
    b, c, h, w = img.shape
    idx = img.reshape(b, c, h * w).long()
    hist = torch.zeros(b, c, 256, dtype=torch.int64, device=img.device)
    hist.scatter_add_(2, idx, torch.ones_like(idx))
    present = hist > 0
    last = 255 - present.flip(2).to(torch.int64).argmax(2, keepdim=True)
    step = (h * w - hist.gather(2, last)) // 255
    below = hist.cumsum(2) - hist
    lut = (step // 2 + below) // step.clamp_min(1)
    same = (present.sum(2, keepdim=True) <= 1) | (step == 0)
    i = torch.arange(256, device=img.device).expand_as(lut)
    return _lut(img, torch.where(same, i, lut.clamp(max=255)))


def _lnm_invert(img, v, neg):
    return 255.0 - img


def _lnm_posterize(img, v, neg):
    bits = _per_sample([lnmbench_magnitude("posterize", k) for k in range(1, 11)], v)
    q = (2.0 ** (8 - bits)).view(-1, 1, 1, 1)
    return torch.floor(img / q) * q


def _lnm_solarize(img, v, neg):
    t = 256.0 - _per_sample([lnmbench_magnitude("solarize", k) for k in range(1, 11)], v)
    return torch.where(img < t.view(-1, 1, 1, 1), img, 255.0 - img)


def _lnm_solarize_add(img, v, neg):
    add = _per_sample([lnmbench_magnitude("solarize_add", k) for k in range(1, 11)], v)
    add = torch.where(neg, -add, add).view(-1, 1, 1, 1)
    x = (img + add).clamp_(0.0, 255.0)
    return torch.where(x < 128.0, x, 255.0 - x)


def _enhance_factor(op, v):
    return _per_sample([lnmbench_magnitude(op, k) for k in range(1, 11)], v)


def _lnm_brightness(img, v, neg):
    return _blend32(torch.zeros_like(img), img, _enhance_factor("brightness", v))


def _lnm_color(img, v, neg):
    return _blend32(_luma(img).expand_as(img), img, _enhance_factor("color", v))


def _lnm_contrast(img, v, neg):
    mean = _luma(img).double().mean((1, 2, 3))
    degenerate = torch.floor(mean + 0.5).to(img.dtype).view(-1, 1, 1, 1).expand_as(img)
    return _blend32(degenerate, img, _enhance_factor("contrast", v))


def _lnm_sharpness(img, v, neg):
    """Blend with Pillow's SMOOTH filter (kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13,
    rounded; the outermost rows and columns are the image's own)."""
    c = img.shape[1]
    k = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=img.device)
    s = F.conv2d(img, k.expand(c, 1, 3, 3), groups=c)  # exact: integer sums below 2^24
    smooth = img.clone()
    smooth[:, :, 1:-1, 1:-1] = torch.floor(s.double() / 13.0 + 0.5).to(img.dtype)
    return _blend32(smooth, img, _enhance_factor("sharpness", v))


def _fixed(value: float) -> int:
    """Pillow's 16.16 fixed point: ``FLOOR(v·65536 + 0.5)``."""
    return math.floor(value * 65536.0 + 0.5)


def pil_affine_fixed(matrix) -> tuple[int, int, int, int, int, int]:
    """The fixed-point coefficients Pillow's nearest-neighbour ``Image.transform(AFFINE)`` uses
    (``affine_fixed``): (a0, a1, a2, a3, a4, a5) with the pixel-centre offsets folded into a2, a5.
    Output pixel (x, y) reads source pixel ``((a2 + y·a1 + x·a0) >> 16, (a5 + y·a4 + x·a3) >> 16)``
    (0 outside the image)."""
    a, b, c, d, e, f = (float(m) for m in matrix)
    return (
        _fixed(a),
        _fixed(b),
        _fixed(c + a * 0.5 + b * 0.5),
        _fixed(d),
        _fixed(e),
        _fixed(f + d * 0.5 + e * 0.5),
    )


def pil_rotate_matrix(angle: float, width: int, height: int) -> list[float]:
    """The inverse affine matrix of Pillow's ``Image.rotate(angle)`` (about the image centre,
    counter-clockwise, no expansion)."""
    a = -math.radians(angle % 360.0)
    m = [
        round(math.cos(a), 15),
        round(math.sin(a), 15),
        0.0,
        round(-math.sin(a), 15),
        round(math.cos(a), 15),
        0.0,
    ]
    cx, cy = width / 2, height / 2
    m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx
    m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy
    return m


def _affine_matrix(op: str, v: int, negative: bool, width: int, height: int) -> list[float]:
    mag = lnmbench_magnitude(op, v)
    mag = -mag if negative else mag
    if op == "rotate":
        return pil_rotate_matrix(mag, width, height)
    if op == "shear_x":
        return [1, mag, 0, 0, 1, 0]
    if op == "shear_y":
        return [1, 0, 0, mag, 1, 0]
    if op == "translate_x":
        return [1, 0, int(mag * width), 0, 1, 0]
    return [1, 0, 0, 0, 1, int(mag * height)]  # translate_y


def _lnm_geometric(op):
    def apply(img, v, neg):
        b, c, h, w = img.shape
        table = torch.tensor(
            [
                [pil_affine_fixed(_affine_matrix(op, k, n, w, h)) for k in range(1, 11)]
                for n in (False, True)
            ],
            dtype=torch.int64,
            device=img.device,
        )  # (2, 10, 6)
        a = table[neg.long(), v - 1].view(b, 6, 1, 1)
        ys = torch.arange(h, device=img.device).view(1, h, 1)
        xs = torch.arange(w, device=img.device).view(1, 1, w)
        xin = (a[:, 2] + ys * a[:, 1] + xs * a[:, 0]) >> 16
        yin = (a[:, 5] + ys * a[:, 4] + xs * a[:, 3]) >> 16
        inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
        flat = (yin.clamp(0, h - 1) * w + xin.clamp(0, w - 1)).view(b, 1, h * w)
        out = img.reshape(b, c, h * w).gather(2, flat.expand(b, c, h * w)).view(b, c, h, w)
        return torch.where(inside[:, None], out, torch.zeros_like(out))

    return apply


def cutout_boxes(u: torch.Tensor, side: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """LNMBench's ``CutoutAbs`` boxes: ``u`` (B, 2) uniforms (x, y; float64), ``side`` (B,) the
    square's size in pixels → (B, 4) inclusive bounds x0, y0, x1, y1 (int64):
    ``x0 = int(max(0, u_x·W − side/2))``, ``x1 = int(min(W, x0 + side))``, likewise y."""
    side = side.double()
    x0 = torch.clamp_min(u[:, 0] * width - side / 2, 0).floor()
    y0 = torch.clamp_min(u[:, 1] * height - side / 2, 0).floor()
    x1 = torch.clamp_max(x0 + side, width)
    y1 = torch.clamp_max(y0 + side, height)
    return torch.stack([x0, y0, x1, y1], 1).long()


def _fill_boxes(img: torch.Tensor, boxes: torch.Tensor, fill: float = CUTOUT_FILL):
    """Fill the inclusive boxes (B, 4: x0, y0, x1, y1) of each image with ``fill``."""
    _, _, h, w = img.shape
    rows = torch.arange(h, device=img.device)[None]
    cols = torch.arange(w, device=img.device)[None]
    in_r = (rows >= boxes[:, 1:2]) & (rows <= boxes[:, 3:4])  # (B, H)
    in_c = (cols >= boxes[:, 0:1]) & (cols <= boxes[:, 2:3])  # (B, W)
    box = (in_r[:, :, None] & in_c[:, None, :])[:, None]
    return torch.where(box, torch.full_like(img, fill), img)


def _lnm_cutout(img, v, u):
    """The pool's Cutout: a square of ``int(0.01·v·min(H, W))`` pixels at positions ``u``."""
    _, _, h, w = img.shape
    sides = [int(lnmbench_magnitude("cutout", k) * min(h, w)) for k in range(1, 11)]
    return _fill_boxes(img, cutout_boxes(u, _per_sample(sides, v, torch.int64), w, h))


_LNM_FUNCS = {
    "autocontrast": _lnm_autocontrast,
    "brightness": _lnm_brightness,
    "color": _lnm_color,
    "contrast": _lnm_contrast,
    "equalize": _lnm_equalize,
    "invert": _lnm_invert,
    "posterize": _lnm_posterize,
    "sharpness": _lnm_sharpness,
    "solarize": _lnm_solarize,
    "solarize_add": _lnm_solarize_add,
    **{
        op: _lnm_geometric(op)
        for op in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
    },
}


def lnmbench_op(op: str, img: torch.Tensor, v, negative, cutout_u=None) -> torch.Tensor:
    """One pool operation on every image of ``img`` (float, integer values in [0, 255]) with the
    per-sample integer magnitudes ``v`` and signs ``negative`` (both (B,), on the device);
    ``cutout_u`` (B, 2): the Cutout's positions."""
    if op == "cutout":
        return _lnm_cutout(img, v, cutout_u)
    return _LNM_FUNCS[op](img, v, negative)


def draw_lnmbench(
    gen: torch.Generator, batch: int, num_ops: int = 2, magnitude: int = 5, prob: float = 0.5
) -> dict:
    """The random choices of :func:`apply_lnmbench` for a batch, on the CPU, from ``gen``, in
    this order: the operations (num_ops, B) uniform over :data:`LNMBENCH_OPS` (with
    replacement), their magnitudes uniform in {1, …, magnitude − 1}, whether each is applied
    (uniform < prob), whether its sign is negative (uniform < 0.5), the pool Cutout's
    position (num_ops, B, 2) and the final Cutout's position (B, 2) (float64 uniforms)."""
    if magnitude < 2 or magnitude > 11:
        raise ValueError(f"magnitude {magnitude!r}; allowed: an integer in [2, 11]")
    return {
        "op": torch.randint(0, len(LNMBENCH_OPS), (num_ops, batch), generator=gen),
        "v": torch.randint(1, magnitude, (num_ops, batch), generator=gen),
        "apply": torch.rand((num_ops, batch), generator=gen) < prob,
        "negative": torch.rand((num_ops, batch), generator=gen) < 0.5,
        "cutout_u": torch.rand((num_ops, batch, 2), generator=gen, dtype=torch.float64),
        "final_u": torch.rand((batch, 2), generator=gen, dtype=torch.float64),
    }


def apply_lnmbench(img: torch.Tensor, draws: dict, cutout_frac: float = 0.15) -> torch.Tensor:
    """LNMBench's ``RandAugmentwogeo`` on ``img`` (B, C, H, W; float, integer values in
    [0, 255]) with the choices ``draws`` of :func:`draw_lnmbench`; returns a new batch."""
    _, _, h, w = img.shape
    dev = img.device
    v, neg = draws["v"].to(dev), draws["negative"].to(dev)
    cut_u = draws["cutout_u"].to(dev)
    for j in range(len(draws["op"])):
        for k, op in enumerate(LNMBENCH_OPS):
            sel = torch.nonzero(draws["apply"][j] & (draws["op"][j] == k)).squeeze(1)
            if len(sel) == 0:
                continue
            sel = sel.to(dev)
            out = lnmbench_op(op, img[sel], v[j, sel], neg[j, sel], cut_u[j, sel])
            img = img.index_copy(0, sel, out)
    side = torch.full((len(img),), int(w * cutout_frac), dtype=torch.int64, device=dev)
    return _fill_boxes(img, cutout_boxes(draws["final_u"].to(dev), side, w, h))


def lnmbench_rand_augment(
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    gen: torch.Generator,
    num_ops: int = 2,
    magnitude: int = 5,
    prob: float = 0.5,
    cutout_frac: float = 0.15,
) -> torch.Tensor:
    """DISC's strong view under the reference protocol: a normalised batch ``x`` (the crop/flip
    view) back to 8-bit values (rounded, as the PIL crop is), LNMBench's ``RandAugmentwogeo``,
    normalised again."""
    img = ((x * std + mean) * 255.0).round_().clamp_(0.0, 255.0)
    img = apply_lnmbench(img, draw_lnmbench(gen, len(x), num_ops, magnitude, prob), cutout_frac)
    return (img / 255.0 - mean) / std
