"""lnm: run each workflow stage outside Snakemake, validate configs, list method parameters.

    lnm download   --dataset breastmnist --size 28 --raw-dir ~/.medmnist --out rec.json
    lnm preprocess --record rec.json --raw-dir ~/.medmnist --out breastmnist_28.h5
    lnm noise      --data breastmnist_28.h5 --pattern symmetric --rate 0.4 --out sym.npz
    lnm train      --config presets/demo.yaml --data breastmnist_28.h5 --noise sym.npz \\
                   --method ce --backbone resnet8 --seed 0 --out run
    lnm aggregate  --out tables run/metrics.json
    lnm validate   presets/demo.yaml      # merged over config.yaml; prints the number of runs
                                          # (every problem at once, in file order)
    lnm params     [coteaching ...]       # each method's hyperparameters and defaults
    lnm verify     [results/demo]         # every artifact vs its sidecar and MANIFEST.sha256
                                          # (--partial: a run not yet finished)
    lnm status     presets/demo.yaml      # finished? else the stages still to run
    lnm new-method NAME                   # lnm/methods/NAME.py: a working method to edit

Config files are always merged over ``config.yaml`` (dicts deeply, lists replaced), as the
workflow does with ``--configfile``. ``lnm <command> --help`` lists every option.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import textwrap
from pathlib import Path

from . import startup


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every default that is a value (not the ``None`` of a required option, the
    ``False`` of a flag or an empty list)."""

    def _get_help_string(self, action):
        d = action.default
        if d is None or d is False or d == [] or d is argparse.SUPPRESS or action.required:
            return action.help
        return super()._get_help_string(action)


class _MainFormatter(argparse.RawDescriptionHelpFormatter, _Formatter):
    """The main help keeps the layout of the module docstring."""


def _one_of(allowed, what: str):
    """An argparse ``type`` that accepts one of ``allowed`` (for ``nargs="*"`` positionals,
    where argparse's ``choices`` refuses an empty list)."""

    def check(value: str) -> str:
        if value not in allowed:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a {what}; allowed: {', '.join(allowed)}"
            )
        return value

    return check


def _vocabulary() -> dict:
    """Datasets, sizes (the config schema's enum), patterns, methods and backbones, all from
    lnm.grid: torch-free and without reading the schema, so ``lnm --help`` and ``lnm params``
    start quickly and ``lnm train`` reads it once (in :func:`lnm.config.load_config`)."""
    from . import grid

    return {
        "datasets": grid.MEDMNIST_DATASETS,
        "sizes": tuple(grid.MEDMNIST_SIZES),  # what lnm.config.load_schema puts in its enum
        "patterns": grid.PATTERNS,
        "methods": grid.methods(),
        "backbones": grid.BACKBONES,
    }


def _cmd_download(a):
    from .data.medmnist_io import fetch

    path, rec = fetch(a.dataset, a.size, a.raw_dir, a.out, allow_download=not a.no_download)
    print(f"{path}: MD5 {rec['md5']} OK")


def _cmd_preprocess(a):
    from .data.hdf5 import preprocess

    preprocess(a.record, a.raw_dir, a.out)
    print(f"{a.out}: written")


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
        generator_logits=a.generator_logits,
    )
    rate = res["realised_rate"]
    realised = "n/a (no clean labels)" if rate != rate else f"{rate:.4f}"  # NaN: unknown
    print(f"{a.out}: realised rate {realised}, identifiable {res['identifiable']}")


def _config_files(a) -> list[str]:
    return [*getattr(a, "files", []), *(a.config or [])]


def _cmd_validate(a):
    from .config import BASE_CONFIG, config_notes, load_config, override_lines
    from .grid import run_dirs

    files = _config_files(a)
    # every problem at once, in file order; folders=True: the real-world datasets' folders and
    # CSVs exist too
    cfg = load_config(*files, folders=True)
    names = " + ".join([BASE_CONFIG.name, *(f for f in files if Path(f).name != "config.yaml")])
    runs = len(run_dirs(cfg))
    print(f"{names}: config OK, {runs} training runs, results in {cfg['results']}")
    for line in override_lines(cfg):  # where each cell_overrides entry applies
        print(f"  {line}")
    for note in config_notes(cfg, overrides=False):  # (those are in the lines above)
        print(f"note: {note}")


