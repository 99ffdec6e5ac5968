"""Several runs on one device: separate processes against one process that trains them all.

For ``--runs`` K runs of one cell and method (seeds 0..K-1; default CE, ResNet-8, 40 %
symmetric noise on BreastMNIST 28 px), each of ``--epochs`` epoch counts, it times:

- ``separate xS``: K ``lnm train`` processes (``python -m lnm.cli train --seed s``), at most S
  at a time, for each S of ``--slots`` (S = 1: one after another; S > 1: what
  ``resources.gpu_slots_per_device`` = S does on a GPU, or S jobs of one thread on a CPU);
- ``packed xS``: the K runs split into S groups of consecutive seeds, each group one process
  that trains its runs one after another (``lnm train --seed 0 1 2 --out .../s{seed}``: the
  library's :func:`lnm.train.pack.train_runs`, what ``runtime.pack_seeds`` runs), S processes
  at a time (S = 1: all K runs in one process).

Every mode runs ``--repeats`` times, interleaved (the order of the modes rotates from one
repeat to the next), after one discarded warm-up round; the figures are medians of the wall
time and of the CPU time (user + system of the processes: less sensitive to other load on the
machine) per round, and per run (÷ K). "Outside epochs" is the wall time not spent in the
trainer's epochs (read from its ``epoch i/n ... (s)`` log lines), per run: the fixed overhead
(start-up, imports, data loading, set-up, the final writes). On CUDA it also samples the GPU's
used memory (``nvidia-smi``, every 0.1 s) and prints the peak above the idle level per mode.

After the timings it checks that the packed runs' outputs (metrics.json, per_epoch.csv,
test_probs.npz) are byte-identical to the separate runs' of the same seeds.

Data: ``--dataset`` at ``--size`` px from its raw MedMNIST file in ``--raw-dir``, else (or with
``--synthetic``) a synthetic BreastMNIST-shaped set at that size (546 / 78 / 156 images).

    python benchmarks/pack_runs.py                                  # CPU, K=3, 1 and 3 epochs
    python benchmarks/pack_runs.py --runs 3 --epochs 1 3 --slots 1 2 --repeats 3
    python benchmarks/pack_runs.py --device cuda --runs 8 --slots 1 4 --epochs 1 5
"""

from __future__ import annotations

import hashlib
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common

REPO = _common.REPO
OUTPUTS = ("metrics.json", "per_epoch.csv", "test_probs.npz")
EPOCH_LINE = re.compile(r"\] epoch (\d+)/\d+ .*\(([\d.]+)s\)$")


def epoch_seconds(stderr: str) -> list[float]:
    """The trainer's own per-epoch seconds, from its log lines."""
    return [float(m.group(2)) for line in stderr.splitlines() if (m := EPOCH_LINE.search(line))]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def prepare(work: Path, args) -> tuple[Path, Path, str]:
    """(HDF5 file, noise file, a line saying which data)."""
    from lnm.data.medmnist_io import raw_filename
    from lnm.noise.generate import generate_noise_file

    h5 = work / f"{args.dataset}_{args.size}.h5"
    raw = _common.raw_dir(args.raw_dir)
    if not args.synthetic and (raw / raw_filename(args.dataset, args.size)).exists():
        from lnm.data.hdf5 import preprocess
        from lnm.data.medmnist_io import fetch

        rec = work / f"{args.dataset}_{args.size}.json"
        fetch(args.dataset, args.size, raw, rec, allow_download=False)
        preprocess(rec, raw, h5)
        what = f"{args.dataset} {args.size} px from {raw}"
    else:
        if args.dataset != "breastmnist":
            raise SystemExit(f"no raw file of {args.dataset} at {args.size} px in {raw}")
        counts = {"train": 546, "val": 78, "test": 156}
        _common.write_synthetic(h5, counts, args.size, 1, 2, dataset="breastmnist")
        what = f"synthetic BreastMNIST-shaped set (546/78/156 images, {args.size} px, 2 classes)"
    npz = work / "noise.npz"
    generate_noise_file(h5, npz, "symmetric", 0.4, 0)
    return h5, npz, what


def write_config(work: Path, args, epochs: int) -> Path:
    path = work / f"epochs{epochs}.yaml"
    path.write_text(
        f"size: {args.size}\n"
        f"datasets: [{args.dataset}]\n"
        "pretrained: false\n"
        f"train: {{epochs: {epochs}, last_k: 1}}\n"
    )
    return path


