"""``instance``: the instance-dependent noise of Xia et al. (NeurIPS 2020): per-sample flip rates
from a truncated normal around ε, flip targets from a random projection of the standardised
image, shared by train and val (:mod:`lnm.noise.instance`)."""

from __future__ import annotations

import numpy as np

from ..instance import channel_stats, expected_flip_rate, instance_noise, instance_projection
from ..spec import NoiseError
from .base import Draw, Pattern


class Instance(Pattern):
    name = "instance"
    code = 3
    order = 30
    needs_images = True
    flip_prob = True
    params = {
        "instance_std": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "std of the per-sample flip rate (instance patterns)",
        }
    }

    def expected_rate(self, rate: float, std: float) -> float:
        """The truncated normal's mean (0.794 at ε = 0.8, 0.871 at ε = 0.9 for std 0.1)."""
        return expected_flip_rate(rate, std)

    def prepare(self, draw: Draw) -> tuple:
        """One projection ``W`` for both splits (its own stream) and the channel statistics
        (the given ones, else those of the train images)."""
        images, noised = draw.images, draw.noised
        if images is None or any(s not in images for s in noised):
            raise NoiseError(f"instance noise needs images for split(s) {list(noised)}")
        shape = np.shape(images["train"])[1:]
        if any(np.shape(images[s])[1:] != shape for s in noised):
            raise NoiseError("train and val images differ in shape; instance noise needs one W")
        mean, sd = draw.channel_mean, draw.channel_std
        if mean is None or sd is None:
            mean, sd = channel_stats(images["train"])
        W = instance_projection(int(np.prod(shape)), draw.num_classes, draw.rng("projection"))
        return W, mean, sd

    def draw(self, draw: Draw, split: str, shared: tuple) -> tuple[np.ndarray, np.ndarray]:
        W, mean, sd = shared
        return instance_noise(
            draw.images[split],
            draw.labels[split],
            draw.num_classes,
            draw.rate,
            draw.rng(split),
            draw.std,
            W=W,
            channel_mean=mean,
            channel_std=sd,
        )
