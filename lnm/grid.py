"""The workflow's vocabulary, in one torch-free module.

Everything that names a thing of the benchmark lives here and everything else derives from it:
the Snakemake rules, the config schema (:func:`lnm.config.load_schema` fills its enums from
here), the trainer, the report and the tests.

- noise patterns (:data:`PATTERNS`), backbones (:data:`BACKBONES`);
- methods: read *statically* from the method files (:func:`method_catalog`), so listing them,
  their hyperparameters and their declared types needs no torch; the method registry
  (:mod:`lnm.methods`) imports the same files to train;
- run, cell and block keys, the headline's name and its label (built from ``last_k``);
- path templates below the results folder, used as Snakemake wildcards and by ``str.format``;
- the table and figure files of every report rule.
"""

from __future__ import annotations

import ast
import functools
import itertools
import re
from dataclasses import dataclass, fields
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

# ---------------------------------------------------------------- noise patterns, backbones
# Noise patterns (PATTERNS, CLEAN, REAL, NOISY_PATTERNS, SYNTHETIC_PATTERNS): read from their
# files in lnm/noise/patterns by pattern_catalog() (below the methods, whose static reader it
# shares).

# ADAPTERS (real-world datasets' adapters): read from lnm/data/adapters, below
#: MedMNIST datasets the workflow supports (2-D, single-label; medmnist's flags).
MEDMNIST_DATASETS = (
    "pathmnist",
    "dermamnist",
    "octmnist",
    "pneumoniamnist",
    "retinamnist",
    "breastmnist",
    "bloodmnist",
    "tissuemnist",
    "organamnist",
    "organcmnist",
    "organsmnist",
)
#: MedMNIST image sizes (medmnist's 28 px and MedMNIST+ 64, 128, 224).
MEDMNIST_SIZES = (28, 64, 128, 224)
#: Backbones: ``resnet8`` (ours, for CPUs), timm's ResNets and torchvision's ResNet-50
#: (``tv_resnet50``: LNMBench's backbone, ImageNet weights ``IMAGENET1K_V1``).
SMALL_BACKBONES = ("resnet8",)
TIMM_BACKBONES = ("resnet18", "resnet34", "resnet50")
TORCHVISION_BACKBONES = ("tv_resnet50",)
BACKBONES = SMALL_BACKBONES + TIMM_BACKBONES + TORCHVISION_BACKBONES

# ---------------------------------------------------------------- training settings
#: Optimisers and learning-rate schedules of ``train`` (lnm.train.optim implements them).
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "multistep", "cosine", "linear_decay")
#: ``runtime.stream``: when training images are streamed from the HDF5 file (lnm.train.data).
STREAM_MODES = ("auto", "never", "always")
#: ``protocol``: harmonized (one recipe for every method) or reference (each method's own).
PROTOCOLS = ("harmonized", "reference")
#: ``noise.classifier.fit_on``: which labels train the flip-target classifier of
#: instance_classifier noise (lnm.noise.classifier).
FIT_ON = ("crossfit", "test")

# ---------------------------------------------------------------- evaluation views
#: How a run's test (and val) predictions are made from its networks, with the words captions
#: use. A method file declares its LNMBench view (``eval_view``); ``protocol: reference`` uses
#: it, ``harmonized`` uses ``softmax_mean`` for every method (see :func:`lnm.config.run_spec`).
#: With one network every view is the network's own prediction.
EVAL_VIEW_TEXT = {
    "softmax_mean": "argmax of the mean of the networks' softmax outputs",
    "mean_of_accuracies": "mean of the two networks' accuracies",
    "logit_sum": "argmax of the sum of the two networks' logits",
}
EVAL_VIEWS = tuple(EVAL_VIEW_TEXT)
#: The default view, and the only one of the harmonized protocol.
DEFAULT_EVAL_VIEW = "softmax_mean"


def eval_view_text(view: str, num_nets: int = 2) -> str:
    """What ``view`` means, for metrics.json (``eval_view_text``) and captions."""
    if view not in EVAL_VIEW_TEXT:
        raise ValueError(f"unknown eval_view {view!r}; allowed: {', '.join(EVAL_VIEWS)}")
    if int(num_nets) == 1:
        return "the network's prediction (one network)"
    return EVAL_VIEW_TEXT[view]


