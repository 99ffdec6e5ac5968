"""``instance_classifier``: LNMBench's instance-dependent noise: the flip rates of ``instance``,
flip targets from a trained classifier's softmax over the wrong classes (the logits of the
``classifier_generator`` rule, :mod:`lnm.noise.classifier`), so flips go to each image's
runner-up classes."""

from __future__ import annotations

import numpy as np

from ..instance import instance_noise, masked_softmax
from ..spec import NoiseError
from .base import Draw
from .instance import Instance


class InstanceClassifier(Instance):
    name = "instance_classifier"
    code = 4
    order = 40
    needs_images = False
    needs_generator = True

    def prepare(self, draw: Draw) -> dict:
        """The flip targets of every noised split: the masked softmax of its logits."""
        logits, noised, c = draw.logits, list(draw.noised), draw.num_classes
        if logits is None or any(s not in logits for s in noised):
            raise NoiseError(
                f"instance_classifier noise needs the generator's logits for split(s) {noised}"
            )
        targets = {}
        for s in noised:
            n = len(draw.labels[s])
            if np.shape(logits[s]) != (n, c):
                raise NoiseError(
                    f"{s} logits of shape {np.shape(logits[s])}; expected {(n, c)} "
                    f"(one row of {c} class logits per {s} sample)"
                )
            targets[s] = masked_softmax(logits[s], draw.labels[s])
        return targets

    def draw(self, draw: Draw, split: str, shared: dict) -> tuple[np.ndarray, np.ndarray]:
        return instance_noise(
            None,
            draw.labels[split],
            draw.num_classes,
            draw.rate,
            draw.rng(split),
            draw.std,
            targets=shared[split],
        )
