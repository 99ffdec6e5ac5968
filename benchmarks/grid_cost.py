"""What a grid costs: device-hours of a config's training runs (and its noise-classifier and
noise-estimation jobs), projected from throughput measured on this device.

    python benchmarks/grid_cost.py                          # the paper grid (config.yaml)
    python benchmarks/grid_cost.py presets/demo.yaml        # merged over config.yaml
    python benchmarks/grid_cost.py --set size=28 --set 'backbones=[resnet18]' --set pretrained=false
    python benchmarks/grid_cost.py --wall-hours 8           # + how many devices finish it in 8 h
    python benchmarks/grid_cost.py --use H200 --no-measure  # project from a file measured elsewhere

**Measuring.** For every (method, backbone, image size, batch size, precision, augmentation) the
grid uses, the method is built the way the trainer builds it (``lnm.methods.get_method`` with the
run's ``RunSpec`` from ``lnm.config.run_spec``, ``lnm.models.build_model`` without pretrained
weights) on a synthetic in-memory dataset of ``--batches`` training batches, held on the device
as ``lnm.train.data.DeviceData``, and trained through ``Method.train_epoch``. So the measured
train images/s include everything the method does per epoch: the second network of the
two-network methods, DivideMix's per-sample loss passes, GMM and MixMatch views, DISC's strong
views, T-Revision's transition estimate. A method whose epochs differ in kind declares
its ``phases`` (a trait of its class, ``lnm.grid.method_info(m).phases``; e.g. DivideMix warm-up /
MixMatch, T-Revision estimation / reweighting / revision) and is measured per phase: its phase
boundaries are moved so that each phase lasts ``--warm-epochs`` untimed plus one timed epoch
(``MethodInfo.phase_overrides``), a run's epochs per phase are ``MethodInfo.phase_epochs``. A
phase that declares ``labelled`` (DivideMix's MixMatch) iterates over the labelled set, so its
time beyond the two per-sample loss passes is rescaled per cell from the measured labelled
fraction (in whole batches) to ``max(1 - rate, <its labelled parameter>)``. Also measured: evaluation
(``lnm.train.trainer.evaluate`` on synthetic val + test splits: images/s), the per-epoch
checkpoint (``torch.save`` of the method's state, written with its SHA-256 sidecar), once per
device a run's start-up (a fresh Python importing the trainer and the methods and touching the
device) and the data path's bytes/s (SHA-256 verification of the HDF5 file + loading it onto the
device).

**Projection.** Per training run (the grid of ``lnm.grid.noise_cells`` x methods x backbones x
seeds, each run's spec from ``lnm.config.run_spec``; split sizes from medmnist's ``INFO``, from
``<results>/data/<name>_<size>.h5`` for real-world sets, or ``--split-sizes``)::

    seconds = start-up + data bytes / data bytes/s
              + sum over phases of epochs_in_phase x train images / train images/s of the phase
              + epochs x ((val + test images) / eval images/s + checkpoint seconds)

A noise-estimation job (per noisy cell, ``estimation.enabled``) and a classifier-generator job
(per dataset with ``instance_classifier`` noise) cost as CE training of their backbone:
``epochs x (folds - 1) x train images`` (cross-fitting; ``fit_on: test``: ``epochs x test
images``) plus one prediction pass. Printed: per method the runs, epochs, measured images/s and
device-hours, the total, and with ``--wall-hours H`` the devices needed (total / H, rounded up;
runs are whole jobs, so never fewer than the longest run needs).

Measurements are cached in ``benchmarks/grid_cost.json`` (``--measurements``) under the
device's name; a later call reuses them (``--remeasure`` redoes them). ``--use NAME`` projects
with the measurements of another device in that file (e.g. a GPU's, copied from its machine);
``--no-measure`` measures nothing and reports what is missing.

Caveats: the measured batch count is small (per-epoch fixed costs, e.g. a GMM fit, weigh more
than in a real epoch); ``--batch-size`` measures at another batch size than the runs use (a
CPU's images/s barely depends on it, a GPU's does); one run per device at a time
(``resources.gpu_slots_per_device`` > 1 may pack small runs better: not modelled); the data file
is read from the page cache; images larger than the device's memory budget are streamed from the
file by the trainer (not modelled). ``snakemake -n`` stays the source of the job list: the run
counts printed here are the grid's, for comparison.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from _common import REPO, parser, setup, sync, synthetic, write_synthetic

from lnm import grid
from lnm.config import load_config, run_spec
from lnm.train.spec import RunSpec

HERE = REPO / "benchmarks"
DEFAULT_MEASUREMENTS = HERE / "grid_cost.json"
FORMAT = 1
#: Real-world sets without a file or --split-sizes: (channels, classes) assumed for measuring.
REAL_WORLD_SHAPE = (3, 5)
#: The augmentation of the noise classifier and the estimator (lnm.noise.classifier).
CLASSIFIER_AUGMENT = {"crop_padding": 4, "hflip": True}


# ------------------------------------------------------------------------------ keys
def measure_key(spec: RunSpec) -> str:
    """What decides a run's images/s (besides the device): the method's code, backbone, image
    size, batch size, configured precision and augmentation."""
    aug = hashlib.sha256(json.dumps(spec.augment, sort_keys=True).encode()).hexdigest()[:6]
    return (
        f"{spec.method_class}|{spec.backbone}|{spec.size}px|b{spec.batch_size}|"
        f"{spec.precision}|aug-{aug}"
    )


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model}, {torch.get_num_threads()} threads"


# ------------------------------------------------------------------------ split sizes
def medmnist_shape(dataset: str) -> tuple[dict, int, int]:
    """(split sizes, channels, classes) of a MedMNIST dataset from medmnist's INFO."""
    from medmnist.info import INFO

    info = INFO[dataset]
    return dict(info["n_samples"]), int(info["n_channels"]), len(info["label"])