# ---------------------------------------------------------------- keys and metric names
#: Columns that identify one training run.
RUN_KEYS = [
    "dataset",
    "noise",
    "rate",
    "noise_seed",
    "method",
    "backbone",
    "seed",
    "epochs",
    "size",
]
#: Columns that identify one summary cell (noise seeds and training seeds are averaged over).
CELL_KEYS = ["dataset", "noise", "rate", "backbone", "method"]
#: A cell without the method: the unit over which methods are ranked and compared.
BLOCK_KEYS = ["dataset", "backbone", "noise", "rate"]


def last_k(metric: str) -> str:
    """Name of ``metric`` averaged over the last ``last_k`` epochs (``last_k`` is a column of
    its own in ``metrics.json`` and ``runs.csv``)."""
    return f"{metric}_last_k"


#: The headline: test accuracy averaged over the last ``last_k`` epochs.
HEADLINE = last_k("test_acc")
#: Metrics averaged over the last ``last_k`` epochs, in metrics.json and runs.csv.
LAST_K_METRICS = ("test_acc", "val_acc", "balanced_acc", "macro_f1", "auc", "ece", "nll")


def last_k_text(k: int) -> str:
    """What a ``*_last_k`` number is, for captions and headings."""
    return f"mean of the last {k} epoch{'' if int(k) == 1 else 's'}"


def headline_text(k: int) -> str:
    return f"test accuracy (%), {last_k_text(k)}"


def single_last_k(values) -> int:
    """The one ``last_k`` of a set of runs; a table refuses to mix runs with different k."""
    ks = sorted({int(v) for v in values})
    if len(ks) != 1:
        raise ValueError(
            f"runs with different last_k {ks} cannot share one table: their headlines average "
            "different numbers of epochs; aggregate them separately"
        )
    return ks[0]


# ---------------------------------------------------------------- paths (below `results`)
NOISE_TAG = "{noise}-{rate}-n{noise_seed}"
#: The runs of one method and backbone on one noise cell (every training seed).
RUN_GROUP = "{dataset}/" + NOISE_TAG + "/{method}/{backbone}"
RUN_ID = RUN_GROUP + "/s{seed}"
#: A training job of ``runtime.pack_seeds``: every training seed of a :data:`RUN_GROUP`, trained
#: one after another in one process (the name of its log and benchmark files).
PACKED_ID = RUN_GROUP + "/seeds"
RAW_RECORD = "raw/{dataset}_{size}.json"
DATA_FILE = "data/{dataset}_{size}.h5"
NOISE_FILE = "noise/{dataset}/" + NOISE_TAG + ".npz"
#: The noise-estimation stage's output per noise file (lnm.noise.estimate).
ESTIMATE_FILE = "estimates/{dataset}/" + NOISE_TAG + ".npz"
#: The estimate file's scores against the truth (NaN where the clean train labels are unknown):
#: rates are fractions, precision/recall/clean ratio/coverage percent (as the trainer's).
ESTIMATE_TRUTH_KEYS = (
    "true_rate",
    "rate_error",
    "transition_error",
    "issue_precision",
    "issue_recall",
    "clean_ratio",
    "coverage",
)
#: The row name of cleanlab's label-issue detection in the tables (beside the methods).
DETECTION = "cleanlab"
#: Where a method's noise rate (forget/clip rate) came from (metrics.json ``noise_rate_source``):
#: the cell's true nominal rate, the cell's estimate file, a number in the config, or a
#: real-world cell's ``assumed_rates``.
RATE_SOURCES = ("oracle", "estimated", "fixed", "assumed")
#: The value of a method parameter that asks for the cell's estimated noise rate.
ESTIMATED = "estimated"
#: The trained flip-target classifier of ``instance_classifier`` noise (one per dataset) and its
#: per-sample logits (out-of-fold for train when cross-fitted).
GENERATOR_FILE = "noise/{dataset}/classifier_generator.pt"
GENERATOR_LOGITS = "noise/{dataset}/classifier_logits.npz"
RUN_DIR = "runs/" + RUN_ID
#: What every training run writes into its folder (each with a ``.sha256`` sidecar).
RUN_FILES = ("metrics.json", "per_epoch.csv", "test_probs.npz")
MANIFEST = "MANIFEST.sha256"
#: The folders below ``results`` that hold a config's artifacts (what ``lnm verify`` and the
#: workflow's start-up check scan): the first folder of every path template, the tables and the
#: figures. Nothing else there is this config's: Snakemake's ``logs/`` and ``benchmarks/``,
#: ``report.html``, or another config's results folder nested inside (``results/demo`` inside
#: the paper grid's ``results``).
ARTIFACT_DIRS = (
    *dict.fromkeys(
        t.split("/")[0]
        for t in (RAW_RECORD, DATA_FILE, NOISE_FILE, ESTIMATE_FILE, GENERATOR_FILE, RUN_DIR)
    ),
    "tables",
    "figures",
)

