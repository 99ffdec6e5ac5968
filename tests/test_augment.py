"""On-device augmentation: the crop/flip-only augmenter unchanged, the fundus recipe's geometry
and colour jitter checked against hand-built inputs and torchvision."""

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from lnm.train.augment import (
    AUGMENT_KEYS,
    CROP_TRIES,
    LNMBENCH_AUGMENT,
    Augmenter,
    affine_params,
    crop_boxes,
    warp,
)

BILINEAR = InterpolationMode.BILINEAR
#: mean 0, std 1/255: the normalised output is in pixel units
PIXELS = dict(mean=[0.0, 0.0, 0.0], std=[1 / 255] * 3)
FUNDUS = LNMBENCH_AUGMENT
#: float32 resampling of values up to 255 (grid coordinates carry ~1e-7 relative error)
TOL = 1e-3


def legacy(aug_pad, hflip, vflip, mean, std, x, gen):
    """The crop/flip-only augmenter as it was before the new options (the reference)."""
    b, _, h, w = x.shape
    if aug_pad:
        p = aug_pad
        padded = F.pad(x, (p, p, p, p))
        off = torch.randint(0, 2 * p + 1, (2, b), generator=gen)
        rows = (off[0, :, None] + torch.arange(h))[:, :, None]
        cols = (off[1, :, None] + torch.arange(w))[:, None, :]
        bidx = torch.arange(b)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[bidx, rows, cols].permute(0, 3, 1, 2)
    flips = torch.rand((2, b), generator=gen) < 0.5
    if hflip:
        x = torch.where(flips[0, :, None, None, None], x.flip(3), x)
    if vflip:
        x = torch.where(flips[1, :, None, None, None], x.flip(2), x)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - m) / s


def smooth(b=2, c=3, h=40, w=32):
    """A smooth image (interpolation errors stay small), different per image and channel."""
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    out = torch.stack(
        [
            torch.stack(
                [128 + 100 * torch.sin(xx / (5 + i) + k) * torch.cos(yy / 7) for k in range(c)]
            )
            for i in range(b)
        ]
    )
    return out.round().to(torch.uint8)


@pytest.mark.parametrize("pad, hflip, vflip", [(4, True, False), (0, True, True), (2, False, True)])
def test_without_the_new_options_the_augmenter_is_unchanged(pad, hflip, vflip):
    x = torch.randint(0, 256, (5, 3, 9, 7), dtype=torch.uint8)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    off = dict(resized_crop=None, rotation=0, brightness=0, contrast=0)
    for extra in ({}, off):
        aug = Augmenter(mean, std, crop_padding=pad, hflip=hflip, vflip=vflip, **extra)
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        for _ in range(3):
            assert torch.equal(aug(x, g1), legacy(pad, hflip, vflip, mean, std, x, g2))
        assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_identity_settings_reproduce_the_image_and_its_flips():
    x = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8)
    aug = Augmenter(
        **PIXELS, crop_padding=0, hflip=True, resized_crop={"scale": [1, 1], "ratio": [1, 1]}
    )
    g, replay = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    out = aug(x, g)
    flips = torch.rand((2, 6), generator=replay) < 0.5  # drawn first (no crop padding)
    want = torch.where(flips[0, :, None, None, None], x.flip(3), x).float()
    assert flips[0].any() and not flips[0].all()
    torch.testing.assert_close(out, want, atol=TOL, rtol=0)
    # the documented draws: then one (B, 22) float64 block for the resized crop
    torch.rand((6, 2 * CROP_TRIES + 2), generator=replay, dtype=torch.float64)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=replay))


