"""RunSpec: everything that determines one training run's result, built from the config."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

OPTIMIZER_KEYS = {
    "sgd": ("name", "lr", "momentum", "nesterov", "weight_decay"),
    "adam": ("name", "lr", "betas", "weight_decay"),
}
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
    pretrained: bool = False
    epochs: int = 10
    batch_size: int = 128
    optimizer: dict = field(default_factory=lambda: {"name": "sgd", "lr": 0.01})
    schedule: dict = field(default_factory=lambda: {"name": "constant"})
    augment: dict = field(default_factory=lambda: {"crop_padding": 4, "hflip": True})
    drop_last: bool = True
    last_k: int = 5
    method_params: dict = field(default_factory=dict)
    noisy_val: bool = True
    instance_std: float = 0.1

    @classmethod
    def from_config(
        cls,
        config: dict,
        dataset: str,
        noise: str,
        rate,
        noise_seed,
        method: str,
        backbone: str,
        seed,
    ) -> RunSpec:
        train = config["train"]
        if config.get("protocol") == "reference":  # the method's own recipe overrides `train`
            from ..config import merged

            train = merged(train, config.get("recipes", {}).get(method, {}))
        return cls(
            dataset=dataset,
            size=int(config["size"]),
            noise=noise,
            rate=float(rate),
            noise_seed=int(noise_seed),
            method=method,
            backbone=backbone,
            seed=int(seed),
            pretrained=bool(config.get("pretrained", False)),
            epochs=int(train["epochs"]),
            batch_size=int(train["batch_size"]),
            optimizer=dict(train["optimizer"]),
            schedule=dict(train["schedule"]),
            augment=dict(train.get("augment", {})),
            drop_last=bool(train.get("drop_last", True)),
            last_k=int(train.get("last_k", 5)),
            method_params=dict(config.get("method_params", {}).get(method, {})),
            noisy_val=bool(config["noise"].get("noisy_val", True)),
            instance_std=float(config["noise"].get("instance_std", 0.1)),
        )

    def __post_init__(self):
        # keep only the keys the chosen optimiser/schedule uses: params stay canonical, so an
        # irrelevant setting (milestones of a cosine schedule, betas of SGD) never reruns a job
        object.__setattr__(self, "optimizer", _only(self.optimizer, OPTIMIZER_KEYS))
        object.__setattr__(self, "schedule", _only(self.schedule, SCHEDULE_KEYS))

    def to_dict(self) -> dict:
        """Canonical (key-sorted, JSON round-tripped) dict of the result-relevant values."""
        return json.loads(json.dumps(asdict(self), sort_keys=True))

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        return cls(**d)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
