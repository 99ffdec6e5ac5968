"""Method traits (``phases``, ``ramp``, ``reports``, ``relative_cost``; lnm/methods/base.py):
declared once on the method class, read statically by ``lnm.grid``, checked where they are read,
true to what the method does, and asked by every table and benchmark; a ``method_variants``
entry has its method's traits."""

from __future__ import annotations

import shutil
import textwrap

import numpy as np
import pytest

from lnm import grid
from lnm.report import aggregate as agg
from lnm.report import diagnostics
from tests.conftest import REPO, benchmark, tiny_method
from tests.test_report_tables import write_run


def test_a_variant_is_in_the_transition_matrix_table(tmp_path):
    """``trevision_est`` (a method_variants entry of T-Revision) is a row of the T-error table
    beside T-Revision; a method that estimates no T is not."""
    paths = []
    for method, base, t_error in [("trevision", None, 0.3), ("trevision_est", "trevision", 0.5),
                                  ("coteaching", None, None)]:  # fmt: skip
        for seed in (0, 1):
            sel = dict.fromkeys(["clean_ratio", "coverage", "purified_ratio", "gmm_auc"])
            sel["t_error"] = None if t_error is None else t_error + 0.1 * seed
            if t_error is None:
                sel["clean_ratio"] = 80.0
            extra = {"selection": sel, "spec": {"base_method": base}}
            run = ("breastmnist", "symmetric", 0.2, method, 0, seed, 70.0)
            paths.append(write_run(tmp_path, *run, extra=extra))
    runs = agg.collect_runs(paths)
    assert diagnostics.transition_methods(runs) == {"trevision", "trevision_est"}
    md = diagnostics.write_diagnostics(runs, tmp_path / "tables")["selection.md"].read_text()
    t_table = md.split("transition-matrix estimation error", 1)[1]
    assert "trevision_est" in t_table and "0.550 ± 0.071" in t_table, t_table
    assert "0.350 ± 0.071" in t_table and "coteaching" not in t_table


def test_no_transition_method_names_those_of_the_catalog(tmp_path):
    sel = {"clean_ratio": 80.0, "coverage": 70.0}
    run = write_run(tmp_path, "breastmnist", "symmetric", 0.2, "coteaching", 0, 0, 70.0,
                    extra={"selection": sel})  # fmt: skip
    md = diagnostics.write_diagnostics(agg.collect_runs([run]), tmp_path / "t")["selection.md"]
    named = [m for m in grid.methods() if grid.method_info(m).estimates_transition]
    assert {"trevision", "volminnet"} <= set(named)
    assert f"no transition-matrix method ({', '.join(named)}) in this grid" in md.read_text()


def test_phase_epochs_follow_each_methods_own_schedule():
    """The declared phases split a run as the methods' own code does (T-Revision's
    ``stage_lengths`` wherever its estimation leaves two epochs, the others' epoch tests)."""
    from lnm.methods.trevision import stage_lengths

    info = grid.method_info("trevision")
    for epochs, est, rev in [(50, 5, None), (105, 5, None), (7, 5, None), (50, 5, 10), (9, 3, 20)]:
        hp = {"estimation_epochs": est, "revision_epochs": rev}
        assert info.phase_epochs(epochs, hp) == list(stage_lengths(epochs, est, rev))
    # "until": the epoch at which a phase ends; an epoch e < until is in it
    for method, key in [("dividemix", "warmup_epochs"), ("disc", "start_epoch"),
                        ("coteaching_plus", "init_epoch"), ("promix", "pretrain_ep")]:  # fmt: skip
        assert grid.method_info(method).phases[0]["until"] == key
        assert grid.method_info(method).phase_epochs(10, {key: 3}) == [3, 7]


@pytest.mark.parametrize("method", grid.methods())
def test_reports_are_what_the_method_reports(tmp_path, method):
    """One short run through every phase (each one epoch): the scored diagnostics reported are
    among those declared, and a transition matrix is reported exactly when declared."""
    info = grid.method_info(method)
    params = {**info.phase_overrides(1), **({info.ramp: 1} if info.ramp else {})}
    m, data = tiny_method(tmp_path, method, epochs=len(info.phases), params=params)
    seen = set()
    for epoch in range(len(info.phases)):
        m.start_epoch(epoch)
        diag = m.train_epoch(epoch, data.epoch_batches(0, epoch))
        seen |= {k.split("_net")[0] for k in diag if k.split("_net")[0] in grid.REPORTS}
    assert seen <= set(info.reports)
    assert ("T_hat" in seen) == info.estimates_transition


PHASES = r"phases \[.*\]; allowed: dicts with a name and keys of name, min_epochs, until"


@pytest.mark.parametrize(
    "attr, value, error",
    [
        ("phases", '({"name": "a", "until": "nope"}, {"name": "b"})', PHASES),  # no such param
        ("phases", '({"name": "a", "until": "k", "epochs": "k"}, {"name": "b"})', PHASES),
        ("phases", '({"name": "a", "epochs": "k"},)', PHASES),  # none free
        ("phases", '({"name": "a"}, {"name": "b", "until": "k"})', PHASES),  # until after free
        ("phases", '({"name": "a", "cost": 2},)', PHASES),
        ("phases", '({"until": "k"}, {"name": "b"})', PHASES),
        ("reports", '("T_hat", "accuracy")', r"reports \('T_hat', 'accuracy'\); allowed: selected"),
        ("ramp", '"nope"', "ramp 'nope'; allowed: None or a parameter"),
        ("eval_view", '"vote"', "eval_view 'vote' is not allowed; allowed: softmax_mean"),
    ],
)
def test_a_bad_trait_is_refused_naming_the_file(tmp_path, monkeypatch, attr, value, error):
    methods = tmp_path / "methods"
    shutil.copytree(REPO / "lnm" / "methods", methods,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (methods / "mine.py").write_text(
        textwrap.dedent(f"""
        from .base import Method

        class Mine(Method):
            name = "mine"
            params = {{"k": {{"default": 2, "type": "integer"}}}}
            {attr} = {value}
        """)
    )
    monkeypatch.setattr(grid, "METHODS_DIR", methods)
    grid.method_catalog.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"mine\.py, class Mine: .*" + error):
            grid.method_catalog()
    finally:
        grid.method_catalog.cache_clear()


def test_relative_costs_are_the_traits():
    from lnm.progress import RELATIVE_COST

    assert RELATIVE_COST == {
        m: i.relative_cost for m, i in grid.method_catalog().items() if i.relative_cost
    }
    assert RELATIVE_COST["ce"] == 1.0 and RELATIVE_COST["dividemix"] == 5.1
    assert np.isclose(RELATIVE_COST["disc"], 2.6)


def test_compile_bench_starts_each_method_in_its_main_phase():
    """The compile benchmark's settings come from the traits (as the hand-written table of
    LNMBench's methods had them)."""
    cb = benchmark("compile_bench")
    table = {
        "coteaching": {"num_gradual": 1},
        "coteaching_plus": {"num_gradual": 1, "init_epoch": 1},
        "codis": {"num_gradual": 1},
        "jocor": {"num_gradual": 1},
        "cdr": {"num_gradual": 1},
        "dividemix": {"warmup_epochs": 0},
        "disc": {"start_epoch": 1},
        "trevision": {"estimation_epochs": 1},
    }
    for m in ("ce", "volminnet", "sce", *table):
        assert cb.main_phase(m) == table.get(m, {}), m