#: Tables each report rule writes under ``tables/``.
TABLES = {
    "aggregate": (
        "runs.csv",
        "summary.csv",
        "summary.md",
        "summary.tex",
        "summary.html",
        "ranking.csv",
        "ranking.html",
    ),
    "statistics": (
        "cells.csv",
        "cells.md",
        "cells.tex",
        "cells.html",
        "resolution.csv",
        "ranks.csv",
        "friedman.csv",
        "ranks.html",
        "wilcoxon.csv",
        "wilcoxon.html",
        "variance.csv",
        "variance.html",
        "imbalance.csv",
        "imbalance.html",
        "statistics.md",
    ),
    "diagnostics": ("per_epoch.csv", "selection.csv", "selection.md", "selection.html"),
    "run_metadata": ("config.yaml", "versions.csv", "run_metadata.html"),
    # only with estimation.enabled (the noise-estimation stage)
    "estimation": (
        "estimates.csv",
        "estimation.csv",
        "estimation.md",
        "estimation.html",
        "oracle_vs_estimated.csv",
        "oracle_vs_estimated.md",
        "oracle_vs_estimated.html",
    ),
    # our results beside published ones (config `reproduction`; lnm.report.reproduction)
    "reproduction": (
        "reproduction.csv",
        "reproduction_ranking.csv",
        "reproduction.md",
        "reproduction.html",
    ),
}
#: Figure templates (below ``figures/``) per figure rule; ``{setting}`` = ``{noise}-{rate}``.
FIGURES = {
    "figure_acc_vs_rate": "acc_vs_rate_{dataset}.png",
    "figure_ranking": "ranking_{pattern}.png",
    "figure_selection": "selection_{dataset}_{noise}-{rate}.png",
    "figure_cd_diagram": "cd_diagram.png",
    "figure_recall": "recall_{dataset}.png",
    "figure_estimation": "estimated_vs_true.png",  # only with estimation.enabled
    "reproduction": "reproduction.png",  # written by the reproduction rule with its tables
}


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, **fields) -> str:
    """``template`` with ``fields`` filled in and every other field kept as it is:
    ``fill(RUN_ID, seed=1)`` has the wildcards of a run with seed 1."""
    return template.format_map(_Keep(fields))


def fmt_rate(rate: float) -> str:
    """A rate as it appears in file names: ``0.2``, ``0.0``."""
    return f"{float(rate):g}" if rate else "0.0"


@dataclass(frozen=True)
class NoiseCell:
    dataset: str
    noise: str
    rate: str  # formatted as in file names, e.g. "0.2"
    noise_seed: int

    @property
    def tag(self) -> str:
        return NOISE_TAG.format(noise=self.noise, rate=self.rate, noise_seed=self.noise_seed)


def is_real_world(config: dict, dataset: str) -> bool:
    """Whether ``dataset`` is a ``real_world`` entry of the config (else a MedMNIST dataset)."""
    return dataset in config.get("real_world", {})


def dataset_size(config: dict, dataset: str) -> int:
    """The image size of ``dataset``: its ``real_world`` entry's, else the config's ``size``."""
    if is_real_world(config, dataset):
        return int(config["real_world"][dataset]["size"])
    return int(config["size"])


def has_clean_train(config: dict, dataset: str) -> bool:
    """Whether the training labels of ``dataset`` have clean (expert) counterparts: always for
    MedMNIST; for a real-world set as its adapter and options say (read without the data)."""
    if not is_real_world(config, dataset):
        return True
    entry = config["real_world"][dataset]
    return adapter_has_clean_train(entry["adapter"], entry.get("options") or {})


