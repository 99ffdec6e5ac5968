"""What the benchmarks share: the repository on ``sys.path`` (a script runs from anywhere, lnm
installed or not), the device and its synchronisation, synthetic data (in memory, or an HDF5
file written by the package's own writer, :func:`lnm.data.hdf5.write_h5`), the folder of the raw
MedMNIST files, and the common command-line options."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parser(doc: str, *, device="auto", threads=None, json=True, raw_dir=False):
    """An argument parser with ``doc`` as its help and the options every benchmark spells the
    same: ``--device`` (default ``device``; None: no option), ``--threads`` (default
    ``threads``; None: torch's), ``--json``, and with ``raw_dir`` ``--raw-dir``."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if device is not None:
        p.add_argument("--device", default=device, help="cpu, cuda, cuda:N or auto (cuda if any)")
    p.add_argument("--threads", type=int, default=threads, help="torch CPU threads")
    if json:
        p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    if raw_dir:
        p.add_argument(
            "--raw-dir",
            help="folder of the raw MedMNIST .npz files (default: $LNM_RAW_DIR, else "
            "shared/data/medmnist beside or inside the repository, else ~/.medmnist)",
        )
    return p


def setup(args):
    """The torch device of ``args.device`` (:func:`device`), with ``args.threads`` torch threads
    when given."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return device(args.device)


def device(name: str):
    """The torch device ``name`` (``auto``: CUDA if present); CUDA asked for where there is none
    ends the benchmark, naming it."""
    from lnm.train.trainer import resolve_device

    try:
        return resolve_device(name)
    except RuntimeError as err:
        raise SystemExit(str(err)) from None


def sync(device) -> None:
    """Wait for the device's queued work (a timer around CUDA work must)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def raw_dir(arg: str | None = None) -> Path:
    """The raw MedMNIST folder: ``arg``, else ``$LNM_RAW_DIR``, else ``shared/data/medmnist``
    beside or inside the repository (the first that exists), else ``~/.medmnist``."""
    given = arg or os.environ.get("LNM_RAW_DIR")
    if given:
        return Path(given).expanduser()
    for cand in (REPO.parent / "shared", REPO / "shared"):
        if (cand / "data" / "medmnist").is_dir():
            return cand / "data" / "medmnist"
    return Path("~/.medmnist").expanduser()


def synthetic(counts: dict, size: int, channels: int, classes: int, rate=0.0, seed=0):
    """A learnable in-memory dataset (:class:`lnm.data.hdf5.Dataset`: class c brightens a band
    of rows) of ``counts`` images per split, and its noise dict (the fields
    :class:`lnm.train.data.DeviceData` reads) with a fraction ``rate`` of the train and val
    labels flipped to another class."""
    from lnm.data.hdf5 import Dataset

    rng = np.random.default_rng(seed)
    images, labels = {}, {}
    band = max(1, size // classes)
    for split, count in counts.items():
        y = rng.integers(0, classes, count)
        x = rng.integers(0, 96, (count, size, size, channels))
        for c in range(classes):
            x[y == c, (c * band) % size : (c * band) % size + band] += 120
        images[split], labels[split] = x.clip(0, 255).astype(np.uint8), y
    flat = images["train"].reshape(-1, channels) / 255
    attrs = {"n_channels": channels, "n_classes": classes, "size": size, "dataset": "synthetic"}
    attrs |= {"classes": [f"c{i}" for i in range(classes)], "mean": flat.mean(0)}
    attrs["std"] = flat.std(0)
    noise = {"has_clean": True, "val_has_clean": True}
    for split in ("train", "val"):
        y = labels[split]
        flip = rng.random(len(y)) < rate
        noise |= {
            f"{split}_noisy": np.where(flip, (y + rng.integers(1, classes, len(y))) % classes, y)
        }
        noise[f"{split}_clean"] = y
    noise["train_is_clean"] = noise["train_noisy"] == labels["train"]
    transition = np.zeros((classes, classes))
    np.add.at(transition, (labels["train"], noise["train_noisy"]), 1)
    noise["transition"] = transition / transition.sum(1, keepdims=True).clip(min=1)
    return Dataset(images, labels, attrs), noise


def write_synthetic(path, counts: dict, size: int, channels: int, classes: int, rate=0.0, **kw):
    """:func:`synthetic`'s images written as an lnm HDF5 file (with its sidecar); return their
    noise dict. ``kw`` goes to :func:`lnm.data.hdf5.write_h5` (e.g. ``dataset=...``)."""
    from lnm.data.hdf5 import write_h5

    ds, noise = synthetic(counts, size, channels, classes, rate)
    kw = {"dataset": "synthetic", "classes": ds.attrs["classes"], **kw}
    write_h5(path, ds.images, ds.labels, mean=ds.attrs["mean"], std=ds.attrs["std"], **kw)
    return noise


#: ``config.yaml``'s harmonised training settings, written out: parsing the config needs
#: packages (jsonschema, PyYAML) that the GPU check's throughput and compile steps go without
OPTIMIZER = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
SCHEDULE = {"name": "multistep", "milestones": [20, 40], "gamma": 0.1}
AUGMENT = {"crop_padding": 4, "hflip": True, "vflip": False}


def run_spec(method: str, backbone: str, size: int, batch_size: int, **kw):
    """A :class:`lnm.train.spec.RunSpec` of ``method`` on a synthetic set with 20 % symmetric
    noise and the harmonised settings above (100 epochs, bf16); ``kw`` replaces fields."""
    from lnm.train.spec import RunSpec

    base = dict(dataset="synthetic", size=size, noise="symmetric", rate=0.2, noise_seed=0,
                method=method, backbone=backbone, seed=0, pretrained=False, epochs=100,
                batch_size=batch_size, optimizer=dict(OPTIMIZER), schedule=dict(SCHEDULE),
                augment=dict(AUGMENT), drop_last=True, last_k=1, eval_view="softmax_mean",
                precision="bf16")  # fmt: skip
    return RunSpec(**{**base, **kw})
