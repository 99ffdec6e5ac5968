"""Optimisers and per-epoch learning-rate schedules.

Schedules are pure functions of the epoch (applied at the start of each epoch), so resuming
needs no scheduler state and a run resumed at epoch k sees exactly the same rates.
"""

from __future__ import annotations

import math

import torch

from ..grid import OPTIMIZERS, SCHEDULES  # the names live in lnm.grid (the config schema's enums)


def make_optimizer(cfg: dict, params) -> torch.optim.Optimizer:
    name = cfg["name"]
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg["lr"],
            momentum=cfg.get("momentum", 0.0),
            nesterov=cfg.get("nesterov", False),
            weight_decay=cfg.get("weight_decay", 0.0),
        )
    if name == "adam":
        return torch.optim.Adam(
            params,
            lr=cfg["lr"],
            betas=tuple(cfg.get("betas", (0.9, 0.999))),
            weight_decay=cfg.get("weight_decay", 0.0),
        )
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def lr_factor(schedule: dict, epoch: int, epochs: int) -> float:
    name = schedule["name"]
    if name == "constant":
        return 1.0
    if name == "multistep":
        return schedule.get("gamma", 0.1) ** sum(epoch >= m for m in schedule["milestones"])
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if name == "linear_decay":  # Co-teaching's plan: constant, then linear to 0 at the end
        start = schedule["decay_start"]
        return 1.0 if epoch < start else (epochs - epoch) / (epochs - start)
    raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}")


def apply_schedule(
    opt: torch.optim.Optimizer, base_lr: float, schedule: dict, epoch: int, epochs: int
) -> None:
    """Set the learning rate (and, for ``linear_decay``, Adam's beta1) for ``epoch``."""
    lr = base_lr * lr_factor(schedule, epoch, epochs)
    for group in opt.param_groups:
        group["lr"] = lr
        if schedule["name"] == "linear_decay" and "betas" in group:
            decayed = epoch >= schedule["decay_start"]
            group["betas"] = (
                schedule.get("beta1_decayed", 0.1) if decayed else 0.9,
                group["betas"][1],
            )