def test_warp_matches_flips_rot90_and_torchvision():
    x = torch.randint(0, 256, (2, 3, 16, 12), dtype=torch.uint8).float()
    b, _, h, w = x.shape
    z, no = torch.zeros(b, dtype=torch.float64), torch.zeros(b, dtype=torch.bool)
    full = (z, z, torch.full((b,), float(h)), torch.full((b,), float(w)))

    def run(box, hf=no, vf=no, angle=z, img=x):
        hh, ww = img.shape[2:]
        out, _ = warp(img, affine_params(hh, ww, *box, hf, vf, angle).float(), True)
        return out

    torch.testing.assert_close(run(full), x, atol=TOL, rtol=0)
    torch.testing.assert_close(run(full, hf=~no), x.flip(3), atol=TOL, rtol=0)
    torch.testing.assert_close(run(full, vf=~no), x.flip(2), atol=TOL, rtol=0)
    sq = x[..., :12, :]
    sq_full = (z, z, torch.full((b,), 12.0), torch.full((b,), 12.0))
    quarter = torch.full((b,), 90.0, dtype=torch.float64)  # counter-clockwise
    torch.testing.assert_close(
        run(sq_full, angle=quarter, img=sq), sq.rot90(1, (2, 3)), atol=TOL, rtol=0
    )
    for deg in (5.0, -3.5, 30.0):  # torchvision's rotate: bilinear, fill 0
        want = TF.rotate(x, deg, interpolation=BILINEAR)
        got = run(full, angle=torch.full((b,), deg, dtype=torch.float64))
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)
    top, left = torch.tensor([1.0, 0.0]), torch.tensor([2.0, 1.0])
    ch, cw = torch.tensor([13.0, 16.0]), torch.tensor([10.0, 11.0])
    got = run((top, left, ch, cw))
    for i in range(b):  # torchvision's resized crop (upscaling: no antialias)
        want = TF.resized_crop(
            x[i : i + 1], int(top[i]), int(left[i]), int(ch[i]), int(cw[i]), [h, w], BILINEAR,
            antialias=False,
        )  # fmt: skip
        torch.testing.assert_close(got[i : i + 1], want, atol=TOL, rtol=0)


def test_one_resampling_is_close_to_torchvisions_chain_on_a_smooth_image():
    """crop → resize → flip → rotate: torchvision resamples twice, we once. Bilinear
    interpolation errs by at most (|f_xx| + |f_yy|) / 8 per step; smooth() has
    |f_xx| <= 100 / 25 and |f_yy| <= 100 / 49 per pixel^2, so < 0.76 levels per step and the two
    pipelines differ by less than 3 x 0.76."""
    x = smooth().float()
    b, _, h, w = x.shape
    no = torch.zeros(b, dtype=torch.bool)
    top, left = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0])
    ch, cw = torch.tensor([38.0, 37.0]), torch.tensor([30.0, 31.0])
    angle = torch.tensor([5.0, -4.0], dtype=torch.float64)
    got, _ = warp(x, affine_params(h, w, top, left, ch, cw, ~no, no, angle).float(), True)
    for i in range(b):
        r = TF.resized_crop(
            x[i : i + 1], int(top[i]), int(left[i]), int(ch[i]), int(cw[i]), [h, w], BILINEAR,
            antialias=False,
        )  # fmt: skip
        want = TF.rotate(TF.hflip(r), float(angle[i]), interpolation=BILINEAR)
        assert (got[i : i + 1] - want).abs().max() < 3 * 0.76


def test_a_marker_lands_where_the_affine_map_says():
    """15 x 15 image, crop 5 x 5 at (top 2, left 5) → x3: source pixel (2 + r, 5 + c) lands
    exactly on output (1 + 3r, 1 + 3c); then flip left-right (col → 14 - col), then a quarter
    turn counter-clockwise ((row, col) → (14 - col, row))."""
    img = torch.zeros(1, 1, 15, 15)
    img[0, 0, 2 + 2, 5 + 3] = 255.0  # r = 2, c = 3 → output (7, 10)
    one = lambda v: torch.tensor([v], dtype=torch.float64)
    yes, no = torch.tensor([True]), torch.tensor([False])
    cases = [(no, 0.0, (7, 10)), (yes, 0.0, (7, 4)), (no, 90.0, (4, 7)), (yes, 90.0, (10, 7))]
    for hflip, angle, (row, col) in cases:
        p = affine_params(15, 15, one(2), one(5), one(5), one(5), hflip, no, one(angle))
        out, _ = warp(img, p.float(), True)
        assert out[0, 0, row, col] == pytest.approx(255.0, abs=TOL), (hflip, angle)
        assert int((out > 255 - TOL).sum()) == 1  # nowhere else
        assert out.sum() == pytest.approx(255.0 * 9, abs=0.1)  # bilinear x3: a 9-pixel tent