def train_cmd(args, cfg: Path, h5: Path, npz: Path, out, seeds) -> list[str]:
    """``lnm train`` of ``seeds`` in one process (``out`` holding ``{seed}``)."""
    return [
        sys.executable, "-m", "lnm.cli", "train", "--config", str(cfg), "--data", str(h5),
        "--noise", str(npz), "--method", args.method, "--backbone", args.backbone,
        "--seed", *map(str, seeds), "--device", args.device, "--threads", str(args.threads),
        "--out", str(out),
    ]  # fmt: skip


class GpuMemory:
    """Peak used memory of the GPU (MiB, ``nvidia-smi``) while a block runs, sampled by a
    thread; ``peak`` is None where there is no ``nvidia-smi``."""

    def __init__(self, enabled: bool, interval: float = 0.1):
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.interval, self.peak, self._stop = interval, None, threading.Event()

    @staticmethod
    def used() -> int | None:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
        )
        try:
            return int(out.stdout.split()[0])
        except (IndexError, ValueError):
            return None

    def _sample(self) -> None:
        while not self._stop.is_set():
            used = self.used()
            if used is not None:
                self.peak = max(self.peak or 0, used)
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._thread.join()


def run_mode(args, cfg, h5, npz, groups: list[list[int]], slots: int, out: Path) -> dict:
    """Run one process per seed group, at most ``slots`` at a time; wall and CPU seconds, the
    trainer's epoch seconds, and the GPU's peak used memory."""
    cmds = [train_cmd(args, cfg, h5, npz, out / "s{seed}", g) for g in groups]
    pending, running, errs, epoch_s = list(cmds), [], [], 0.0
    c0, t0 = children_cpu(), time.perf_counter()
    with GpuMemory(args.device.startswith("cuda")) as mem:
        while pending or running:
            while pending and len(running) < slots:
                running.append(
                    subprocess.Popen(
                        pending.pop(0),
                        cwd=REPO,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            while all(q.poll() is None for q in running):
                time.sleep(0.01)
            p = next(q for q in running if q.returncode is not None)
            running.remove(p)
            stdout, stderr = p.communicate()
            if p.returncode:
                raise SystemExit(f"lnm train failed ({p.returncode}):\n{stdout}\n{stderr}")
            errs.append(stderr)
            epoch_s += sum(epoch_seconds(stderr))
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    return {"wall": wall, "cpu": cpu, "epochs": epoch_s, "gpu_peak_mib": mem.peak}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare(a: Path, b: Path, seeds) -> list[str]:
    """The files that differ between the runs in ``a`` and ``b`` (empty: byte-identical)."""
    return [
        f"s{s}/{name}"
        for s in seeds
        for name in OUTPUTS
        if digest(a / f"s{s}" / name) != digest(b / f"s{s}" / name)
    ]


def parse_args(argv=None):
    p = _common.parser(__doc__, device="cpu", threads=1, raw_dir=True)
    p.add_argument("--runs", type=int, default=3, help="K: runs (seeds 0..K-1) per mode")
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 3], help="epoch counts")
    p.add_argument("--slots", type=int, nargs="+", default=[1, 2], help="processes at a time")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (after a warm-up)")
    p.add_argument("--method", default="ce")
    p.add_argument("--backbone", default="resnet8")
    p.add_argument("--dataset", default="breastmnist")
    p.add_argument("--size", type=int, default=28, help="image size (px)")
    p.add_argument("--synthetic", action="store_true", help="synthetic data even if real exists")
    p.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    return p.parse_args(argv)


