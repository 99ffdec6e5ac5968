"""torch.compile for the training step of the noisy-label methods: speed, exactness, resume.

Issue 14 asks whether compiled paths pay for the fixed-shape training step of each method, and
whether exact resume still holds with them. For one backbone and image size (default ResNet-18
at 28 px, batch 128: synthetic PathMNIST-like data, 3 channels, 9 classes, 20 % symmetric label
noise, the harmonized training settings of ``config.yaml``) this script builds every method as
:func:`lnm.train.trainer.train_run` does (``seed_everything(seed)``, then
``get_method(spec.method_class)(spec, factory, num_classes, device, data)`` with ``factory``
calling :func:`lnm.models.build_model`, on lnm's in-memory :class:`~lnm.train.data.DeviceData`)
and runs the method's own ``start_epoch`` + ``train_epoch`` (``--steps`` batches an epoch) in
these variants:

- ``eager``: what the trainer runs today;
- one per ``--modes`` entry (default: all three on CUDA, ``default`` on a CPU, where
  ``max-autotune-no-cudagraphs`` costs minutes of compiling and ``reduce-overhead`` is CUDA
  graphs): every network compiled in place, ``net.compile(mode=MODE)``
  (``nn.Module.compile``: the module keeps its class and its ``state_dict`` keys); the method's
  code is unchanged, so its losses, selections, backward and optimiser steps stay eager;
- ``step:MODE`` (``--whole-step``, CE only): the whole step (forward, loss, ``zero_grad``,
  backward, optimiser step) in one ``torch.compile``d function (graph breaks at backward).

Every variant first runs ``--warmup`` untimed epochs (compilation happens there), then
``--repeats`` timed epochs, interleaved across the variants in an order that rotates per round,
all variants on the same batches and from the same seed (each variant's RNG state is swapped
in and out as the trainer's checkpoint holds it). Per method and variant it prints:

- ``img/s``: median over the timed epochs of training images / wall seconds, and ``CPU s``: the
  median process CPU time of an epoch (less sensitive to other load on the machine), with the
  ratios eager / variant (``wall x``, ``CPU x``; above 1: the variant is faster);
- ``compile s``: the warm-up epochs' extra time over the variant's timed epochs, minus eager's
  (the cost of compiling, paid once per process); ``graphs``: graphs compiled in the warm-up
  (``+k``: k more in the timed epochs, i.e. recompilations the warm-up did not cover);
  ``fx cache``: inductor's FX-graph cache hits / misses in the warm-up (misses: cold compiles;
  the on-disk cache makes later processes faster; ``--fresh-cache`` measures a cold start);
- ``loss |d|``: max over epochs of |train_loss(variant) - train_loss(eager)|, and ``nets |d|``:
  max |difference| of the networks' state (parameters and BatchNorm buffers) after all epochs,
  against eager; ``0`` means bitwise identical;
- ``resume``: the end-of-warm-up checkpoint (``method.state_dict()`` and the RNG state, through
  ``torch.save`` / ``torch.load`` as the trainer writes it) loaded into a freshly built method of
  the same variant, which then trains the first timed epoch: ``exact`` when its whole state
  (networks, optimisers, the method's extra state) and loss equal, bitwise, those of the
  uninterrupted variant after that epoch. The fresh method reuses this process's compiled
  graphs; ``--cold-resume`` makes it recompile from nothing (dynamo reset, inductor's caches
  off, autotuning again), as a job resumed in a new process on another machine would;
- ``x-load``: whether eager's checkpoint loads (``load_state_dict``, strict) into a fresh method
  of the variant and the variant's checkpoint into a fresh eager method, bitwise.

On CUDA the trainer's CUDA path is measured as it is (``Method.forward``: channels_last, and
bf16 autocast with ``precision: bf16``) for each of ``--precisions`` (default ``fp32,bf16``),
with CUDA graphs through ``mode="reduce-overhead"``. On a CPU the trainer computes in fp32
whatever the configured precision, and ``reduce-overhead`` (CUDA graphs) is skipped; the
skips are printed with their reason.

    python benchmarks/compile_bench.py --quick
    python benchmarks/compile_bench.py
    python benchmarks/compile_bench.py --backbone resnet8 --methods all \
        --modes default,max-autotune-no-cudagraphs --steps 2 --whole-step
    python benchmarks/compile_bench.py --device cuda --methods all --steps 20

``--quick`` (CE, 1 step, 1 repeat, mode ``default``) takes about a minute with a warm inductor
cache (ResNet-18 on 2 shared CPU cores; the first compile ever adds about 2 minutes). The
defaults (CE, Co-teaching, DivideMix; on a CPU 1 step an epoch, 3 repeats) took 7-13 minutes
there, depending on the other load, most of it DivideMix's epochs; ``--methods ce,coteaching``
halves that.
Defaults: ``--steps`` 1 on a CPU, 20 on CUDA; ``--repeats`` 3; ``--warmup`` 1 (2 with
``--whole-step``: the compiled optimiser step compiles again once its state exists).

Methods whose phases need epochs first are put in their second phase as early as their first
phase allows (its ``min_epochs``, 1 unless declared; the traits of the method's class,
``lnm.grid.method_info``), and a ramp ends at epoch 1: e.g. the Co-teaching family's and CDR's
ramps end at epoch 1 (``num_gradual: 1``), DivideMix runs MixMatch from epoch 0, DISC uses its
sets from epoch 1, T-Revision estimates T in epoch 0 and reweights from epoch 1.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

import _common
import numpy as np
import torch
import torch.nn.functional as F

MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
#: modes that need a CUDA device, with the reason printed when they are skipped
CUDA_ONLY = {"reduce-overhead": "CUDA graphs need a CUDA device"}
#: the CPU's default modes: ``max-autotune-no-cudagraphs`` adds minutes of compiling a backbone
CPU_MODES = "default"
DEFAULT_METHODS = ("ce", "coteaching", "dividemix")


def main_phase(method: str) -> dict:
    """Parameters that put ``method`` in its second phase early and end its ramp at epoch 1."""
    from lnm import grid

    info = grid.method_info(method)
    first = info.phases[0] if len(info.phases) > 1 else {}
    key = first.get("until") or first.get("epochs")
    out = {info.ramp: 1} if info.ramp else {}
    return {**out, key: first.get("min_epochs", 1)} if key else out


# ----------------------------------------------------------------------------- set-up
def synthetic_data(args, device):
    """DeviceData of ``steps x batch`` synthetic training images with 20 % symmetric noise on
    the training and validation labels (:func:`_common.synthetic`)."""
    from lnm.train.data import DeviceData

    counts = {"train": args.steps * args.batch_size, "val": 64, "test": 64}
    ds, noise = _common.synthetic(counts, args.size, args.channels, args.classes, rate=0.2)
    data = DeviceData(ds, noise, device, _common.AUGMENT, args.batch_size, True)
    data.noise_estimate = None  # as the trainer sets it without an estimate file
    return data


def run_spec(method: str, args, precision: str):
    from lnm.methods import get_method

    cls = get_method(method)
    params = main_phase(method)
    return _common.run_spec(method, args.backbone, args.size, args.batch_size,
                            eval_view=cls.eval_view, precision=precision, method_params=params)  # fmt: skip


@dataclass
class Variant:
    """One way of running a method: ``mode`` None is eager; ``whole_step``: the compiled step."""

    name: str
    mode: str | None = None
    whole_step: bool = False
    method: object = None
    rng: dict | None = None
    warmup_wall: float = 0.0
    #: counter deltas (:func:`_counters`) of the warm-up and of the timed epochs
    warm: Counter = field(default_factory=Counter)
    timed: Counter = field(default_factory=Counter)
    wall: list = field(default_factory=list)
    cpu: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    ckpt: bytes = b""
    ref: dict | None = None
    error: str | None = None
    resume: str = "-"
    xload: str = "-"


def install_whole_step(method, mode: str) -> None:
    """CE's ``train_epoch`` with its step (forward, loss, zero_grad, backward, optimiser step)
    in one compiled function; the same arithmetic as ``lnm.methods.ce.CE.train_epoch``."""
    net, opt = method.nets[0], method.optimizers[0]
    smoothing = method.hp["label_smoothing"]

    def step(x, y):
        loss = F.cross_entropy(method.forward(net, x), y, label_smoothing=smoothing)
        method.step(opt, loss)
        return loss.detach()

    compiled = torch.compile(step, mode=mode)

    def train_epoch(epoch, batches):
        net.train()
        total, n = 0.0, 0
        for b in batches:
            loss = compiled(b.x, b.y)
            total, n = total + loss.item() * len(b), n + len(b)
        return {"train_loss": total / max(n, 1)}

    method.train_epoch = train_epoch


def build_method(spec, data, device, v: Variant):
    """The method as the trainer builds it (seeded first), compiled as ``v`` says; returns it
    with the RNG state it starts training from."""
    from lnm.methods import get_method
    from lnm.models import build_model
    from lnm.train.trainer import _rng_state, configure_determinism, seed_everything

    configure_determinism(torch.device(device))  # the trainer's settings (CUDA: deterministic)
    seed_everything(spec.seed)

    def factory():
        return build_model(spec.backbone, data.in_chans, data.num_classes, spec.size, False)

    method = get_method(spec.method_class)(spec, factory, data.num_classes, device, data)
    if v.whole_step:
        install_whole_step(method, v.mode)
    elif v.mode is not None:
        for net in method.nets:
            net.compile(mode=v.mode)
    return method, _rng_state(torch.device(device))


# ----------------------------------------------------------------------------- measuring
class _LimitWatch(logging.Handler):
    """Counts dynamo's "hit config.recompile_limit" warnings: past the limit a function runs
    eager, so a variant that hits it does not measure compiled code."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.hits = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "recompile_limit" in record.getMessage():
            self.hits += 1