def dataset_shape(config: dict, dataset: str, split_sizes: dict) -> tuple[dict, int, int] | None:
    """(split sizes, channels, classes) of ``dataset``: ``split_sizes`` (from --split-sizes)
    first, then medmnist's INFO or the real-world set's HDF5 file; None when unknown."""
    given = split_sizes.get(dataset)
    if not grid.is_real_world(config, dataset):
        sizes, c, k = medmnist_shape(dataset)
        return (given or sizes), c, k
    size = grid.dataset_size(config, dataset)
    h5 = Path(config["results"]).expanduser() / grid.DATA_FILE.format(dataset=dataset, size=size)
    if not h5.is_absolute():
        h5 = REPO / h5
    if h5.exists():
        import h5py

        with h5py.File(h5, "r") as f:
            sizes = {s: int(f[s]["labels"].shape[0]) for s in ("train", "val", "test")}
            c, k = int(f.attrs["n_channels"]), int(f.attrs["n_classes"])
        return (given or sizes), c, k
    if given:
        return given, *REAL_WORLD_SHAPE
    return None


# ------------------------------------------------------------------------- the jobs
#: The table rows of the jobs that are not training runs, in the order they are printed.
GENERATOR, ESTIMATE = "classifier_generator", "estimate_noise"
NOISE_ROWS = (GENERATOR, ESTIMATE)


@dataclass
class Job:
    """One job of the grid, with what its cost depends on."""

    row: str  # the table row: a method name or one of NOISE_ROWS
    key: str  # measurement key
    spec: RunSpec  # the spec measured for the key (a training run's own spec)
    phases: list[int]  # epochs per phase
    train_images: int  # images per epoch
    epochs: int  # epochs with an evaluation + checkpoint (0 for the noise jobs)
    eval_images: int  # per evaluated epoch (val + test)
    final_eval_images: int = 0  # once (the noise jobs' prediction pass)
    data_bytes: int = 0
    labelled_frac: float | None = None  # a "labelled" phase's expected labelled fraction
    shape: tuple[int, int] = (3, 10)  # (channels, classes), for measuring
    tags: dict = field(default_factory=dict)


