"""Vectorised on-device augmentation of uint8 NCHW batches (no PIL, no DataLoader)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Augmenter:
    """Random crop with zero padding and random flips, drawn from a CPU ``torch.Generator``.

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
    ):
        self.pad = int(crop_padding)
        self.hflip, self.vflip = bool(hflip), bool(vflip)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float().div_(255.0) - self.mean) / self.std

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment a uint8 (B, C, H, W) batch and return it normalised as float."""
        b, _, h, w = x.shape
        dev = x.device
        if self.pad:
            p = self.pad
            padded = F.pad(x, (p, p, p, p))
            off = torch.randint(0, 2 * p + 1, (2, b), generator=gen).to(dev)
            rows = (off[0, :, None] + torch.arange(h, device=dev))[:, :, None]  # (B, H, 1)
            cols = (off[1, :, None] + torch.arange(w, device=dev))[:, None, :]  # (B, 1, W)
            bidx = torch.arange(b, device=dev)[:, None, None]
            x = padded.permute(0, 2, 3, 1)[bidx, rows, cols].permute(0, 3, 1, 2)
        flips = torch.rand((2, b), generator=gen).to(dev) < 0.5
        if self.hflip:
            x = torch.where(flips[0, :, None, None, None], x.flip(3), x)
        if self.vflip:
            x = torch.where(flips[1, :, None, None, None], x.flip(2), x)
        return self.normalize(x)
