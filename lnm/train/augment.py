"""Vectorised on-device augmentation of uint8 NCHW batches (no PIL, no DataLoader).

Options (the ``augment`` mapping of a training recipe, :data:`AUGMENT_KEYS`):

``crop_padding`` (int, default 4)
    random crop of the image's own size from the image zero-padded by this many pixels (0: off);
``hflip`` / ``vflip`` (bool, default true / false)
    flip each image left-right / upside-down with probability 0.5;
``resized_crop`` (``{scale: [lo, hi], ratio: [lo, hi]}`` or null, default null)
    torchvision's ``RandomResizedCrop`` back to the image's size: a crop of ``scale`` times the
    image's area and aspect ratio in ``ratio`` (log-uniform), ten tries and then the central-crop
    fallback, exactly as torchvision draws it (integer crop size and offset);
``rotation`` (degrees >= 0, default 0)
    torchvision's ``RandomRotation(rotation)``: an angle uniform in [-rotation, rotation],
    counter-clockwise, about the image centre, bilinear, filled with 0 (black) outside;
``brightness`` / ``contrast`` (>= 0, default 0)
    torchvision's ``ColorJitter(brightness, contrast)``: factors uniform in
    [max(0, 1 - b), 1 + b]; brightness scales the pixels, contrast blends each image with the
    mean of its grayscale (0.2989 R + 0.587 G + 0.114 B; the image itself with one channel);
    both clamped to [0, 255]; with both on, each image gets them in a random order (as
    ColorJitter's random permutation of its operations).

LNMBench's fundus and CheXpert recipe (reference protocol §3.3) is
``{crop_padding: 0, hflip: true, resized_crop: {scale: [0.95, 1.0], ratio: [0.95, 1.05]},
brightness: 0.1, contrast: 0.1, rotation: 5}``, applied in torchvision's order: crop → flip →
colour jitter → rotation. Crop, flips and rotation are one ``affine_grid``/``grid_sample``
(bilinear, zero padding) per batch. The colour jitter is computed after that resampling but
equals jitter-then-rotate: the zero fill of the rotation is kept at 0 and the contrast mean is
taken over the image's own (not filled) pixels, by the coverage of every output pixel.
Differences to torchvision's PIL pipeline: the crop is taken from the stored image (already
resized once when the HDF5 file was written) and resampled once, without intermediate uint8
rounding; the jitter is not quantised to uint8 between its operations.

Random numbers. Every random number is drawn on the CPU from the batch's ``torch.Generator``
and moved to the device once (identical on every device), in this order:

1. ``crop_padding`` > 0: ``torch.randint(0, 2 * crop_padding + 1, (2, B))`` (row, column offsets);
2. always: ``torch.rand((2, B))`` (horizontal, vertical flip when < 0.5);
3. any of ``resized_crop``/``rotation``/``brightness``/``contrast`` on: one
   ``torch.rand((B, K), dtype=float64)`` whose columns are, for the options that are on and in
   this order: ``resized_crop`` 22 (ten (scale, log-ratio) tries, then the row and column
   offset), ``rotation`` 1, ``brightness`` 1, ``contrast`` 1, and with both jitters on 1 more
   (contrast first when < 0.5).

With the new options off, nothing else is drawn and the results are those of the crop/flip-only
augmenter (byte-identical).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: The keys of a recipe's ``augment`` mapping, each with its JSON-schema fragment.
AUGMENT_KEYS: dict[str, dict] = {
    "crop_padding": {"type": "integer", "minimum": 0},
    "hflip": {"type": "boolean"},
    "vflip": {"type": "boolean"},
    "resized_crop": {
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["scale", "ratio"],
                "properties": {
                    "scale": {
                        "type": "array",
                        "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                    "ratio": {
                        "type": "array",
                        "items": {"type": "number", "exclusiveMinimum": 0},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
            },
        ]
    },
    "rotation": {"type": "number", "minimum": 0, "maximum": 180},
    "brightness": {"type": "number", "minimum": 0},
    "contrast": {"type": "number", "minimum": 0},
}

#: Tries of torchvision's RandomResizedCrop before its central-crop fallback.
CROP_TRIES = 10
#: ITU-R 601-2 luma weights, as torchvision's ``rgb_to_grayscale``.
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _pair(value, key: str, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"augment.resized_crop.{key} = {value!r}; allowed: a pair [lo, hi] of numbers"
        ) from None
    if not 0 < lo <= hi or (key == "scale" and hi > 1):
        bound = "0 < lo <= hi <= 1" if key == "scale" else "0 < lo <= hi"
        raise ValueError(f"augment.resized_crop.{key} = {value!r}; allowed: {bound} ({name})")
    return lo, hi


def crop_boxes(
    u: torch.Tensor, height: int, width: int, scale, ratio
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """torchvision's ``RandomResizedCrop.get_params`` for a batch: ``u`` (B, 2 * CROP_TRIES + 2)
    uniforms (float64) → (top, left, crop height, crop width), each (B,) float64 integers."""
    area = float(height * width)
    lo_r, hi_r = math.log(ratio[0]), math.log(ratio[1])
    tries = u[:, : 2 * CROP_TRIES].reshape(len(u), CROP_TRIES, 2)
    target = area * (scale[0] + tries[..., 0] * (scale[1] - scale[0]))
    aspect = torch.exp(lo_r + tries[..., 1] * (hi_r - lo_r))
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.to(torch.int64).argmax(1)  # the first valid try (0 when none is)
    w = w.gather(1, first[:, None]).squeeze(1)
    h = h.gather(1, first[:, None]).squeeze(1)
    # the fallback: the largest central crop with the aspect ratio clamped into `ratio`
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    found = ok.any(1)
    w = torch.where(found, w, torch.full_like(w, float(fw)))
    h = torch.where(found, h, torch.full_like(h, float(fh)))
    u_top, u_left = u[:, 2 * CROP_TRIES], u[:, 2 * CROP_TRIES + 1]
    top = torch.minimum(torch.floor(u_top * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u_left * (width - w + 1)), width - w)
    top = torch.where(found, top, torch.full_like(top, float((height - fh) // 2)))
    left = torch.where(found, left, torch.full_like(left, float((width - fw) // 2)))
    return top, left, h, w


def affine_params(
    height: int,
    width: int,
    top: torch.Tensor,
    left: torch.Tensor,
    crop_h: torch.Tensor,
    crop_w: torch.Tensor,
    hflip: torch.Tensor,
    vflip: torch.Tensor,
    angle_deg: torch.Tensor,
) -> torch.Tensor:
    """The (B, 12) float64 parameters of :func:`warp` for: crop the box (top, left, crop_h,
    crop_w) of an H x W image, resize it to H x W, flip it (bool masks), rotate it ``angle_deg``
    counter-clockwise about its centre.

    Columns: the ``affine_grid`` matrix theta (2 x 3, row-major, ``align_corners=False``: output
    position → source position, normalised), the crop box's pixel-centre bounds (x lo, x hi,
    y lo, y hi; normalised) and the crop's scale (x, y; negative when flipped)."""
    a = torch.deg2rad(angle_deg.double())
    cos, sin = torch.cos(a), torch.sin(a)
    top, left, crop_h, crop_w = (v.double() for v in (top, left, crop_h, crop_w))
    sx = (1.0 - 2.0 * hflip.double()) * crop_w / width
    sy = (1.0 - 2.0 * vflip.double()) * crop_h / height
    # output pixel p (centre-relative, y down) ← inverse rotation R = [[cos, -sin], [sin, cos]]
    # ← inverse flip and resize S = diag(sx, sy) ← crop centre t; in normalised units
    # theta = A^-1 S R A | A^-1 t with A = diag(W/2, H/2)
    return torch.stack(
        [
            sx * cos,
            -sx * sin * height / width,
            (left + crop_w / 2 - width / 2) * 2 / width,
            sy * sin * width / height,
            sy * cos,
            (top + crop_h / 2 - height / 2) * 2 / height,
            (2 * left + 1) / width - 1,
            (2 * (left + crop_w) - 1) / width - 1,
            (2 * top + 1) / height - 1,
            (2 * (top + crop_h) - 1) / height - 1,
            sx,
            sy,
        ],
        1,
    )