def _type_range(spec: dict) -> str:
    """``number in [0, 1)``, ``integer >= 1``, ``one of: js, official``."""
    kind = spec.get("type", "any")
    literal = re.fullmatch(r"\^(\w+)\$", str(spec.get("pattern", "")))
    if isinstance(kind, list) and "string" in kind and literal:  # e.g. a rate or 'estimated'
        rest = {k: v for k, v in spec.items() if k != "pattern"}
        rest["type"] = [t for t in kind if t != "string"]
        return f"{_type_range(rest)}, or '{literal.group(1)}'"
    kind = "|".join(kind) if isinstance(kind, list) else str(kind)
    if "enum" in spec:
        return f"{kind}, one of: {', '.join(map(str, spec['enum']))}"
    lo = ("[", spec["minimum"]) if "minimum" in spec else ("(", spec.get("exclusiveMinimum"))
    hi = ("]", spec["maximum"]) if "maximum" in spec else (")", spec.get("exclusiveMaximum"))
    if lo[1] is not None and hi[1] is not None:
        return f"{kind} in {lo[0]}{lo[1]}, {hi[1]}{hi[0]}"
    if lo[1] is not None:
        return f"{kind} {'>=' if lo[0] == '[' else '>'} {lo[1]}"
    if hi[1] is not None:
        return f"{kind} {'<=' if hi[0] == ']' else '<'} {hi[1]}"
    return kind


def _cmd_params(a):
    import json

    from .grid import method_catalog

    catalog = method_catalog()
    width = 100
    for name in a.methods or list(catalog):
        info = catalog[name]
        print(f"{name}  (lnm/methods/{info.module}.py, class {info.cls})")
        phases = " -> ".join(
            p["name"] + "".join(f" ({k} {p[k]})" for k in ("until", "epochs") if k in p)
            for p in info.phases
        )
        print(f"    phases: {phases}; reports: {', '.join(info.reports) or 'nothing scored'}")
        if not info.params:
            print("    no hyperparameters")
        for key, spec in info.params.items():
            default = json.dumps(spec["default"])
            print(f"    {key} = {default}    [{_type_range(spec)}]")
            if spec.get("description"):
                text = " ".join(str(spec["description"]).split())
                print(textwrap.fill(text, width, initial_indent=" " * 8, subsequent_indent=" " * 8))
        print()
    print("Override them with method_params.<method>.<name> in a config file (config.yaml).")


def _data_name(path) -> str:
    """The ``dataset`` attribute of an HDF5 data file (read without loading any image)."""
    import h5py

    with h5py.File(path, "r") as h5:
        return str(h5.attrs["dataset"])


def _cmd_train(a):
    from .collapse import run_collapse
    from .config import load_config, run_spec
    from .grid import HEADLINE, headline_text
    from .noise.io import load_noise
    from .train.pack import RunJob, train_runs

    seeds = a.seed if isinstance(a.seed, list) else [a.seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seed {' '.join(map(str, seeds))}: a seed is given twice")
    if len(seeds) > 1 and "{seed}" not in a.out:
        raise ValueError(f"--out {a.out!r}: with several seeds it must name each run's folder "
                         "with {seed}, e.g. runs/s{seed}")  # fmt: skip
    cfg = load_config(*_config_files(a))
    nz = load_noise(a.noise)
    dataset = a.dataset or _data_name(a.data)
    args = (cfg, dataset, nz["pattern"], nz["rate"], nz["noise_seed"], a.method, a.backbone)
    # code identity: the trainer's and the method's closure (the default)
    jobs = [RunJob(run_spec(*args, s), a.data, a.noise, a.out.replace("{seed}", str(s)))
            for s in seeds]  # fmt: skip
    options = dict(
        device=a.device or cfg["runtime"]["device"],
        threads=a.threads,
        keep_checkpoint=a.keep_checkpoint,
        stream=cfg["runtime"]["stream"],
        memory_budget_mb=cfg["runtime"]["memory_budget_mb"],
    )
    if len(jobs) == 1:
        from .train.trainer import train_run

        results = [train_run(**vars(jobs[0]), **options)]
    else:  # one after another in this process, sharing its start-up and the loaded images
        results = train_runs(jobs, **options)
    for job, m in zip(jobs, results):
        resumed = m["provenance"]["resumed_at_epochs"]
        note = f" (resumed at epoch {', '.join(map(str, resumed))})" if resumed else ""
        # a run that predicts (nearly) one class: its number is about that class's rate
        collapsed = run_collapse(job.out_dir, m["num_classes"])
        if collapsed is not None:
            note = f" ({collapsed.text()}){note}"
        print(f"{job.out_dir}: {headline_text(m['last_k'])} {m[HEADLINE]:.2f}{note}")


def _cmd_verify(a):
    from .verify import main as verify_main

    return verify_main(a.results, partial=a.partial)


def _cmd_status(a):
    from .config import load_config
    from .status import status

    files = _config_files(a)
    finished, text = status(load_config(*files), files)
    print(text)
    return 0 if finished else 1


def _cmd_new_method(a):
    from .scaffold import write_method

    path = write_method(a.name, a.dir)
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    print(f"wrote {shown}: method {a.name!r}, a working example to edit (its docstring, params "
          "and train_epoch)")  # fmt: skip
    print(f"  lnm params {a.name}    # its hyperparameters, as the config check reads them")
    print(f"  then list it in a config (methods: [ce, {a.name}]) and run the workflow on it")


def _cmd_aggregate(a):
    from .report.aggregate import collect_runs, write_runs_csv, write_tables

    runs = collect_runs(a.metrics)
    write_runs_csv(runs, Path(a.out) / "runs.csv")
    write_tables(runs, a.out)
    print(f"{a.out}: runs.csv and summary tables of {len(runs)} run(s)")


def _config_options(s, files: bool = False) -> None:
    """``--config`` (repeatable); ``files``: after the positional CONFIG files."""
    if files:
        s.add_argument(
            "files",
            nargs="*",
            metavar="CONFIG",
            help="config files (presets/demo.yaml, ...); none: config.yaml alone",
        )
    s.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="YAML",
        help="config file merged over config.yaml (repeatable; later files win)"
        + ("; merged after the positional CONFIG files" if files else ""),
    )


