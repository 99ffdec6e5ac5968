"""``train.compile``: the networks compiled in place with a torch.compile mode; opt-in, part of
a run's identity (compiled kernels round differently), checkpoints interchangeable with eager
ones, and exact resume of a compiled run."""

import pandas as pd
import pytest
import torch

from lnm.config import ConfigError, load_config
from lnm.train.spec import COMPILE_MODES
from lnm.train.trainer import CHECKPOINT
from tests.conftest import REPO, run_method, tiny_method, tiny_spec
from tests.test_trainer import comparable, crash_in_epoch_2


def test_eager_is_absent_from_the_spec_and_a_mode_is_part_of_it():
    eager, compiled = tiny_spec(), tiny_spec(compile="default")
    assert "compile" not in eager.to_dict()  # identities of uncompiled runs are unchanged
    assert compiled.to_dict()["compile"] == "default"
    assert eager.to_dict() == {k: v for k, v in compiled.to_dict().items() if k != "compile"}
    with pytest.raises(ValueError, match="compile 'fast' is not allowed; allowed: eager, default"):
        tiny_spec(compile="fast")


def test_the_config_default_is_eager_and_a_bad_mode_fails_naming_the_allowed(tmp_path):
    assert load_config(REPO / "config.yaml")["train"]["compile"] == "eager"
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {compile: fast}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "train.compile" in str(err.value) and "fast" in str(err.value)
    for mode in COMPILE_MODES:
        assert mode in str(err.value)


def test_compiled_networks_keep_the_eager_state_dict_keys(tmp_path):
    eager, _ = tiny_method(tmp_path, "coteaching")
    compiled, _ = tiny_method(tmp_path, "coteaching", compile="default")
    assert all(hasattr(net, "_compiled_call_impl") for net in compiled.nets)
    assert list(compiled.state_dict()["nets"]) == list(eager.state_dict()["nets"])
    compiled.load_state_dict(eager.state_dict())  # strict: checkpoints are interchangeable


@pytest.mark.slow  # compiles ResNet-8 for the CPU (inductor, a C++ compiler): ~1 min
def test_a_compiled_run_resumes_exactly_and_records_its_mode(tmp_path):
    torch._dynamo.reset()
    full, _ = run_method(tmp_path, "ce", epochs=3, out="full", compile="default")
    assert full["compile"] == "default"
    with pytest.raises(RuntimeError):
        run_method(tmp_path, "ce", epochs=3, out="resumed", log=crash_in_epoch_2,
                   compile="default")  # fmt: skip
    assert (tmp_path / "resumed" / CHECKPOINT).exists()
    resumed, out = run_method(tmp_path, "ce", epochs=3, out="resumed", compile="default")
    assert resumed["provenance"]["resumed_at_epochs"] == [2]
    assert comparable(resumed) == comparable(full)
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "per_epoch.csv"), pd.read_csv(tmp_path / "full" / "per_epoch.csv")
    )
    eager, _ = run_method(tmp_path, "ce", epochs=3, out="eager")
    assert eager["compile"] == "eager"
