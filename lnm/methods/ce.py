"""CE: plain cross-entropy on the noisy labels (the baseline)."""

from __future__ import annotations

import torch.nn.functional as F

from .base import Method


class CE(Method):
    name = "ce"
    order = 0
    relative_cost = 1.0
    params = {
        "label_smoothing": {
            "default": 0.0,
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "the reference code used 0.1",
        },
    }

    def train_epoch(self, epoch, batches):
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        meter = self.loss_meter()
        for b in batches:
            loss = F.cross_entropy(
                self.forward(net, b.x), b.y, label_smoothing=self.hp["label_smoothing"]
            )
            self.step(opt, loss)
            meter.add(loss, len(b))
        return {"train_loss": meter.mean()}
