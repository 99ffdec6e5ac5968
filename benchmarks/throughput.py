"""Training throughput: lnm's in-memory on-device pipeline vs a DataLoader + PIL pipeline, and
lnm's streaming data path vs its in-memory one.

Both train the same model with the same optimiser on the same images; only the input pipeline
differs. lnm keeps the split as a uint8 tensor on the device, draws batches from a seeded
permutation and augments on the device, vectorised (random crop with padding + flip). The
conventional pipeline is a torch Dataset returning PIL images through torchvision transforms
(RandomCrop(padding), RandomHorizontalFlip, ToTensor, Normalize) and a DataLoader.

    python benchmarks/throughput.py                         # synthetic 28 px, CPU (+ CUDA if present)
    python benchmarks/throughput.py --h5 results/demo/data/retinamnist_28.h5 --backbone resnet18

Prints one line per (device, pipeline) with images/s, and the speed-up.

``--stream-compare``: the training data path of a large real-world file, streamed from the HDF5
file (``lnm.train.stream.StreamData``: a reader thread, pinned memory on CUDA) against loaded
into memory (``DeviceData``), on the same file, with LNMBench's fundus augmentation (random
resized crop, flip, colour jitter, rotation) on the device. Without ``--h5`` it writes a
synthetic fundus-like set (``--n`` images of ``--size`` px, default 256 of 512 px) the way the
real-world files are written (one lzf-compressed image per chunk) into a temporary folder.

    python benchmarks/throughput.py --stream-compare                     # synthetic 512 px
    python benchmarks/throughput.py --stream-compare --h5 results/data/kaggledr_512.h5 --cold

Prints a table: per path the seconds to open (loading every split, for in memory), images/s of
the training batches (read + augment), of an evaluation pass over the train split (read +
normalise) and, unless ``--train-batches 0``, of training steps of ``--backbone`` (forward and
backward). ``--cold`` asks the kernel to drop the file from its page cache before every timed
pass (``posix_fadvise DONTNEED``), so the streamed reads come from the disk.

``--compare``: in one process, per configuration (default ResNet-18 at 28 px and ResNet-50 at
224 px, synthetic RGB images, MedMNIST's crop + flip augmentation, SGD, the run's precision:
bf16 autocast and channels_last on CUDA), the training images/s of

- **compute**: the model step alone (``Method.forward`` + ``Method.step`` of lnm's CE method:
  forward, cross-entropy, backward, SGD) on batches augmented beforehand and kept on the device
  (the bound any input pipeline can reach);
- **ours**: lnm's path, the CE method's ``train_epoch`` over ``DeviceData.epoch_batches`` (uint8
  images on the device, seeded permutation, on-device augmentation), as the trainer runs it;
- **dataloader**: the per-sample PIL pipeline (a ``Dataset`` of PIL images through
  torchvision's RandomCrop(padding) + RandomHorizontalFlip + ToTensor + Normalize, a
  ``DataLoader`` with ``--workers`` workers, pinned memory on CUDA) feeding the same model step,

and the ratios ours / dataloader and ours / compute. Each pipeline gets its own model (same
seed); every pipeline runs one untimed warm-up epoch before any is timed, then ``--rounds``
rounds (default CPU 2, CUDA 3) time ``--epochs`` epochs of each, in an order that rotates
between rounds; the median is printed. Sizes default per device (CUDA: 8192 images of 28 px or 2048 of
224 px, batch 128, 3 timed epochs; CPU: 256 of 28 px at batch 32 and 32 of 224 px at batch 8,
1 timed epoch: a couple of minutes on 2 cores); ``--n`` / ``--batch`` / ``--epochs`` override.

    python benchmarks/throughput.py --compare                  # CUDA if present, else CPU
    python benchmarks/throughput.py --compare --device cpu --configs resnet18@28
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

if __package__ in (None, ""):  # run as a script from anywhere, lnm installed or not
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lnm.models import build_model  # noqa: E402
from lnm.train.augment import LNMBENCH_AUGMENT, Augmenter  # noqa: E402
from lnm.train.data import epoch_generator  # noqa: E402


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


# ------------------------------------------------------------------------- --stream-compare
#: the augmentations of --stream-compare: LNMBench's fundus recipe and the MedMNIST crop/flip
RECIPES = {
    "fundus": LNMBENCH_AUGMENT,
    "cropflip": {"crop_padding": 4, "hflip": True},
    "none": {"crop_padding": 0, "hflip": False},
}


def synthetic_fundus(path, n, size, seed=0, classes=5):
    """``n`` fundus-like RGB images (a lit disc with vessels-like texture and noise on black),
    written as the real-world files are: one lzf-compressed image per chunk."""
    import json

    import h5py

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    r = np.sqrt(xx**2 + yy**2)
    disc = np.clip((0.47 - r) * 40, 0, 1)
    counts = {"train": n, "val": max(1, n // 8), "test": max(1, n // 8)}
    with h5py.File(path, "w") as h5:
        for split, count in counts.items():
            g = h5.create_group(split)
            ims = g.create_dataset(
                "images",
                (count, size, size, 3),
                dtype=np.uint8,
                chunks=(1, size, size, 3),
                compression="lzf",
            )
            for i in range(count):
                f = rng.uniform(8, 20, 2)
                texture = np.sin(xx * f[0] * np.pi + rng.uniform(0, 6)) * np.cos(yy * f[1] * np.pi)
                base = disc * (0.55 + 0.25 * texture - 0.5 * r)
                img = base[..., None] * np.array([1.0, 0.55, 0.3], np.float32) * 255
                img += rng.normal(0, 4, img.shape) * disc[..., None]
                ims[i] = np.clip(img, 0, 255).astype(np.uint8)
            g["labels"] = rng.integers(0, classes, count)
        h5.attrs.update(
            dataset="synthetic_fundus",
            size=size,
            task="ordinal-regression",
            n_channels=3,
            n_classes=classes,
            classes=json.dumps([str(c) for c in range(classes)]),
            source_md5="",
            source_sha256="0" * 64,
            mean=np.array([0.3, 0.17, 0.09]),
            std=np.array([0.25, 0.14, 0.08]),
        )
    return counts


def clean_noise(h5_path) -> dict:
    """A noise dict without noise (the labels as they are): enough for the data path."""
    from lnm.data.hdf5 import load_h5

    ds = load_h5(h5_path, check=False, image_splits=())
    c = ds.num_classes
    out = {"has_clean": True, "val_has_clean": True, "transition": np.eye(c)}
    for split in ("train", "val"):
        y = np.maximum(ds.labels[split], 0)
        out |= {f"{split}_noisy": y, f"{split}_clean": y}
    out["train_is_clean"] = np.ones(len(out["train_noisy"]), bool)
    return out


def drop_page_cache(path) -> None:
    """Ask the kernel to forget the file's cached pages (clean pages: no root needed)."""
    import os

    if hasattr(os, "posix_fadvise"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_path(kind, h5, noise, device, args):
    """One row of the --stream-compare table for ``kind`` (``memory`` or ``stream``)."""
    from lnm.train.datasource import open_data

    augment = RECIPES[args.recipe]
    mode = "never" if kind == "memory" else "always"
    if args.cold:
        drop_page_cache(h5)
    t0 = time.perf_counter()
    data = open_data(h5, noise, device, augment, args.batch, True, stream=mode, log=lambda s: None)
    _sync(device)
    row = {"path": kind, "open_s": time.perf_counter() - t0}

    def timed(batches, count):
        if args.cold:
            drop_page_cache(h5)
        t0, n = time.perf_counter(), 0
        for b in batches:
            n += count(b)
        _sync(device)
        return n / (time.perf_counter() - t0)

    next(iter(data.epoch_batches(0, 0)))  # warm-up (allocations, thread start)
    row["train_batches"] = timed(
        (b for e in range(1, args.epochs + 1) for b in data.epoch_batches(0, e)), len
    )
    row["eval_pass"] = timed(data.eval_batches("train", args.batch), len)
    if args.train_batches:
        torch.manual_seed(0)
        size = data.images["train"].shape[-1]
        model = build_model(args.backbone, data.in_chans, data.num_classes, size).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        model.train()

        def steps():
            for i, b in enumerate(data.epoch_batches(0, 99)):
                if i > args.train_batches:  # one warm-up step, then the timed ones
                    return
                loss = F.cross_entropy(model(b.x), b.y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if i == 0:
                    _sync(device)
                    yield None  # the clock starts after the warm-up step
                else:
                    yield len(b)

        it = steps()
        next(it)
        row["train_step"] = timed(it, lambda n: n)
    return row


def stream_compare(args) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    from lnm.train.datasource import image_bytes

    pref = args.device
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(pref)
    args.batch = args.batch or 32
    tmp = None
    if args.h5:
        h5 = Path(args.h5)
    else:
        n, size = args.n or 256, args.size or 512
        tmp = Path(tempfile.mkdtemp(prefix="lnm-stream-bench-"))
        h5 = tmp / f"synthetic_fundus_{size}.h5"
        t0 = time.perf_counter()
        synthetic_fundus(h5, n, size)
        print(f"wrote {h5} ({n} train images, {time.perf_counter() - t0:.1f} s)")
    try:
        sizes = image_bytes(h5)
        print(
            f"{h5.name}: {h5.stat().st_size / 2**20:.0f} MiB on disk, "
            f"{sum(sizes.values()) / 2**20:.0f} MiB of uint8 images; device {device}, batch "
            f"{args.batch}, recipe {args.recipe}, {args.epochs} timed epoch(s), "
            f"{args.threads} torch threads{', cold page cache' if args.cold else ''}"
        )
        noise = clean_noise(h5)
        head = (
            f"{'path':8s} {'open s':>8s} {'batches img/s':>14s} {'eval img/s':>11s} "
            f"{'train img/s':>12s}"
        )
        print(head)
        print("-" * len(head))
        for kind in ("memory", "stream"):
            r = time_path(kind, h5, noise, device, args)
            step = f"{r['train_step']:12.1f}" if "train_step" in r else f"{'-':>12s}"
            print(
                f"{kind:8s} {r['open_s']:8.2f} {r['train_batches']:14.1f} {r['eval_pass']:11.1f} "
                f"{step}",
                flush=True,
            )
        if args.train_batches:
            print(f"(train: {args.train_batches} steps of {args.backbone} after one warm-up step)")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# -------------------------------------------------------------------------------- --compare
#: --compare's default sizes: (device type, image size) -> (images, batch, timed epochs)
COMPARE_SIZES = {
    ("cuda", "small"): (8192, 128, 3),
    ("cuda", "large"): (2048, 128, 3),
    ("cpu", "small"): (256, 32, 1),
    ("cpu", "large"): (32, 8, 1),
}
COMPARE_AUGMENT = {"crop_padding": 4, "hflip": True}
PIPELINES = ("compute", "ours", "dataloader")


def compare_setup(backbone, size, n, batch, device, classes=5, channels=3):
    """Synthetic data, the DeviceData of lnm's path and a factory of fresh CE methods."""
    from types import SimpleNamespace

    from lnm.grid import CLEAN
    from lnm.methods import get_method
    from lnm.train.data import DeviceData
    from lnm.train.spec import RunSpec

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    labels = rng.integers(0, classes, n).astype(np.int64)
    c = channels
    attrs = {
        "n_channels": c,
        "n_classes": classes,
        "mean": images.reshape(-1, c).mean(0) / 255,
        "std": images.reshape(-1, c).std(0) / 255,
    }
    small = {"val": 1, "test": 1}
    dataset = SimpleNamespace(
        attrs=attrs,
        images={"train": images, **{s: images[:k] for s, k in small.items()}},
        labels={"train": labels, **{s: labels[:k] for s, k in small.items()}},
    )
    noise = {
        "train_noisy": labels,
        "train_clean": labels,
        "train_is_clean": np.ones(n, bool),
        "val_noisy": labels[:1],
        "val_clean": labels[:1],
        "transition": np.eye(classes),
    }
    spec = RunSpec(
        dataset="synthetic",
        size=size,
        noise=CLEAN,
        rate=0.0,
        noise_seed=0,
        method="ce",
        backbone=backbone,
        seed=0,
        pretrained=False,
        epochs=100,
        batch_size=batch,
        optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False},
        schedule={"name": "constant"},
        augment=dict(COMPARE_AUGMENT),
        drop_last=True,
        last_k=1,
        eval_view="softmax_mean",
        precision="bf16",
    )
    data = DeviceData(dataset, noise, device, spec.augment, batch, True)

    def new_method():
        torch.manual_seed(0)
        factory = lambda: build_model(backbone, c, classes, size)  # noqa: E731
        return get_method("ce")(spec, factory, classes, device, data)

    return images, labels, attrs, data, new_method


def model_steps(method, batches, device):
    """The model step of every pipeline: lnm's forward (autocast, channels_last on CUDA),
    cross-entropy, backward and SGD step; no host sync until the end."""
    net, opt = method.nets[0], method.optimizers[0]
    net.train()
    n = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        method.step(opt, F.cross_entropy(method.forward(net, x), y))
        n += len(y)
    _sync(device)
    return n


def compare_one(backbone, size, device, args):
    kind = "small" if size < 64 else "large"
    n0, b0, e0 = COMPARE_SIZES[(device.type, kind)]
    n, batch, epochs = args.n or n0, args.batch or b0, args.epochs or e0
    n = max(n, batch)
    images, labels, attrs, data, new_method = compare_setup(backbone, size, n, batch, device)
    per_epoch = (n // batch) * batch
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)

    # compute: the augmented batches of one epoch of lnm's path, made beforehand (at most 16
    # distinct ones, cycled), already in the memory format the step wants
    pool = []
    for b in data.epoch_batches(0, 0):
        x = b.x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else b.x
        pool.append((x, b.y))
        if len(pool) == 16:
            break
    steps = n // batch

    def compute_epoch(m, e):
        return model_steps(m, (pool[i % len(pool)] for i in range(steps)), device)

    def ours_epoch(m, e):
        m.start_epoch(e)
        m.train_epoch(e, data.epoch_batches(0, e))
        _sync(device)
        return per_epoch

    tf = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=COMPARE_AUGMENT["crop_padding"]),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(list(attrs["mean"]), list(attrs["std"])),
        ]
    )
    loader = DataLoader(
        PILDataset(images, labels, tf),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )

    def dataloader_epoch(m, e):
        return model_steps(m, loader, device)

    fns = {"compute": compute_epoch, "ours": ours_epoch, "dataloader": dataloader_epoch}
    methods = {p: new_method() for p in PIPELINES}
    # one untimed epoch of every pipeline before any timing: allocator, oneDNN/cuDNN kernel
    # caches (shared by the process) and DataLoader workers are warm for all three alike
    for p in PIPELINES:
        fns[p](methods[p], 0)
    results = {p: [] for p in PIPELINES}
    epoch = 1
    for r in range(args.rounds):
        for p in PIPELINES[r % 3 :] + PIPELINES[: r % 3]:  # the order rotates between rounds
            t0, n_img = time.perf_counter(), 0
            for e in range(epoch, epoch + epochs):
                n_img += fns[p](methods[p], e)
            results[p].append(n_img / (time.perf_counter() - t0))
        epoch += epochs
    med = {p: float(np.median(v)) for p, v in results.items()}
    row = {
        "device": device.type,
        "backbone": backbone,
        "size": size,
        "batch": batch,
        "images": per_epoch,
        "workers": workers,
        **med,
        "ours/dataloader": med["ours"] / med["dataloader"],
        "ours/compute": med["ours"] / med["compute"],
    }
    return row