LIMIT_WATCH = _LimitWatch()


def _counters() -> Counter:
    """What this process has compiled so far: graphs, inductor FX-graph cache hits and misses,
    graphs CUDA graphs skipped (reduce-overhead), recompile-limit hits."""
    from torch._dynamo.utils import counters

    return Counter(
        graphs=int(counters["stats"]["unique_graphs"]),
        fx_hit=int(counters["inductor"]["fxgraph_cache_hit"]),
        fx_miss=int(counters["inductor"]["fxgraph_cache_miss"]),
        cudagraph_skips=int(counters["inductor"]["cudagraph_skips"]),
        limit_hits=LIMIT_WATCH.hits,
    )


def run_epoch(v: Variant, data, spec, epoch: int, device, into: Counter) -> tuple[float, float]:
    """One epoch of ``v`` with its own RNG state: (wall s, CPU s); adds what it compiled to
    ``into``."""
    from lnm.train.trainer import _rng_state, _set_rng_state

    _set_rng_state(v.rng, torch.device(device))
    _common.sync(device)
    before = _counters()
    t0, c0 = time.perf_counter(), time.process_time()
    v.method.start_epoch(epoch)
    diag = v.method.train_epoch(epoch, data.epoch_batches(spec.seed, epoch))
    _common.sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    v.rng = _rng_state(torch.device(device))
    v.losses.append(float(diag.get("train_loss", float("nan"))))
    into.update(_counters() - before)
    return wall, cpu


