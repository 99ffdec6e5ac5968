"""The torch versions lnm supports: pyproject's floor (2.11, the oldest tested: the CPU tests of
the trainer, resume, pool, data, streaming, packing and compilation pass with its wheel) up to
the pinned one (requirements.txt). What lnm calls exists in the installed torch."""

import re
from pathlib import Path

import torch
import torch.nn as nn
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent


def floor() -> Version:
    text = (REPO / "pyproject.toml").read_text()
    return Version(re.search(r'"torch>=([0-9.]+)"', text)[1])


def test_the_installed_torch_is_within_the_supported_range():
    pinned = re.search(r"^torch==([0-9.]+)$", (REPO / "requirements.txt").read_text(), re.M)[1]
    installed = Version(torch.__version__.split("+")[0])
    assert floor() >= Version("2.11") and floor() <= installed
    assert Version(pinned) >= floor()


def test_the_torch_apis_lnm_uses_exist():
    import torch._dynamo

    cfg = torch._dynamo.config  # lnm.methods.base.compile_networks
    assert hasattr(cfg, "recompile_limit") and hasattr(cfg, "fail_on_recompile_limit_hit")
    assert callable(nn.Module.compile)
    # lnm.train.trainer.configure_determinism / determinism_record
    for name in (
        "use_deterministic_algorithms",
        "are_deterministic_algorithms_enabled",
        "is_deterministic_algorithms_warn_only_enabled",
    ):
        assert callable(getattr(torch, name)), name
    assert callable(torch.cuda.get_rng_state) and callable(torch.cuda.set_rng_state)
    assert callable(torch.cuda.mem_get_info)
