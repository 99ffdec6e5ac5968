"""The Method interface: what a noisy-label method says about training; the trainer does the rest.

A method owns its networks, optimisers and per-sample state. The trainer owns the epoch loop,
evaluation, metrics, checkpointing, seeding and logging. ``train_epoch`` returns a dict of scalar
diagnostics (``train_loss``, ...) and may also report, for the trainer to score against the
clean labels (which methods never see):

- ``selected`` or ``selected_net0``/``selected_net1``: boolean masks over training samples that
  were trusted this epoch -> clean ratio (precision) and coverage (recall), per net and mean;
- ``seen``: boolean mask of samples that took part this epoch (default: all);
- ``corrected``: (indices, new labels) of relabelled samples -> purified ratio;
- ``T_hat``: the estimated C x C transition matrix -> relative L1 error vs the empirical one;
- ``clean_prob``: per-sample probability of being clean -> its AUC against the clean mask.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

from ..grid import ESTIMATED, REAL
from ..train.data import Batch, TrainData
from ..train.optim import apply_schedule, make_optimizer
from ..train.spec import RunSpec


class LossMeter:
    """The sample-weighted mean of per-batch losses over an epoch, accumulated on the device.

    ``add(loss, n)`` adds ``loss · n`` (``loss`` a batch-mean scalar tensor, ``n`` the host-side
    int the batch is weighted by) to a 0-d float64 tensor on ``device`` and ``n`` to a Python
    int; nothing is copied to the host, so a CUDA training loop is not stalled once per batch
    (``loss.item()`` is a device-to-host synchronisation). :meth:`mean` reads the sum once.

    The arithmetic is that of the Python-float loop it replaces, ``total += loss.item() * n``:
    the (float32) loss is converted exactly to float64, multiplied by ``n`` in float64 and added
    in float64, each step rounded once, in the same order (a separate multiply and add, no
    fused ``alpha``), so :meth:`mean` is bit-identical to ``total / n``. A float32 accumulator
    would not be.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.total = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.total.add_(loss.detach().to(torch.float64) * n)
        self.count += n

    def mean(self, empty: float = 0.0) -> float:
        """``sum / count`` as a Python float (one host sync), or ``empty`` if nothing was added
        (0.0 is what ``total / max(n, 1)`` gave; no sync then)."""
        if self.count == 0:
            return empty
        return float(self.total) / self.count


#: Graphs dynamo may compile per function before it gives up: a run's networks share their
#: backbone's forward, compiled once per network, train/eval mode and batch shape (DivideMix
#: alone needs more than dynamo's default of 8).
RECOMPILE_LIMIT = 64


def compile_networks(nets: nn.ModuleList, mode: str) -> None:
    """Compile each network in place (``nn.Module.compile``: the state_dict keys, hence
    checkpoints, are those of the eager networks) with the ``torch.compile`` mode ``mode``
    (``train.compile``). Past :data:`RECOMPILE_LIMIT` graphs dynamo raises instead of silently
    running the function eagerly."""
    import torch._dynamo

    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, RECOMPILE_LIMIT)
    cfg.fail_on_recompile_limit_hit = True
    for net in nets:
        net.compile(mode=mode)


