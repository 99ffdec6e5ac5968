"""The Co-teaching family: Co-teaching, Co-teaching+, CoDis, JoCoR (lnm/methods/_selection.py).

Most tests use "lookup" networks whose logits for training sample j are row j of a weight
matrix (the input is the one-hot of the sample's global index), so the logits are set by hand and
the rows that changed after one SGD step are exactly the samples a network was trained on.
"""

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from lnm.methods import REGISTRY, get_method
from lnm.methods._selection import (
    cross_small_loss,
    forget_rate_schedule,
    num_keep,
    per_sample_ce,
    small_loss_mask,
)
from lnm.methods.codis import codis_scores, discrepancy, js_divergence, official_discrepancy
from lnm.methods.jocor import jocor_loss, jocor_select
from lnm.train.data import Batch
from tests.conftest import tiny_spec

N, C = 10, 3
FAMILY = ("coteaching", "coteaching_plus", "codis", "jocor")


class Lookup(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(N, C))

    def forward(self, x):
        return x @ self.w


def make(name, w0, w1, epochs=50, optimizer=None, **params):
    spec = tiny_spec(
        dataset="t",
        size=8,
        noise="symmetric",
        rate=0.4,
        noise_seed=0,
        method=name,
        backbone="lookup",
        seed=0,
        epochs=epochs,
        optimizer=optimizer or {"name": "sgd", "lr": 0.1},
        method_params=params,
    )
    m = get_method(name)(
        spec,
        Lookup,
        C,
        torch.device("cpu"),
        SimpleNamespace(num_train=N, batches_per_epoch=lambda: 1),
    )
    with torch.no_grad():
        m.nets[0].w.copy_(torch.as_tensor(w0, dtype=torch.float32))
        m.nets[1].w.copy_(torch.as_tensor(w1, dtype=torch.float32))
    return m


def batch(y, order=(3, 7, 0, 9, 1, 5, 2, 8, 4, 6)):
    """All N samples in one batch, in a shuffled order (global index 0 is not at position 0)."""
    idx = torch.tensor(order)
    return Batch(idx, torch.eye(N)[idx], torch.as_tensor(y)[idx], None, None, None)


def train(m, epoch, y):
    before = [net.w.detach().clone() for net in m.nets]
    diag = m.train_epoch(epoch, [batch(y)])
    trained = [
        set(np.flatnonzero((net.w.detach() - b).abs().sum(1).numpy() > 0))
        for net, b in zip(m.nets, before)
    ]
    return diag, trained


def as_set(mask):
    return set(np.flatnonzero(mask))


def ce_of_true_logit(a):
    """CE of label 0 for logits [a, 0, 0]."""
    return np.log(np.exp(a) + 2) - a


# --------------------------------------------------------------------------- shared pieces
def test_forget_rate_schedule_is_the_original_linspace():
    """The original ``rate_schedule``: ones(n_epoch)·τ with the first num_gradual entries
    replaced by linspace(0, τ**exponent, num_gradual) (τ reached at epoch num_gradual − 1)."""

    def original(tau, n_epoch, num_gradual, exponent=1.0):
        rs = np.ones(n_epoch) * tau
        rs[:num_gradual] = np.linspace(0, tau**exponent, num_gradual)
        return rs

    for tau, num_gradual, exponent in [
        (0.5, 10, 1.0),
        (0.4, 10, 1.0),
        (0.5, 4, 2.0),
        (0.8, 1, 1.0),
    ]:
        m = make(
            "coteaching",
            np.zeros((N, C)),
            np.zeros((N, C)),
            forget_rate=tau,
            num_gradual=num_gradual,
            exponent=exponent,
        )
        want = original(tau, 15, num_gradual, exponent)
        got = [m.forget_rate(e) for e in range(15)]
        assert got == want.tolist()  # element by element, bit for bit
        assert got == [forget_rate_schedule(tau, e, num_gradual, exponent) for e in range(15)]
    assert forget_rate_schedule(0.4, 9, 10) == pytest.approx(0.4)  # τ one epoch early
    assert forget_rate_schedule(0.4, 1, 10) == pytest.approx(0.4 / 9)  # not 0.4 / 10
    assert REGISTRY["coteaching"].defaults["num_gradual"] == 10
    # the configured ramp is used as it is, also in short runs (no hidden capping)
    m = make("coteaching", np.zeros((N, C)), np.zeros((N, C)), epochs=3, forget_rate=0.5)
    assert [m.forget_rate(e) for e in range(3)] == pytest.approx([0.0, 0.5 / 9, 1.0 / 9])


def test_num_keep_is_floor_and_robust_to_float_error():
    assert [num_keep(10, t) for t in (0.0, 0.2, 0.25, 0.7, 0.9, 1.0)] == [10, 8, 7, 3, 1, 0]
    assert num_keep(7, 0.5) == 3 and num_keep(128, 0.4) == 76