def test_crop_boxes_follow_torchvisions_rules():
    g = torch.Generator().manual_seed(0)
    u = torch.rand((4000, 2 * CROP_TRIES + 2), generator=g, dtype=torch.float64)
    top, left, h, w = crop_boxes(u, 64, 80, (0.5, 0.9), (0.75, 1.25))
    assert (
        (top >= 0).all() and (left >= 0).all() and (top + h <= 64).all() and (left + w <= 80).all()
    )
    area = h * w / (64 * 80)
    assert area.min() > 0.48 and area.max() < 0.92  # scale, up to the rounding of h and w
    ratio = w / h
    assert ratio.min() > 0.72 and ratio.max() < 1.3
    assert top.min() == 0 and (top + h).max() == 64  # offsets reach both ends
    assert torch.equal(top, top.floor()) and torch.equal(h, h.round())
    # no try can fit (aspect 2 at full area): torchvision's central-crop fallback
    top, left, h, w = crop_boxes(u[:3], 64, 64, (1.0, 1.0), (2.0, 2.0))
    assert torch.equal(w, torch.full((3,), 64.0)) and torch.equal(h, torch.full((3,), 32.0))
    assert torch.equal(top, torch.full((3,), 16.0)) and torch.equal(left, torch.zeros(3))


def _replay_jitter(b, gen, **aug):
    """The factors (and order) an augmenter with only colour jitter draws from ``gen``."""
    torch.rand((2, b), generator=gen)
    k = int(aug.get("brightness", 0) > 0) + int(aug.get("contrast", 0) > 0)
    k += int(k == 2)
    return torch.rand((b, k), generator=gen, dtype=torch.float64)


def test_brightness_and_contrast_apply_torchvisions_factors():
    x = smooth(b=4)
    ref = x.float() / 255
    for jitter in ({"brightness": 0.5}, {"contrast": 0.5}, {"brightness": 0.3, "contrast": 0.6}):
        aug = Augmenter(**PIXELS, crop_padding=0, hflip=False, **jitter)
        g, replay = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        got = aug(x, g)
        u = _replay_jitter(4, replay, **jitter)
        fb = fc = None
        col = 0
        if "brightness" in jitter:
            a = jitter["brightness"]
            fb, col = 1 - a + u[:, col] * 2 * a, col + 1
        if "contrast" in jitter:
            a = jitter["contrast"]
            fc, col = 1 - a + u[:, col] * 2 * a, col + 1
        contrast_first = u[:, col] < 0.5 if col < u.shape[1] else torch.zeros(4, dtype=torch.bool)
        for i in range(4):
            img = ref[i]
            ops = [("b", fb), ("c", fc)]
            if contrast_first[i]:
                ops.reverse()
            for op, f in ops:
                if f is None:
                    continue
                fn = TF.adjust_brightness if op == "b" else TF.adjust_contrast
                img = fn(img, float(f[i]))
            torch.testing.assert_close(got[i], img * 255, atol=TOL, rtol=0)
        if len(jitter) == 2:
            assert contrast_first.any() and not contrast_first.all()


def test_rotation_fill_stays_black_under_colour_jitter():
    """A constant image: contrast leaves it as it is, brightness scales it, and the rotation's
    fill (where torchvision's rotate of a ones image is < 1) stays black, as when the jitter
    comes first."""
    b = 8
    x = torch.full((b, 3, 15, 15), 200, dtype=torch.uint8)
    aug = Augmenter(
        **PIXELS, crop_padding=0, hflip=False, rotation=45, brightness=0.2, contrast=0.4
    )
    g, replay = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    out = aug(x, g)
    torch.rand((2, b), generator=replay)
    u = torch.rand((b, 4), generator=replay, dtype=torch.float64)  # angle, b, c, order
    angle, fb = (2 * u[:, 0] - 1) * 45, 0.8 + u[:, 1] * 0.4
    for i in range(b):
        cover = TF.rotate(torch.ones(1, 15, 15), float(angle[i]), interpolation=BILINEAR)
        want = 200 * float(fb[i]) * cover.expand(3, 15, 15)
        # float32 sums of 675 values in the contrast mean: relative error < 675 * 2^-24
        torch.testing.assert_close(out[i], want, atol=TOL, rtol=675 * 2**-24)
    assert (out[:, :, 0, 0] < 200 * 0.8).any()  # some corners are (partly) filled


