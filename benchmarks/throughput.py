"""Training throughput: pure compute vs lnm's on-device pipeline vs a DataLoader + PIL pipeline.

In one process, per configuration (default ResNet-18 at 28 px and ResNet-50 at 224 px,
synthetic RGB images, MedMNIST's crop + flip augmentation, SGD, the run's precision: bf16
autocast and channels_last on CUDA), the training images/s of

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
between rounds; the median is printed. Sizes default per device (CUDA: 8192 images of 28 px or
2048 of 224 px, batch 128, 3 timed epochs; CPU: 256 of 28 px at batch 32 and 32 of 224 px at
batch 8, 1 timed epoch: a couple of minutes on 2 cores); ``--n`` / ``--batch`` / ``--epochs``
override. (``--compare`` is accepted for the GPU check's command line: it is the only mode.)

    python benchmarks/throughput.py                  # CUDA if present, else CPU
    python benchmarks/throughput.py --device cpu --configs resnet18@28
"""

from __future__ import annotations

import json
import os
import time

import _common
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

#: default sizes: (device type, image size) -> (images, batch, timed epochs)
SIZES = {
    ("cuda", "small"): (8192, 128, 3),
    ("cuda", "large"): (2048, 128, 3),
    ("cpu", "small"): (256, 32, 1),
    ("cpu", "large"): (32, 8, 1),
}
AUGMENT = {"crop_padding": 4, "hflip": True}
PIPELINES = ("compute", "ours", "dataloader")


class PILDataset(Dataset):
    def __init__(self, images, labels, tf):
        self.images, self.labels, self.tf = images, labels, tf

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        img = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        return self.tf(img), int(self.labels[i])


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
    _common.sync(device)
    return n


def pipelines(backbone, size, n, batch, device, workers):
    """Per pipeline a function (method, epoch) -> images trained, and a factory of fresh CE
    methods (same seed) on ``n`` synthetic images."""
    from lnm.methods import get_method
    from lnm.models import build_model
    from lnm.train.data import DeviceData

    ds, noise = _common.synthetic({"train": n, "val": 1, "test": 1}, size, 3, 5)
    spec = _common.run_spec("ce", backbone, size, batch, augment=dict(AUGMENT))
    data = DeviceData(ds, noise, device, spec.augment, batch, True)
    steps, per_epoch = n // batch, (n // batch) * batch
    # compute: the augmented batches of one epoch of lnm's path, made beforehand (at most 16
    # distinct ones, cycled), already in the memory format the step wants
    pool = []
    for b in data.epoch_batches(0, 0):
        x = b.x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else b.x
        pool.append((x, b.y))
        if len(pool) == 16:
            break

    def ours(m, e):
        m.start_epoch(e)
        m.train_epoch(e, data.epoch_batches(0, e))
        _common.sync(device)
        return per_epoch

    mean, std = list(ds.attrs["mean"]), list(ds.attrs["std"])
    tf = transforms.Compose([
        transforms.RandomCrop(size, padding=AUGMENT["crop_padding"]),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(mean, std),
    ])  # fmt: skip
    loader = DataLoader(
        PILDataset(ds.images["train"], ds.labels["train"], tf), batch_size=batch, shuffle=True,
        drop_last=True, num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
    )  # fmt: skip

    def new_method():
        torch.manual_seed(0)
        factory = lambda: build_model(backbone, 3, 5, size)
        return get_method("ce")(spec, factory, 5, device, data)

    return {
        "compute": lambda m, e: model_steps(m, (pool[i % len(pool)] for i in range(steps)), device),
        "ours": ours,
        "dataloader": lambda m, e: model_steps(m, loader, device),
    }, new_method


def compare_one(backbone, size, device, args) -> dict:
    n0, b0, e0 = SIZES[(device.type, "small" if size < 64 else "large")]
    batch, epochs = args.batch or b0, args.epochs or e0
    n = max(args.n or n0, batch)
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    fns, new_method = pipelines(backbone, size, n, batch, device, workers)
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
    return {
        "device": device.type, "backbone": backbone, "size": size, "batch": batch,
        "images": (n // batch) * batch, "workers": workers, **med,
        "ours/dataloader": med["ours"] / med["dataloader"], "ours/compute": med["ours"] / med["compute"],
    }  # fmt: skip


def compare(args) -> list[dict]:
    from lnm.train.trainer import configure_determinism, seed_everything

    device = _common.setup(args)
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


def parse_args(argv=None):
    p = _common.parser(__doc__)
    p.add_argument("--compare", action="store_true", help="(the only mode; accepted)")
    p.add_argument("--configs", nargs="+", default=["resnet18@28", "resnet50@224"],
                   metavar="BACKBONE@PX", help="the configurations (default: %(default)s)")  # fmt: skip
    p.add_argument("--n", type=int, help="synthetic training images (default: per device)")
    p.add_argument("--batch", type=int, help="batch size (default: per device)")
    p.add_argument("--epochs", type=int, help="timed epochs per round (default: per device)")
    p.add_argument("--rounds", type=int, help="timed rounds, median (default CPU 2, CUDA 3)")
    p.add_argument("--workers", type=int, help="DataLoader workers (default: min(8, CPUs))")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = compare(args)
    if args.json:
        doc = {"torch": torch.__version__, "rounds": args.rounds, "rows": rows}
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