def classifier_spec(base: RunSpec, cfg: dict, size: int) -> RunSpec:
    """A CE spec standing in for the noise classifier / estimator (lnm.noise.classifier)."""
    return replace(
        base,
        method="ce",
        base_method=None,
        backbone=cfg["backbone"],
        size=size,
        pretrained=False,
        batch_size=int(cfg["batch_size"]),
        precision="fp32",
        augment=dict(CLASSIFIER_AUGMENT),
        method_params={},
        optimizer={"name": "sgd", "lr": float(cfg["lr"]), "momentum": 0.9, "nesterov": True},
        schedule={"name": "cosine"},
        epochs=int(cfg["epochs"]),
        last_k=1,
    )


def grid_jobs(
    config: dict,
    methods: list[str] | None = None,
    backbones: list[str] | None = None,
    split_sizes: dict | None = None,
    warn=print,
) -> list[Job]:
    """Every training run of ``config`` (restricted to ``methods`` / ``backbones``) and its
    noise-classifier and noise-estimation jobs (not with a method filter)."""
    shapes = dataset_shapes(config, split_sizes or {}, warn)
    jobs = training_jobs(config, shapes, methods, backbones)
    if methods is not None or not jobs:
        return jobs
    return jobs + noise_jobs(config, shapes, jobs[0].spec)


def dataset_shapes(config: dict, split_sizes: dict, warn) -> dict:
    """{dataset: (split sizes, channels, classes) or None when the split sizes are unknown}."""
    shapes: dict = {}
    for d in config["datasets"]:
        shapes[d] = dataset_shape(config, d, split_sizes)
        if shapes[d] is None:
            warn(
                f"warning: {d}: split sizes unknown (no {grid.DATA_FILE.format(dataset=d, size='*')}"
                f" under the results folder); give --split-sizes {d}=TRAIN,VAL,TEST. Left out."
            )
    return shapes


def training_jobs(config: dict, shapes: dict, methods, backbones) -> list[Job]:
    """One job per training run of the grid whose dataset's shape is known."""
    jobs: list[Job] = []
    bbs = [b for b in config["backbones"] if backbones is None or b in backbones]
    ms = [m for m in config["methods"] if methods is None or m in methods]
    for cell, m, b, s in itertools.product(grid.noise_cells(config), ms, bbs, config["seeds"]):
        if shapes[cell.dataset] is None:
            continue
        sizes, c, k = shapes[cell.dataset]
        spec = run_spec(config, cell.dataset, cell.noise, cell.rate, cell.noise_seed, m, b, s)
        info = grid.method_info(spec.method_class)
        hp = {**info.defaults, **spec.method_params}
        least = [float(hp[p["labelled"]]) for p in info.phases if "labelled" in p]
        frac = max(1.0 - spec.rate, *least) if least else None
        jobs.append(
            Job(
                row=m,
                key=measure_key(spec),
                spec=spec,
                phases=info.phase_epochs(spec.epochs, hp),
                train_images=sizes["train"],
                epochs=spec.epochs,
                eval_images=sizes["val"] + sizes["test"],
                data_bytes=sum(sizes.values()) * spec.size**2 * c,
                labelled_frac=frac,
                shape=(c, k),
                tags={"dataset": cell.dataset, "noise": cell.noise, "rate": cell.rate},
            )
        )
    return jobs