def adapter_has_clean_train(adapter: str, options: dict) -> bool:
    """Whether an adapter's training labels have clean counterparts, from its options alone, as
    its ``clean_train`` says: DRTiD (``Grade_gt``) and KaggleDR+ (``vote``) yes, CheXpert
    (labeler output) no, a ``csv`` set when it names a clean column or annotator columns (their
    majority vote)."""
    info = adapter_info(adapter)
    if isinstance(info.clean_train, bool):
        return info.clean_train
    options = {**info.defaults, **options}
    return any(bool(options.get(k)) for k in info.clean_train)


def noise_settings(config: dict, dataset: str | None = None) -> list[tuple[str, str]]:
    """(pattern, formatted rate) of every noise setting of ``dataset``, clean first; without a
    dataset, of the config's MedMNIST datasets (the synthetic patterns).

    A MedMNIST dataset gets ``noise.patterns``; a real-world dataset gets pattern ``real`` at each
    of its ``assumed_rates`` (the rate methods are told, not a drawn one). ``noise.clean`` adds
    ``none`` (rate 0): the clean ceiling, for a real-world set only where its training labels
    have clean counterparts (training on them)."""
    noise = config["noise"]
    clean = [(CLEAN, fmt_rate(0))] if noise["clean"] else []
    if dataset is not None and is_real_world(config, dataset):
        rates = config["real_world"][dataset]["assumed_rates"]
        if not has_clean_train(config, dataset):
            clean = []
        return clean + [(REAL, fmt_rate(r)) for r in rates]
    return clean + [(p, fmt_rate(r)) for p, rates in noise["patterns"].items() for r in rates]


def noise_seeds(config: dict, dataset: str) -> list[int]:
    """Noise seeds of ``dataset``: the config's for MedMNIST; ``[0]`` for a real-world set, whose
    labels are drawn by nobody (every noise seed would give the same file)."""
    return [0] if is_real_world(config, dataset) else list(config["noise"]["noise_seeds"])


def noise_cells(config: dict) -> list[NoiseCell]:
    return [
        NoiseCell(d, p, r, s)
        for d in config["datasets"]
        for p, r in noise_settings(config, d)
        for s in noise_seeds(config, d)
    ]


def run_dirs(config: dict) -> list[str]:
    """Run folders relative to the results folder, in a stable order."""
    return [
        RUN_DIR.format(
            dataset=c.dataset,
            noise=c.noise,
            rate=c.rate,
            noise_seed=c.noise_seed,
            method=m,
            backbone=b,
            seed=s,
        )
        for c, m, b, s in itertools.product(
            noise_cells(config), config["methods"], config["backbones"], config["seeds"]
        )
    ]


# ---------------------------------------------------------------- methods, read statically
METHODS_DIR = PACKAGE / "methods"


#: The diagnostics a method may report for the trainer to score (lnm/methods/base.py).
REPORTS = ("selected", "corrected", "T_hat", "clean_prob")
#: What a phase declares (lnm/methods/base.py, ``phases``): those of PHASE_PARAMS name a parameter.
PHASE_PARAMS = ("until", "epochs", "batch_multiple", "labelled")
PHASE_KEYS = ("name", "min_epochs", *PHASE_PARAMS)


