"""Evaluation views (LNMBench's scoring of two-network methods) and the precision switch, on a
two-network lookup model whose networks return fixed logits per sample."""

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from lnm import grid
from lnm.config import load_config, run_spec
from lnm.methods import get_method
from lnm.methods.base import Method
from lnm.train.trainer import evaluate, probs_file_arrays
from tests.conftest import tiny_spec

# Six samples, three classes. Predictions (argmax) per sample:
#   sample  label   net0      net1          logit sum       softmax mean
#   0       0       0 ok      1             [2,1,0] 0 ok    0 ok (.50 vs .34)
#   1       1       1 ok      1 ok          1 ok            1 ok
#   2       2       0         2 ok          [1,0,5] 2 ok    2 ok
#   3       0       0 ok      1             [4,4.5,4.4] 1   0 ok (.48 vs .27)
#   4, 5    1       0         1 ok          1 ok            0
NET0 = [[2, 0, 0], [0, 3, 0], [1, 0, 0], [4, 0, 0], [4, 0, 0], [4, 0, 0]]
NET1 = [[0, 1, 0], [0, 1, 0], [0, 0, 5], [0, 4.5, 4.4], [0, 4.5, 4.4], [0, 4.5, 4.4]]
LABELS = [0, 1, 2, 0, 1, 1]
ACC = {
    "net0": 100 * 3 / 6,
    "net1": 100 * 4 / 6,
    "mean_of_accuracies": 100 * (3 / 6 + 4 / 6) / 2,
    "logit_sum": 100 * 5 / 6,
    "softmax_mean": 100 * 4 / 6,
}


