"""Where a method's noise rate comes from: the oracle (the cell's true rate), the cell's estimate
(``forget_rate: estimated``), a fixed number, or a real-world cell's assumption; method variants
run a method under another name beside it."""

import pytest

from lnm import grid
from lnm.checksum import verify
from lnm.config import ConfigError, load_config, run_spec
from lnm.noise.io import save_noise
from lnm.train.trainer import train_run
from tests.conftest import REPO, TINY_RUN, tiny_problem, tiny_spec


def estimate_file(path, rate):
    save_noise(path, {"estimated_rate": rate, "num_label_issues": 3})
    return path


def train(tmp_path, params, out, estimate=None, **kw):
    h5, npz = tiny_problem(tmp_path)
    spec = tiny_spec(
        method="coteaching", epochs=1, last_k=1, method_params=params, **{**TINY_RUN, **kw}
    )
    return train_run(spec, h5, npz, tmp_path / out, log=lambda s: None, estimate_path=estimate)


@pytest.mark.parametrize(
    "params, source, rate, oracle",
    [
        ({"forget_rate": None}, "oracle", 0.4, True),
        ({"forget_rate": 0.25}, "fixed", 0.25, False),
        ({"forget_rate": 0.4}, "fixed", 0.4, True),  # a fixed number equal to the truth
        ({"forget_rate": "estimated"}, "estimated", 0.3125, False),
    ],
)
def test_metrics_record_the_rate_its_source_and_whether_it_was_the_truth(
    tmp_path, params, source, rate, oracle
):
    est = estimate_file(tmp_path / "est.npz", 0.3125) if source == "estimated" else None
    m = train(tmp_path, params, "run", estimate=est)
    assert m["assumed_noise_rate"] == pytest.approx(rate)
    assert (m["noise_rate_source"], m["uses_true_noise_rate"]) == (source, oracle)
    if est is not None:  # the estimate is an input of the run: recorded and hashed
        assert m["inputs"]["estimate"]["sha256"] == verify(est)


def test_an_estimated_rate_without_an_estimate_file_fails_naming_the_stage(tmp_path):
    with pytest.raises(ValueError, match="estimate_noise"):
        train(tmp_path, {"forget_rate": "estimated"}, "run")


def test_a_changed_estimate_is_a_new_resume_identity(tmp_path):
    """Only the estimate differs: a checkpoint of the old one is set aside, not resumed."""
    est = estimate_file(tmp_path / "est.npz", 0.2)
    train(tmp_path, {"forget_rate": "estimated"}, "run", estimate=est)
    lines = []
    h5, npz = tiny_problem(tmp_path)
    spec = tiny_spec(
        method="coteaching",
        epochs=2,
        last_k=1,
        method_params={"forget_rate": "estimated"},
        **TINY_RUN,
    )
    train_run(
        spec, h5, npz, tmp_path / "k", log=lines.append, estimate_path=est, keep_checkpoint=True
    )
    estimate_file(est, 0.3)
    lines.clear()
    m = train_run(spec, h5, npz, tmp_path / "k", log=lines.append, estimate_path=est)
    assert m["assumed_noise_rate"] == pytest.approx(0.3)
    assert any("estimate (sha256" in line for line in lines), lines


def variant_config(**extra):
    return load_config(
        REPO / "presets" / "smoke.yaml",
        overrides={
            "methods": ["ce", "coteaching", "coteaching_est"],
            "method_variants": {
                "coteaching_est": {
                    "method": "coteaching",
                    "method_params": {"forget_rate": "estimated"},
                }
            },
            **extra,
        },
    )


def test_a_variant_is_its_own_run_with_its_own_identity():
    cfg = variant_config()
    plain = run_spec(cfg, "breastmnist", "symmetric", "0.4", 0, "coteaching", "resnet8", 0)
    est = run_spec(cfg, "breastmnist", "symmetric", "0.4", 0, "coteaching_est", "resnet8", 0)
    assert "base_method" not in plain.to_dict()  # plain methods' specs are unchanged
    assert (est.method, est.method_class, est.method_params["forget_rate"]) == (
        "coteaching_est",
        "coteaching",
        "estimated",
    )
    assert est.needs_estimate and not plain.needs_estimate
    assert plain.digest() != est.digest()
    dirs = grid.run_dirs(cfg)
    assert any("/coteaching_est/" in d for d in dirs) and any("/coteaching/" in d for d in dirs)


def test_real_world_cells_use_the_estimate_unless_told_to_assume():
    real = {"adapter": "drtid", "root": "/nowhere", "size": 16, "assumed_rates": [0.4]}
    cfg = variant_config(datasets=["drtid"], real_world={"drtid": real})
    spec = run_spec(cfg, "drtid", "real", "0.4", 0, "coteaching", "resnet8", 0)
    assert spec.method_params["forget_rate"] == "estimated"
    assert not run_spec(cfg, "drtid", "real", "0.4", 0, "ce", "resnet8", 0).needs_estimate
    cfg = variant_config(
        datasets=["drtid"], real_world={"drtid": {**real, "rate_source": "assumed"}}
    )
    spec = run_spec(cfg, "drtid", "real", "0.4", 0, "coteaching", "resnet8", 0)
    assert spec.method_params["forget_rate"] is None  # the assumed rate (0.4)


def test_variant_names_and_params_are_checked():
    with pytest.raises(ConfigError, match=r"method_variants\.x\.method_params\.forget_rate"):
        load_config(
            overrides={
                "method_variants": {
                    "x": {"method": "coteaching", "method_params": {"forget_rate": "est"}}
                }
            }
        )
    with pytest.raises(ConfigError, match=r"method_variants\.coteaching: .*a method's name"):
        load_config(overrides={"method_variants": {"coteaching": {"method": "ce"}}})
    with pytest.raises(ConfigError, match=r"methods\[1\]: 'ce_est'"):
        load_config(overrides={"methods": ["ce", "ce_est"]})