@dataclass(frozen=True)
class MethodInfo:
    """A method as its file declares it: ``name``, ``order`` (display position), ``params``
    (hyperparameter -> JSON-schema fragment with its ``default``) and its traits, the class
    attributes after ``params`` (inherited; :class:`lnm.methods.base.Method` holds the defaults
    and documents each): ``num_nets``, ``eval_view`` (how LNMBench scored it, one of
    :data:`EVAL_VIEWS`), ``phases``, ``ramp``, ``reports``, ``relative_cost``."""

    name: str
    module: str  # module name inside lnm.methods
    cls: str
    order: int
    params: dict
    num_nets: int
    eval_view: str
    phases: tuple
    ramp: str | None
    reports: tuple
    relative_cost: float | None

    @property
    def defaults(self) -> dict:
        return {k: spec["default"] for k, spec in self.params.items()}

    @property
    def path(self) -> Path:
        return METHODS_DIR / f"{self.module}.py"

    @property
    def estimates_transition(self) -> bool:
        """Whether its runs report an estimated transition matrix (``T_hat``)."""
        return "T_hat" in self.reports

    def schema(self) -> dict:
        """JSON schema of ``method_params.<name>``: the declared keys, types and ranges."""
        props = {
            k: {key: v for key, v in spec.items() if key != "default"}
            for k, spec in self.params.items()
        }
        return {"type": "object", "additionalProperties": False, "properties": props}

    def phase_epochs(self, epochs: int, params: dict | None = None) -> list[int]:
        """Epochs of each of :attr:`phases` in a run of ``epochs`` epochs with ``params`` (over
        the defaults): each phase with a boundary, in order, within what is left; the free
        phases share the rest equally, the earlier taking the remainder."""
        hp, out, left = {**self.defaults, **(params or {})}, [], epochs
        for p in self.phases:  # the phases with "until" come first (checked)
            key = p.get("until") or p.get("epochs")
            n = None if key is None or hp[key] is None else int(hp[key])
            n = n if n is None or "epochs" in p else n - (epochs - left)  # until: its end
            out.append(None if n is None else max(0, min(n, left)))
            left -= out[-1] or 0
        free = [i for i, n in enumerate(out) if n is None]
        for j, i in enumerate(free):
            out[i] = left // len(free) + (j < left % len(free))
        return out

    def phase_overrides(self, k: int) -> dict:
        """Parameters that make each phase last ``k`` epochs of a run of ``k * len(phases)``."""
        bounds = [(i, p.get("until"), p.get("epochs")) for i, p in enumerate(self.phases)]
        return {u or e: k * (i + 1) if u else k for i, u, e in bounds if u or e}


class _ClassDecl:
    def __init__(self, module: str, node: ast.ClassDef):
        self.module, self.node = module, node
        self.bases = [
            b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
        ]
        self.attrs = {
            t.id: stmt.value
            for stmt in node.body
            if isinstance(stmt, ast.Assign)
            for t in stmt.targets
            if isinstance(t, ast.Name)
        }


def _literal(node: ast.AST, classes: dict[str, _ClassDecl], where: str):
    """``ast.literal_eval`` plus ``{**Base.params, ...}`` for a class of the same package (the
    methods', the adapters')."""
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:  # **Other.attr
                if not (isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name)):
                    raise ValueError(f"{where}: only **<Class>.<attr> may be unpacked")
                base = classes.get(v.value.id)
                if base is None or v.attr not in base.attrs:
                    raise ValueError(
                        f"{where}: {v.value.id}.{v.attr} is not a literal of a class in its package"
                    )
                out.update(_literal(base.attrs[v.attr], classes, where))
            else:
                out[ast.literal_eval(k)] = _literal(v, classes, where)
        return out
    return ast.literal_eval(node)


def _inherited(decl: _ClassDecl, attr: str, classes: dict[str, _ClassDecl]):
    seen = decl
    while seen is not None:
        if attr in seen.attrs:
            return seen.attrs[attr]
        seen = next((classes[b] for b in seen.bases if b in classes), None)
    return None


#: A method's traits: its class attributes that the workflow reads (literals, inherited).
METHOD_TRAITS = tuple(f.name for f in fields(MethodInfo))[5:]


