"""``lnm new-method NAME``: a new method file that works as written, to edit into yours.

The file (``lnm/methods/NAME.py``) declares the method's name, display order and ``params``
(each hyperparameter's default, type, range and description, read by ``lnm params`` and the
config check) and implements ``train_epoch`` as a plain single-network method (cross-entropy on
the smallest-loss share of each batch, reporting the samples it trusted), under a docstring
skeleton for what the house rules ask of a method's file: what it does, its reference, and its
deviations from the official code. It is listed at once: nothing else registers a method.
"""

from __future__ import annotations

import keyword
import os
import re
from pathlib import Path

TEMPLATE = '''\
"""{title}: <what the method does, in one line> (<authors>, <venue> <year>).

<How it works, in two or three sentences: what it changes about training on noisy labels,
and which hyperparameter (below) controls what.>

Reference: <paper>; official code: <repository>. Deviations from the official code: none yet.
Each one is stated here AND in docs/deviations.md, with the switch (a parameter in ``params``)
that restores the original, and backed by a test against a transcription of the original update.

Written by ``lnm new-method {name}`` as a working example (cross-entropy on the
smallest-loss share of each batch); replace ``params`` and ``train_epoch`` with your method.
The trainer owns the epoch loop, evaluation, metrics, checkpoints and seeding
(lnm/methods/base.py); shared pieces: lnm/methods/_selection.py, _transition.py, _mixup.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method


class {cls}(Method):
    name = "{name}"  # its name in configs (methods: [...]), tables, figures and run folders
    order = {order}  # its position in tables and figures
    # num_nets = 2  # how many networks it trains (self.nets, one optimiser each)
    # Traits (lnm/methods/base.py; docs/methods.md): its phases, which diagnostics it reports...
    reports = ("selected",)  # train_epoch reports the samples it trusted
    # Hyperparameters: name -> default (the reference value), JSON-schema type and range, and
    # a description. Plain literals: `lnm params` and the config check read them without
    # importing torch. A config overrides them with method_params.{name}.<param>.
    params = {{
        "keep_fraction": {{
            "default": 0.8,
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "share of each batch (smallest loss first) the network learns from",
        }},
    }}

    def train_epoch(self, epoch, batches):
        """One epoch over the noisy training batches (``b.x`` augmented images, ``b.y`` noisy
        labels, ``b.idx`` sample indices). Returns scalar diagnostics and, optionally, the
        samples it trusted (``selected``), which the trainer scores against the clean labels
        (the method never sees them); see lnm/methods/base.py for what else it may report."""
        net, opt = self.nets[0], self.optimizers[0]
        net.train()
        meter = self.loss_meter()  # the epoch's mean loss, without a host sync per batch
        selected = torch.zeros(self.data.num_train, dtype=torch.bool, device=self.device)
        for b in batches:
            losses = F.cross_entropy(self.forward(net, b.x), b.y, reduction="none")
            keep = max(1, int(self.hp["keep_fraction"] * len(b)))
            kept = torch.argsort(losses.detach(), stable=True)[:keep]
            loss = losses[kept].mean()
            self.step(opt, loss)
            meter.add(loss, keep)
            selected[b.idx[kept]] = True
        return {{"train_loss": meter.mean(), "selected": selected}}
'''

NAME = re.compile(r"[a-z][a-z0-9_]*")


def class_name(name: str) -> str:
    """``my_method`` -> ``MyMethod``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def write_method(name: str, methods_dir: str | Path | None = None) -> Path:
    """Write ``<methods_dir>/<name>.py`` (default: this package's ``lnm/methods``) from
    :data:`TEMPLATE`; refuses a name that is not a lower-case identifier, is taken by a method
    or a module, or whose file exists."""
    from . import grid

    folder = Path(methods_dir) if methods_dir is not None else grid.METHODS_DIR
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ValueError(
            f"method name {name!r} is not allowed: lower-case letters, digits and _, starting "
            "with a letter (it names a module, a config entry and run folders)"
        )
    catalog = grid.method_catalog()
    if name in catalog:
        raise ValueError(
            f"method {name!r} exists already (lnm/methods/{catalog[name].module}.py); "
            f"taken: {', '.join(catalog)}"
        )
    path = folder / f"{name}.py"
    if path.exists() or name == "base":
        raise ValueError(f"{path} exists already; choose another name")
    order = 1 + max((i.order for i in catalog.values() if i.order < 10**6), default=-1)
    text = TEMPLATE.format(name=name, cls=class_name(name), order=order, title=class_name(name))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # never half-written
    grid.method_catalog.cache_clear()
    return path