def checkpoint(v: Variant) -> bytes:
    """What the trainer's checkpoint holds of the method, written as it writes it."""
    buf = io.BytesIO()
    torch.save({"method": v.method.state_dict(), "rng": v.rng}, buf)
    return buf.getvalue()


def load_checkpoint(blob: bytes, device) -> dict:
    return torch.load(io.BytesIO(blob), map_location=device, weights_only=False)


def flatten(obj, prefix: str = "") -> dict:
    """Nested dicts/lists of a state dict -> {path: value}, tensors detached to the CPU."""
    if isinstance(obj, dict):
        out = {}
        for k, val in obj.items():
            out.update(flatten(val, f"{prefix}{k}."))
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, val in enumerate(obj):
            out.update(flatten(val, f"{prefix}{i}."))
        return out
    if isinstance(obj, torch.Tensor):
        return {prefix[:-1]: obj.detach().to("cpu", copy=True)}
    return {prefix[:-1]: obj}


def max_diff(a: dict, b: dict, only: str = "") -> float:
    """Max |a - b| over the float tensors whose path starts with ``only`` (inf: the keys or
    shapes differ; other values count as 0 or inf by equality)."""
    keys = [k for k in a if k.startswith(only)]
    if set(keys) != {k for k in b if k.startswith(only)}:
        return math.inf
    worst = 0.0
    for k in keys:
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape:
                return math.inf
            if x.is_floating_point():
                d = (x.double() - y.double()).abs()
                worst = max(worst, float(d.nan_to_num(math.inf).max()) if d.numel() else 0.0)
            elif not torch.equal(x, y):
                return math.inf
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(x, y):
                return math.inf
        elif x != y:
            return math.inf
    return worst


