"""A training run's fixed overhead: everything but its epochs (process start-up, imports, data
and noise loading and hashing, model set-up, the final writes).

Runs ``lnm train`` (``python -m lnm.cli train``) as a subprocess with ``--short`` (1) and
``--long`` (3) epochs, ``--repeats`` times each (interleaved, after one discarded warm-up run of
each), on the CPU, and prints the medians, of wall time and of the run's CPU time (user +
system; less sensitive to other load on the machine)::

    per epoch       = (T(long) - T(short)) / (long - short)
    fixed overhead  = T(short) - short * per epoch        (with 1 and 3: T1 - (T3 - T1) / 2)

The data is real BreastMNIST at 28 px when its raw file is found (``--raw-dir``, else
``$LNM_RAW_DIR``, else ``../shared/data/medmnist`` beside the repository; verified and
preprocessed with :mod:`lnm.data.hdf5`), else a synthetic set of the same shape (546 / 78 / 156
grey 28 px images, 2 classes; ``--synthetic`` forces it). Noise: 40 % symmetric, noise seed 0.
The config is ``config.yaml`` merged with ``--config`` files and the epochs, ``last_k: 1``,
``pretrained: false`` and ``device: cpu`` set here.

``--baseline DIR`` times another tree (a checkout of an earlier commit: the folder holding its
``lnm/`` and ``config.yaml``) in the same repeats, interleaved, so both see the same load.

After the timings, unless ``--no-importtime``, one more 1-epoch run per tree under ``python -X
importtime`` lists the imports that cost the most (top level, and by package) and names the
packages the process imported that a ResNet-8 run does not use; ``--profile`` adds the top
functions of a cProfile of a 1-epoch run.

    python benchmarks/overhead.py                      # 5 repeats, CE, ResNet-8, BreastMNIST
    python benchmarks/overhead.py --repeats 7 --method coteaching --profile
    python benchmarks/overhead.py --baseline ../previous-checkout   # before/after, interleaved
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: Packages a ResNet-8 training run does not use (reported when its process imported them).
HEAVY = (
    "pandas",
    "sklearn",
    "scipy",
    "matplotlib",
    "medmnist",
    "timm",
    "torchvision",
    "lnm.report",
)


def default_raw_dir() -> Path:
    env = os.environ.get("LNM_RAW_DIR")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data" / "medmnist"


def make_synthetic(path: Path, n=(546, 78, 156), size=28, num_classes=2, seed=0) -> Path:
    """A BreastMNIST-shaped HDF5 file in lnm.data.hdf5's layout (class c brightens band c)."""
    import h5py
    import numpy as np

    from lnm.checksum import write_sidecar

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as h5:
        for split, count in zip(("train", "val", "test"), n):
            y = rng.integers(0, num_classes, count)
            x = rng.integers(0, 60, (count, size, size, 1))
            for c in range(num_classes):
                x[y == c, c * size // num_classes : (c + 1) * size // num_classes] += 150
            g = h5.create_group(split)
            g["images"] = x.clip(0, 255).astype(np.uint8)
            g["labels"] = y.astype(np.int64)
        h5.attrs.update(
            dataset="breastmnist",
            size=size,
            task="binary-class",
            n_channels=1,
            n_classes=num_classes,
            classes=json.dumps([f"c{i}" for i in range(num_classes)]),
            source_md5="0" * 32,
            source_sha256="0" * 64,
            mean=np.full(1, 0.35),
            std=np.full(1, 0.3),
        )
    write_sidecar(path)
    return path


def prepare(work: Path, args) -> tuple[Path, Path, str]:
    """(HDF5 file, noise file, a line saying which data)."""
    from lnm.noise.generate import generate_noise_file

    h5 = work / "breastmnist_28.h5"
    raw = Path(args.raw_dir).expanduser() if args.raw_dir else default_raw_dir()
    if not args.synthetic and (raw / "breastmnist.npz").exists():
        from lnm.data.hdf5 import preprocess
        from lnm.data.medmnist_io import fetch

        rec = work / "breastmnist_28.json"
        fetch("breastmnist", 28, raw, rec, allow_download=False)
        preprocess(rec, raw, h5)
        what = f"BreastMNIST 28 px from {raw}"
    else:
        make_synthetic(h5)
        what = "synthetic BreastMNIST-shaped set (546/78/156 images, 28 px, 2 classes)"
    npz = work / "noise.npz"
    generate_noise_file(h5, npz, "symmetric", 0.4, 0)
    return h5, npz, what


def write_config(work: Path, epochs: int) -> Path:
    path = work / f"epochs{epochs}.yaml"
    path.write_text(
        "size: 28\n"
        "datasets: [breastmnist]\n"
        "pretrained: false\n"
        f"train: {{epochs: {epochs}, last_k: 1}}\n"
        "runtime: {device: cpu}\n"
    )
    return path


def train_cmd(
    args, cfgs: list[Path], h5: Path, npz: Path, out, seeds=(0,), device: str = "cpu"
) -> list[str]:
    """The arguments of ``lnm train`` for ``args.method`` / ``args.backbone`` / ``args.threads``
    (several ``seeds``: one process trains them, ``out`` holding ``{seed}``)."""
    cfg_args = [a for c in cfgs for a in ("--config", str(c))]
    return [
        *cfg_args,
        "--data",
        str(h5),
        "--noise",
        str(npz),
        "--method",
        args.method,
        "--backbone",
        args.backbone,
        "--seed",
        *map(str, seeds),
        "--device",
        device,
        "--threads",
        str(args.threads),
        "--out",
        str(out),
    ]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(args, cfgs, h5, npz, out: Path, prefix=(), repo=None) -> tuple[float, float, str]:
    """Wall and CPU (user + system) seconds of one ``lnm train`` subprocess (a fresh run
    folder: nothing to resume) and its standard error. It runs in ``repo`` (default
    ``--repo``), so ``python -m lnm.cli`` imports that tree's lnm."""
    cmd = [sys.executable, *prefix, "-m", "lnm.cli", "train", *train_cmd(args, cfgs, h5, npz, out)]
    c0, t0 = _children_cpu(), time.perf_counter()
    p = subprocess.run(cmd, cwd=repo or args.repo, capture_output=True, text=True)
    dt, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if p.returncode:
        raise SystemExit(f"lnm train failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return dt, cpu, p.stderr


EPOCH_LINE = re.compile(r"\] epoch (\d+)/\d+ .*\(([\d.]+)s\)$")


def epoch_seconds(stderr: str) -> list[float]:
    """The trainer's own per-epoch seconds, from its log lines."""
    return [float(m.group(2)) for line in stderr.splitlines() if (m := EPOCH_LINE.search(line))]


def parse_importtime(stderr: str) -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, depth, module) of every ``-X importtime`` line."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((int(self_us), int(cum_us), depth, name.strip()))
    return rows


def report_imports(args, cfgs, h5, npz, work: Path, repo: str) -> None:
    out = work / "run-importtime"
    _, _, err = run_once(args, cfgs, h5, npz, out, prefix=("-X", "importtime"), repo=repo)
    rows = parse_importtime(err)
    total = sum(r[0] for r in rows) / 1e6
    names = {r[3] for r in rows}
    top = sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[: args.top]
    print(f"\nimports of a 1-epoch run (-X importtime): {total:.2f} s in {len(rows)} modules")
    print("  top-level imports by cumulative time:")
    for _, cum, _, name in top:
        print(f"    {cum / 1e6:7.3f} s  {name}")
    by_package: dict[str, int] = {}
    for self_us, _, _, name in rows:
        # torch._dynamo apart from the rest of torch: torch.optim imports it at the first step
        key = "torch._dynamo" if name.startswith("torch._dynamo") else name.split(".")[0]
        by_package[key] = by_package.get(key, 0) + self_us
    print("  by package (own time of its modules):")
    for key, us in sorted(by_package.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"    {us / 1e6:7.3f} s  {key}")
    heavy = [p for p in HEAVY if p in names or any(n.startswith(p + ".") for n in names)]
    print(f"  imported but not used by a ResNet-8 run: {', '.join(heavy) or 'none'}")


def report_profile(args, cfgs, h5, npz, work: Path, repo: str) -> None:
    prof = work / "train.prof"
    prefix = ("-m", "cProfile", "-o", str(prof))
    run_once(args, cfgs, h5, npz, work / "run-profile", prefix=prefix, repo=repo)
    print(f"\ncProfile of a 1-epoch run, top {args.top} by cumulative time:")
    pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(args.top)


def overhead(times: dict, args, i: int) -> float:
    """The fixed overhead from the ``i``-th pair of runs."""
    t1, t3 = times[args.short][i], times[args.long][i]
    return t1 - args.short * (t3 - t1) / (args.long - args.short)


def summarize(series: dict, args, label: str) -> dict:
    """Print and return the medians of one tree's timings (``series``: epochs -> seconds)."""
    med = {e: statistics.median(v) for e, v in series.items()}
    per_epoch = (med[args.long] - med[args.short]) / (args.long - args.short)
    fixed = med[args.short] - args.short * per_epoch
    pairs = [overhead(series, args, i) for i in range(len(series[args.short]))]
    print(
        f"{label}: median T{args.short} = {med[args.short]:.2f} s, T{args.long} = "
        f"{med[args.long]:.2f} s (min {min(series[args.short]):.2f} / "
        f"{min(series[args.long]):.2f}); per epoch {per_epoch:.3f} s; fixed overhead "
        f"{fixed:.2f} s (median of the per-repeat overheads {statistics.median(pairs):.2f} s, "
        f"range {min(pairs):.2f}-{max(pairs):.2f})"
    )
    return {
        "times": {str(e): v for e, v in series.items()},
        "per_epoch": per_epoch,
        "fixed_overhead": fixed,
        "overhead_per_repeat": pairs,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per epoch count")
    p.add_argument("--short", type=int, default=1, help="epochs of the short run")
    p.add_argument("--long", type=int, default=3, help="epochs of the long run")
    p.add_argument("--method", default="ce")
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--threads", type=int, default=1, help="lnm train --threads")
    p.add_argument("--config", action="append", default=[], help="extra config files")
    p.add_argument("--raw-dir", help="folder with breastmnist.npz")
    p.add_argument("--synthetic", action="store_true", help="synthetic data even if real exists")
    p.add_argument("--no-importtime", action="store_true", help="skip the -X importtime run")
    p.add_argument("--profile", action="store_true", help="also cProfile a 1-epoch run")
    p.add_argument("--top", type=int, default=15, help="rows of the import/profile listings")
    p.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    p.add_argument(
        "--repo",
        default=str(REPO),
        help="the tree whose lnm runs (its folder holding lnm/ and config.yaml; default: this "
        "repository); the data is prepared with this repository's lnm",
    )
    p.add_argument(
        "--baseline",
        metavar="DIR",
        help="another tree (e.g. a checkout of the previous commit) timed in the same "
        "repeats, interleaved with --repo, so both see the same load",
    )
    p.add_argument("--json", help="write the timings to this JSON file")
    args = p.parse_args(argv)
    if args.long <= args.short:
        p.error("--long must be larger than --short")
    trees = {"baseline": args.baseline} if args.baseline else {}
    trees["after"] = args.repo

    with tempfile.TemporaryDirectory(prefix="lnm-overhead-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        h5, npz, what = prepare(work, args)
        extra = [Path(c).resolve() for c in args.config]
        cfgs = {e: [*extra, write_config(work, e)] for e in (args.short, args.long)}
        print(f"data: {what}")
        print(
            f"lnm train --method {args.method} --backbone {args.backbone} --device cpu "
            f"--threads {args.threads}; {args.short} vs {args.long} epochs, "
            f"{args.repeats} repeats each (after a warm-up run of each); trees: "
            + ", ".join(f"{k} {v}" for k, v in trees.items())
        )
        # per tree: wall seconds, CPU seconds (user + system: less sensitive to other load on
        # the machine) and the trainer's own epoch timer, per epoch count
        times = {t: {e: [] for e in cfgs} for t in trees}
        cpus = {t: {e: [] for e in cfgs} for t in trees}
        inproc = {t: {e: [] for e in cfgs} for t in trees}
        for i in range(args.repeats + 1):
            for tree, repo in trees.items():
                for e, c in cfgs.items():
                    dt, cpu, err = run_once(args, c, h5, npz, work / f"{tree}-{e}-{i}", repo=repo)
                    if i == 0:
                        continue  # warm-up: page cache, .pyc files
                    times[tree][e].append(dt)
                    cpus[tree][e].append(cpu)
                    inproc[tree][e].append(sum(epoch_seconds(err)))
                if i:
                    print(
                        f"  repeat {i} {tree}: "
                        + ", ".join(
                            f"T{e} {times[tree][e][-1]:.2f} s (cpu {cpus[tree][e][-1]:.2f})"
                            for e in cfgs
                        )
                        + f", overhead {overhead(times[tree], args, -1):.2f} s"
                        + f" (cpu {overhead(cpus[tree], args, -1):.2f})",
                        flush=True,
                    )
        result = {"data": what, "method": args.method, "backbone": args.backbone}
        print()
        for tree, repo in trees.items():
            result[tree] = {"repo": repo}
            for label, series in (("wall", times[tree]), ("cpu", cpus[tree])):
                result[tree][label] = summarize(series, args, f"{tree} {label}")
            in_epoch = statistics.median(inproc[tree][args.short]) / args.short
            print(f"{tree}: the trainer's own epoch timer (1-epoch runs): {in_epoch:.3f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        if not args.no_importtime:
            for tree, repo in trees.items():
                print(f"\n{tree} ({repo}):", end="")
                report_imports(args, cfgs[args.short], h5, npz, work / tree, repo)
        if args.profile:
            report_profile(args, cfgs[args.short], h5, npz, work, args.repo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