def _centres(n: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel centres of an axis of ``n`` pixels in normalised units (``align_corners=False``)."""
    return (torch.arange(n, device=like.device, dtype=like.dtype) * 2 + 1) / n - 1


def coverage(qx: torch.Tensor, qy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 1, H, W): the weight bilinear ``grid_sample`` (zero padding) gives to in-image pixels
    at the normalised positions ``qx``, ``qy`` (B, H, W), i.e. what a constant image of ones
    resamples to (0 in the filled corners, 1 inside)."""
    px = (qx + 1) * (width / 2) - 0.5
    py = (qy + 1) * (height / 2) - 0.5
    wx = torch.minimum(px + 1, width - px).clamp_(0, 1)
    wy = torch.minimum(py + 1, height - py).clamp_(0, 1)
    return wx.mul_(wy)[:, None]


def warp(
    x: torch.Tensor, params: torch.Tensor, rotated: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crop, flip and rotate a float (B, C, H, W) batch in one bilinear ``grid_sample``;
    ``params``: :func:`affine_params` (on the batch's device, float32).

    The sampling grid is theta applied to the output's pixel centres (``affine_grid``'s,
    computed by broadcasting). Source positions are clamped into the crop box (edge replication,
    as resizing a cropped image does) and the rotation's fill is applied by the coverage of each
    output pixel (0 outside, as ``grid_sample``'s zero padding in the rotated image). Returns
    the batch and, when ``rotated``, the coverage (else None: no pixel is filled)."""
    b, _, h, w = x.shape
    p = params[:, :, None, None]  # (B, 12, 1, 1)
    cols, rows = _centres(w, x).view(1, 1, w), _centres(h, x).view(1, h, 1)
    grid = x.new_empty(b, h, w, 2)
    gx = torch.add(p[:, 0] * cols, p[:, 1] * rows + p[:, 2], out=grid[..., 0])
    gy = torch.add(p[:, 3] * cols, p[:, 4] * rows + p[:, 5], out=grid[..., 1])
    cover = None
    if rotated:  # grid = scale * q + shift, q: the point in the rotated crop
        cover = coverage((gx - p[:, 2]) / p[:, 10], (gy - p[:, 5]) / p[:, 11], h, w)
    gx.clamp_(min=p[:, 6], max=p[:, 7])
    gy.clamp_(min=p[:, 8], max=p[:, 9])
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (x, None) if cover is None else (x.mul_(cover), cover)


#: LNMBench's training augmentation of the fundus sets and CheXpert (reference-protocol §3.3:
#: RandomResizedCrop scale 0.95-1 ratio 0.95-1.05, horizontal flip, ColorJitter(0.1, 0.1),
#: RandomRotation ±5°); config.yaml's real_world entries use it (a test checks they agree).
LNMBENCH_AUGMENT = {
    "crop_padding": 0,
    "hflip": True,
    "vflip": False,
    "resized_crop": {"scale": [0.95, 1.0], "ratio": [0.95, 1.05]},
    "rotation": 5,
    "brightness": 0.1,
    "contrast": 0.1,
}


class Augmenter:
    """Random crop with zero padding and random flips, plus the optional resized crop, rotation
    and colour jitter of the module docstring; drawn from a CPU ``torch.Generator``.

    Drawing the random numbers on the CPU keeps them identical across devices; they are then
    moved to the data's device in one transfer.
    """

    def __init__(
        self,
        mean,
        std,
        crop_padding: int = 4,
        hflip: bool = True,
        vflip: bool = False,
        device: torch.device | str = "cpu",
        resized_crop: dict | None = None,
        rotation: float = 0.0,
        brightness: float = 0.0,
        contrast: float = 0.0,
    ):
        self.pad = int(crop_padding)
        if self.pad < 0:
            raise ValueError(f"augment.crop_padding = {crop_padding!r}; allowed: an integer >= 0")
        self.hflip, self.vflip = bool(hflip), bool(vflip)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.crop = None
        if resized_crop is not None:
            if not isinstance(resized_crop, dict) or set(resized_crop) != {"scale", "ratio"}:
                raise ValueError(
                    f"augment.resized_crop = {resized_crop!r}; allowed: null or "
                    "{scale: [lo, hi], ratio: [lo, hi]}"
                )
            self.crop = (
                _pair(resized_crop["scale"], "scale", "fraction of the image area"),
                _pair(resized_crop["ratio"], "ratio", "width / height"),
            )
        for key, value, top in (
            ("rotation", rotation, 180.0),
            ("brightness", brightness, math.inf),
            ("contrast", contrast, math.inf),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= top
            ):
                bound = f"0 <= value <= {top:g}" if math.isfinite(top) else "a number >= 0"
                raise ValueError(f"augment.{key} = {value!r}; allowed: {bound} (0 = off)")
        self.rotation = float(rotation)
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.channels = self.mean.shape[1]
        if self.contrast and self.channels not in (1, 3):
            raise ValueError(
                f"augment.contrast = {contrast!r} needs 1- or 3-channel images (a grayscale "
                f"mean); these have {self.channels} channels"
            )
        self.gray = (
            torch.tensor(GRAY_WEIGHTS, dtype=torch.float32, device=device).view(1, 3, 1, 1)
            if self.channels == 3
            else None
        )

    @property
    def geometric(self) -> bool:
        """Whether the resampled (affine) path is on."""
        return self.crop is not None or self.rotation > 0

    @property
    def jitter(self) -> bool:
        return self.brightness > 0 or self.contrast > 0

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in [0, 255], changed in place) → (x / 255 - mean) / std, float32."""
        return x.float().div_(255.0).sub_(self.mean).div_(self.std)

    def _columns(self) -> int:
        k = (2 * CROP_TRIES + 2) if self.crop is not None else 0
        k += int(self.rotation > 0) + int(self.brightness > 0) + int(self.contrast > 0)
        return k + int(self.brightness > 0 and self.contrast > 0)

    def draw(self, flips: torch.Tensor, gen: torch.Generator, b: int, h: int, w: int):
        """The per-image parameters of the new options (CPU, float64), from one
        ``torch.rand((B, K))`` of ``gen``: (the (B, 12) :func:`affine_params` or None; the jitter
        steps [(factor, is_contrast)])."""
        u = torch.rand((b, self._columns()), generator=gen, dtype=torch.float64)
        col = 0
        geo = None
        if self.geometric:
            if self.crop is not None:
                top, left, ch, cw = crop_boxes(u[:, : 2 * CROP_TRIES + 2], h, w, *self.crop)
                col += 2 * CROP_TRIES + 2
            else:
                top = left = torch.zeros(b, dtype=torch.float64)
                ch = torch.full((b,), float(h), dtype=torch.float64)
                cw = torch.full((b,), float(w), dtype=torch.float64)
            angle = torch.zeros(b, dtype=torch.float64)
            if self.rotation > 0:
                angle = (2 * u[:, col] - 1) * self.rotation
                col += 1
            hf = flips[0] if self.hflip else torch.zeros(b, dtype=torch.bool)
            vf = flips[1] if self.vflip else torch.zeros(b, dtype=torch.bool)
            geo = affine_params(h, w, top, left, ch, cw, hf, vf, angle)
        steps = []
        factors = {}
        for key in ("brightness", "contrast"):
            amount = getattr(self, key)
            if amount > 0:
                lo = max(0.0, 1.0 - amount)
                factors[key] = lo + u[:, col] * (1.0 + amount - lo)
                col += 1
        if len(factors) == 2:
            contrast_first = u[:, col] < 0.5
            fb, fc = factors["brightness"], factors["contrast"]
            steps = [
                (torch.where(contrast_first, fc, fb), contrast_first),
                (torch.where(contrast_first, fb, fc), ~contrast_first),
            ]
        elif factors:
            ((key, f),) = factors.items()
            steps = [(f, torch.full((b,), key == "contrast"))]
        return geo, steps

    def _jitter(self, x: torch.Tensor, steps, cover: torch.Tensor | None) -> torch.Tensor:
        """Brightness/contrast steps, in place, on a float (B, C, H, W) batch in [0, 255]: per
        step y = clamp(f x + (1 - f) m) for contrast (m: the grayscale mean), clamp(f x) for
        brightness. With ``cover`` (rotated images) the mean is over the image's own pixels and
        the fill stays 0 (y = cover * jitter(x / cover))."""
        b, _, h, w = x.shape
        top = None if cover is None else cover * 255.0
        area = float(h * w) if cover is None else cover.sum((1, 2, 3)).clamp_min(1e-12)
        for factor, is_contrast in steps:
            if self.contrast > 0:  # (known on the CPU: no device sync)
                sums = x.sum((2, 3))  # (B, C)
                gray = sums[:, 0] if self.gray is None else sums @ self.gray.view(3)
                shift = torch.where(is_contrast, (1 - factor) * (gray / area), 0.0)
                x.mul_(factor.view(b, 1, 1, 1))
                shift = shift.view(b, 1, 1, 1)
                x.add_(shift if cover is None else cover * shift)
            else:
                x.mul_(factor.view(b, 1, 1, 1))
            x.clamp_(min=0.0)
            if top is None:
                x.clamp_(max=255.0)
            else:
                torch.minimum(x, top, out=x)
        return x

    def _pad_crop(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Random crop of ``x`` (B, C, H, W) zero-padded by ``pad`` on every side."""
        b, _, h, w = x.shape
        dev, p = x.device, self.pad
        padded = F.pad(x, (p, p, p, p))
        off = torch.randint(0, 2 * p + 1, (2, b), generator=gen).to(dev)
        rows = (off[0, :, None] + torch.arange(h, device=dev))[:, :, None]  # (B, H, 1)
        cols = (off[1, :, None] + torch.arange(w, device=dev))[:, None, :]  # (B, 1, W)
        bidx = torch.arange(b, device=dev)[:, None, None]
        return padded.permute(0, 2, 3, 1)[bidx, rows, cols].permute(0, 3, 1, 2)

    def _flip(self, x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """``x`` with image i flipped left-right where ``flips[i, 0]`` (with ``hflip``) and
        upside down where ``flips[i, 1]`` (with ``vflip``)."""
        if self.hflip:
            x = torch.where(flips[:, 0, None, None, None], x.flip(3), x)
        if self.vflip:
            x = torch.where(flips[:, 1, None, None, None], x.flip(2), x)
        return x

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment a uint8 (B, C, H, W) batch and return it normalised as float."""
        b, _, h, w = x.shape
        if self.pad:
            x = self._pad_crop(x, gen)
        flips_cpu = torch.rand((2, b), generator=gen)
        if not (self.geometric or self.jitter):  # the crop/flip-only augmenter
            return self.normalize(self._flip(x, flips_cpu.T.to(x.device) < 0.5))
        geo, steps = self.draw(flips_cpu < 0.5, gen, b, h, w)
        # one transfer: flips (2), the affine parameters (12), per jitter step its factor and
        # contrast flag (2 each)
        parts = [flips_cpu.T.double()]
        if geo is not None:
            parts.append(geo)
        for factor, is_contrast in steps:
            parts += [factor[:, None], is_contrast.double()[:, None]]
        params = torch.cat(parts, 1).float().to(x.device)
        x = x.to(torch.float32, copy=True)  # ours: changed in place below
        cover = None
        if geo is not None:
            x, cover = warp(x, params[:, 2:14], rotated=self.rotation > 0)
        else:  # jitter only: flips as in the crop/flip-only augmenter
            x = self._flip(x, params[:, :2] < 0.5)
        col = 2 if geo is None else 14
        dev_steps = [
            (params[:, c], params[:, c + 1] > 0.5) for c in range(col, col + 2 * len(steps), 2)
        ]
        if dev_steps:
            x = self._jitter(x, dev_steps, cover)
        return self.normalize(x)