def build_modes(seeds: list[int], slot_counts) -> dict:
    """{mode name: (groups of seeds, one process each; processes at once)}."""
    k, modes = len(seeds), {}
    for s in slot_counts:
        modes[f"separate x{s}"] = ([[seed] for seed in seeds], s)
        size = -(-k // s)
        modes[f"packed x{s}"] = ([seeds[i : i + size] for i in range(0, k, size)], s)
    return modes


def run_rounds(args, cfgs: dict, modes: dict, work: Path, h5: Path, npz: Path) -> dict:
    """A warm-up round, then ``--repeats`` timed rounds, the modes' order rotating per round:
    {epochs: {mode: [timings of the timed rounds]}}."""
    res = {e: {m: [] for m in modes} for e in cfgs}
    names = list(modes)
    for r in range(args.repeats + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for e, cfg in cfgs.items():
            for m in order:
                groups, slots = modes[m]
                out = work / f"e{e}" / m.replace(" ", "") / f"r{r}"
                t = run_mode(args, cfg, h5, npz, groups, slots, out)
                if r:
                    res[e][m].append(t)
        if r:
            print(
                f"  round {r}: "
                + "; ".join(f"e{e} {m} {res[e][m][-1]['wall']:.1f}s" for e in cfgs for m in names),
                flush=True,
            )
    return res


def print_table(args, res: dict, modes: dict, same: dict) -> list[dict]:
    """The medians per epochs and mode, printed and returned as rows."""
    k, names = args.runs, list(modes)
    cuda = args.device.startswith("cuda")
    print()
    head = f"{'epochs':>6} {'mode':<12} {'wall s':>8} {'/run':>7} {'cpu s':>8} {'/run':>7}"
    head += f" {'outside epochs /run':>20} {'wall vs separate x1':>20}"
    head += f" {'GPU peak MiB':>13}" if cuda else ""
    print(head)
    table = []
    for e in res:
        ref = median(res, e, names[0], "wall")
        for m in names:
            wall, cpu, ep = (median(res, e, m, key) for key in ("wall", "cpu", "epochs"))
            # wall outside the trainer's epochs, per run (one process at a time only)
            outside = (wall - ep) / k if modes[m][1] == 1 else None
            row = {
                "epochs": e,
                "mode": m,
                "wall": wall,
                "wall_per_run": wall / k,
                "cpu": cpu,
                "cpu_per_run": cpu / k,
                "outside_epochs_per_run": outside,
                "ratio": wall / ref,
                "gpu_peak_mib": median(res, e, m, "gpu_peak_mib"),
                "differs": same.get((e, m), []),
            }
            table.append(row)
            line = (
                f"{e:>6} {m:<12} {wall:8.2f} {wall / k:7.2f} {cpu:8.2f} {cpu / k:7.2f} "
                + (f"{outside:20.2f}" if outside is not None else f"{'-':>20}")
                + f" {wall / ref:20.2f}"
            )
            if cuda:
                gpu = row["gpu_peak_mib"]
                line += f" {gpu:13.0f}" if gpu is not None else f" {'n/a':>13}"
            print(line)
    return table


def median(res: dict, e: int, m: str, key: str):
    vals = [t[key] for t in res[e][m] if t[key] is not None]
    return statistics.median(vals) if vals else None


def print_savings(res: dict, k: int, same: dict) -> None:
    print()
    for e in res:
        sep, pack = median(res, e, "separate x1", "wall"), median(res, e, "packed x1", "wall")
        sep_cpu, pack_cpu = median(res, e, "separate x1", "cpu"), median(res, e, "packed x1", "cpu")
        print(
            f"{e} epoch(s): packing saves {(sep - pack) / k:.2f} s wall and "
            f"{(sep_cpu - pack_cpu) / k:.2f} s CPU per run ({(sep - pack) / (k - 1):.2f} s "
            f"per run after the first) against separate processes one after another; "
            f"packed/separate wall {pack / sep:.2f}"
        )
    for (e, m), diff in same.items():
        text = "byte-identical" if not diff else "DIFFER: " + ", ".join(diff)
        print(f"outputs of {m} ({e} epoch(s)) against separate x1: {text}")


def main(argv=None) -> int:
    args = parse_args(argv)
    _common.device(args.device)  # CUDA asked for where there is none: exit naming it
    k = args.runs
    seeds = list(range(k))
    with tempfile.TemporaryDirectory(prefix="lnm-pack-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        h5, npz, what = prepare(work, args)
        cfgs = {e: write_config(work, args, e) for e in args.epochs}
        modes = build_modes(seeds, args.slots)
        print(f"data: {what}")
        print(
            f"{k} runs of lnm train --method {args.method} --backbone {args.backbone} "
            f"--device {args.device} --threads {args.threads}; epochs {args.epochs}; "
            f"{args.repeats} rounds (after a warm-up); modes: "
            + "; ".join(f"{m}: {len(g)} process(es) {g}" for m, (g, _) in modes.items())
        )
        res = run_rounds(args, cfgs, modes, work, h5, npz)
        # outputs: the packed runs against the separate runs of the same seeds (last round)
        same = {}
        for e in cfgs:
            base = work / f"e{e}" / "separatex1" / f"r{args.repeats}"
            for m in list(modes)[1:]:
                same[(e, m)] = compare(
                    base, work / f"e{e}" / m.replace(" ", "") / f"r{args.repeats}", seeds
                )
        table = print_table(args, res, modes, same)
        print_savings(res, k, same)
        if args.json:
            args.json.write_text(json.dumps({"data": what, "rows": table}, indent=2) + "\n")
    ok = all(not d for d in same.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