def test_fundus_recipe_runs_and_keeps_range():
    x = smooth(b=16, h=32, w=32)
    aug = Augmenter([0.5] * 3, [0.25] * 3, **FUNDUS)
    g = torch.Generator().manual_seed(0)
    a, b = aug(x, g), aug(x, g)
    assert a.shape == (16, 3, 32, 32) and a.dtype == torch.float32
    assert not torch.equal(a, b)  # independent views
    pixels = a * 0.25 + 0.5
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    # same seed, same views
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(aug(x, g2), a)


@pytest.mark.parametrize(
    "kw, match",
    [
        (
            {"resized_crop": {"scale": [0.9], "ratio": [1, 1]}},
            r"resized_crop.scale = \[0.9\]; allowed: a pair",
        ),
        ({"resized_crop": {"scale": [0.9, 1.2], "ratio": [1, 1]}}, r"0 < lo <= hi <= 1"),
        ({"resized_crop": {"scale": [0.9, 1.0]}}, r"allowed: null or \{scale"),
        ({"resized_crop": {"scale": [0.5, 1], "ratio": [2, 1]}}, r"ratio = \[2, 1\].*0 < lo <= hi"),
        ({"rotation": -1}, r"augment.rotation = -1; allowed: 0 <= value <= 180"),
        ({"brightness": "high"}, r"augment.brightness = 'high'; allowed: a number >= 0"),
        ({"crop_padding": -2}, r"augment.crop_padding = -2"),
        ({"contrast": True}, r"augment.contrast = True; allowed: a number >= 0"),
    ],
)
def test_bad_options_name_the_key_value_and_what_is_allowed(kw, match):
    with pytest.raises(ValueError, match=match):
        Augmenter([0.5] * 3, [0.25] * 3, **kw)


def test_contrast_needs_one_or_three_channels():
    with pytest.raises(ValueError, match=r"contrast = 0.1 needs 1- or 3-channel.*have 2"):
        Augmenter([0.5, 0.5], [0.2, 0.2], contrast=0.1)
    Augmenter([0.5, 0.5], [0.2, 0.2], brightness=0.1)  # brightness is per pixel


def test_schema_fragments_cover_every_option():
    import inspect

    params = set(inspect.signature(Augmenter).parameters) - {"mean", "std", "device"}
    assert params == set(AUGMENT_KEYS)
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"type": "object", "additionalProperties": False, "properties": AUGMENT_KEYS}
    jsonschema.validate(FUNDUS, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**FUNDUS, "rotation": -5}, schema)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_cpu_draw_the_same_augmentation():
    x = smooth(b=8, h=64, w=64)
    aug_cpu = Augmenter([0.5] * 3, [0.25] * 3, **FUNDUS)
    aug_gpu = Augmenter([0.5] * 3, [0.25] * 3, device="cuda", **FUNDUS)
    a = aug_cpu(x, torch.Generator().manual_seed(0))
    b = aug_gpu(x.cuda(), torch.Generator().manual_seed(0)).cpu()
    assert math.isfinite(float(b.sum()))
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)


# --------------------------------------------------------------------------------------------
# LNMBench's strong-view pool (DISC under the reference protocol) against Pillow
# --------------------------------------------------------------------------------------------
SIGNED = {"rotate", "shear_x", "shear_y", "solarize_add", "translate_x", "translate_y"}