class LookupNet(nn.Module):
    """Returns a fixed row of logits for each sample index (the input holds the indices)."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", torch.tensor(table, dtype=torch.float32))

    def forward(self, x):
        return self.table[x.long()]


class LookupData:
    """The part of DeviceData that evaluation uses: index batches (in chunks of 4, so the
    outputs are put together from several batches), the labels and whether the val split has
    clean ones."""

    val_has_clean = True

    def __init__(self, labels, val_clean):
        y = torch.tensor(labels)
        self.labels = {"val": y, "val_clean": torch.tensor(val_clean), "test": y}

    def eval_batches(self, split):
        yield from torch.arange(len(self.labels["test"])).split(4)


class Lookup(Method):
    num_nets = 2

    def build_optimizers(self):
        return []


def lookup(view="softmax_mean", tables=(NET0, NET1), labels=LABELS, val_clean=None, **spec):
    rows = iter(tables)
    cls = type("LookupN", (Lookup,), {"num_nets": len(tables)})
    return cls(
        tiny_spec(eval_view=view, **spec),
        lambda: LookupNet(next(rows)),
        3,
        torch.device("cpu"),
        LookupData(labels, labels if val_clean is None else val_clean),
    )


def ev(view="softmax_mean", **kw):
    """evaluate() of a lookup model with ``view``: (row, test outputs)."""
    m = lookup(view, **kw)
    return evaluate(m, m.data)


def softmax(z):
    e = np.exp(np.asarray(z, dtype=np.float64))
    return e / e.sum(-1, keepdims=True)


def nll(probs, y):
    return float(-np.mean(np.log(np.asarray(probs)[np.arange(len(y)), y])))


@pytest.mark.parametrize("view", grid.EVAL_VIEWS)
def test_views_differ_where_they_should_and_match_hand_computed_accuracies(view):
    row, _ = ev(view)
    assert row["test_acc"] == pytest.approx(ACC[view])  # the headline follows the view
    for v in grid.EVAL_VIEWS:  # every view is recorded, whichever is the headline
        assert row[f"test_acc_{v}"] == pytest.approx(ACC[v])
    assert row["test_acc_net0"] == pytest.approx(ACC["net0"])
    assert row["test_acc_net1"] == pytest.approx(ACC["net1"])
    assert row["val_acc"] == pytest.approx(ACC[view])  # val follows the view too


def test_val_accuracy_on_clean_labels_follows_the_view():
    clean = [0, 1, 2, 0, 0, 0]  # samples 4, 5 were noisy: clean label 0
    row, _ = ev("logit_sum", val_clean=clean)
    assert row["val_acc_clean"] == pytest.approx(100 * 3 / 6)  # logit sum: 0, 1, 2, 1, 1, 1
    row, _ = ev("softmax_mean", val_clean=clean)
    assert row["val_acc_clean"] == pytest.approx(100.0)  # softmax mean: 0, 1, 2, 0, 0, 0


def test_secondary_metrics_use_the_views_probabilities():
    y = np.array(LABELS)
    p0, p1 = softmax(NET0), softmax(NET1)
    # softmax_mean: the mean of the two softmaxes
    row, _ = ev("softmax_mean")
    assert row["test_nll"] == pytest.approx(nll((p0 + p1) / 2, y))
    # logit_sum: the softmax of the summed logits
    row, _ = ev("logit_sum")
    assert row["test_nll"] == pytest.approx(nll(softmax(np.add(NET0, NET1)), y))
    # mean_of_accuracies: each metric per network, then their mean
    row, _ = ev("mean_of_accuracies")
    assert row["test_nll"] == pytest.approx((nll(p0, y) + nll(p1, y)) / 2)
    # per-class recall: net0 [100, 1/3, 0] %, net1 [0, 100, 100] %
    recall = [(100 + 0) / 2, (100 / 3 + 100) / 2, (0 + 100) / 2]
    assert np.allclose(json.loads(row["test_per_class_recall"]), recall, atol=1e-3)
    assert row["test_balanced_acc"] == pytest.approx(np.mean(recall))


def test_test_probs_arrays_store_the_headline_views_probabilities():
    y = np.array(LABELS)
    _, test = ev("logit_sum")
    arrays = probs_file_arrays("logit_sum", test, y)
    assert str(arrays["eval_view"]) == str(arrays["probs_view"]) == "logit_sum"
    np.testing.assert_allclose(arrays["probs"], softmax(np.add(NET0, NET1)), rtol=1e-6)
    np.testing.assert_array_equal(arrays["logits"], np.array([NET0, NET1], dtype=np.float32))
    assert arrays["probs_per_net"].shape == (2, 6, 3)
    # mean_of_accuracies has no single probability: probs = the softmax mean, named as such,
    # and the per-network probabilities it scores beside them
    arrays = probs_file_arrays("mean_of_accuracies", test, y)
    assert str(arrays["eval_view"]) == "mean_of_accuracies"
    assert str(arrays["probs_view"]) == "softmax_mean"
    p = np.stack([softmax(NET0), softmax(NET1)])
    np.testing.assert_allclose(arrays["probs"], p.mean(0), rtol=1e-6)
    np.testing.assert_allclose(arrays["probs_per_net"], p, rtol=1e-6)


@pytest.mark.parametrize("view", grid.EVAL_VIEWS)
def test_with_one_network_every_view_is_the_network(view):
    row, test = ev(view, tables=(NET0,))
    assert row["test_acc"] == pytest.approx(ACC["net0"])
    assert row["test_nll"] == pytest.approx(nll(softmax(NET0), np.array(LABELS)))
    assert not [k for k in row if k.startswith("test_acc_")]  # no per-view/per-net columns
    arrays = probs_file_arrays(view, test, np.array(LABELS))
    assert "probs_per_net" not in arrays and arrays["probs"].shape == (6, 3)


def test_methods_declare_lnmbenchs_views_and_the_catalog_reads_them():
    catalog = grid.method_catalog()
    want = {m: "mean_of_accuracies" for m in ("coteaching", "coteaching_plus", "codis", "jocor")}
    # the official tests of DivideMix, ProMix, Co-Correcting and ELR+ argmax the summed logits
    want.update(dict.fromkeys(("dividemix", "promix", "cocorrecting", "elr"), "logit_sum"))
    for name, info in catalog.items():
        assert info.eval_view == want.get(name, "softmax_mean"), name
        assert get_method(name).eval_view == info.eval_view
        if info.num_nets == 1 and name != "elr":  # ELR: two networks with plus: true (ELR+)
            assert info.eval_view == "softmax_mean"
    assert grid.eval_view_text("mean_of_accuracies") == "mean of the two networks' accuracies"
    assert "one network" in grid.eval_view_text("softmax_mean", num_nets=1)


def test_reference_protocol_uses_the_declared_view_harmonized_the_softmax_mean():
    harmonized = load_config(overrides={"protocol": "harmonized"})
    reference = load_config(overrides={"protocol": "reference"})
    cell = ("pathmnist", "symmetric", "0.2", "0")
    for method, view in (
        ("coteaching", "mean_of_accuracies"),
        ("jocor", "mean_of_accuracies"),
        ("dividemix", "logit_sum"),
        ("ce", "softmax_mean"),
    ):
        assert run_spec(reference, *cell, method, "resnet50", "0").eval_view == view
        assert run_spec(harmonized, *cell, method, "resnet50", "0").eval_view == "softmax_mean"


def test_precision_is_configured_part_of_the_identity_and_fp32_on_cpus():
    cfg = load_config()
    args = ("pathmnist", "symmetric", "0.2", "0", "ce", "resnet50", "0")
    bf16 = run_spec(cfg, *args)
    fp32 = run_spec(load_config(overrides={"train": {"precision": "fp32"}}), *args)
    assert (bf16.precision, fp32.precision) == ("bf16", "fp32")
    assert bf16.digest() != fp32.digest()
    with pytest.raises(ValueError, match="precision 'fp16' is not allowed"):
        tiny_spec(precision="fp16")
    with pytest.raises(ValueError, match="eval_view 'vote' is not allowed"):
        tiny_spec(eval_view="vote")
    # CPUs always compute in fp32; bf16 autocast only on CUDA with precision bf16
    cpu = lookup(precision="bf16")
    assert cpu.precision == "fp32" and not isinstance(cpu.autocast(), torch.autocast)
    for precision, autocast in (("bf16", True), ("fp32", False)):
        m = lookup(precision=precision)
        m.device = torch.device("cuda")  # no CUDA needed: only the decision is checked
        assert m.precision == precision
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns when CUDA is absent
            assert isinstance(m.autocast(), torch.autocast) == autocast