def test_small_loss_mask_respects_eligibility_and_index_zero():
    s = torch.tensor([0.5, 0.1, 0.3, 0.2, 0.9])
    assert small_loss_mask(s, 2).tolist() == [False, True, False, True, False]
    eligible = torch.tensor([True, False, True, False, True])
    assert small_loss_mask(s, 2, eligible).tolist() == [True, False, True, False, False]


def test_forget_rate_defaults_to_the_cells_noise_rate_and_is_recorded():
    m = make("codis", np.zeros((N, C)), np.zeros((N, C)))
    assert m.tau == 0.4 and m.assumed_noise_rate == 0.4 and m.uses_true_noise_rate is True
    m = make("jocor", np.zeros((N, C)), np.zeros((N, C)), forget_rate=0.25)
    assert m.tau == 0.25 and m.uses_true_noise_rate is False
    with pytest.raises(ValueError, match="forget_rate"):
        make("coteaching", np.zeros((N, C)), np.zeros((N, C)), forget_rate=1.0)


def test_methods_are_discovered_as_two_net_methods():
    for name in FAMILY:
        cls = REGISTRY[name]
        assert cls.num_nets == 2 and cls.defaults["forget_rate"] is None
        assert cls.defaults["num_gradual"] == 10 and cls.defaults["exponent"] == 1.0
    assert REGISTRY["coteaching_plus"].defaults["init_epoch"] == 5
    assert REGISTRY["codis"].defaults["co_lambda"] == 0.15
    assert REGISTRY["jocor"].defaults["co_lambda"] == 0.1


# --------------------------------------------------------------------------- Co-teaching
A0 = np.arange(N, dtype=float)  # net 0: CE smallest for samples 9, 8, 7, ...
A1 = A0[::-1].copy()  # net 1: CE smallest for samples 0, 1, 2, ...


def true_logit(a):
    w = np.zeros((N, C))
    w[:, 0] = a
    return w


def test_coteaching_trains_each_net_on_the_peers_small_loss_set():
    y = torch.zeros(N, dtype=torch.long)
    m = make("coteaching", true_logit(A0), true_logit(A1), forget_rate=0.4)
    diag, trained = train(m, 10, y)  # τ_10 = 0.4 -> keep ⌊0.6·10⌋ = 6
    assert diag["forget_rate"] == pytest.approx(0.4)
    assert as_set(diag["selected_net0"]) == {4, 5, 6, 7, 8, 9}  # net 0's own smallest
    assert as_set(diag["selected_net1"]) == {0, 1, 2, 3, 4, 5}
    assert trained[0] == {0, 1, 2, 3, 4, 5}  # net 0 learnt from net 1's choice
    assert trained[1] == {4, 5, 6, 7, 8, 9}
    assert diag["seen"].all()
    ce0, ce1 = ce_of_true_logit(A0), ce_of_true_logit(A1)
    want = (ce0[:6].mean() + ce1[4:].mean()) / 2
    assert diag["train_loss"] == pytest.approx(want, rel=1e-5)


def test_coteaching_kept_count_follows_the_schedule():
    y = torch.zeros(N, dtype=torch.long)
    # τ_e = 0.4·e/9 for e < 10: keep ⌊(1 − τ_e)·10⌋
    for epoch, tau_e, keep in [
        (0, 0.0, 10),
        (3, 0.4 / 3, 8),
        (5, 2 / 9, 7),
        (8, 3.2 / 9, 6),
        (25, 0.4, 6),
    ]:
        m = make("coteaching", true_logit(A0), true_logit(A1), forget_rate=0.4)
        diag, trained = train(m, epoch, y)
        assert diag["forget_rate"] == pytest.approx(tau_e)
        assert diag["selected_net0"].sum() == diag["selected_net1"].sum() == keep
        assert len(trained[0]) == len(trained[1]) == keep


def test_cross_small_loss_value_and_gradient():
    ce0 = torch.tensor([0.1, 0.9, 0.5, 0.3], requires_grad=True)
    ce1 = torch.tensor([0.8, 0.2, 0.4, 0.1], requires_grad=True)
    sel = cross_small_loss(ce0, ce1, 0.5)  # keep 2: net 0 keeps {0, 3}, net 1 keeps {1, 3}
    assert sel.masks["selected_net0"].tolist() == [True, False, False, True]
    assert sel.masks["selected_net1"].tolist() == [False, True, False, True]
    assert sel.parts[0].item() == pytest.approx((0.9 + 0.3) / 2)
    assert sel.parts[1].item() == pytest.approx((0.8 + 0.1) / 2)
    sel.loss.backward()
    assert ce0.grad.tolist() == [0, 0.5, 0, 0.5] and ce1.grad.tolist() == [0.5, 0, 0, 0.5]
    # ⌊(1 − 0.9)·4⌋ = 0: all four samples (the official loss_coteaching's fallback)
    sel = cross_small_loss(ce0, ce1, 0.9)
    assert sel.masks["selected_net0"].all() and sel.masks["selected_net1"].all()
    assert sel.parts[0].item() == pytest.approx(0.45) and sel.parts[1].item() == pytest.approx(
        0.375
    )
    # nothing eligible: no update
    none = cross_small_loss(ce0, ce1, 0.5, eligible=torch.zeros(4, dtype=torch.bool))
    assert none.loss is None and not none.masks["selected_net0"].any()