@pytest.fixture
def one_thread():  # small per-image tensors: threads only contend on a shared machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lnmbench_pil_op(img, op, v, negative, cutout_u=None):
    """One operation of LNMBench's ``new_augment_pool`` (DISC/datasets/randaugment.py) with
    integer magnitude ``v``, transcribed from reading it, with Pillow doing the pixel work:
    parameters ``v·max_v/10 + bias`` (``int(...)`` for Posterize, Rotate, Solarize,
    SolarizeAdd), the sign where the original draws one."""
    import numpy as np
    import PIL.Image
    import PIL.ImageDraw
    import PIL.ImageEnhance
    import PIL.ImageOps

    def fpar(max_v, bias=0.0):
        m = float(v) * max_v / 10 + bias
        return -m if negative and op in SIGNED else m

    def ipar(max_v, bias=0):
        m = int(v * max_v / 10) + bias
        return -m if negative and op in SIGNED else m

    w, h = img.size
    if op == "autocontrast":
        return PIL.ImageOps.autocontrast(img)
    if op == "equalize":
        return PIL.ImageOps.equalize(img)
    if op == "invert":
        return PIL.ImageOps.invert(img)
    if op in ("brightness", "color", "contrast", "sharpness"):
        enhance = {
            "brightness": PIL.ImageEnhance.Brightness,
            "color": PIL.ImageEnhance.Color,
            "contrast": PIL.ImageEnhance.Contrast,
            "sharpness": PIL.ImageEnhance.Sharpness,
        }[op]
        return enhance(img).enhance(fpar(1.8, 0.1))
    if op == "posterize":
        return PIL.ImageOps.posterize(img, ipar(4, 4))
    if op == "solarize":
        return PIL.ImageOps.solarize(img, 256 - ipar(256))
    if op == "solarize_add":
        a = np.clip(np.asarray(img).astype(np.int64) + ipar(110), 0, 255).astype(np.uint8)
        return PIL.ImageOps.solarize(PIL.Image.fromarray(a), 128)
    if op == "rotate":
        return img.rotate(ipar(30))
    if op == "shear_x":
        return img.transform(img.size, PIL.Image.AFFINE, (1, fpar(0.1), 0, 0, 1, 0))
    if op == "shear_y":
        return img.transform(img.size, PIL.Image.AFFINE, (1, 0, 0, fpar(0.1), 1, 0))
    if op == "translate_x":
        return img.transform(img.size, PIL.Image.AFFINE, (1, 0, int(fpar(0.05) * w), 0, 1, 0))
    if op == "translate_y":
        return img.transform(img.size, PIL.Image.AFFINE, (1, 0, 0, 0, 1, int(fpar(0.05) * h)))
    assert op == "cutout"
    return pil_cutout(img, int(fpar(0.1) * min(w, h)), cutout_u)


def pil_cutout(img, side, u):
    """LNMBench's ``CutoutAbs(img, side)`` with its two uniforms ``u`` = (u_x, u_y) in [0, 1)
    (``np.random.uniform(0, w)`` = u_x·w): a Pillow rectangle filled with gray 127."""
    import PIL.ImageDraw

    w, h = img.size
    x0, y0 = int(max(0, float(u[0]) * w - side / 2.0)), int(max(0, float(u[1]) * h - side / 2.0))
    x1, y1 = int(min(w, x0 + side)), int(min(h, y0 + side))
    img = img.copy()
    PIL.ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), 127 if img.mode == "L" else (127,) * 3)
    return img


def _pil(a):
    import PIL.Image

    return PIL.Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)


def _arr(img, channels):
    import numpy as np

    a = np.asarray(img)
    return a[..., None] if channels == 1 else a


def _test_images(h, w, c, seed):
    """Full-range noise, a narrow range (autocontrast stretches it) and five grey levels
    (equalize's small histograms)."""
    import numpy as np

    g = np.random.default_rng(seed)
    few = g.choice(g.integers(0, 256, 5), (h, w, c)).astype(np.uint8)
    return [
        g.integers(0, 256, (h, w, c), dtype=np.uint8),
        g.integers(40, 180, (h, w, c), dtype=np.uint8),
        few,
    ]


@pytest.mark.parametrize("shape", [(28, 28, 3), (26, 30, 1), (224, 224, 3)])
def test_every_lnmbench_operation_equals_pillow_pixel_for_pixel(shape, one_thread):
    """Each of the 16 operations, at the magnitudes DISC draws (1-4) and at 9, both signs, on
    colour and gray images (224 px: LNMBench's size, where the translations move pixels)."""
    import numpy as np

    from lnm.methods._randaugment import LNMBENCH_OPS, lnmbench_op

    h, w, c = shape
    images = _test_images(h, w, c, seed=sum(shape))
    x = torch.tensor(np.stack(images)).permute(0, 3, 1, 2).float()
    n = len(images)
    u = torch.tensor([[0.1, 0.9], [0.99, 0.02], [0.5, 0.5]], dtype=torch.float64)
    assert len(LNMBENCH_OPS) == 16 and "identity" not in LNMBENCH_OPS
    for op in LNMBENCH_OPS:
        for v in (1, 2, 3, 4, 9):
            for negative in (False, True) if op in SIGNED else (False,):
                vs, neg = torch.full((n,), v), torch.full((n,), negative)
                ours = lnmbench_op(op, x.clone(), vs, neg, u).permute(0, 2, 3, 1).numpy()
                for i, a in enumerate(images):
                    want = _arr(lnmbench_pil_op(_pil(a), op, v, negative, u[i]), c)
                    assert np.array_equal(ours[i], want), (op, v, negative, i)