@functools.cache
def method_catalog() -> dict[str, MethodInfo]:
    """Every method of ``lnm/methods`` (a module not starting with ``_`` that defines a class
    with a string ``name``), in display order, read from the source without importing it."""
    classes = _read_classes(METHODS_DIR)
    found: dict[str, MethodInfo] = {}
    for cname, decl in classes.items():
        if decl.module.startswith("_") or decl.module == "base" or "name" not in decl.attrs:
            continue
        where = f"lnm/methods/{decl.module}.py, class {cname}"
        name = ast.literal_eval(decl.attrs["name"])
        if name in found:
            raise ValueError(f"{where}: method name {name!r} is already used by {found[name].cls}")
        params = _inherited(decl, "params", classes)
        traits = {
            t: _literal(_inherited(decl, t, classes) or classes["Method"].attrs[t], classes, where)
            for t in METHOD_TRAITS
        }
        order = decl.attrs.get("order")
        found[name] = MethodInfo(
            name=name,
            module=decl.module,
            cls=cname,
            order=ast.literal_eval(order) if order is not None else 10**6,
            params=_literal(params, classes, where) if params is not None else {},
            **traits,
        )
        _check_method(found[name], where)
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def _check_method(info: MethodInfo, where: str) -> None:
    """Every parameter has a default, the traits hold allowed values and name its parameters."""
    missing = [k for k, spec in info.params.items() if "default" not in spec]
    kinds = "".join("u" if "until" in p else "e" if "epochs" in p else "f" for p in info.phases)
    named = {p[k] for p in info.phases for k in PHASE_PARAMS if k in p}
    odd = [p for p in info.phases if not {"name"} <= set(p) <= set(PHASE_KEYS)]
    odd += [p for p in info.phases if {"until", "epochs"} <= set(p)]  # at most one boundary
    checks = [
        (missing, f"params {missing} declare no default"),
        (info.eval_view not in EVAL_VIEWS,
         f"eval_view {info.eval_view!r} is not allowed; allowed: {', '.join(EVAL_VIEWS)}"),
        (not set(info.reports) <= set(REPORTS),
         f"reports {info.reports!r}; allowed: {', '.join(REPORTS)}"),
        (info.ramp not in (None, *info.params), f"ramp {info.ramp!r}; allowed: None or a parameter"),
        (odd or named - set(info.params) or not re.fullmatch("u*[ef]*f[ef]*", kinds),
         f"phases {list(info.phases)}; allowed: dicts with a name and keys of "
         f"{', '.join(PHASE_KEYS)} (at most one of until and epochs), naming parameters, those "
         "with until first, one at least free (no until, no epochs)"),
    ]  # fmt: skip
    wrong = [text for bad, text in checks if bad]
    if wrong:
        raise ValueError(f"{where}: " + "; ".join(wrong))


def base_method(config: dict | None, name: str) -> str:
    """The method a grid method runs: ``name`` itself, or a ``method_variants`` entry's method."""
    variants = (config or {}).get("method_variants") or {}
    return variants[name]["method"] if name in variants else name


def grid_methods(config: dict) -> tuple[str, ...]:
    """Every method name a config may use: the catalog's and its ``method_variants``."""
    return methods() + tuple(sorted(set(config.get("method_variants") or {}) - set(methods())))


def rate_params(method: str) -> tuple[str, ...]:
    """The method's parameters that take a noise rate (declared with ``"noise_rate": true``):
    null = the cell's nominal rate, ``estimated`` = the cell's estimate."""
    return tuple(k for k, s in method_info(method).params.items() if s.get("noise_rate"))


def methods() -> tuple[str, ...]:
    """Method names in display order."""
    return tuple(method_catalog())


def method_info(name: str) -> MethodInfo:
    try:
        return method_catalog()[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(methods())}") from None


# ---------------------------------------------------------------- real-world adapters, read statically
ADAPTERS_DIR = PACKAGE / "data" / "adapters"


@dataclass(frozen=True)
class AdapterInfo:
    """A real-world dataset adapter as its file declares it (:mod:`lnm.data.adapters.base`):
    ``name``, ``order``, ``options`` (option -> JSON-schema fragment with its ``default``: the
    adapter's, then those every adapter takes) and ``clean_train`` (true, false, or the options
    any of which, when set, gives clean training labels)."""

    name: str
    module: str  # module name inside lnm.data.adapters
    cls: str
    order: int
    options: dict
    clean_train: bool | tuple

    @property
    def defaults(self) -> dict:
        return {k: spec["default"] for k, spec in self.options.items()}

    @property
    def path(self) -> Path:
        return ADAPTERS_DIR / f"{self.module}.py"

    def options_schema(self) -> dict:
        """JSON schema of ``real_world.<dataset>.options``: the declared keys, types and ranges;
        an option without a default (null that its type does not allow) must be given."""
        props = {
            k: {key: v for key, v in spec.items() if key != "default"}
            for k, spec in self.options.items()
        }
        required = [
            k
            for k, spec in self.options.items()
            if spec["default"] is None and "null" not in _types(spec)
        ]
        schema = {"type": "object", "additionalProperties": False, "properties": props}
        return {**schema, "required": required} if required else schema


def _types(spec: dict) -> list:
    kind = spec.get("type", [])
    return kind if isinstance(kind, list) else [kind]