def bitwise_equal(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    for k, x in a.items():
        y = b[k]
        if isinstance(x, torch.Tensor):
            if not (isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape):
                return False
            # bit patterns, so that NaNs and signed zeros compare too
            if x.numel() and not torch.equal(_bits(x), _bits(y)):
                return False
        elif isinstance(x, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def _bits(t: torch.Tensor) -> torch.Tensor:
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}
    if t.is_floating_point() and t.element_size() in ints:
        return t.contiguous().view(ints[t.element_size()])
    return t


def _error(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:110] if text else ''}"


def _variants(method: str, args) -> list[Variant]:
    """Eager, one variant per compile mode, and (``--whole-step``, CE) the compiled steps."""
    variants = [Variant("eager")]
    variants += [Variant(m, mode=m) for m in args.modes]
    if args.whole_step and method == "ce":
        variants += [Variant(f"step:{m}", mode=m, whole_step=True) for m in args.modes]
    return variants


def warm_up(v: Variant, spec, args, data, device) -> None:
    """Build ``v`` and run its warm-up epochs (compilation happens here); a mode that fails is
    recorded in ``v.error``, the other variants go on."""
    try:
        v.method, v.rng = build_method(spec, data, device, v)
        for e in range(args.warmup):
            v.warmup_wall += run_epoch(v, data, spec, e, device, v.warm)[0]
        v.ckpt = checkpoint(v)
    except Exception as err:
        v.error, v.method = _error(err), None


def time_round(live: list[Variant], r: int, spec, args, data, device) -> None:
    """Timed round ``r``: one epoch of each live variant, in an order rotated by ``r``."""
    epoch = args.warmup + r
    for v in live[r % len(live) :] + live[: r % len(live)]:
        if v.error is not None:
            continue
        try:
            wall, cpu = run_epoch(v, data, spec, epoch, device, v.timed)
        except Exception as err:
            v.error, v.method = _error(err), None
            continue
        v.wall.append(wall)
        v.cpu.append(cpu)
        if r == 0:
            v.ref = flatten(v.method.state_dict())


def bench_method(method: str, precision: str, args, data, device) -> list[Variant]:
    """Warm up, time (interleaved) and check every variant of ``method``."""
    spec = run_spec(method, args, precision)
    # every method starts from empty dynamo caches, as a training process does (the inductor
    # cache on disk stays: later methods recompile from it); the compiled variants of one
    # method share the cache entries of the networks' forward, hence the higher limit
    torch._dynamo.reset()
    variants = _variants(method, args)
    for v in variants:  # warm-up, one variant after the other
        warm_up(v, spec, args, data, device)
    live = [v for v in variants if v.error is None]
    for r in range(args.repeats):
        time_round(live, r, spec, args, data, device)
    eager = variants[0]
    for v in variants:
        if v.error is None:
            check_resume(v, eager, spec, data, device, args)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return variants