def _download_args(s, v: dict) -> None:
    """verify (or download) a MedMNIST .npz and write its JSON record

    Use the raw file in --raw-dir if its MD5 is the one medmnist lists; else download it there
    (unless --no-download) and verify it. Writes a JSON record of the file."""
    s.add_argument("--dataset", required=True, choices=v["datasets"], help="MedMNIST dataset")
    s.add_argument("--size", type=int, default=28, choices=v["sizes"], help="image size (px)")
    s.add_argument(
        "--raw-dir",
        required=True,
        metavar="DIR",
        help="folder holding (or receiving) the raw .npz files, e.g. ~/.medmnist",
    )
    s.add_argument("--out", required=True, metavar="JSON", help="record of the verified file")
    s.add_argument(
        "--no-download",
        action="store_true",
        help="fail with the URL and MD5 instead of downloading a missing file",
    )


def _preprocess_args(s, v: dict) -> None:
    """raw .npz -> HDF5 (uint8 images, int labels per split)"""
    s.add_argument("--record", required=True, metavar="JSON", help="record from `lnm download`")
    s.add_argument("--raw-dir", required=True, metavar="DIR", help="folder holding the raw .npz")
    s.add_argument("--out", required=True, metavar="H5", help="HDF5 file to write")


def _noise_args(s, v: dict) -> None:
    """noisy-label file of one (pattern, rate, noise seed)"""
    s.add_argument("--data", required=True, metavar="H5", help="HDF5 file from `lnm preprocess`")
    s.add_argument("--pattern", required=True, choices=v["patterns"], help="noise pattern")
    s.add_argument(
        "--rate",
        type=float,
        required=True,
        help="nominal noise rate in [0, 1) (0 with --pattern none)",
    )
    s.add_argument("--noise-seed", type=int, default=0, help="which noisy labels")
    s.add_argument("--clean-val", action="store_true", help="keep validation labels clean")
    s.add_argument(
        "--instance-std",
        type=float,
        default=0.1,
        help="std of the per-sample flip rate of instance noise",
    )
    s.add_argument(
        "--generator-logits",
        metavar="NPZ",
        help="instance_classifier: the flip-target classifier's logits file "
        "(classifier_logits.npz of the workflow's classifier_generator rule)",
    )
    s.add_argument("--out", required=True, metavar="NPZ", help="noise file to write")


def _validate_args(s, v: dict) -> None:
    """validate config files merged over config.yaml

    Merge config.yaml and the given files (left to right; dicts deeply, lists replaced),
    validate the result and print the number of training runs it defines, where each
    cell_overrides entry applies, and notes (e.g. pairflip on two classes). Every problem is
    reported at once, in file order; a key written twice in a file is one."""
    _config_options(s, files=True)


def _params_args(s, v: dict) -> None:
    """list each method's hyperparameters: name, default, type/range, description"""
    s.add_argument(
        "methods",
        nargs="*",
        type=_one_of(v["methods"], "method"),
        metavar="METHOD",
        help=f"methods to list (default: all); one of: {', '.join(v['methods'])}",
    )