@functools.cache
def adapter_catalog() -> dict[str, AdapterInfo]:
    """Every adapter of ``lnm/data/adapters`` (a module not starting with ``_`` that defines a
    class with a string ``name``), in display order, read from the source without importing it.
    The options every adapter takes are ``common_options`` of the base class ``Adapter``."""
    classes = _read_classes(ADAPTERS_DIR)
    common = _literal(classes["Adapter"].attrs["common_options"], classes, "lnm/data/adapters")
    found: dict[str, AdapterInfo] = {}
    for cname, decl in classes.items():
        if decl.module.startswith("_") or decl.module == "base" or "name" not in decl.attrs:
            continue
        where = f"lnm/data/adapters/{decl.module}.py, class {cname}"
        name = ast.literal_eval(decl.attrs["name"])
        if name in found:
            raise ValueError(f"{where}: adapter name {name!r} is already used by {found[name].cls}")
        options = _literal(_inherited(decl, "options", classes), classes, where)
        order = decl.attrs.get("order")
        found[name] = AdapterInfo(
            name=name,
            module=decl.module,
            cls=cname,
            order=ast.literal_eval(order) if order is not None else 10**6,
            options={**options, **common},
            clean_train=_clean_train(_inherited(decl, "clean_train", classes), where),
        )
        missing = [k for k, s in found[name].options.items() if "default" not in s]
        if missing:
            raise ValueError(f"{where}: options {missing} declare no default")
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def _clean_train(node: ast.AST | None, where: str) -> bool | tuple:
    value = ast.literal_eval(node) if node is not None else True
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: clean_train {value!r}: allowed: true, false or option names")
    return value


def adapter_info(name: str) -> AdapterInfo:
    try:
        return adapter_catalog()[name]
    except KeyError:
        allowed = ", ".join(adapter_catalog())
        raise ValueError(f"unknown real-world adapter {name!r}; allowed: {allowed}") from None


def adapter_schemas() -> list[dict]:
    """Per adapter, the JSON schema of a ``real_world`` entry's options (``allOf`` of the
    entry: if its ``adapter`` is this one, its ``options`` follow the adapter's declaration)."""
    return [
        {
            "if": {"properties": {"adapter": {"const": name}}, "required": ["adapter"]},
            "then": {"properties": {"options": info.options_schema()}},
        }
        for name, info in adapter_catalog().items()
    ]


def __getattr__(attr: str):
    """``ADAPTERS``: the adapters of datasets with real-world noisy labels
    (``real_world.<name>.adapter`` in the config), in display order; read on first use (parsing
    the adapter files costs ~10 ms, which a training job need not pay)."""
    if attr == "ADAPTERS":
        return tuple(adapter_catalog())
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def ordered(values, canonical) -> list[str]:
    """Distinct ``values`` in ``canonical`` order, unknown ones after them alphabetically."""
    values, canonical = set(values), list(canonical)
    return [v for v in canonical if v in values] + sorted(values - set(canonical))


def _read_classes(folder: Path) -> dict[str, _ClassDecl]:
    """Every class declared at the top level of the modules of ``folder`` (parsed, not run)."""
    classes: dict[str, _ClassDecl] = {}
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ClassDef):
                classes[node.name] = _ClassDecl(path.stem, node)
    return classes


# ---------------------------------------------------------------- noise patterns, read statically
PATTERNS_DIR = PACKAGE / "noise" / "patterns"
#: A pattern's name: lower case letters, digits and ``_`` (it is part of file names).
PATTERN_NAME = r"[a-z][a-z0-9_]*"


@dataclass(frozen=True)
class PatternInfo:
    """A noise pattern as its file in ``lnm/noise/patterns`` declares it, read without importing
    it: its class attributes after ``cls`` (literals; inherited from the classes of that folder,
    whose ``base.py`` holds the defaults and documents each)."""

    name: str
    module: str  # module name inside lnm.noise.patterns
    cls: str
    code: int  # its index in the seeds of its random streams: fixed for ever
    order: int  # display position
    is_clean: bool  # the clean ceiling (rate 0)
    from_data: bool  # its noisy labels come with the data (real-world datasets)
    needs_images: bool
    needs_generator: bool  # drawn from the classifier_generator rule's logits
    params: dict  # noise.<key> config keys that change its labels -> JSON-schema fragment

    @property
    def synthetic(self) -> bool:
        """Drawn by the workflow from clean labels (a ``noise.patterns`` entry)."""
        return not (self.is_clean or self.from_data)

    @property
    def path(self) -> Path:
        return PATTERNS_DIR / f"{self.module}.py"