class Method:
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.defaults = {k: spec["default"] for k, spec in cls.params.items()}

    name = "base"
    num_nets = 1
    #: how LNMBench scored the method's test predictions (one of :data:`lnm.grid.EVAL_VIEWS`, a
    #: plain literal read by :func:`lnm.grid.method_catalog`); used under ``protocol: reference``
    #: (the spec's ``eval_view``), while ``harmonized`` scores every method by ``softmax_mean``
    eval_view = "softmax_mean"
    #: display position in tables and figures (methods without one sort after, by name)
    order: int | None = None
    #: the method's hyperparameters: name -> JSON-schema fragment with its ``default`` (a plain
    #: literal: :func:`lnm.grid.method_catalog` reads it without importing torch, and the config
    #: check validates ``method_params.<name>`` against it at parse time)
    params: dict = {}
    #: ``{name: default}`` of :attr:`params`
    defaults: dict = {}
    # Traits: what the workflow knows of a method without running it, plain literals read by
    # lnm.grid.method_catalog (inherited like ``params``; docs/methods.md, "Traits").
    #: its training phases, in order: spans of epochs that differ in kind and cost (the cost model
    #: times each). Each a dict: ``name``; ``until``: the parameter holding the epoch at which
    #: it ends, or ``epochs``: the parameter holding its length (null: a free phase); neither:
    #: free (the free phases share the epochs the others leave). Optional: ``min_epochs`` (the
    #: fewest it may have, default 1), ``batch_multiple`` (the parameter: a step takes that many
    #: batches), ``labelled`` (the parameter of the least labelled fraction: the phase evaluates
    #: the training set, then trains on the samples it labels clean, reported as
    #: ``labelled_net<k>``)
    phases = ({"name": "train"},)
    #: the parameter holding the epochs over which the selected share ramps up (None: no ramp)
    ramp = None
    #: which of the scored diagnostics above ``train_epoch`` may report: ``selected``,
    #: ``corrected``, ``T_hat`` (the method estimates a transition matrix), ``clean_prob``
    reports = ()
    #: the time of one of its runs next to CE's (lnm.progress; None: unmeasured)
    relative_cost = None
    #: the noise rate the method was told (None: it needs none); set by :meth:`assumed_rate`
    assumed_noise_rate: float | None = None
    #: where it came from (one of lnm.grid.RATE_SOURCES; None: the method needs no rate)
    noise_rate_source: str | None = None

    def __init__(
        self,
        spec: RunSpec,
        model_factory: Callable[[], nn.Module],
        num_classes: int,
        device: torch.device,
        data: TrainData,
    ):
        self.spec, self.device, self.num_classes, self.data = spec, device, num_classes, data
        unknown = set(spec.method_params) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"method {self.name!r}: unknown parameter(s) {sorted(unknown)}; "
                f"allowed: {sorted(self.defaults) or 'none'}"
            )
        self.hp = {**self.defaults, **spec.method_params}
        self.nets = nn.ModuleList(model_factory() for _ in range(self.num_nets)).to(device)
        if device.type == "cuda":
            self.nets = self.nets.to(memory_format=torch.channels_last)
        if spec.compile != "eager":
            compile_networks(self.nets, spec.compile)
        self.optimizers = self.build_optimizers()

    # ----------------------------------------------------------------- hooks to override
    def build_optimizers(self) -> list[torch.optim.Optimizer]:
        return [make_optimizer(self.spec.optimizer, net.parameters()) for net in self.nets]

    def train_epoch(self, epoch: int, batches: Iterable[Batch]) -> dict:
        raise NotImplementedError

    def extra_state(self) -> dict:
        """Per-sample memories, thresholds, estimated matrices... (tensors or plain values)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # ----------------------------------------------------------------- shared machinery
    def assumed_rate(self, key: str) -> float:
        """The noise rate this method assumes: ``hp[key]``, or the cell's nominal rate if null.

        Recorded in metrics.json with ``uses_true_noise_rate`` (true when it equals the
        injected rate, i.e. the method was given knowledge it would not have in practice).
        """
        value = self.hp.get(key)
        if value == ESTIMATED:
            estimate = getattr(self.data, "noise_estimate", None)
            if estimate is None:
                raise ValueError(
                    f"method {self.name!r}: {key} = 'estimated' but the run was given no "
                    "estimate file (the workflow's estimate_noise rule writes it)"
                )
            rate, source = float(estimate["estimated_rate"]), "estimated"
        elif value is None:
            rate, source = float(self.spec.rate), "assumed" if self.spec.noise == REAL else "oracle"
        else:
            rate, source = float(value), "fixed"
        self.assumed_noise_rate, self.noise_rate_source = rate, source
        return rate

    @property
    def uses_true_noise_rate(self) -> bool | None:
        """None: the method needs no rate; with real-world noise the cell's rate is an assumption
        (``real_world.<name>.assumed_rates``), never the truth: False."""
        if self.assumed_noise_rate is None:
            return None
        if self.spec.noise == REAL or self.noise_rate_source == "estimated":
            return False
        return abs(self.assumed_noise_rate - self.spec.rate) < 1e-9

    def start_epoch(self, epoch: int) -> None:
        for opt in self.optimizers:
            apply_schedule(
                opt, self.spec.optimizer["lr"], self.spec.schedule, epoch, self.spec.epochs
            )

    def loss_meter(self) -> LossMeter:
        """A :class:`LossMeter` on the method's device: the epoch's ``train_loss`` without a
        host sync per batch."""
        return LossMeter(self.device)

    @property
    def precision(self) -> str:
        """The precision the networks compute in: ``bf16`` only with ``precision: bf16`` on
        CUDA; CPUs always compute in fp32 (recorded in metrics.json beside the configured one)."""
        return "bf16" if self.device.type == "cuda" and self.spec.precision == "bf16" else "fp32"

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Logits in float32; call ``backward`` outside this.

        With ``precision: bf16`` on CUDA the network runs under bf16 autocast and its logits are
        cast to float32 (they carry bf16 rounding); with ``fp32`` there is no autocast. Every
        per-sample loss that ranks or partitions samples is computed from these float32 logits
        outside autocast."""
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return net(x).float()

    @staticmethod
    def step(
        opt: torch.optim.Optimizer, loss: torch.Tensor, params=None, clip_norm: float | None = None
    ) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm:
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        opt.step()

    @torch.no_grad()
    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every network, shape (num_nets, B, C), float32; evaluation turns them into
        the spec's ``eval_view`` (:func:`lnm.train.metrics.view_metrics`)."""
        self.nets.eval()
        return torch.stack([self.forward(net, x) for net in self.nets])

    def state_dict(self) -> dict:
        return {
            "nets": self.nets.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.nets.load_state_dict(state["nets"])
        for opt, s in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)
        self.load_extra_state(state["extra"])