# --------------------------------------------------------------------------- Co-teaching+
AGREE = [1, 4, 6, 8, 9]  # both nets predict 0 with CE ≈ 0.013
DIS0 = {0: 3.0, 2: 1.0, 3: 2.5, 5: 0.5, 7: 2.0}  # net 0 predicts 0, logits [a, 0, 0]
DIS1 = {0: 0.1, 2: 0.2, 3: 3.0, 5: 0.3, 7: 2.0}  # net 1 predicts 1, logits [0, b, 0]


def disagreement_nets():
    w0, w1 = np.zeros((N, C)), np.zeros((N, C))
    w0[AGREE, 0] = w1[AGREE, 0] = 5.0
    for j, a in DIS0.items():
        w0[j, 0] = a
    for j, b in DIS1.items():
        w1[j, 1] = b
    return w0, w1


def test_coteaching_plus_uses_only_disagreement_samples_after_init_epoch():
    y = torch.zeros(N, dtype=torch.long)
    m = make("coteaching_plus", *disagreement_nets(), forget_rate=0.4)
    assert m.init_epoch == 5
    diag, trained = train(m, 10, y)  # |D| = 5, keep ⌊0.6·5⌋ = 3
    # net 0 keeps its 3 smallest CE in D (largest a): 0, 3, 7; net 1 (smallest b): 0, 2, 5
    assert as_set(diag["selected_net0"]) == {0, 3, 7}
    assert as_set(diag["selected_net1"]) == {0, 2, 5}
    assert trained[0] == {0, 2, 5} and trained[1] == {0, 3, 7}  # index 0 is used by both
    assert diag["disagreement"] == pytest.approx(50.0)
    ce0 = {j: ce_of_true_logit(a) for j, a in DIS0.items()}
    ce1 = {j: np.log(2 + np.exp(b)) for j, b in DIS1.items()}
    want = (np.mean([ce0[j] for j in (0, 2, 5)]) + np.mean([ce1[j] for j in (0, 3, 7)])) / 2
    assert diag["train_loss"] == pytest.approx(want, rel=1e-5)


def test_coteaching_plus_is_coteaching_before_init_epoch():
    y = torch.zeros(N, dtype=torch.long)
    m = make("coteaching_plus", *disagreement_nets(), forget_rate=0.4)
    diag, trained = train(m, 4, y)  # τ_4 = 0.4·4/9 = 0.18 -> keep 8 of all 10
    assert set(AGREE) <= as_set(diag["selected_net0"]) and diag["selected_net0"].sum() == 8
    assert len(trained[0]) == 8 and "disagreement" not in diag
    # the configured init_epoch is used as it is, also in short runs (no hidden capping)
    short = make("coteaching_plus", *disagreement_nets(), epochs=3, forget_rate=0.4)
    assert short.init_epoch == 5


def test_coteaching_plus_small_disagreement_set_trains_on_all_of_it_at_any_step():
    """|D| = 5, τ = 0.9: ⌊0.1·5⌋ = 0, so (official loss_coteaching) both nets learn from all of D,
    during the warm start and after it alike; the agreeing samples are never used."""
    y = torch.zeros(N, dtype=torch.long)
    dis = set(DIS0)
    for warm_steps in (0, 10**6):
        m = make("coteaching_plus", *disagreement_nets(), forget_rate=0.9, warm_steps=warm_steps)
        diag, trained = train(m, 20, y)  # τ_20 = 0.9
        assert diag["forget_rate"] == pytest.approx(0.9)
        assert trained == [dis, dis]
        assert as_set(diag["selected_net0"]) == as_set(diag["selected_net1"]) == dis
        ce0 = np.mean([ce_of_true_logit(a) for a in DIS0.values()])
        ce1 = np.mean([np.log(2 + np.exp(b)) for b in DIS1.values()])
        assert diag["train_loss"] == pytest.approx((ce0 + ce1) / 2, rel=1e-5)


def test_coteaching_plus_without_disagreement_warm_starts_then_steps_with_zero_loss():
    """As in the original code: full-batch CE for both nets while step < warm_steps, then a zero
    loss whose (zero) gradient still goes through optimizer.step()."""
    y = torch.zeros(N, dtype=torch.long)
    w = true_logit(A0)
    m = make("coteaching_plus", w, w, forget_rate=0.4, warm_steps=11)
    diag, trained = train(m, 10, y)  # one batch per epoch: global step 10 < 11
    assert trained == [set(range(N)), set(range(N))]
    assert diag["selected_net0"].all() and diag["disagreement"] == 0.0
    for empty_step in (True, False):
        m = make("coteaching_plus", w, w, forget_rate=0.4, warm_steps=10, empty_step=empty_step)
        diag, trained = train(m, 10, y)  # step 10 is past the warm start; plain SGD: no move
        assert trained == [set(), set()]
        assert not diag["selected_net0"].any() and not diag["selected_net1"].any()
        assert diag["seen"].all() and diag["disagreement"] == 0.0
        assert diag["train_loss"] == 0.0 if empty_step else math.isnan(diag["train_loss"])
    # with momentum the zero-loss step still moves the weights (the original calls step())
    moved = {}
    for empty_step in (True, False):
        m = make(
            "coteaching_plus",
            w,
            w,
            optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
            forget_rate=0.4,
            warm_steps=11,
            empty_step=empty_step,
        )
        train(m, 10, y)  # warm start: a real step fills the momentum buffer
        _, trained = train(m, 11, y)  # step 11: no disagreement, past the warm start
        moved[empty_step] = trained
    assert moved[True] == [set(range(N)), set(range(N))] and moved[False] == [set(), set()]


