"""What the duplicate check by decoded pixels adds to preprocessing a real-world image.

Each image that :func:`lnm.data.hdf5.preprocess_real` writes is decoded once
(:func:`lnm.data.hdf5.load_image`: PIL open, draft-scaled decode for large JPEGs, RGB, bilinear
resize); the pixel check hashes the decoded RGB pixels before the resize
(:func:`lnm.data.realworld.pixel_digest`, SHA-256). This script writes ``--n`` synthetic
fundus-like JPEGs (a bright disc with texture and noise, quality 95) of each ``--sides`` size,
then times ``load_image`` without and with the digest on one thread, interleaved image by image
over ``--repeats`` passes, and prints the median time per image of each and their ratio, per
source size and target ``--sizes``. Times are the thread's CPU time (``time.thread_time``), which
other load on a shared machine disturbs less than wall time::

    python benchmarks/pixel_hash.py                          # 2048 and 3888x2592 px -> 512, 224
    python benchmarks/pixel_hash.py --sides 1024 --sizes 224 --n 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lnm.data.hdf5 import load_image


def _fundus(width: int, height: int, rng) -> Image.Image:
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    r = np.hypot((xx - width / 2) / (width / 2), (yy - height / 2) / (height / 2))
    disc = np.clip(1.2 - r, 0, 1)[..., None] * np.array([200, 90, 40], np.float32)
    texture = 20 * np.sin(xx / 17.0 + rng.uniform(0, 6))[..., None]
    x = disc + texture + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(x.clip(0, 255).astype(np.uint8))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", nargs="+", default=["2048", "3888x2592"], help="source sizes")
    p.add_argument("--sizes", nargs="+", type=int, default=[512, 224], help="target sizes")
    p.add_argument("--n", type=int, default=8, help="images per source size")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for side in a.sides:
            w, h = (int(v) for v in side.split("x")) if "x" in side else (int(side),) * 2
            paths = []
            for i in range(a.n):
                path = Path(tmp) / f"{side}_{i}.jpg"
                _fundus(w, h, rng).save(path, quality=95)
                paths.append(path)
            for size in a.sizes:
                plain, hashed = [], []
                load_image(paths[0], size, digest=True)  # warm-up
                for _ in range(a.repeats):
                    for path in paths:
                        t0 = time.thread_time()
                        load_image(path, size)
                        t1 = time.thread_time()
                        load_image(path, size, digest=True)
                        t2 = time.thread_time()
                        plain.append(t1 - t0)
                        hashed.append(t2 - t1)
                mp, mh = statistics.median(plain), statistics.median(hashed)
                print(
                    f"{w}x{h} px JPEG -> {size} px: decode {1e3 * mp:.1f} ms CPU, with pixel hash "
                    f"{1e3 * mh:.1f} ms per image ({100 * (mh / mp - 1):+.1f} %; "
                    f"{a.n} images x {a.repeats} passes, medians)"
                )


if __name__ == "__main__":
    main()
