"""Training data served as seeded batches: held on the training device, or streamed from the
HDF5 file when the images do not fit the device's memory budget (:func:`lnm.train.datasource.open_data`).

Both kinds expose the interface the trainer and the methods use: ``images[split]`` (``len()``;
indexed by an index tensor, array or slice → uint8 NCHW on the device), ``labels``,
``train_labels``, ``train_clean_labels``, ``is_clean``, ``has_clean``, ``val_has_clean``,
``transition``, ``augmenter``, ``num_classes``, ``in_chans``, ``attrs``, ``num_train``,
``batch_size``, ``drop_last``, ``batches_per_epoch()``, ``epoch_batches(seed, epoch, stream,
batch_size)`` and ``eval_batches(split, batch_size)``. The same seed gives identical batches
(indices, augmented tensors, labels) on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .augment import Augmenter

#: The splits whose images a run reads.
SPLITS = ("train", "val", "test")
GIB = float(1 << 30)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch, stream): resuming needs no RNG state."""
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0]))
    return g


@dataclass
class Batch:
    idx: torch.Tensor  # indices into the training set (on the device)
    x: torch.Tensor  # one augmented, normalised view (float)
    y: torch.Tensor  # noisy labels
    raw: torch.Tensor  # the uint8 images, for methods that need more views
    augmenter: Augmenter
    gen: torch.Generator

    def view(self) -> torch.Tensor:
        """Another independently augmented view of the same images."""
        return self.augmenter(self.raw, self.gen)

    def __len__(self) -> int:
        return len(self.idx)


class TrainData:
    """What both data paths share: labels and clean masks from the noise file, the augmenter,
    the batch arithmetic. Subclasses provide ``images`` and the batch generators."""

    def _setup(
        self,
        attrs: dict,
        test_labels: np.ndarray,
        noise: dict,
        device: torch.device,
        augment: dict,
        batch_size: int,
        drop_last: bool,
    ) -> None:
        self.device = device
        self.attrs = attrs
        self.in_chans = int(attrs["n_channels"])
        self.num_classes = int(attrs["n_classes"])
        mean, std = np.atleast_1d(attrs["mean"]), np.atleast_1d(attrs["std"])
        self.augmenter = Augmenter(mean, std, device=device, **augment)
        to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)
        self.train_labels = to(noise["train_noisy"])
        # the clean labels and the masks/matrix computed from them are as the noise file gives
        # them: where the data has none (``has_clean`` false) the labels are -1, the mask all
        # false and the matrix NaN; scores against them must then be reported as n/a
        self.train_clean_labels = noise["train_clean"]
        self.has_clean = bool(noise.get("has_clean", True))
        self.val_has_clean = bool(noise.get("val_has_clean", True))
        self.is_clean = np.asarray(noise["train_is_clean"], dtype=bool)
        self.transition = np.asarray(noise["transition"], dtype=float)  # empirical, for T-error
        self.labels = {
            "train": self.train_labels,
            "val": to(noise["val_noisy"]),
            "val_clean": to(noise["val_clean"]),
            "test": to(test_labels),
        }
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    def batches_per_epoch(self) -> int:
        n, b = self.num_train, min(self.batch_size, self.num_train)
        return n // b if self.drop_last else -(-n // b)


#: Bytes of images moved and transposed at a time when images are loaded onto a device.
CHUNK_BYTES = 64 << 20


def nchw_images(rows, device: torch.device, chunk_bytes: int | None = None) -> torch.Tensor:
    """uint8 NCHW tensor on ``device`` of ``rows`` (NHWC uint8: an array or an HDF5 dataset,
    anything with ``shape`` and row slicing), filled chunk by chunk: on the host only one
    chunk of about ``chunk_bytes`` (default :data:`CHUNK_BYTES`) exists at a time (never a whole NHWC or NCHW copy of the
    split beside the result); contiguous, equal to ``rows.transpose(0, 3, 1, 2)``."""
    n, h, w, c = rows.shape
    # the strides ``torch.from_numpy(rows).permute(0, 3, 1, 2).contiguous()`` has (as the
    # streamed path's batches): with one channel that is the NHWC layout, which torch also
    # counts as channels_last, and kernels choose by it (results would change in the last bits)
    out = torch.empty((n, h, w, c), dtype=torch.uint8, device=device).permute(0, 3, 1, 2)
    if not out.is_contiguous():
        out = torch.empty((n, c, h, w), dtype=torch.uint8, device=device)
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    step = max(1, int(chunk_bytes) // max(1, h * w * c))
    for a in range(0, n, step):
        b = min(n, a + step)
        host = torch.from_numpy(np.ascontiguousarray(rows[a:b], dtype=np.uint8))
        out[a:b].copy_(host.to(device).permute(0, 3, 1, 2))  # transposed on the device
        del host
    return out


def device_images(dataset, device: torch.device) -> dict[str, torch.Tensor]:
    """Every split's images of ``dataset`` (NHWC uint8 arrays) as uint8 NCHW tensors on
    ``device`` (:func:`nchw_images`)."""
    return {s: nchw_images(im, device) for s, im in dataset.images.items()}


class DeviceData(TrainData):
    """All splits as uint8 NCHW tensors on ``device``; noisy train/val labels; clean masks.

    ``images``: the splits' tensors already on ``device`` (:func:`device_images` of this
    ``dataset``, e.g. shared by the runs of one process); they are only read, never changed."""

    def __init__(
        self,
        dataset,
        noise: dict,
        device: torch.device,
        augment: dict,
        batch_size: int,
        drop_last: bool = True,
        images: dict[str, torch.Tensor] | None = None,
    ):
        self._setup(
            dataset.attrs,
            dataset.labels["test"],
            noise,
            device,
            augment,
            batch_size,
            drop_last,
        )
        self.images = device_images(dataset, device) if images is None else images

    def epoch_batches(
        self, seed: int, epoch: int, stream: int = 0, batch_size: int | None = None
    ) -> Iterator[Batch]:
        """Shuffled training batches for one epoch (same (seed, epoch) → same batches)."""
        gen = epoch_generator(seed, epoch, stream)
        n = self.num_train
        b = min(batch_size or self.batch_size, n)
        perm = torch.randperm(n, generator=gen).to(self.device)
        stop = n - n % b if self.drop_last else n
        for start in range(0, stop, b):
            idx = perm[start : start + b]
            raw = self.images["train"][idx]
            yield Batch(
                idx, self.augmenter(raw, gen), self.train_labels[idx], raw, self.augmenter, gen
            )

    def eval_batches(self, split: str, batch_size: int = 512) -> Iterator[torch.Tensor]:
        """Unaugmented, normalised images of a split, in order."""
        images = self.images[split]
        for start in range(0, len(images), batch_size):
            yield self.augmenter.normalize(images[start : start + batch_size])