# ------------------------------------------------------- Co-teaching+ against the official update
def test_num_keep_truncated_is_the_official_int_of_the_float_product():
    """keep_count truncated = the official `int(remember_rate * len(loss))`: (1 − 0.9)·10 is
    0.999…, so 0 are kept (and all of D is used); the rounded rule keeps 1. Over the reference
    schedules (τ 0.2/0.5/0.8/0.9, epochs 0-49, |D| 1-128) 104 pairs differ, all at τ 0.8, 0.9."""
    assert num_keep(10, 0.9, "truncated") == 0 and num_keep(10, 0.9) == 1
    assert num_keep(5, 0.8, "truncated") == 0 and num_keep(5, 0.8) == 1
    assert num_keep(7, 0.4, "truncated") == num_keep(7, 0.4) == 4
    differ = set()
    for tau in (0.2, 0.5, 0.8, 0.9):
        for e in range(50):
            t = forget_rate_schedule(tau, e, 10)
            for n in range(1, 129):
                assert num_keep(n, t, "truncated") == int((1 - t) * n)
                if num_keep(n, t, "truncated") != num_keep(n, t):
                    differ.add((tau, t, n))
    assert len(differ) == 104 and {d[0] for d in differ} == {0.8, 0.9}
    with pytest.raises(ValueError, match="allowed: rounded, truncated"):
        num_keep(10, 0.5, "round")


def official_coteaching_plus(z0, z1, y, tau, step, warm_steps=5000, fixes=()):
    """The two losses of the official ``loss_coteaching_plus`` (xingruiyu/coteaching_plus
    ``loss.py``; LNMBench's copy computes the same), transcribed from reading it, in float64.
    ``fixes`` applies our documented bug fixes: ``logits`` (CE of the logits, not of the softmax
    outputs), ``mean`` (no second division by the number kept). The index-0 filter of the
    original (``ind * mask != 0``) is not transcribed: the cases keep global index 0 out of D."""
    b = len(y)
    pred0, pred1 = z0.argmax(1), z1.argmax(1)
    dis = [i for i in range(b) if pred0[i] != pred1[i]]  # disagree_id, in batch order
    if "logits" in fixes:
        out0, out1 = z0, z1
    else:  # outputs = F.softmax(logits): the CE below sees probabilities
        out0, out1 = torch.softmax(z0, 1), torch.softmax(z1, 1)

    def ce(out, t):  # F.cross_entropy of `out` taken as logits, per sample
        return -torch.log_softmax(out, 1)[torch.arange(len(t)), t]

    if dis:  # loss_coteaching on the disagreement subset
        o0, o1, t = out0[dis], out1[dis], y[dis]
        l0, l1 = ce(o0, t).detach().numpy(), ce(o1, t).detach().numpy()
        s0, s1 = np.argsort(l0, kind="stable"), np.argsort(l1, kind="stable")
        num_remember = int((1 - tau) * len(dis))
        u0, u1 = s0[:num_remember], s1[:num_remember]
        if len(u0) == 0:
            u0, u1, num_remember = s0, s1, len(dis)
        loss0, loss1 = ce(o0[u1], t[u1]).mean(), ce(o1[u0], t[u0]).mean()
        if "mean" not in fixes:
            loss0, loss1 = loss0 / num_remember, loss1 / num_remember
        return loss0, loss1
    update = torch.full((b,), float(step < warm_steps), dtype=torch.float64)
    return (update * ce(out0, y).mean()).sum() / b, (update * ce(out1, y).mean()).sum() / b


def plus_case(n_dis, n=12, c=3, seed=0):
    """Random lookup logits for ``n`` samples whose last ``n_dis`` (never global index 0) the two
    nets disagree on, and random labels."""
    g = np.random.default_rng(seed)
    w0, w1 = g.normal(size=(n, c)), g.normal(size=(n, c))
    y = g.integers(0, c, n)
    for j in range(n):
        a = int(g.integers(c))
        bb = (a + 1 + int(g.integers(c - 1))) % c if j >= n - n_dis else a
        w0[j, a] += 4.0
        w1[j, bb] += 4.0
    assert ((w0.argmax(1) != w1.argmax(1)) == (np.arange(n) >= n - n_dis)).all()
    return w0, w1, y