def test_lnmbench_cutout_boxes_follow_cutoutabs_and_pillows_inclusive_rectangle():
    import numpy as np

    from lnm.methods._randaugment import _fill_boxes, cutout_boxes

    x = torch.zeros(6, 1, 28, 28)
    u = torch.tensor(
        [[0.0, 0.0], [0.999, 0.999], [0.5, 0.25], [0.02, 0.97], [0.3, 0.6], [0.71, 0.13]],
        dtype=torch.float64,
    )
    side = torch.tensor([4, 4, 0, 7, 1, 28])  # 0: one pixel (x1 = x0); 28: clipped
    ours = _fill_boxes(x, cutout_boxes(u, side, 28, 28))
    for i in range(6):
        want = _arr(pil_cutout(_pil(np.zeros((28, 28, 1), np.uint8)), int(side[i]), u[i]), 1)
        assert np.array_equal(ours[i].permute(1, 2, 0).numpy(), want), i
    assert ours[2].sum() == 127  # side 0 still fills one pixel
    assert (ours[0] > 0).sum() == 25  # x0 = max(0, -2) = 0, x1 = 0 + 4, both ends inclusive


def test_lnmbench_pool_replays_in_pillow_from_its_draws(one_thread):
    """The whole strong-view pool (2 operations, magnitudes 1-4, probability 0.5, final 15 %
    Cutout) on a batch equals the per-image Pillow replay of the same random choices."""
    import numpy as np

    from lnm.methods._randaugment import LNMBENCH_OPS, apply_lnmbench, draw_lnmbench

    b, h, w = 48, 28, 28
    images = [a for s in range(16) for a in _test_images(h, w, 3, seed=100 + s)][:b]
    x = torch.tensor(np.stack(images)).permute(0, 3, 1, 2).float()
    draws = draw_lnmbench(torch.Generator().manual_seed(3), b, 2, 5, 0.5)
    assert set(draws["v"].unique().tolist()) == {1, 2, 3, 4}
    ours = apply_lnmbench(x, draws, 0.15).permute(0, 2, 3, 1).numpy()
    used = set()
    for i, a in enumerate(images):
        img = _pil(a)
        for j in range(2):
            if draws["apply"][j, i]:
                op = LNMBENCH_OPS[int(draws["op"][j, i])]
                used.add(op)
                v, neg = int(draws["v"][j, i]), bool(draws["negative"][j, i])
                img = lnmbench_pil_op(img, op, v, neg, draws["cutout_u"][j, i])
        img = pil_cutout(img, int(img.size[0] * 0.15), draws["final_u"][i])
        assert np.array_equal(ours[i], _arr(img, 3)), i
    assert len(used) >= 10  # most of the pool was exercised


def test_lnmbench_strong_view_draws_from_the_batch_generator_and_normalises():
    from lnm.methods._randaugment import apply_lnmbench, draw_lnmbench, lnmbench_rand_augment

    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (8, 3, 16, 16), generator=g).float()
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.full((1, 3, 1, 1), 0.25)
    x = (raw / 255.0 - mean) / std
    a = lnmbench_rand_augment(x, mean, std, torch.Generator().manual_seed(5))
    want = apply_lnmbench(raw, draw_lnmbench(torch.Generator().manual_seed(5), 8))
    torch.testing.assert_close(a, (want / 255.0 - mean) / std)
    with pytest.raises(ValueError, match=r"allowed: an integer in \[2, 11\]"):
        draw_lnmbench(g, 4, magnitude=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_lnmbench_pool_is_identical_on_cuda_and_cpu():
    import numpy as np

    from lnm.methods._randaugment import apply_lnmbench, draw_lnmbench

    images = [a for s in range(40) for a in _test_images(64, 64, 3, seed=s)]
    x = torch.tensor(np.stack(images)).permute(0, 3, 1, 2).float()
    draws = draw_lnmbench(torch.Generator().manual_seed(1), len(x), 2, 5, 1.0)
    cpu = apply_lnmbench(x, draws)
    gpu = apply_lnmbench(x.cuda(), draws).cpu()
    assert torch.equal(cpu, gpu)
