"""``lnm``: run each workflow stage outside Snakemake.

    lnm download   --dataset breastmnist --size 28 --raw-dir ../shared/data/medmnist --out rec.json
    lnm preprocess --record rec.json --out breastmnist_28.h5
    lnm noise      --data breastmnist_28.h5 --pattern symmetric --rate 0.4 --noise-seed 0 --out n.npz
    lnm train      --config config.yaml [--config presets/demo.yaml] --data ... --noise ... \\
                   --method ce --backbone resnet8 --seed 0 --out runs/x
    lnm aggregate  --out results/tables runs/*/metrics.json
    lnm validate   --config config.yaml [--config presets/demo.yaml]
    lnm verify     [results]       # every artifact vs its sidecar and MANIFEST.sha256
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_download(a):
    from .data.medmnist_io import fetch

    path, rec = fetch(a.dataset, a.size, a.raw_dir, a.out, allow_download=not a.no_download)
    print(f"{path}: MD5 {rec['md5']} OK")


def _cmd_preprocess(a):
    from .data.hdf5 import preprocess

    preprocess(a.record, a.raw_dir, a.out)


def _cmd_noise(a):
    from .noise.generate import generate_noise_file

    res = generate_noise_file(
        a.data,
        a.out,
        a.pattern,
        a.rate,
        a.noise_seed,
        noisy_val=not a.clean_val,
        std=a.instance_std,
    )
    print(f"{a.out}: realised rate {res['realised_rate']:.4f}, identifiable {res['identifiable']}")


def _cmd_validate(a):
    from .config import load_config
    from .grid import run_dirs

    cfg = load_config(*a.config)
    print(f"config OK: {len(run_dirs(cfg))} training runs")


def _cmd_train(a):
    from .config import load_config, run_spec
    from .data.hdf5 import load_h5
    from .grid import HEADLINE, headline_text
    from .noise.io import load_noise
    from .train.trainer import train_run

    cfg = load_config(*a.config)
    attrs = load_h5(a.data).attrs
    nz = load_noise(a.noise)
    spec = run_spec(
        cfg,
        attrs["dataset"],
        nz["pattern"],
        nz["rate"],
        nz["noise_seed"],
        a.method,
        a.backbone,
        a.seed,
    )
    m = train_run(  # code identity: the trainer's and the method's closure (the default)
        spec,
        a.data,
        a.noise,
        a.out,
        device=a.device or cfg["runtime"]["device"],
        threads=a.threads,
        keep_checkpoint=a.keep_checkpoint,
    )
    resumed = m["provenance"]["resumed_at_epochs"]
    note = f" (resumed at epoch {', '.join(map(str, resumed))})" if resumed else ""
    print(f"{a.out}: {headline_text(m['last_k'])} {m[HEADLINE]:.2f}{note}")


def _cmd_verify(a):
    from .verify import main as verify_main

    return verify_main(a.results)


def _cmd_aggregate(a):
    from .report.aggregate import collect_runs, write_runs_csv, write_tables

    runs = collect_runs(a.metrics)
    write_runs_csv(runs, Path(a.out) / "runs.csv")
    write_tables(runs, a.out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="lnm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("download", help="verify (or download) a MedMNIST file")
    s.add_argument("--dataset", required=True)
    s.add_argument("--size", type=int, default=28)
    s.add_argument("--raw-dir", required=True)
    s.add_argument("--out", required=True, help="JSON record of the verified file")
    s.add_argument("--no-download", action="store_true")
    s.set_defaults(fn=_cmd_download)
    s = sub.add_parser("preprocess", help="raw .npz -> HDF5")
    s.add_argument("--record", required=True)
    s.add_argument("--raw-dir", required=True, help="folder holding the raw .npz")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_preprocess)
    s = sub.add_parser("noise", help="noisy-label file")
    s.add_argument("--data", required=True)
    s.add_argument("--pattern", required=True)
    s.add_argument("--rate", type=float, required=True)
    s.add_argument("--noise-seed", type=int, default=0)
    s.add_argument("--clean-val", action="store_true", help="keep validation labels clean")
    s.add_argument("--instance-std", type=float, default=0.1)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_noise)
    s = sub.add_parser("validate", help="validate config files")
    s.add_argument("--config", action="append", required=True)
    s.set_defaults(fn=_cmd_validate)
    s = sub.add_parser("train", help="one training run")
    s.add_argument("--config", action="append", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--noise", required=True)
    s.add_argument("--method", default="ce")
    s.add_argument("--backbone", default="resnet8")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--keep-checkpoint", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=_cmd_train)
    s = sub.add_parser(
        "verify",
        help="check every artifact against its SHA-256 sidecar and MANIFEST.sha256",
        description="One line per problem and a summary; exit status 1 on any problem. See "
        "lnm/verify.py for which files count as artifacts.",
    )
    s.add_argument(
        "results", nargs="?", default="results", help="results folder (default: results)"
    )
    s.set_defaults(fn=_cmd_verify)
    s = sub.add_parser("aggregate", help="runs.csv and summary tables")
    s.add_argument("--out", required=True)
    s.add_argument("metrics", nargs="+")
    s.set_defaults(fn=_cmd_aggregate)
    a = p.parse_args(argv)
    try:
        return a.fn(a) or 0
    except (ValueError, RuntimeError, OSError) as err:
        print(f"lnm {a.cmd}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