def plus_step(w0, w1, y, order, params, epoch=20, batches_per_epoch=3, lr=0.1, optimizer=None):
    """Our Co-teaching+ after one step (plain SGD unless ``optimizer``) on one batch, the first
    of its epoch."""
    n, c = w0.shape

    class Table(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(n, c))

        def forward(self, x):
            return x @ self.w

    spec = tiny_spec(
        dataset="t", size=8, noise="symmetric", rate=0.4, noise_seed=0, method="coteaching_plus",
        backbone="lookup", seed=0, epochs=50, optimizer=optimizer or {"name": "sgd", "lr": lr},
        method_params=params,
    )  # fmt: skip
    data = SimpleNamespace(num_train=n, batches_per_epoch=lambda: batches_per_epoch)
    m = get_method("coteaching_plus")(spec, Table, c, torch.device("cpu"), data)
    with torch.no_grad():
        m.nets[0].w.copy_(torch.as_tensor(w0, dtype=torch.float32))
        m.nets[1].w.copy_(torch.as_tensor(w1, dtype=torch.float32))
    idx = torch.tensor(order)
    b = Batch(idx, torch.eye(n)[idx], torch.as_tensor(y)[idx], None, None, None)
    m.train_epoch(epoch, [b])
    return [net.w.detach().double().numpy() for net in m.nets]


def official_step(w0, w1, y, order, tau, step, warm_steps=5000, fixes=(), lr=0.1, before=False):
    """One SGD step of each net on its own official loss (float64)."""
    r0, r1 = (torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in (w0, w1))
    idx = torch.tensor(order)
    yb = torch.as_tensor(y)[idx]
    if before:  # loss_coteaching(logits1, logits2, ...) on the whole batch
        loss0, loss1 = official_coteaching_whole(r0[idx], r1[idx], yb, tau, fixes)
    else:
        loss0, loss1 = official_coteaching_plus(r0[idx], r1[idx], yb, tau, step, warm_steps, fixes)
    (loss0 + loss1).backward()  # each loss depends on its own net only
    return [(r - lr * r.grad).detach().numpy() for r in (r0, r1)]


def official_coteaching_whole(z0, z1, y, tau, fixes):
    """``loss_coteaching`` on all B samples: every sample is in the subset it is given."""

    def ce(out, t):
        return -torch.log_softmax(out, 1)[torch.arange(len(t)), t]

    l0, l1 = ce(z0, y).detach().numpy(), ce(z1, y).detach().numpy()
    s0, s1 = np.argsort(l0, kind="stable"), np.argsort(l1, kind="stable")
    num_remember = int((1 - tau) * len(y))
    u0, u1 = s0[:num_remember], s1[:num_remember]
    if len(u0) == 0:
        u0, u1, num_remember = s0, s1, len(y)
    loss0, loss1 = ce(z0[u1], y[u1]).mean(), ce(z1[u0], y[u0]).mean()
    if "mean" not in fixes:
        loss0, loss1 = loss0 / num_remember, loss1 / num_remember
    return loss0, loss1


ORDER12 = (5, 11, 0, 7, 2, 9, 4, 10, 1, 8, 3, 6)
ORIGINAL = {
    "keep_count": "truncated",
    "ce_input": "softmax",
    "divide_by_kept": True,
    "step_count": "epoch_times_batch",
}
#: (name, disagreeing samples, forget rate, epoch, warm_steps): τ_e = τ from epoch 9 on
PLUS_CASES = [
    ("|D| = 10, tau 0.9: keep 0 -> all of D", 10, 0.9, 20, 5000),
    ("|D| = 5, tau 0.8: keep 0 -> all of D", 5, 0.8, 20, 5000),
    ("|D| = 7, tau 0.4: keep 4", 7, 0.4, 20, 5000),
    ("|D| = 1, tau 0.5: keep 0 -> the one sample", 1, 0.5, 20, 5000),
    ("D empty, warm start: full-batch CE", 0, 0.4, 20, 5000),
    ("D empty past warm_steps 30 (global step 60, official step 0)", 0, 0.4, 20, 30),
    ("before init_epoch: loss_coteaching on all 12, tau_2", 4, 0.9, 2, 5000),
]


@pytest.mark.parametrize("case", PLUS_CASES, ids=[c[0] for c in PLUS_CASES])
def test_coteaching_plus_reference_step_equals_the_official_update(case):
    """Under presets/reference.yaml (keep_count truncated) one step of Co-teaching+ equals the
    official update with our documented bug fixes (CE of the logits, plain mean, true global
    step); with every switch set to its original value it equals the official update itself."""
    _, n_dis, tau, epoch, warm = case
    w0, w1, y = plus_case(n_dis)
    before = epoch < 5
    tau_e = forget_rate_schedule(tau, epoch, 10)
    base = {"forget_rate": tau, "warm_steps": warm}
    got = plus_step(w0, w1, y, ORDER12, {**base, "keep_count": "truncated"}, epoch)
    global_step = epoch * 3  # the batch is the first of its epoch, 3 batches per epoch
    want = official_step(
        w0, w1, y, ORDER12, tau_e, global_step, warm, ("logits", "mean"), before=before
    )
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, rtol=0, atol=2e-6)
    got = plus_step(w0, w1, y, ORDER12, {**base, **ORIGINAL}, epoch)
    want = official_step(w0, w1, y, ORDER12, tau_e, epoch * 0, warm, (), before=before)
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, rtol=0, atol=2e-6)
    moved = [np.abs(g_ - w).sum() for g_, w in zip(got, (w0, w1))]
    assert all(mv > 0 for mv in moved)  # every case updates both nets (original step)