def _train_args(s, v: dict) -> None:
    """one training run (the workflow's train rule without Snakemake)

    Train one run of the config (merged over config.yaml) on a data file and a noise file;
    writes metrics.json, per_epoch.csv and test_probs.npz (with sidecars) to --out and resumes
    from a checkpoint there."""
    _config_options(s)
    s.add_argument("--data", required=True, metavar="H5", help="HDF5 file from `lnm preprocess`")
    s.add_argument("--noise", required=True, metavar="NPZ", help="noise file from `lnm noise`")
    s.add_argument(
        "--dataset",
        default=None,
        help="the dataset's name in the config (a real_world entry's name; default: the data "
        "file's `dataset` attribute)",
    )
    s.add_argument("--method", default="ce", choices=v["methods"], help="LNL method")
    s.add_argument("--backbone", default="resnet8", choices=v["backbones"], help="network")
    s.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=0,
        help="training seed (init, batch order); several: their runs are trained one after "
        "another in this process, sharing its start-up and the images loaded on the device "
        "(each run as alone, into the folder --out names with {seed})",
    )
    s.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or cuda:N (default: runtime.device of the config)",
    )
    s.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    s.add_argument(
        "--keep-checkpoint", action="store_true", help="keep checkpoint.pt after the run"
    )
    s.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="run folder; {seed} in it is replaced by the run's seed (needed with several)",
    )


def _verify_args(s, v: dict) -> None:
    """check every artifact against its SHA-256 sidecar and MANIFEST.sha256

    One line per problem and a summary; exit status 1 on any problem, a missing MANIFEST.sha256
    (an unfinished run) included unless --partial. See lnm/verify.py for which files count as
    artifacts and docs/verification.md for what the workflow checks by itself."""
    s.add_argument("results", nargs="?", default="results", help="results folder")
    s.add_argument(
        "--partial",
        action="store_true",
        help="check a results folder the workflow has not finished: without MANIFEST.sha256 "
        "its artifacts are checked against their sidecars only",
    )


def _status_args(s, v: dict) -> None:
    """is the workflow finished for these config files? else which stages are missing

    Merge config.yaml and the given files as the workflow does, count the training runs finished
    in the results folder and list the jobs each stage still has to run (as snakemake --dry-run
    with the same config files plans them). Exit status 1 when anything is left to run: the
    report needs every stage."""
    _config_options(s, files=True)


def _new_method_args(s, v: dict) -> None:
    """write lnm/methods/NAME.py: a working method (params, docstring skeleton) to edit

    Write a new method file from a template that trains as written (cross-entropy on the
    smallest-loss share of each batch): its name, display order, params (default, type, range,
    description) and train_epoch, under a docstring skeleton. The method is listed by
    `lnm params` and accepted in configs at once."""
    s.add_argument("name", metavar="NAME", help="method name: lower-case letters, digits, _")
    s.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="folder to write to (default: the lnm/methods folder of this lnm)",
    )


def _aggregate_args(s, v: dict) -> None:
    """runs.csv and summary tables from metrics.json files"""
    s.add_argument("--out", required=True, metavar="DIR", help="folder for the tables")
    s.add_argument("metrics", nargs="+", metavar="METRICS_JSON", help="metrics.json of runs")


#: Each subcommand: its name, the function it runs and the one that adds its arguments, whose
#: docstring is its help line and then its description, in the order ``lnm --help`` lists them.
_COMMANDS = (
    ("download", _cmd_download, _download_args),
    ("preprocess", _cmd_preprocess, _preprocess_args),
    ("noise", _cmd_noise, _noise_args),
    ("validate", _cmd_validate, _validate_args),
    ("params", _cmd_params, _params_args),
    ("train", _cmd_train, _train_args),
    ("verify", _cmd_verify, _verify_args),
    ("status", _cmd_status, _status_args),
    ("new-method", _cmd_new_method, _new_method_args),
    ("aggregate", _cmd_aggregate, _aggregate_args),
)


def build_parser() -> argparse.ArgumentParser:
    v = _vocabulary()
    p = argparse.ArgumentParser(prog="lnm", description=__doc__, formatter_class=_MainFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for name, run, add_arguments in _COMMANDS:
        help, _, description = inspect.getdoc(add_arguments).partition("\n\n")
        s = sub.add_parser(
            name, help=help, description=description or help, formatter_class=_Formatter
        )
        s.set_defaults(fn=run)
        add_arguments(s, v)
    return p


def main(argv=None) -> int:
    """Run one command. As the ``lnm`` program (``argv`` None), ``train`` imports its modules
    with the garbage collector frozen and ends without tearing the interpreter down
    (:mod:`lnm.startup`)."""
    p = build_parser()
    a = p.parse_args(argv)
    program_train = argv is None and a.cmd == "train"
    if program_train:
        startup.import_for_training()
    try:
        rc = a.fn(a) or 0
    except (ValueError, RuntimeError, OSError) as err:
        print(f"lnm {a.cmd}: error: {err}", file=sys.stderr)
        rc = 1
    if program_train:
        startup.exit_now(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