def compare(args) -> list[dict]:
    from lnm.train.trainer import configure_determinism, seed_everything

    pref = args.device
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(pref)
    args.rounds = args.rounds or (3 if device.type == "cuda" else 2)
    # the trainer's settings: cuDNN deterministic without autotuning; on CUDA deterministic
    # algorithms with cuBLAS's deterministic workspace (set before CUDA is initialised)
    configure_determinism(device)
    seed_everything(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = f", {torch.get_num_threads()} torch threads" if device.type == "cpu" else ""
    print(
        f"--compare on {device} ({name}{threads}); bf16 autocast + channels_last on CUDA; "
        f"{args.rounds} round(s), median"
    )
    head = (
        f"{'device':6s} {'backbone':9s} {'px':>4s} {'batch':>5s} {'images':>6s} "
        f"{'compute':>9s} {'ours':>9s} {'dataloader':>10s} {'ours/DL':>8s} {'ours/compute':>12s}"
    )
    print(head + "   (images/s)")
    print("-" * len(head))
    rows = []
    for item in args.configs:
        backbone, _, size = item.partition("@")
        r = compare_one(backbone, int(size or 28), device, args)
        rows.append(r)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(
            f"{r['device']:6s} {r['backbone']:9s} {r['size']:4d} {r['batch']:5d} "
            f"{r['images']:6d} {r['compute']:9.1f} {r['ours']:9.1f} {r['dataloader']:10.1f} "
            f"{r['ours/dataloader']:7.2f}x {100 * r['ours/compute']:11.1f}%",
            flush=True,
        )
    print(
        f"(per epoch: 'images' training images; DataLoader workers: {rows[0]['workers']}; "
        "compute = the same step on pre-augmented device tensors)"
    )
    return rows


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--h5", help="an lnm HDF5 file (default: synthetic images)")
    p.add_argument(
        "--n", type=int, help="synthetic: number of images (default 2048; --stream-compare 256)"
    )
    p.add_argument("--size", type=int, help="synthetic: pixels (default 28; --stream-compare 512)")
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--batch", type=int, help="batch size (default 128; --stream-compare 32)")
    p.add_argument(
        "--epochs",
        type=int,
        help="timed epochs after one warm-up epoch (default 2; --compare: per device)",
    )
    p.add_argument(
        "--workers", type=int, help="DataLoader workers (default 2; --compare: min(8, CPUs))"
    )
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument(
        "--stream-compare",
        action="store_true",
        help="streamed vs in-memory training data on the same HDF5 (see above)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="--stream-compare, --compare: cpu, cuda or auto (cuda if present)",
    )
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="fundus",
        help="--stream-compare: the augmentation",
    )
    p.add_argument(
        "--train-batches",
        type=int,
        default=3,
        help="--stream-compare: timed training steps per path (0: none)",
    )
    p.add_argument(
        "--cold", action="store_true", help="--stream-compare: drop the file from the page cache"
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="compute vs ours vs DataLoader + PIL, with the ratios (see above)",
    )
    p.add_argument(
        "--configs",
        nargs="+",
        default=["resnet18@28", "resnet50@224"],
        metavar="BACKBONE@PX",
        help="--compare: the configurations",
    )
    p.add_argument(
        "--rounds", type=int, help="--compare: timed rounds, median (default CPU 2, CUDA 3)"
    )
    p.add_argument("--json", help="--compare: also write the rows to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare:
        rows = compare(args)
        if args.json:
            doc = {"torch": torch.__version__, "rounds": args.rounds, "rows": rows}
            with open(args.json, "w") as fh:
                json.dump(doc, fh, indent=2)
        return
    args.epochs = 2 if args.epochs is None else args.epochs
    args.workers = 2 if args.workers is None else args.workers
    if args.stream_compare:
        stream_compare(args)
        return
    args.n, args.size, args.batch = args.n or 2048, args.size or 28, args.batch or 128
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