@pytest.mark.parametrize(
    "switch, n_dis, tau, warm",
    [
        ({"keep_count": "truncated"}, 10, 0.9, 5000),
        ({"ce_input": "softmax"}, 7, 0.4, 5000),
        ({"divide_by_kept": True}, 7, 0.4, 5000),
        ({"step_count": "epoch_times_batch"}, 0, 0.4, 30),
    ],
)
def test_each_coteaching_plus_switch_changes_the_update(switch, n_dis, tau, warm):
    w0, w1, y = plus_case(n_dis)
    base = {"forget_rate": tau, "warm_steps": warm}
    default = plus_step(w0, w1, y, ORDER12, base)
    flipped = plus_step(w0, w1, y, ORDER12, {**base, **switch})
    assert max(np.abs(a - b).max() for a, b in zip(default, flipped)) > 1e-4


def test_coteaching_plus_keep_count_is_truncated_only_under_the_reference_preset():
    from lnm.config import load_config, run_spec
    from tests.conftest import REPO

    ref = load_config(REPO / "presets" / "reference.yaml")
    harm = load_config(REPO / "presets" / "demo.yaml")
    spec = lambda cfg: run_spec(
        cfg, "breastmnist", "symmetric", "0.2", "0", "coteaching_plus", "resnet8", "0"
    )
    assert spec(ref).method_params["keep_count"] == "truncated"
    assert spec(harm).method_params["keep_count"] == "rounded"
    for key, value in ORIGINAL.items():
        if key != "keep_count":  # bug fixes in both protocols
            assert spec(ref).method_params[key] != value


# --------------------------------------------------------------------------- CoDis
def np_js(p, q):
    """Textbook Jensen–Shannon divergence ½[KL(p‖m) + KL(q‖m)]."""
    m = (p + q) / 2
    return 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)


def np_official(p, q):
    """What the official js_loss_compute computes: ½[KL(m‖p) + KL(m‖q)]."""
    m = (p + q) / 2
    return 0.5 * (m * np.log(m / p)).sum(-1) + 0.5 * (m * np.log(m / q)).sum(-1)


NP_DISCREPANCY = {"official": np_official, "js": np_js}


def test_js_divergence_hand_computed():
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.2, 0.7])
    # m = [0.4, 0.2, 0.4]: KL(p‖m) = KL(q‖m) = 0.7 ln(7/4) + 0.1 ln(1/4)
    want = 0.7 * math.log(7 / 4) + 0.1 * math.log(1 / 4)
    assert want == pytest.approx(np_js(p, q))
    z = torch.log(torch.tensor(np.stack([p, q]), dtype=torch.float32))
    got = js_divergence(z[:1] + 3.0, z[1:] - 1.0)  # logits up to a constant
    assert got.item() == pytest.approx(want, rel=1e-5)
    assert js_divergence(z, z).abs().max() < 1e-6


def test_codis_official_discrepancy_is_kl_from_the_mixture_hand_computed():
    # p = (.98, .01, .01), q = (.01, .98, .01): m = (.495, .495, .01), and
    # KL(m‖p) = KL(m‖q) = .495 ln(.495/.98) + .495 ln(.495/.01) + .01 ln(.01/.01) ≈ 1.593
    p, q = np.array([0.98, 0.01, 0.01]), np.array([0.01, 0.98, 0.01])
    want = 0.495 * math.log(0.495 / 0.98) + 0.495 * math.log(0.495 / 0.01)
    assert want == pytest.approx(1.593, abs=1e-3) and np_official(p, q) == pytest.approx(want)
    textbook = 0.98 * math.log(0.98 / 0.495) + 0.01 * math.log(0.01 / 0.495)  # KL(p‖m) = KL(q‖m)
    assert textbook == pytest.approx(0.630, abs=1e-3) and np_js(p, q) == pytest.approx(textbook)
    z = torch.log(torch.tensor(np.stack([p, q]), dtype=torch.float64))
    zp, zq = z[:1] + 2.0, z[1:] - 0.5  # logits up to a constant
    assert official_discrepancy(zp, zq).item() == pytest.approx(want, rel=1e-9)
    assert discrepancy(zp, zq, "official").item() == pytest.approx(want, rel=1e-9)
    assert discrepancy(zp, zq, "js").item() == pytest.approx(textbook, rel=1e-9)
    # exactly the official call: F.kl_div(log p, m) element-wise, summed over classes, halved
    import torch.nn.functional as F

    lp, lq = torch.log_softmax(zp, 1), torch.log_softmax(zq, 1)
    m = (lp.exp() + lq.exp()) / 2
    official = (F.kl_div(lp, m, reduction="none") + F.kl_div(lq, m, reduction="none")) / 2
    assert official.sum(1).item() == pytest.approx(want, rel=1e-9)
    # a second, asymmetric pair, against the numpy formula
    a, b = np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.2, 0.6])
    za, zb = (torch.log(torch.tensor(v[None], dtype=torch.float64)) for v in (a, b))
    assert official_discrepancy(za, zb).item() == pytest.approx(np_official(a, b), rel=1e-9)
    assert official_discrepancy(za, za).abs().item() < 1e-12
    assert REGISTRY["codis"].defaults["discrepancy"] == "official"
    with pytest.raises(ValueError, match="allowed: official, js"):
        discrepancy(za, zb, "kl")