def check_resume(v: Variant, eager: Variant, spec, data, device, args) -> None:
    """``resume`` and ``x-load`` of ``v`` (see the module docstring)."""
    warmup, cold = args.warmup, args.cold_resume and v.mode is not None
    try:
        fresh = Variant(v.name, v.mode, v.whole_step)
        context = contextlib.nullcontext()
        if cold:  # recompile from nothing, as a resumed job on another machine would
            torch._dynamo.reset()
            context = torch._inductor.config.patch(force_disable_caches=True)
            warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")
        with context:
            fresh.method, _ = build_method(spec, data, device, fresh)
            state = load_checkpoint(v.ckpt, device)
            fresh.method.load_state_dict(state["method"])
            fresh.rng = state["rng"]
            t0 = time.perf_counter()
            run_epoch(fresh, data, spec, warmup, device, Counter())
        extra = time.perf_counter() - t0 - statistics.median(v.wall)
        same = bitwise_equal(flatten(fresh.method.state_dict()), v.ref)
        same_loss = fresh.losses[0] == v.losses[warmup]
        if same and same_loss:
            v.resume = "exact"
        else:
            d = max_diff(flatten(fresh.method.state_dict()), v.ref)
            v.resume = f"DIFF {d:.1e}"
        if cold:
            v.resume += f" (cold, +{extra:.0f}s)"  # the fresh method recompiled from nothing
        elif v.mode is not None and extra > 1.0:
            v.resume += f" (+{extra:.0f}s)"  # the fresh method's first epoch recompiled
    except Exception as err:
        v.resume = _error(err)
    if v is eager or eager.error is not None:
        return
    try:
        ok = []
        for src, dst in ((eager, v), (v, eager)):
            target = Variant(dst.name, dst.mode, dst.whole_step)
            target.method, _ = build_method(spec, data, device, target)
            state = load_checkpoint(src.ckpt, device)["method"]
            target.method.load_state_dict(state)
            ok.append(bitwise_equal(flatten(target.method.state_dict()), flatten(state)))
        v.xload = "ok" if all(ok) else "DIFF"
    except Exception as err:
        v.xload = _error(err)


# ----------------------------------------------------------------------------- printing
HEAD = (
    f"{'method':16s} {'prec':4s} {'variant':32s} {'img/s':>7s} {'CPU s':>7s} {'wall x':>6s} "
    f"{'CPU x':>6s} {'compile s':>9s} {'graphs':>6s} {'fx cache':>8s} {'loss |d|':>8s} "
    f"{'nets |d|':>8s}  {'resume':12s} {'x-load':6s}"
)


def _fmt_diff(d: float) -> str:
    return "0" if d == 0 else f"{d:.1e}"


def print_rows(method: str, precision: str, variants: list[Variant], args) -> None:
    eager = variants[0]
    images = args.steps * args.batch_size
    ok = eager.error is None and eager.wall
    e_wall = statistics.median(eager.wall) if ok else math.nan
    e_cpu = statistics.median(eager.cpu) if ok else math.nan
    e_over = eager.warmup_wall - args.warmup * e_wall if ok else math.nan
    e_state = flatten(eager.method.state_dict()) if ok else None
    for v in variants:
        label = f"{method:16s} {precision:4s} {v.name:32s}"
        if v.error is not None:
            print(f"{label} FAILED {v.error}", flush=True)
            continue
        wall, cpu = statistics.median(v.wall), statistics.median(v.cpu)
        if v is eager:
            rest = f"{'1.00x':>6s} {'1.00x':>6s} {'-':>9s} {'-':>6s} {'-':>8s} {'-':>8s} {'-':>8s}"
        else:
            compile_s = v.warmup_wall - args.warmup * wall - e_over
            graphs = f"{v.warm['graphs']}" + (f"+{v.timed['graphs']}" if v.timed["graphs"] else "")
            cache = f"{v.warm['fx_hit']}h/{v.warm['fx_miss']}m"
            loss_d = max(
                (abs(a - b) for a, b in zip(v.losses, eager.losses, strict=False)), default=0.0
            )
            nets_d = max_diff(flatten(v.method.state_dict()), e_state, "nets.") if ok else math.nan
            rest = (
                f"{e_wall / wall:5.2f}x {e_cpu / cpu:5.2f}x {compile_s:9.1f} {graphs:>6s} "
                f"{cache:>8s} {_fmt_diff(loss_d):>8s} {_fmt_diff(nets_d):>8s}"
            )
        notes = []
        skips = v.warm["cudagraph_skips"] + v.timed["cudagraph_skips"]
        if skips:
            notes.append(f"CUDA graphs skipped for {skips} graph(s)")
        limit = v.warm["limit_hits"] + v.timed["limit_hits"]
        if limit:
            notes.append(f"RECOMPILE LIMIT hit {limit}x: calls past it ran eager")
        print(
            f"{label} {images / wall:7.1f} {cpu:7.2f} {rest}  {v.resume:12s} {v.xload}"
            + (f"  [{'; '.join(notes)}]" if notes else ""),
            flush=True,
        )


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = _common.parser(__doc__, json=False)
    p.add_argument("--backbone", default="resnet18", help="one of lnm.grid.BACKBONES")
    p.add_argument("--size", type=int, default=28, help="image size in pixels")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=9)
    p.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated method names, or 'all' (default: %(default)s)",
    )
    p.add_argument("--steps", type=int, help="batches per epoch (default CPU 1, CUDA 20)")
    p.add_argument("--repeats", type=int, help="timed epochs per variant (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs first (>= 1)")
    p.add_argument(
        "--modes",
        help="comma-separated torch.compile modes (default on CUDA: "
        f"{','.join(MODES)}; on a CPU: {CPU_MODES}); CUDA-only ones are skipped on a CPU; "
        "none: eager only",
    )
    p.add_argument(
        "--precisions",
        help="comma-separated of fp32, bf16 (default: fp32,bf16 on CUDA, fp32 on a CPU)",
    )
    p.add_argument(
        "--whole-step", action="store_true", help="CE: also compile the whole step function"
    )
    p.add_argument(
        "--fresh-cache",
        action="store_true",
        help="compile into an empty inductor cache (a cold start, as a new machine sees it)",
    )
    p.add_argument(
        "--cold-resume",
        action="store_true",
        help="resume check: the fresh method recompiles with dynamo reset and inductor's "
        "caches off (autotuning again), as a resumed job on another machine does",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="CE only, 1 step, 1 repeat, mode default (about a minute with a warm cache)",
    )
    return p.parse_args(argv)