#: The class attributes of a pattern that the workflow reads.
PATTERN_TRAITS = tuple(f.name for f in fields(PatternInfo))[3:]


@functools.cache
def pattern_catalog(folder: Path = PATTERNS_DIR) -> dict[str, PatternInfo]:
    """Every noise pattern of ``lnm/noise/patterns`` (``folder``; a module not named ``base``
    or starting with ``_`` that defines a class with a string ``name``), in display order,
    read from the source without importing it (no numpy, no torch)."""
    classes = _read_classes(folder)
    found: list[PatternInfo] = []
    for cname, decl in classes.items():
        if decl.module.startswith("_") or decl.module == "base" or "name" not in decl.attrs:
            continue
        where = f"lnm/noise/patterns/{decl.module}.py, class {cname}"
        traits = {}
        for trait in PATTERN_TRAITS:
            node = _inherited(decl, trait, classes)
            traits[trait] = None if node is None else _literal(node, classes, where)
        name = ast.literal_eval(decl.attrs["name"])
        found.append(PatternInfo(name=name, module=decl.module, cls=cname, **traits))
    _check_patterns(found)
    return {p.name: p for p in sorted(found, key=lambda p: (p.order, p.name))}


def _check_patterns(found: list[PatternInfo]) -> None:
    """Names fit file names and are unique, codes are unique integers, and exactly one pattern
    is the clean ceiling and one the data's own labels."""
    import re

    names: dict[str, str] = {}
    for p in found:
        where = f"lnm/noise/patterns/{p.module}.py, class {p.cls}"
        if not re.fullmatch(PATTERN_NAME, p.name):
            raise ValueError(f"{where}: pattern name {p.name!r} is not allowed; allowed: "
                             f"{PATTERN_NAME} (it is part of file names)")  # fmt: skip
        if p.name in names:
            raise ValueError(f"{where}: pattern name {p.name!r} is already used by class "
                             f"{names[p.name]}")  # fmt: skip
        names[p.name] = p.cls
        if isinstance(p.code, bool) or not isinstance(p.code, int) or p.code < 0:
            raise ValueError(f"{where}: code {p.code!r}; allowed: an integer >= 0 (the "
                             "pattern's index in the seeds of its random streams)")  # fmt: skip
    codes = sorted((p.code, f"{p.module}.py") for p in found)
    for (code, a), (again, b) in zip(codes, codes[1:]):
        if code == again:
            free = codes[-1][0] + 1
            raise ValueError(f"lnm/noise/patterns: {a} and {b} both declare code {code}; a new "
                             f"pattern takes a code no pattern ever had, e.g. {free}")  # fmt: skip
    for trait in ("is_clean", "from_data"):
        have = [p.name for p in found if getattr(p, trait)]
        if len(have) != 1:
            raise ValueError(
                f"lnm/noise/patterns: {len(have)} patterns declare {trait} = True "
                f"({', '.join(have) or 'none'}); exactly one must"
            )


def pattern_info(name: str) -> PatternInfo:
    try:
        return pattern_catalog()[name]
    except KeyError:
        raise ValueError(
            f"unknown noise pattern {name!r}; allowed: {', '.join(PATTERNS)}"
        ) from None


#: Noise patterns, in display order (``none`` first): lnm/noise/patterns, one file each.
PATTERNS = tuple(pattern_catalog())
#: The clean ceiling (rate 0) and the noisy labels as the data gives them (real-world datasets).
CLEAN = next(p.name for p in pattern_catalog().values() if p.is_clean)
REAL = next(p.name for p in pattern_catalog().values() if p.from_data)
NOISY_PATTERNS = tuple(p for p in PATTERNS if p != CLEAN)
#: Patterns drawn by the workflow from clean labels (``noise.patterns`` in the config).
SYNTHETIC_PATTERNS = tuple(p for p, info in pattern_catalog().items() if info.synthetic)