# four samples, label 0; sample 1 has a slightly larger CE than sample 0 but a large discrepancy
P0 = np.array([[0.6, 0.2, 0.2], [0.59, 0.40, 0.01], [0.2, 0.4, 0.4], [0.9, 0.05, 0.05]])
P1 = np.array([[0.6, 0.2, 0.2], [0.59, 0.01, 0.40], [0.2, 0.4, 0.4], [0.9, 0.05, 0.05]])


@pytest.mark.parametrize("kind", ["official", "js"])
def test_codis_score_subtracts_lambda_discrepancy_and_changes_the_selection(kind):
    z0 = torch.tensor(np.log(P0), dtype=torch.float32, requires_grad=True)
    z1 = torch.tensor(np.log(P1), dtype=torch.float32, requires_grad=True)
    y = torch.zeros(4, dtype=torch.long)
    l0, l1 = codis_scores(z0, z1, y, 0.15, kind)
    ce, d = -np.log(P0[:, 0]), NP_DISCREPANCY[kind](P0, P1)
    want = ce - 0.15 * d
    np.testing.assert_allclose(l0.detach().numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(l1.detach().numpy(), -np.log(P1[:, 0]) - 0.15 * d, rtol=1e-5)
    sel = cross_small_loss(l0, l1, 0.5)
    assert as_set(sel.masks["selected_net0"]) == as_set(sel.masks["selected_net1"]) == {1, 3}
    # by CE alone sample 0 would have been kept instead of sample 1
    assert as_set(small_loss_mask(per_sample_ce(z0, y), 2)) == {0, 3}
    assert sel.parts[0].item() == pytest.approx(want[[1, 3]].mean(), rel=1e-5)
    # the discrepancy is not detached: net 0's gradient includes -λ·∂D/∂z0 (p1 held fixed)
    sel.parts[0].backward()
    z0r = torch.tensor(np.log(P0), dtype=torch.float64, requires_grad=True)
    p0, p1 = torch.softmax(z0r, 1), torch.tensor(P1)
    m = (p0 + p1) / 2
    if kind == "js":
        dr = 0.5 * ((p0 * (p0 / m).log()).sum(1) + (p1 * (p1 / m).log()).sum(1))
    else:
        dr = 0.5 * ((m * (m / p0).log()).sum(1) + (m * (m / p1).log()).sum(1))
    ref = -torch.log(p0[:, 0]) - 0.15 * dr
    ref[[1, 3]].mean().backward()
    np.testing.assert_allclose(z0.grad.numpy(), z0r.grad.numpy(), atol=1e-6)
    assert z0.grad[1].abs().sum() > 0 and z1.grad is None  # net 0's loss does not move net 1


def test_codis_with_identical_networks_is_coteaching():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 5, generator=g) * 2
    y = torch.randint(0, 5, (16,), generator=g)
    za, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
    codis = cross_small_loss(*codis_scores(za, za, y, 0.15), 0.3)
    cot = cross_small_loss(per_sample_ce(zb, y), per_sample_ce(zb, y), 0.3)
    for k in ("selected_net0", "selected_net1"):  # τ = 0.3: keep ⌊0.7·16⌋ = 11
        assert codis.masks[k].tolist() == cot.masks[k].tolist() and codis.masks[k].sum() == 11
    for a, b in zip(codis.parts, cot.parts):
        assert a.item() == pytest.approx(b.item(), abs=1e-6)
    codis.loss.backward()
    cot.loss.backward()
    np.testing.assert_allclose(za.grad.numpy(), zb.grad.numpy(), atol=1e-6)


