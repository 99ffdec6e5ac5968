"""RunSpec: everything that determines one training run's result (built by
:func:`lnm.config.run_spec`; torch-free)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..grid import ESTIMATED, EVAL_VIEWS

OPTIMIZER_KEYS = {
    "sgd": ("name", "lr", "momentum", "nesterov", "weight_decay"),
    "adam": ("name", "lr", "betas", "weight_decay"),
}
#: ``train.precision``: ``bf16`` = bf16 autocast on CUDA (CPUs always compute in fp32),
#: ``fp32`` = no autocast anywhere.
PRECISIONS = ("bf16", "fp32")
#: ``train.compile``: ``eager`` (no compilation, the default) or a ``torch.compile`` mode the
#: networks are compiled with in place (their state_dict keys, hence checkpoints, unchanged).
#: Compiled kernels round differently from eager ones, so it is part of a run's identity.
COMPILE_MODES = ("eager", "default", "reduce-overhead", "max-autotune-no-cudagraphs")
SCHEDULE_KEYS = {
    "constant": ("name",),
    "cosine": ("name",),
    "multistep": ("name", "milestones", "gamma"),
    "linear_decay": ("name", "decay_start", "beta1_decayed"),
}


def _only(cfg: dict, keys: dict) -> dict:
    allowed = keys.get(cfg.get("name"))
    return dict(cfg) if allowed is None else {k: v for k, v in cfg.items() if k in allowed}


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    size: int
    noise: str
    rate: float
    noise_seed: int
    method: str
    backbone: str
    seed: int
    pretrained: bool
    epochs: int
    batch_size: int
    optimizer: dict
    schedule: dict
    augment: dict
    drop_last: bool
    last_k: int
    #: how test/val predictions are made from the networks (one of lnm.grid.EVAL_VIEWS)
    eval_view: str
    #: configured compute precision (``PRECISIONS``); the effective one is in metrics.json
    precision: str
    method_params: dict = field(default_factory=dict)  # resolved: defaults + overrides
    #: the method a ``method_variants`` entry runs (None: ``method`` itself); absent from the
    #: canonical dict when None, so plain methods' specs (and identities) are unchanged
    base_method: str | None = None
    #: ``COMPILE_MODES``; absent from the canonical dict when ``eager``, so the specs (and
    #: identities) of uncompiled runs are those they had before the switch existed
    compile: str = "eager"

    def __post_init__(self):
        if self.eval_view not in EVAL_VIEWS:
            raise ValueError(
                f"eval_view {self.eval_view!r} is not allowed; allowed: {', '.join(EVAL_VIEWS)}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision {self.precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}"
            )
        if self.compile not in COMPILE_MODES:
            raise ValueError(
                f"compile {self.compile!r} is not allowed; allowed: {', '.join(COMPILE_MODES)}"
            )
        # keep only the keys the chosen optimiser/schedule uses: params stay canonical, so an
        # irrelevant setting (milestones of a cosine schedule, betas of SGD) never reruns a job
        object.__setattr__(self, "optimizer", _only(self.optimizer, OPTIMIZER_KEYS))
        object.__setattr__(self, "schedule", _only(self.schedule, SCHEDULE_KEYS))

    def to_dict(self) -> dict:
        """Canonical (key-sorted, JSON round-tripped) dict of the result-relevant values."""
        d = asdict(self)
        if d["base_method"] is None:
            del d["base_method"]
        if d["compile"] == "eager":
            del d["compile"]
        return json.loads(json.dumps(d, sort_keys=True))

    @property
    def method_class(self) -> str:
        """The method whose code runs (the variant's base method, else ``method``)."""
        return self.base_method or self.method

    @property
    def needs_estimate(self) -> bool:
        """Whether the run is told its cell's estimated noise rate (a method parameter set to
        ``estimated``): its train job then needs the cell's estimate file."""
        return ESTIMATED in self.method_params.values()

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        return cls(**d)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def computed_precision(precision: str, device_type: str) -> str:
    """The precision a run of ``train.precision = precision`` computes in on a device of
    ``device_type``: ``bf16`` (autocast) only on CUDA, ``fp32`` on a CPU whatever is
    configured. Part of a run's identity: its resume identity, metrics.json and the train
    rule's params (``rules/train.smk``)."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision {precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}"
        )
    return "bf16" if device_type == "cuda" and precision == "bf16" else "fp32"