def resolve_args(args, cuda: bool) -> tuple[list[str], list[str], list[str]]:
    """Fill in the defaults that depend on the device and check the choices: (method names,
    precisions, notes on what is skipped and why); ``args.modes`` becomes a list."""
    from lnm.grid import methods

    if args.quick:
        args.methods, args.modes = "ce", "default"
        args.steps, args.repeats = args.steps or 1, args.repeats or 1
    args.steps = args.steps or (20 if cuda else 1)
    args.repeats = max(1, args.repeats or 3)
    args.warmup = max(1, args.warmup)
    names = list(methods()) if args.methods == "all" else args.methods.split(",")
    unknown = sorted(set(names) - set(methods()))
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; allowed: {', '.join(methods())}")
    notes = []
    if args.modes is None and not cuda:
        notes.append(
            "mode max-autotune-no-cudagraphs: not run by default on a CPU (minutes of "
            "compiling; --modes default,max-autotune-no-cudagraphs adds it)"
        )
    if args.whole_step and args.warmup < 2:
        args.warmup = 2  # the compiled optimiser step recompiles once its state exists
        notes.append("--whole-step: 2 warm-up epochs (the optimiser step compiles twice)")
    args.modes = resolve_modes(args.modes, cuda, notes)
    precisions = resolve_precisions(args.precisions, cuda, notes)
    if args.whole_step and "ce" not in names:
        notes.append("--whole-step: only CE has one; CE is not among --methods")
    return names, precisions, notes


def resolve_modes(given: str | None, cuda: bool, notes: list[str]) -> list[str]:
    """The compile modes to run (``none``: eager only); CUDA-only ones skipped on a CPU."""
    modes = []
    for m in (given or (",".join(MODES) if cuda else CPU_MODES)).split(","):
        if m == "none":  # eager alone: its timing and resume check
            continue
        if m not in MODES:
            raise SystemExit(f"unknown mode {m!r}; allowed: {', '.join(MODES)}")
        if m in CUDA_ONLY and not cuda:
            notes.append(f"mode {m}: skipped ({CUDA_ONLY[m]})")
        else:
            modes.append(m)
    return modes