def noise_jobs(config: dict, shapes: dict, base: RunSpec) -> list[Job]:
    """The flip-target classifier of instance_classifier noise (one per dataset) and the
    noise-estimation job of every noisy cell."""
    jobs: list[Job] = []
    est = config["estimation"]
    for d in config["datasets"]:
        if shapes[d] is None:
            continue
        sizes, c, k = shapes[d]
        size = grid.dataset_size(config, d)
        data_bytes = sum(sizes.values()) * size**2 * c
        cells = [cl for cl in grid.noise_cells(config) if cl.dataset == d]
        if any(grid.pattern_info(cl.noise).needs_generator for cl in cells):
            jobs.append(generator_job(config, base, d, sizes, (c, k), size, data_bytes))
        if not est["enabled"]:
            continue
        spec = classifier_spec(base, est, size)
        folds = int(est["folds"])
        for cl in cells:
            if cl.noise == grid.CLEAN:
                continue
            jobs.append(
                Job(
                    row=ESTIMATE,
                    key=measure_key(spec),
                    spec=spec,
                    phases=[int(est["epochs"]) * (folds - 1)],
                    train_images=sizes["train"],
                    epochs=0,
                    eval_images=0,
                    final_eval_images=sizes["train"],
                    data_bytes=data_bytes,
                    shape=(c, k),
                    tags={"dataset": d, "noise": cl.noise, "rate": cl.rate},
                )
            )
    return jobs


def generator_job(config, base, d: str, sizes: dict, shape, size: int, data_bytes: int) -> Job:
    """The classifier that picks instance_classifier noise's flip targets for dataset ``d``."""
    gen = config["noise"]["classifier"]
    spec = classifier_spec(base, gen, size)
    folds = int(gen["folds"])
    crossfit = gen["fit_on"] == "crossfit"
    return Job(
        row=GENERATOR,
        key=measure_key(spec),
        spec=spec,
        phases=[int(gen["epochs"]) * ((folds - 1) if crossfit else 1)],
        train_images=sizes["train"] if crossfit else sizes["test"],
        epochs=0,
        eval_images=0,
        final_eval_images=sizes["train"] + sizes["val"] * (folds if crossfit else 1),
        data_bytes=data_bytes,
        shape=shape,
        tags={"dataset": d},
    )


# ----------------------------------------------------------------------- projection
def job_seconds(job: Job, rec: dict, device: dict, startup: bool = True) -> float:
    """Projected seconds of ``job`` from its measurement ``rec`` and the device's
    ``startup_s`` / ``data_bytes_per_s`` (see the module docstring)."""
    eval_spi = 1.0 / rec["eval"]["ips"]
    train = 0.0
    for n_epochs, phase in zip(job.phases, rec["phases"]):
        if not n_epochs:
            continue
        spi = 1.0 / phase["ips"]
        measured = phase.get("labelled_frac")
        if job.labelled_frac is not None and measured:
            # a labelled phase: two per-sample loss passes over the train split (an evaluation of
            # both nets) + MixMatch iterations over the labelled set, rescaled to the cell's
            spi = eval_spi + max(spi - eval_spi, 0.0) * job.labelled_frac / measured
        train += n_epochs * job.train_images * spi
    per_epoch = job.eval_images * eval_spi + rec.get("checkpoint_s", 0.0)
    seconds = train + job.epochs * per_epoch + job.final_eval_images * eval_spi
    if startup:
        seconds += device.get("startup_s", 0.0)
        bps = device.get("data_bytes_per_s")
        if bps:
            seconds += job.data_bytes / bps
    return seconds


def project(jobs: list[Job], measurements: dict, startup: bool = True):
    """(per row: {"jobs", "seconds", "epochs", "keys", "max_job_s"}, missing keys)."""
    runs = measurements.get("runs", {})
    rows: dict = {}
    missing = set()
    for job in jobs:
        rec = runs.get(job.key)
        if rec is None or len(rec["phases"]) != len(job.phases):  # unmeasured, or other phases
            missing.add(job.key)
            continue
        r = rows.setdefault(
            job.row, {"jobs": 0, "seconds": 0.0, "epochs": set(), "keys": [], "max_job_s": 0.0}
        )
        s = job_seconds(job, rec, measurements, startup)
        r["jobs"] += 1
        r["seconds"] += s
        r["max_job_s"] = max(r["max_job_s"], s)
        r["epochs"].add(job.epochs or sum(job.phases))
        if job.key not in r["keys"]:
            r["keys"].append(job.key)
    return rows, sorted(missing)