@pytest.mark.parametrize("name", ["coteaching", "codis"])
def test_cross_update_wiring_in_train_epoch(name):
    """Net k's parameters move exactly on the peer's kept set, for the method's own scores."""
    g = torch.Generator().manual_seed(1)
    w0, w1 = torch.randn(N, C, generator=g) * 2, torch.randn(N, C, generator=g) * 2
    y = torch.randint(0, C, (N,), generator=g)
    m = make(name, w0, w1, forget_rate=0.3)
    diag, trained = train(m, 20, y)
    p0, p1 = torch.softmax(w0.double(), 1).numpy(), torch.softmax(w1.double(), 1).numpy()
    lam = 0.15 if name == "codis" else 0.0
    s0 = -np.log(p0[np.arange(N), y]) - lam * np_official(p0, p1)
    s1 = -np.log(p1[np.arange(N), y]) - lam * np_official(p0, p1)
    own0, own1 = set(np.argsort(s0)[:7]), set(np.argsort(s1)[:7])
    assert own0 != own1
    assert as_set(diag["selected_net0"]) == own0 and as_set(diag["selected_net1"]) == own1
    assert trained[0] == own1 and trained[1] == own0


# --------------------------------------------------------------------------- JoCoR
def np_jocor(p0, p1, y, lam):
    ce = -np.log(p0[np.arange(len(y)), y]) - np.log(p1[np.arange(len(y)), y])
    kl = (p0 * np.log(p0 / p1)).sum(1) + (p1 * np.log(p1 / p0)).sum(1)
    return (1 - lam) * ce + lam * kl


def jocor_case():
    """Samples 0-3: both nets agree confidently on a wrong class (KL 0, CE large); samples 4-9:
    right class, the nets differ a little. Ranking by KL alone (the reference's batch-mean CE
    bug) would keep 0-3; the per-sample joint loss keeps 4-9."""
    w0, w1 = np.zeros((N, C)), np.zeros((N, C))
    w0[:4, 1] = w1[:4, 1] = 4.0
    w0[4:, 0] = 3.0 + 0.1 * np.arange(6)
    w1[4:, 0] = 2.0
    w1[4:, 2] = 0.5 + 0.1 * np.arange(6)
    return w0, w1


def test_jocor_ranks_by_the_per_sample_joint_loss():
    w0, w1 = jocor_case()
    y = torch.zeros(N, dtype=torch.long)
    z0 = torch.tensor(w0, dtype=torch.float32, requires_grad=True)
    z1 = torch.tensor(w1, dtype=torch.float32, requires_grad=True)
    p0, p1 = (torch.softmax(torch.tensor(w), 1).numpy() for w in (w0, w1))
    want = np_jocor(p0, p1, np.zeros(N, dtype=int), 0.1)
    np.testing.assert_allclose(jocor_loss(z0, z1, y, 0.1).detach().numpy(), want, rtol=1e-5)
    sel = jocor_select(z0, z1, y, 0.4, 0.1)
    assert as_set(sel.masks["selected"]) == set(range(4, 10)) == set(np.argsort(want)[:6])
    kl = want - 0.9 * (-np.log(p0[:, 0]) - np.log(p1[:, 0]))
    assert set(np.argsort(kl, kind="stable")[:6]) != set(range(4, 10))  # KL-only would differ
    assert sel.loss.item() == pytest.approx(want[4:].mean(), rel=1e-5)
    # neither KL term is detached: gradients match the full formula in float64
    sel.loss.backward()
    r0 = torch.tensor(w0, requires_grad=True)
    r1 = torch.tensor(w1, requires_grad=True)
    q0, q1 = torch.softmax(r0, 1), torch.softmax(r1, 1)
    full = 0.9 * (-q0[:, 0].log() - q1[:, 0].log()) + 0.1 * (
        (q0 * (q0 / q1).log()).sum(1) + (q1 * (q1 / q0).log()).sum(1)
    )
    full[4:].mean().backward()
    np.testing.assert_allclose(z0.grad.numpy(), r0.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(z1.grad.numpy(), r1.grad.numpy(), atol=1e-6)


def test_jocor_one_optimiser_trains_both_nets_on_the_joint_selection():
    m = make("jocor", *jocor_case(), forget_rate=0.4)
    assert len(m.optimizers) == 1
    assert len(m.optimizers[0].param_groups[0]["params"]) == 2
    diag, trained = train(m, 10, torch.zeros(N, dtype=torch.long))
    assert as_set(diag["selected"]) == set(range(4, 10))
    assert trained[0] == trained[1] == set(range(4, 10))
    assert "selected_net0" not in diag


# --------------------------------------------------------------------------- resume
@pytest.mark.parametrize("name", FAMILY)
def test_state_dict_round_trip(name):
    g = torch.Generator().manual_seed(2)
    w0, w1 = torch.randn(N, C, generator=g), torch.randn(N, C, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    adam = {"name": "adam", "lr": 0.05}
    a = make(name, w0, w1, optimizer=adam, forget_rate=0.3)
    a.train_epoch(6, [batch(y)])
    state = copy.deepcopy(a.state_dict())
    b = make(name, torch.zeros(N, C), torch.zeros(N, C), optimizer=adam, forget_rate=0.3)
    b.load_state_dict(state)
    da, db = a.train_epoch(7, [batch(y)]), b.train_epoch(7, [batch(y)])
    for k in da:
        np.testing.assert_array_equal(da[k], db[k])
    for na, nb in zip(a.nets, b.nets):
        assert torch.equal(na.w, nb.w)