def resolve_precisions(given: str | None, cuda: bool, notes: list[str]) -> list[str]:
    """fp32 and/or bf16; bf16 is skipped on a CPU (the trainer computes in fp32 there)."""
    precisions = (given or ("fp32,bf16" if cuda else "fp32")).split(",")
    if set(precisions) - {"fp32", "bf16"}:
        raise SystemExit(f"--precisions: fp32 and/or bf16, not {given!r}")
    if not cuda and "bf16" in precisions:
        precisions = [p for p in precisions if p != "bf16"] or ["fp32"]
        notes.append("precision bf16: skipped (the trainer computes in fp32 on a CPU)")
    return precisions


def print_header(args, device, limit: int, compiled: int, notes: list[str]) -> None:
    cuda = device.type == "cuda"
    where = (
        torch.cuda.get_device_name(device)
        if cuda
        else f"CPU, {torch.get_num_threads()} torch threads"
    )
    print(
        f"compile_bench: {args.backbone} at {args.size} px, batch {args.batch_size}, "
        f"{args.channels} channels, {args.classes} classes; {args.steps} steps "
        f"({args.steps * args.batch_size} images) an epoch, {args.warmup} warm-up + "
        f"{args.repeats} timed epoch(s) per variant, interleaved, medians; {device} ({where}); "
        f"torch {torch.__version__}" + (", channels_last (the trainer's CUDA path)" if cuda else "")
    )
    print(
        f"modes: {', '.join(args.modes) or 'none'}; dynamo recompile_limit {limit} x "
        f"{max(1, compiled)} compiled variant(s) = {torch._dynamo.config.recompile_limit}, "
        "caches reset per method"
        + (
            f"; inductor cache: {os.environ['TORCHINDUCTOR_CACHE_DIR']} (fresh)"
            if args.fresh_cache
            else ""
        )
    )
    for note in notes:
        print(note)
    print(HEAD)
    print("-" * len(HEAD))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.fresh_cache:  # before anything is compiled: inductor reads it when it compiles
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="lnm-compile-bench-")
    from lnm.grid import BACKBONES

    if args.backbone not in BACKBONES:
        raise SystemExit(f"unknown backbone {args.backbone!r}; allowed: {', '.join(BACKBONES)}")
    device = _common.setup(args)
    names, precisions, notes = resolve_args(args, device.type == "cuda")

    data = synthetic_data(args, device)
    compiled = len(args.modes) * (2 if args.whole_step else 1)
    limit = torch._dynamo.config.recompile_limit
    torch._dynamo.config.recompile_limit = limit * max(1, compiled)
    logging.getLogger("torch._dynamo").addHandler(LIMIT_WATCH)
    print_header(args, device, limit, compiled, notes)
    t_start = time.perf_counter()
    problems = []
    for precision in precisions:
        for name in names:
            variants = bench_method(name, precision, args, data, device)
            print_rows(name, precision, variants, args)
            problems += variant_problems(name, precision, variants)
            del variants
    print(
        "\nimg/s, CPU s: medians of the timed epochs (CPU s = process CPU time of an epoch); "
        "wall x / CPU x: eager / variant; compile s: extra warm-up time over eager's; graphs: "
        "compiled in the warm-up (+ in timed epochs); fx cache: inductor FX-graph cache "
        "hits/misses; loss |d|, nets |d|: max |variant - eager| (0 = bitwise); resume: a fresh "
        "method from the warm-up checkpoint vs the uninterrupted run after one more epoch; "
        f"x-load: eager <-> variant checkpoints load. Total {time.perf_counter() - t_start:.0f} s."
    )
    if problems:  # a failed variant or an inexact resume is a failed check, not a table entry
        print("\nFAILED checks:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


def variant_problems(method: str, precision: str, variants: list[Variant]) -> list[str]:
    """What went wrong for ``method``'s variants: an error, a resume that was not exact, a
    checkpoint that does not load across eager and compiled (empty: all well)."""
    out = []
    for v in variants:
        label = f"{method} {precision} {v.name}"
        if v.error is not None:
            out.append(f"{label}: {v.error}")
            continue
        if not str(v.resume).startswith("exact"):
            out.append(f"{label}: resume {v.resume}")
        if v is not variants[0] and v.xload not in ("ok", None, ""):
            out.append(f"{label}: x-load {v.xload}")
    return out


if __name__ == "__main__":
    sys.exit(main())