def devices_needed(total_hours: float, wall_hours: float, longest_hours: float) -> int:
    """Devices that finish ``total_hours`` of device time in ``wall_hours`` (whole jobs)."""
    if longest_hours > wall_hours:
        return -1
    return max(1, math.ceil(total_hours / wall_hours - 1e-9))


# ---------------------------------------------------------------------- measurement
def measure_run(
    spec: RunSpec,
    device,
    *,
    batches: int = 5,
    warm_epochs: int = 1,
    channels: int = 3,
    classes: int = 10,
    batch_size: int | None = None,
    eval_images: int | None = None,
    log=lambda s: None,
) -> dict:
    """Train images/s per phase, evaluation images/s and checkpoint seconds of ``spec``'s
    method on ``device`` (see the module docstring)."""
    import numpy as np
    import torch

    from lnm.checksum import write_bytes
    from lnm.methods import get_method
    from lnm.models import build_model
    from lnm.train.data import DeviceData
    from lnm.train.trainer import configure_determinism, evaluate, seed_everything

    device = torch.device(device)
    method = spec.method_class
    bs = int(batch_size or spec.batch_size)
    info = grid.method_info(method)
    hp = {**info.defaults, **spec.method_params}
    mult = math.lcm(*(int(hp[p["batch_multiple"]]) for p in info.phases if "batch_multiple" in p))
    batches = -(-batches // mult) * mult  # whole steps of a phase that takes several batches
    per_phase = warm_epochs + 1
    n_phases = len(info.phases)
    mspec = replace(
        spec,
        batch_size=bs,
        epochs=per_phase * n_phases,
        last_k=1,
        pretrained=False,
        method_params={**spec.method_params, **info.phase_overrides(per_phase)},
    )
    n_train = batches * bs
    n_eval = int(eval_images or n_train)
    n = {"train": n_train, "val": n_eval // 2, "test": n_eval - n_eval // 2}
    rate = spec.rate if spec.rate > 0 else 0.2
    dataset, noise = synthetic(n, spec.size, channels, classes, rate)
    data = DeviceData(dataset, noise, device, mspec.augment, bs, mspec.drop_last)
    data.noise_estimate = {"estimated_rate": rate}  # forget_rate: estimated
    configure_determinism(device)  # the trainer's settings (CUDA: deterministic algorithms)
    seed_everything(0)
    factory = lambda: build_model(spec.backbone, channels, classes, spec.size, False)
    m = get_method(method)(mspec, factory, classes, device, data)
    phases = [{"seconds": 0.0, "images": 0, "epochs": 0} for _ in range(n_phases)]
    for epoch in range(mspec.epochs):
        m.start_epoch(epoch)
        sync(device)
        t0 = time.perf_counter()
        diag = m.train_epoch(epoch, data.epoch_batches(mspec.seed, epoch))
        sync(device)
        dt = time.perf_counter() - t0
        if epoch % per_phase < warm_epochs:
            continue
        p = phases[epoch // per_phase]
        p["seconds"] += dt
        p["images"] += n_train
        p["epochs"] += 1
        lab = [v for k, v in diag.items() if k.startswith("labelled_net")]
        if lab:  # a "labelled" phase: its iterations (whole batches) per net, as a fraction of N
            p["labelled_frac"] = float(np.mean([-(-int(v) // bs) * bs for v in lab])) / n_train
    for p in phases:
        p["ips"] = p["images"] / p["seconds"]
    evaluate(m, data)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    evaluate(m, data)
    sync(device)
    ev = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="lnm-grid-cost-") as tmp:
        t0 = time.perf_counter()
        buf = io.BytesIO()
        torch.save({"method": m.state_dict(), "epoch": 0}, buf)
        write_bytes(Path(tmp) / "checkpoint.pt", buf.getvalue())
        ckpt = time.perf_counter() - t0
    rec = {
        "method": method,
        "backbone": spec.backbone,
        "size": spec.size,
        "batch_size": spec.batch_size,
        "measured_batch_size": bs,
        "precision": spec.precision,
        "computed_precision": m.precision,
        "augment": spec.augment,
        "channels": channels,
        "classes": classes,
        "batches": batches,
        "train_images": n_train,
        "phases": phases,
        "eval": {"images": n_eval, "seconds": ev, "ips": n_eval / ev},
        "checkpoint_s": ckpt,
        "torch": torch.__version__,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    log(
        f"  {measure_key(spec)}: train "
        + " / ".join(f"{p['ips']:.1f}" for p in phases)
        + f" img/s, eval {rec['eval']['ips']:.1f} img/s, checkpoint {ckpt:.2f} s"
    )
    del m, data
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rec


def measure_startup(device) -> float:
    """Seconds a fresh Python takes to import the trainer and the methods and touch the device
    (the second of two tries: the first warms the page cache)."""
    code = (
        "import torch, lnm.train.trainer, lnm.methods\n"
        f"torch.zeros(1, device={str(device)!r}).add_(1).sum().item()\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    best = None
    for _ in range(2):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
        best = time.perf_counter() - t0
    return best


def measure_data_path(device, megabytes: int = 128) -> float:
    """Bytes/s of a run's data path: SHA-256 verification of an (uncompressed, MedMNIST-style)
    HDF5 file of ``megabytes`` of images and loading it onto ``device`` (page cache warm)."""
    from lnm.checksum import verify
    from lnm.train.datasource import open_data

    size, c = 64, 3
    per = size * size * c
    n = max(3, (megabytes << 20) // per)
    counts = {"train": n - 2 * (n // 10), "val": n // 10, "test": n // 10}
    with tempfile.TemporaryDirectory(prefix="lnm-grid-cost-") as tmp:
        path = Path(tmp) / "synthetic_64.h5"
        noise = write_synthetic(path, counts, size, c, 5, 0.2)
        total = n * per
        best = math.inf
        for _ in range(2):  # the first warms the page cache
            sync(device)
            t0 = time.perf_counter()
            verify(path)
            data = open_data(path, noise, device, {}, 128, True, stream="never", log=lambda s: None)
            sync(device)
            best = min(best, time.perf_counter() - t0)
            del data
    return total / best


# -------------------------------------------------------------------------- the file
def load_measurements(path: Path) -> dict:
    if path.exists():
        doc = json.loads(path.read_text())
        if doc.get("format") == FORMAT:
            return doc
    return {"format": FORMAT, "devices": {}}


def save_measurements(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def pick_device(doc: dict, name: str) -> str:
    """The device of the measurement file whose name contains ``name`` (case-insensitive)."""
    names = [d for d in doc["devices"] if name.lower() in d.lower()]
    if len(names) != 1:
        have = "; ".join(doc["devices"]) or "none"
        what = "no" if not names else "more than one"
        raise SystemExit(f"--use {name!r}: {what} device of the measurement file matches ({have})")
    return names[0]


# ---------------------------------------------------------------------------- report
def fmt_ips(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.2g}"


def fmt_hours(h: float) -> str:
    return f"{h:10.2f}" if h >= 0.01 else f"{h:10.4f}"


def training_runs(rows: dict) -> int:
    """The training runs among the projected rows' jobs."""
    return sum(r["jobs"] for k, r in rows.items() if k not in NOISE_ROWS)


def report(rows: dict, measurements: dict, config_names: str, wall_hours, out=print) -> float:
    runs = measurements.get("runs", {})
    order = list(grid.method_catalog()) + list(NOISE_ROWS)
    names = sorted(rows, key=lambda r: (order.index(r) if r in order else len(order) - 2, r))
    total = sum(r["seconds"] for r in rows.values()) / 3600
    head = (
        f"{'method':22s} {'jobs':>6s} {'epochs':>7s} {'train img/s (per phase)':>26s} "
        f"{'eval img/s':>11s} {'min/job':>8s} {'device-h':>10s} {'share':>6s}"
    )
    out(head)
    out("-" * len(head))
    longest = 0.0
    for name in names:
        r = rows[name]
        ep = sorted(r["epochs"])
        ep_text = str(ep[0]) if len(ep) == 1 else f"{ep[0]}-{ep[-1]}"
        ips = []
        evs = []
        for key in r["keys"]:
            rec = runs[key]
            ips.append("/".join(fmt_ips(p["ips"]) for p in rec["phases"]))
            evs.append(fmt_ips(rec["eval"]["ips"]))
        hours = r["seconds"] / 3600
        longest = max(longest, r["max_job_s"] / 3600)
        out(
            f"{name:22s} {r['jobs']:6d} {ep_text:>7s} {', '.join(ips):>26s} "
            f"{', '.join(evs):>11s} {r['seconds'] / 60 / r['jobs']:8.2f} {fmt_hours(hours)} "
            f"{100 * hours / max(total, 1e-12):5.1f}%"
        )
    out("-" * len(head))
    n_jobs = sum(r["jobs"] for r in rows.values())
    out(f"{'total':22s} {n_jobs:6d} {'':7s} {'':26s} {'':11s} {'':8s} {fmt_hours(total)}")
    train_runs = training_runs(rows)
    out(
        f"{train_runs} training runs of {config_names}; longest job {longest:.2f} h; per run "
        f"start-up {measurements.get('startup_s', 0):.1f} s, data path "
        f"{measurements.get('data_bytes_per_s', 0) / 2**20:.0f} MiB/s"
    )
    if wall_hours:
        need = devices_needed(total, wall_hours, longest)
        if need < 0:
            out(
                f"devices to finish in {wall_hours:g} h: impossible, the longest job alone takes "
                f"{longest:.2f} h"
            )
        else:
            out(
                f"devices to finish in {wall_hours:g} h: {need} (device-hours / wall hours, "
                "rounded up; assumes the jobs pack without gaps)"
            )
    return total


def parse_sets(items: list[str]) -> dict:
    """``KEY=YAML`` items (dotted keys nest) as a config overrides dict."""
    import yaml

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def parse_split_sizes(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, sep, nums = item.partition("=")
        try:
            t, v, s = (int(x) for x in nums.split(","))
        except ValueError:
            raise SystemExit(f"--split-sizes {item!r}: expected NAME=TRAIN,VAL,TEST") from None
        if not sep:
            raise SystemExit(f"--split-sizes {item!r}: expected NAME=TRAIN,VAL,TEST")
        out[name] = {"train": t, "val": v, "test": s}
    return out


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("configs", nargs="*", help="config files merged over config.yaml, in order")
    p.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="override")
    p.add_argument("--methods", nargs="+", help="only these methods (measured and projected)")
    p.add_argument("--backbones", nargs="+", help="only these backbones")
    p.add_argument("--split-sizes", nargs="+", default=[], metavar="NAME=TRAIN,VAL,TEST")
    p.add_argument("--batches", type=int, default=5, help="timed training batches per epoch")
    p.add_argument(
        "--warm-epochs", type=int, default=1, help="untimed epochs before each timed one"
    )
    p.add_argument("--batch-size", type=int, help="measure at this batch size (default: the run's)")
    p.add_argument("--eval-images", type=int, help="synthetic val + test images (default: train)")
    p.add_argument("--measurements", type=Path, default=DEFAULT_MEASUREMENTS, help="cache file")
    p.add_argument("--use", metavar="NAME", help="project with this device's measurements")
    p.add_argument("--no-measure", action="store_true", help="measure nothing (cached only)")
    p.add_argument("--remeasure", action="store_true", help="measure again what is cached")
    p.add_argument("--no-startup", action="store_true", help="leave out start-up and data loading")
    p.add_argument("--data-mb", type=int, default=128, help="size of the data-path test file")
    p.add_argument("--wall-hours", type=float, help="devices needed to finish in this wall time")
    return p.parse_args(argv)


def measure_missing(args, jobs: list[Job], dev: dict, device, doc: dict) -> None:
    """Measure (and cache) what ``dev`` lacks: start-up, the data path, and one run per
    measurement key of ``jobs`` (all of it again with ``--remeasure``)."""
    todo: dict = {}
    for job in jobs:
        if job.key not in todo and (args.remeasure or job.key not in dev["runs"]):
            todo[job.key] = job
    if args.remeasure or "startup_s" not in dev:
        dev["startup_s"] = measure_startup(device)
        print(f"  start-up (imports + device): {dev['startup_s']:.2f} s")
        save_measurements(args.measurements, doc)
    if args.remeasure or "data_bytes_per_s" not in dev:
        dev["data_bytes_per_s"] = measure_data_path(device, args.data_mb)
        print(f"  data path (verify + load): {dev['data_bytes_per_s'] / 2**20:.0f} MiB/s")
        save_measurements(args.measurements, doc)
    if todo:
        print(
            f"measuring {len(todo)} configuration(s): {args.batches} batches per epoch, "
            f"{args.warm_epochs} untimed + 1 timed epoch per phase"
        )
    for key, job in todo.items():
        c, k = job.shape
        dev["runs"][key] = measure_run(
            job.spec,
            device,
            batches=args.batches,
            warm_epochs=args.warm_epochs,
            channels=c,
            classes=k,
            batch_size=args.batch_size,
            eval_images=args.eval_images,
            log=lambda s: print(s, flush=True),
        )
        save_measurements(args.measurements, doc)


def print_batch_notes(rows: dict, dev: dict) -> None:
    """Configurations measured at another batch size than their runs use (memory-capped)."""
    odd: dict = defaultdict(int)
    for key in {k for r in rows.values() for k in r["keys"]}:
        rec = dev["runs"][key]
        if rec.get("measured_batch_size", rec.get("batch_size")) != rec.get("batch_size"):
            odd[(rec["measured_batch_size"], rec["batch_size"])] += 1
    for (measured, used), count in sorted(odd.items()):
        print(f"{count} configuration(s) measured at batch {measured}; their runs use {used}")


def json_summary(dev_name: str, names: str, total: float, rows: dict, missing) -> dict:
    return {
        "device": dev_name,
        "configs": names,
        "total_hours": total,
        "training_runs": training_runs(rows),
        "hours": {k: r["seconds"] / 3600 for k, r in rows.items()},
        "not_measured": list(missing),
    }


def main(argv=None) -> int:
    args = parse_args(argv)

    config = load_config(*args.configs, overrides=parse_sets(args.set))
    names = " + ".join(["config.yaml", *[str(c) for c in args.configs]])
    if args.set:
        names += " with " + ", ".join(args.set)
    jobs = grid_jobs(config, args.methods, args.backbones, parse_split_sizes(args.split_sizes))
    if not jobs:
        print("no jobs: nothing to project")
        return 1

    doc = load_measurements(args.measurements)
    if args.use:
        dev_name = pick_device(doc, args.use)
        measure = False
        device = None
    else:
        device = setup(args)
        dev_name = device_name(device)
        measure = not args.no_measure
    dev = doc["devices"].setdefault(dev_name, {"runs": {}})
    print(f"device: {dev_name}" + ("" if measure else f" (measurements of {args.measurements})"))
    if measure:
        measure_missing(args, jobs, dev, device, doc)

    rows, missing = project(jobs, dev, startup=not args.no_startup)
    if missing:
        print(f"not measured on {dev_name} (left out of the totals): {', '.join(missing)}")
    if not rows:
        return 1
    print_batch_notes(rows, dev)
    print()
    total = report(rows, dev, names, args.wall_hours)
    if args.json:
        doc = json_summary(dev_name, names, total, rows, missing)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
