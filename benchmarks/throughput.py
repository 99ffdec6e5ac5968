"""Training throughput: lnm's in-memory on-device pipeline vs a DataLoader + PIL pipeline.

Both train the same model with the same optimiser on the same images; only the input pipeline
differs. lnm keeps the split as a uint8 tensor on the device, draws batches from a seeded
permutation and augments on the device, vectorised (random crop with padding + flip). The
conventional pipeline is a torch Dataset returning PIL images through torchvision transforms
(RandomCrop(padding), RandomHorizontalFlip, ToTensor, Normalize) and a DataLoader.

    python benchmarks/throughput.py                         # synthetic 28 px, CPU (+ CUDA if present)
    python benchmarks/throughput.py --h5 results/demo/data/retinamnist_28.h5 --backbone resnet18

Prints one line per (device, pipeline) with images/s, and the speed-up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lnm.models import build_model
from lnm.train.augment import Augmenter
from lnm.train.data import epoch_generator


def load(args):
    if args.h5:
        from lnm.data.hdf5 import load_h5

        ds = load_h5(args.h5)
        return ds.images["train"], ds.labels["train"], ds.num_classes
    rng = np.random.default_rng(0)
    n, s, c = args.n, args.size, args.channels
    return rng.integers(0, 256, (n, s, s, c), dtype=np.uint8), rng.integers(0, 5, n), 5


class PILDataset(Dataset):
    def __init__(self, images, labels, tf):
        self.images, self.labels, self.tf = images, labels, tf

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        img = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        return self.tf(img), int(self.labels[i])


def train_steps(model, opt, batches, device):
    model.train()
    n = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n


def lnm_batches(images_dev, labels_dev, aug, batch, epoch):
    gen = epoch_generator(0, epoch)
    perm = torch.randperm(len(images_dev), generator=gen).to(images_dev.device)
    for s in range(0, len(perm) - len(perm) % batch, batch):
        idx = perm[s : s + batch]
        yield aug(images_dev[idx], gen), labels_dev[idx]


def measure(fn, epochs):
    fn(0)  # warm-up epoch (allocations, cudnn autotune, worker start-up)
    t0, n = time.perf_counter(), 0
    for e in range(1, epochs + 1):
        n += fn(e)
    return n / (time.perf_counter() - t0)


def bench(device, images, labels, num_classes, args):
    c = images.shape[-1]
    mean = images.reshape(-1, c).mean(0) / 255
    std = images.reshape(-1, c).std(0) / 255
    results = {}
    for pipeline in ("lnm", "dataloader"):
        torch.manual_seed(0)
        model = build_model(args.backbone, c, num_classes, images.shape[1]).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        if pipeline == "lnm":
            aug = Augmenter(mean, std, crop_padding=4, hflip=True, device=device)
            x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(device)
            y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
            fn = lambda e: train_steps(model, opt, lnm_batches(x, y, aug, args.batch, e), device)  # noqa: B023 (called in this iteration)
        else:
            tf = transforms.Compose(
                [
                    transforms.RandomCrop(images.shape[1], padding=4),
                    transforms.RandomHorizontalFlip(),
                    transforms.ToTensor(),
                    transforms.Normalize(mean.tolist(), std.tolist()),
                ]
            )
            loader = DataLoader(
                PILDataset(images, labels, tf),
                batch_size=args.batch,
                shuffle=True,
                drop_last=True,
                num_workers=args.workers,
                pin_memory=device.type == "cuda",
                persistent_workers=args.workers > 0,
            )
            fn = lambda e: train_steps(model, opt, loader, device)  # noqa: B023 (called in this iteration)
        results[pipeline] = measure(fn, args.epochs)
        print(
            f"{device.type:5s} {args.backbone:9s} {pipeline:10s} {results[pipeline]:9.1f} images/s",
            flush=True,
        )
    print(
        f"{device.type:5s} {args.backbone:9s} speed-up   {results['lnm'] / results['dataloader']:9.2f}x",
        flush=True,
    )


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--h5", help="an lnm HDF5 file (default: synthetic images)")
    p.add_argument("--n", type=int, default=2048, help="synthetic: number of images")
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images, labels, num_classes = load(args)
    print(
        f"{len(images)} images {images.shape[1:]}, batch {args.batch}, {args.epochs} timed epochs, "
        f"{args.threads} torch threads, {args.workers} DataLoader workers"
    )
    bench(torch.device("cpu"), images, labels, num_classes, args)
    if torch.cuda.is_available():
        bench(torch.device("cuda"), images, labels, num_classes, args)
    else:
        print("cuda  (not available: skipped)")


if __name__ == "__main__":
    main()
