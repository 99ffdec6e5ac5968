"""SCE, CDR, T-Revision, VolMinNet and the transition-matrix utilities they share.

Orientation everywhere: T[i, j] = P(noisy = j | clean = i); noisy posterior = p_clean @ T.
"""

import io
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lnm.methods import get_method
from lnm.methods._transition import (
    SigmoidTransition,
    anchor_transition,
    importance_weights,
    noisy_posterior,
    row_normalize,
)
from lnm.methods.cdr import keep_fraction, mask_noncritical_, prunable
from lnm.methods.sce import sce_loss
from lnm.methods.trevision import per_sample_revision, reweighted_ce, stage_lengths
from lnm.methods.volminnet import volmin_loss
from lnm.train.data import Batch
from tests.conftest import tiny_method, tiny_spec

CPU = torch.device("cpu")
# non-symmetric, diagonally dominant: using Tᵀ instead of T changes every derived quantity
T_ASYM = torch.tensor([[0.7, 0.2, 0.1], [0.05, 0.8, 0.15], [0.25, 0.05, 0.7]])


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny problems gain nothing from threads
    yield
    torch.set_num_threads(before)


def build(tmp_path, method, epochs=3, params=None, seed=0, optimizer=None):
    """A method on the tiny synthetic problem of conftest (symmetric 40% noise), plus its data."""
    return tiny_method(
        tmp_path, method, epochs, params, seed, **({"optimizer": optimizer} if optimizer else {})
    )


def run_epochs(m, data, epochs):
    out = []
    for e in epochs:
        m.start_epoch(e)
        out.append(m.train_epoch(e, data.epoch_batches(0, e)))
    return out


# ------------------------------------------------------------------------------------- SCE
def test_sce_is_alpha_ce_plus_beta_rce_with_log_1e4():
    # p = [1/4, 1/2, 1/4] with label 1 and p = [3/5, 1/5, 1/5] with label 2
    logits = torch.tensor([[0.0, math.log(2), 0.0], [math.log(3), 0.0, 0.0]])
    y = torch.tensor([1, 2])
    a = math.log(1e-4)
    ce = [math.log(2), math.log(5)]  # -log p_y
    rce = [-a * (1 - 1 / 2), -a * (1 - 1 / 5)]  # -A (1 - p_y) = 9.21 (1 - p_y)
    for alpha, beta in ((0.1, 1.0), (1.0, 0.0), (0.0, 1.0), (6.0, 0.1)):
        want = alpha * np.mean(ce) + beta * np.mean(rce)
        assert sce_loss(logits, y, alpha, beta).item() == pytest.approx(want, rel=1e-6)
    assert get_method("sce").defaults == {"alpha": 0.1, "beta": 1.0, "grad_clip": 5.0}


def test_sce_clamps_p_at_1e7():
    # a confidently right sample: p_k ≈ 4e-18 for k ≠ y, clamped up to 1e-7 each, so
    # RCE = −A·2e-7 instead of ≈ 0 (CE switched off with α = 0)
    logits = torch.tensor([[0.0, -40.0, -40.0]])
    got = sce_loss(logits, torch.tensor([0]), 0.0, 1.0).item()
    assert got == pytest.approx(-math.log(1e-4) * 2e-7, rel=1e-3)


# ------------------------------------------------------------------------------------- CDR
def test_cdr_keeps_gradient_of_top_fraction_only_in_conv_and_linear_weights():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=True),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3),
    )
    F.cross_entropy(net(torch.randn(8, 1, 8, 8)), torch.randint(0, 3, (8,))).backward()
    before = {n: p.grad.clone() for n, p in net.named_parameters()}
    weights = ["0.weight", "4.weight"]
    scores = torch.cat([(net.get_parameter(n) * before[n]).abs().flatten() for n in weights])
    keep = 0.3
    k = int(keep * scores.numel())
    kept = torch.zeros_like(scores, dtype=torch.bool)
    kept[scores.argsort(descending=True)[:k]] = True

    mask_noncritical_(prunable(net.parameters()), keep)
    after = torch.cat([net.get_parameter(n).grad.flatten() for n in weights])
    orig = torch.cat([before[n].flatten() for n in weights])
    assert torch.equal(after[kept], orig[kept])  # kept: unscaled (no "× clip")
    assert torch.all(after[~kept] == 0)  # the rest: no loss gradient
    assert int((after != 0).sum()) == k
    for n in ("0.bias", "1.weight", "1.bias", "4.bias"):  # BatchNorm and biases untouched
        assert torch.equal(net.get_parameter(n).grad, before[n])


def linear_method(method, d, c, params, optimizer, epochs=10):
    """A method whose network is a single ``nn.Linear(d, c)`` (weight 2-D, bias 1-D)."""
    spec = tiny_spec(
        dataset="synthetic",
        size=8,
        noise="symmetric",
        rate=0.4,
        noise_seed=0,
        method=method,
        backbone="resnet8",
        seed=0,
        epochs=epochs,
        batch_size=6,
        optimizer=optimizer,
        method_params=params,
    )
    torch.manual_seed(0)
    return get_method(method)(spec, lambda: nn.Linear(d, c), c, CPU, None)


@pytest.mark.parametrize("kept_scale", ["clip", "none"])
def test_cdr_update_is_the_official_rule_on_a_linear_network(kept_scale):
    """One SGD step (momentum 0.9, weight decay 1e-3, as CDR/main.py) against a hand-written
    update: scores |w·g| of the weight matrix (the bias is 1-D: untouched), k = ⌊clip·#weights⌋,
    mask = score ≥ k-th largest; the official gradient is mask·clip·g (kept_scale "clip"),
    ours was mask·g ("none"); then d = g' + wd·w, and the first momentum step is w − lr·d."""
    d, c, lr, wd, tau = 5, 3, 0.1, 1e-3, 0.4
    sgd = {"name": "sgd", "lr": lr, "momentum": 0.9, "weight_decay": wd}
    m = linear_method("cdr", d, c, {"num_gradual": 1, "kept_scale": kept_scale}, sgd)
    net = m.nets[0]
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, d, generator=g), torch.randint(0, c, (6,), generator=g)
    w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
    # the loss gradient, by hand: dCE/dz = (softmax(z) − onehot(y)) / B
    z = x @ w0.T + b0
    dz = (torch.softmax(z, 1) - F.one_hot(y, c).float()) / len(y)
    gw, gb = dz.T @ x, dz.sum(0)
    clip = 1 - tau  # num_gradual 1: the official constant clip = 1 − τ from epoch 0
    k = int(clip * gw.numel())  # 9 of 15
    thresh = (w0 * gw).abs().flatten().sort(descending=True).values[k - 1]
    mask = ((w0 * gw).abs() >= thresh).float()
    scale = clip if kept_scale == "clip" else 1.0
    want_w = w0 - lr * (mask * scale * gw + wd * w0)
    want_b = b0 - lr * (gb + wd * b0)
    m.start_epoch(0)
    diag = m.train_epoch(0, [Batch(torch.arange(6), x, y, None, None, None)])
    assert diag["keep_frac"] == pytest.approx(clip) and int(mask.sum()) == k
    torch.testing.assert_close(net.weight.detach(), want_w, rtol=0, atol=1e-7)
    torch.testing.assert_close(net.bias.detach(), want_b, rtol=0, atol=1e-7)
    other = w0 - lr * (mask * (1.0 if kept_scale == "clip" else clip) * gw + wd * w0)
    assert (net.weight.detach() - other).abs().max() > 1e-4  # the two rules differ
    assert get_method("cdr").defaults["kept_scale"] == "clip"


def test_cdr_keep_fraction_schedule():
    tau = 0.4
    assert keep_fraction(0, tau, 10) == 1.0
    assert keep_fraction(9, tau, 10) == pytest.approx(0.6)
    assert keep_fraction(4, tau, 10) == pytest.approx(1 - tau * 4 / 9)
    assert keep_fraction(30, tau, 10) == pytest.approx(0.6)
    # LNMBench's ramp: linspace(1 − τ, 1, num_gradual)[::-1][e], element by element
    ramp = np.linspace(1 - tau, 1, num=10)[::-1]
    assert [keep_fraction(e, tau, 10) for e in range(10)] == pytest.approx(ramp.tolist(), abs=1e-15)
    # the official code overwrites the ramp with 1 − τ: num_gradual 1
    assert [keep_fraction(e, tau, 1) for e in range(3)] == [pytest.approx(0.6)] * 3


def test_cdr_forwards_each_batch_once_and_zeroes_noncritical_updates(tmp_path):
    m, data = build(tmp_path, "cdr", epochs=3, params={"num_gradual": 2, "forget_rate": 0.5})
    bn = m.nets[0].stem[1]
    calls = []
    m.nets[0].register_forward_hook(lambda *a: calls.append(1))
    diag = run_epochs(m, data, [0, 1])
    per_epoch = data.batches_per_epoch()
    assert len(calls) == 2 * per_epoch  # the reference forwarded twice
    assert int(bn.num_batches_tracked) == 2 * per_epoch
    assert [d["keep_frac"] for d in diag] == [1.0, 0.5]
    assert m.assumed_noise_rate == 0.5 and m.uses_true_noise_rate is False


def test_cdr_step_moves_only_the_critical_weights(tmp_path):
    # plain SGD (no momentum, no weight decay): a non-critical weight must not move at all
    m, data = build(
        tmp_path,
        "cdr",
        epochs=3,
        params={"num_gradual": 2, "forget_rate": 0.6},
        optimizer={"name": "sgd", "lr": 0.05},
    )
    m.start_epoch(1)
    weights = [p for p in m.nets[0].parameters() if p.dim() in (2, 4)]
    before = [p.detach().clone() for p in weights]
    bn_before = m.nets[0].stem[1].weight.detach().clone()
    m.train_epoch(1, [next(data.epoch_batches(0, 1))])  # keep_frac 0.4, one step
    total = sum(p.numel() for p in weights)
    moved = sum(int((p != b).sum()) for p, b in zip(weights, before))
    assert 0.3 * total < moved <= int(0.4 * total)
    assert not torch.equal(m.nets[0].stem[1].weight, bn_before)  # BatchNorm trained as usual


# ------------------------------------------------------------------------------- T-Revision
def test_anchor_estimator_recovers_a_known_transition_matrix():
    """Clean posteriors: 10% near-one-hot anchors per class, p = (1 − δ) e_i + δ u with
    δ ≤ 0.02 and u a random distribution, the rest Dirichlet(1); the noisy posterior fed to the
    estimator is p @ T. If an anchor is picked, T̂_i − T_i = δ (u @ T − T_i), whose entries are
    bounded by δ·max|T_kj − T_ij| ≤ δ, hence the tolerance 0.02. A further 2% per class are
    over-confident outliers (noisy posterior exactly one-hot): the 97th-percentile filter must
    skip them (without it row i would be e_i)."""
    rng = np.random.default_rng(0)
    c, n_anchor, n_out, n_rest = 3, 300, 60, 2100
    clean, noisy_extra = [], []
    for i in range(c):
        delta = rng.uniform(0, 0.02, (n_anchor, 1))
        clean.append((1 - delta) * np.eye(c)[i] + delta * rng.dirichlet(np.ones(c), n_anchor))
        noisy_extra.append(np.tile(np.eye(c)[i], (n_out, 1)))
    clean.append(rng.dirichlet(np.ones(c), n_rest))
    t = T_ASYM.double().numpy()
    probs = np.concatenate([np.concatenate(clean) @ t] + noisy_extra)
    probs = torch.tensor(probs[rng.permutation(len(probs))], dtype=torch.float32)

    t_hat = anchor_transition(probs, 97.0).double().numpy()
    assert np.abs(t_hat - t).max() <= 0.02
    np.testing.assert_allclose(t_hat.sum(1), 1, atol=1e-6)
    unfiltered = anchor_transition(probs, 100.0).numpy()
    np.testing.assert_allclose(unfiltered, np.eye(c), atol=1e-6)  # the outliers, if not skipped


def test_anchor_estimator_row_normalises_and_reads_unmodified_columns():
    # unnormalised scores: row i of T̂ must be the anchor's vector divided by ITS OWN sum;
    # row 0 is the excluded maximum of column 0 and the anchor of class 1: an in-place
    # exclusion (the reference zeroed entries of the shared matrix) would hand class 1 [0, 6, 1]
    probs = torch.tensor(
        [
            [8.0, 6.0, 1.0],
            [6.0, 3.0, 1.0],  # class-0 anchor
            [1.0, 4.0, 2.0],
            [1.0, 9.0, 2.0],  # excluded maximum of column 1
            [2.0, 1.0, 9.0],  # excluded maximum of column 2
            [1.0, 2.0, 5.0],
        ]
    )  # class-2 anchor
    t_hat = anchor_transition(probs, 90.0)  # "higher" 90th percentile of 6 values: the maximum
    want = torch.stack([probs[1] / 10, probs[0] / 15, probs[5] / 8])
    torch.testing.assert_close(t_hat, want)


def test_importance_weights_use_p_times_t_not_its_transpose():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    y = torch.tensor([1, 0, 2])
    t = T_ASYM
    # β_i = p[i, y_i] / Σ_k p[i, k] T[k, y_i]
    want = torch.tensor(
        [
            0.2 / (0.7 * 0.2 + 0.2 * 0.8 + 0.1 * 0.05),
            0.1 / (0.1 * 0.7 + 0.3 * 0.05 + 0.6 * 0.25),
            0.3 / (0.2 * 0.1 + 0.5 * 0.15 + 0.3 * 0.7),
        ]
    )
    torch.testing.assert_close(importance_weights(p, y, t), want)
    torch.testing.assert_close(noisy_posterior(p, t).sum(1), torch.ones(3))
    wrong = importance_weights(p, y, t.T)
    assert (wrong - want).abs().min() > 0.05

    # the reweighted CE: mean β_i CE_i, β constant for the network
    logits = torch.log(p).requires_grad_()
    loss = reweighted_ce(logits, y, t)
    ce = -torch.log(p[torch.arange(3), y])
    assert loss.item() == pytest.approx((want * ce).mean().item(), rel=1e-6)
    loss.backward()
    ref = logits.detach().clone().requires_grad_()
    (want * F.cross_entropy(ref, y, reduction="none")).mean().backward()
    torch.testing.assert_close(logits.grad, ref.grad)


def test_revision_adds_delta_once_and_learns_it_through_beta():
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 1, 0])
    delta = (0.05 * torch.randn(3, 3)).requires_grad_()
    loss = reweighted_ce(logits, y, T_ASYM + delta)
    p = torch.softmax(logits, 1)
    t = (T_ASYM + delta).detach()  # the same T for every sample of the batch
    beta = torch.stack([p[i, y[i]] / (p[i] @ t[:, y[i]]) for i in range(5)])
    ce = F.cross_entropy(logits, y, reduction="none")
    assert loss.item() == pytest.approx((beta * ce).mean().item(), rel=1e-6)
    loss.backward()
    assert delta.grad is not None and delta.grad.abs().sum() > 0


def test_revision_gradient_reaches_the_network_through_beta():
    """The official reweighting_revision_loss does not detach β = p_ỹ / (p @ (T̂ + ΔT))_ỹ: the
    logits' gradient is that of mean_i β_i(z)·CE_i(z) as a whole (autograd in float64 on the
    formula), which differs from the β-constant gradient of the reweighting stage."""
    torch.manual_seed(1)
    logits = (2 * torch.randn(6, 3)).requires_grad_()
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    delta = (0.05 * torch.randn(3, 3)).requires_grad_()
    reweighted_ce(logits, y, T_ASYM + delta, beta_grad=True).backward()

    ref = logits.detach().double().requires_grad_()
    ref_delta = delta.detach().double().requires_grad_()
    p = torch.softmax(ref, 1)
    t = T_ASYM.double() + ref_delta
    beta = torch.stack([p[i, y[i]] / (p[i] @ t[:, y[i]]) for i in range(6)])  # not detached
    ce = -torch.log(p[torch.arange(6), y])
    (beta * ce).mean().backward()
    np.testing.assert_allclose(logits.grad.numpy(), ref.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(delta.grad.numpy(), ref_delta.grad.numpy(), rtol=1e-5, atol=1e-7)

    # β held constant (reweighting stage / revision_beta_grad false): a different gradient
    const = logits.detach().clone().requires_grad_()
    reweighted_ce(const, y, T_ASYM + delta.detach()).backward()
    assert (const.grad - logits.grad).abs().max() > 1e-3
    want = logits.detach().double().requires_grad_()
    (beta.detach() * F.cross_entropy(want, y, reduction="none")).mean().backward()
    np.testing.assert_allclose(const.grad.numpy(), want.grad.numpy(), rtol=1e-5, atol=1e-7)


def official_revision_loss(logits, t_hat, delta, y):
    """The official ``reweighting_revision_loss`` (xiaoboxia/T-Revision ``loss.py``; LNMBench's
    copy computes the same), transcribed from reading it: a loop over the samples in which
    ``T = T + correction`` rebinds T, so sample k sees T̂ + (k + 1)·ΔT; β is not detached."""
    p = torch.softmax(logits, 1)
    t = t_hat
    loss = 0.0
    for i in range(len(y)):
        t = t + delta
        beta = p[i, y[i]] / (p[i] @ t)[y[i]]  # (T.t() @ p_i)[ỹ_i] = Σ_j p_ij T[j, ỹ_i]
        loss = loss + beta * -torch.log_softmax(logits[i], 0)[y[i]]
    return loss / len(y)


def test_revision_delta_per_sample_is_the_official_loop_and_once_is_the_fix():
    """``revision_delta: per_sample`` reproduces the official loop's loss and gradients (logits
    and ΔT, float64); ``once`` (the default) is the same loop with T̂ + ΔT held fixed (the
    official ``_v2`` and the paper). On this 6-sample batch the two ΔT gradients differ by
    a factor of about (B + 1)/2."""
    torch.manual_seed(3)
    b = 6
    logits = (2 * torch.randn(b, 3, dtype=torch.float64)).requires_grad_()
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    delta = (0.02 * torch.randn(3, 3, dtype=torch.float64)).requires_grad_()
    t_hat = T_ASYM.double()
    want = official_revision_loss(logits, t_hat, delta, y)
    gz, gd = torch.autograd.grad(want, (logits, delta))
    got = reweighted_ce(logits, y, per_sample_revision(t_hat, delta, b), beta_grad=True)
    hz, hd = torch.autograd.grad(got, (logits, delta))
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    torch.testing.assert_close(hz, gz, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hd, gd, rtol=1e-10, atol=1e-12)
    per = per_sample_revision(t_hat, delta, b)
    for k in range(b):
        torch.testing.assert_close(per[k], t_hat + (k + 1) * delta)
    once = reweighted_ce(logits, y, t_hat + delta, beta_grad=True)
    od = torch.autograd.grad(once, delta)[0]
    ratio = (gd.abs().sum() / od.abs().sum()).item()
    assert 2.0 < ratio < 5.0  # ~ mean of k + 1 over the batch
    zero = torch.zeros_like(delta)  # at ΔT = 0 only the ΔT gradient differs
    a = reweighted_ce(logits, y, per_sample_revision(t_hat, zero, b), beta_grad=True)
    assert a.item() == pytest.approx(reweighted_ce(logits, y, t_hat, True).item(), rel=1e-12)


def test_trevision_revision_steps_equal_the_official_adam_updates():
    """Three revision steps of the method (linear network, T̂ and ΔT set by hand) equal the
    official steps: Adam (weight decay 1e-4) over the network and ΔT on the official loss
    (``revision_delta: per_sample``) or on the loss with ΔT added once (``once``, our fix). Adam's
    first step is nearly sign(g) for both; from the second on the two differ."""
    d, c, b, steps = 4, 3, 6, 3
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(b, d, generator=g), torch.randint(0, c, (b,), generator=g)
    delta0 = 0.03 * torch.randn(c, c, generator=g)
    final = {}
    for kind in ("once", "per_sample"):
        params = {"revision_delta": kind, "revision_lr": 1e-2, "revision_epochs": steps}
        params["estimation_epochs"] = 1
        m = linear_method("trevision", d, c, params, {"name": "sgd", "lr": 0.01}, epochs=5)
        assert m.stages() == (1, 1, steps)
        m.t_hat = T_ASYM.clone()
        with torch.no_grad():
            m.delta.copy_(delta0)
        net = m.nets[0]
        ref = [t.detach().double().clone().requires_grad_() for t in (net.weight, net.bias)]
        ref.append(delta0.double().clone().requires_grad_())
        opt = torch.optim.Adam(ref, lr=1e-2, weight_decay=1e-4)
        t_hat = T_ASYM.double()
        for step in range(steps):
            z = x.double() @ ref[0].T + ref[1]
            if kind == "per_sample":
                loss = official_revision_loss(z, t_hat, ref[2], y)
            else:  # the official loop with T̂ + ΔT fixed for every sample
                loss = official_revision_loss(z, t_hat + ref[2], torch.zeros_like(ref[2]), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            m.start_epoch(2 + step)
            out = m.train_epoch(2 + step, [Batch(torch.arange(b), x, y, None, None, None)])
            assert out["stage"] == 2
        for got, want in zip((net.weight, net.bias, m.delta), ref):
            torch.testing.assert_close(got.detach().double(), want.detach(), rtol=0, atol=1e-6)
        final[kind] = torch.cat([r.detach().flatten() for r in ref])
    assert (final["once"] - final["per_sample"]).abs().max() > 1e-3


def test_trevision_revision_stage_passes_beta_gradient(tmp_path, monkeypatch):
    import lnm.methods.trevision as tr

    seen = []
    real = tr.reweighted_ce

    def spy(logits, y, t, beta_grad=False):
        seen.append((t.requires_grad, beta_grad))
        return real(logits, y, t, beta_grad)

    monkeypatch.setattr(tr, "reweighted_ce", spy)
    for flag in (True, False):
        seen.clear()
        m, data = build(tmp_path, "trevision", epochs=3, params={"revision_beta_grad": flag})
        run_epochs(m, data, [0, 1, 2])
        per_epoch = data.batches_per_epoch()
        assert seen[:per_epoch] == [(False, False)] * per_epoch  # reweighting: constant β
        assert seen[per_epoch:] == [(True, flag)] * per_epoch  # revision
    assert get_method("trevision").defaults["revision_beta_grad"] is True


def test_trevision_estimation_stage_uses_its_own_plain_sgd():
    """The official optimizer_es = SGD(lr=0.01, weight_decay=1e-4): no momentum, no schedule;
    the first step is w − 0.01·(g + 1e-4·w), whatever the run's optimiser (here Adam)."""
    d, c = 4, 3
    adam = {"name": "adam", "lr": 0.05}
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(8, d, generator=g), torch.randint(0, c, (8,), generator=g)
    batch = [Batch(torch.arange(8), x, y, None, None, None)]
    for kind in ("sgd", "run"):
        m = linear_method("trevision", d, c, {"estimation_optimizer": kind}, adam, epochs=20)
        net = m.nets[0]
        w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
        z = x @ w0.T + b0
        dz = (torch.softmax(z, 1) - F.one_hot(y, c).float()) / len(y)
        m.start_epoch(0)
        assert m.train_epoch(0, batch)["stage"] == 0
        sgd_w = w0 - 0.01 * (dz.T @ x + 1e-4 * w0)
        sgd_b = b0 - 0.01 * (dz.sum(0) + 1e-4 * b0)
        if kind == "sgd":
            torch.testing.assert_close(net.weight.detach(), sgd_w, rtol=0, atol=1e-7)
            torch.testing.assert_close(net.bias.detach(), sgd_b, rtol=0, atol=1e-7)
            est = m.optimizers[2].param_groups[0]
            assert (est["lr"], est["momentum"], est["weight_decay"]) == (0.01, 0, 1e-4)
        else:  # the run's Adam: a step of ≈ lr = 0.05 per weight
            assert (net.weight.detach() - sgd_w).abs().max() > 0.01
    assert get_method("trevision").defaults["estimation_optimizer"] == "sgd"


def test_trevision_stage_lengths():
    assert stage_lengths(105, 5, None) == (5, 50, 50)  # the reference 5 + 50 + 50
    assert stage_lengths(50, 5, None) == (5, 23, 22)
    assert stage_lengths(3, 5, None) == (1, 1, 1)
    assert stage_lengths(2, 5, None) == (1, 1, 0)
    assert stage_lengths(1, 5, None) == (1, 0, 0)
    assert stage_lengths(20, 5, 3) == (5, 12, 3)


def test_trevision_stages_t_hat_and_revision(tmp_path):
    m, data = build(tmp_path, "trevision", epochs=3, params={"revision_lr": 1e-3})
    (d0,) = run_epochs(m, data, [0])
    # T̂: the anchor estimate from the softmax of all unaugmented training images after the
    # last estimation epoch
    probs = m.train_probs()
    assert probs.shape == (data.num_train, 3)
    torch.testing.assert_close(m.t_hat, anchor_transition(probs, 97.0))
    d1, d2 = run_epochs(m, data, [1, 2])
    assert [d["stage"] for d in (d0, d1, d2)] == [0, 1, 2]
    np.testing.assert_allclose(d0["T_hat"], d1["T_hat"])  # T̂ fixed during reweighting
    np.testing.assert_allclose(d0["T_hat"].sum(1), 1, atol=1e-6)
    assert m.delta.abs().sum() > 0  # ΔT learned in revision
    want = row_normalize((m.t_hat + m.delta).detach().clamp_min(0)).numpy()
    np.testing.assert_allclose(d2["T_hat"], want, atol=1e-7)


# ------------------------------------------------------------------------------- VolMinNet
def test_volminnet_transition_parametrisation_and_loss_by_hand():
    tr = SigmoidTransition(3, init=-2.0)
    s = 1 / (1 + math.exp(2))
    t0 = tr().detach()
    torch.testing.assert_close(
        t0, torch.tensor([[1.0, s, s], [s, 1.0, s], [s, s, 1.0]]) / (1 + 2 * s)
    )
    with torch.no_grad():
        tr.w.copy_(torch.tensor([[0.0, 1.0, -1.0], [-3.0, 5.0, 0.5], [2.0, -2.0, 0.0]]))
    t = tr()
    sig = lambda v: 1 / (1 + math.exp(-v))
    raw = np.array([[1, sig(1.0), sig(-1.0)], [sig(-3.0), 1, sig(0.5)], [sig(2.0), sig(-2.0), 1]])
    t_np = raw / raw.sum(1, keepdims=True)  # the diagonal stays 1 before normalisation
    np.testing.assert_allclose(t.detach().numpy(), t_np, rtol=1e-6)

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    y = torch.tensor([2, 0])
    p = torch.softmax(logits, 1).double().numpy()
    lam = 0.3
    nll = -np.mean([np.log(p[i] @ t_np[:, y[i]]) for i in range(2)])
    want = nll + lam * np.log(abs(np.linalg.det(t_np)))
    got = volmin_loss(logits, y, t, lam)
    assert got.item() == pytest.approx(want, rel=1e-5)
    # the reference's bug (softmax-CE of logits @ T) gives something else
    bug = F.cross_entropy(logits @ t, y) + lam * torch.linalg.slogdet(t)[1]
    assert abs(bug.item() - want) > 0.05


def test_volminnet_learns_a_known_transition_matrix():
    """A linear model on three Gaussian clusters, noisy labels drawn from a non-symmetric T.
    T's learning rate is raised to 0.2 so that 400 steps suffice (the default 0.01 is meant
    for ~50 epochs of hundreds of batches)."""
    t_true = np.array([[0.6, 0.3, 0.1], [0.1, 0.6, 0.3], [0.3, 0.1, 0.6]])
    rng = np.random.default_rng(0)
    n, d, c = 2560, 8, 3
    y = rng.integers(0, c, n)
    x = 3 * rng.normal(0, 1, (c, d))[y] + rng.normal(0, 1, (n, d))
    y_noisy = (rng.random(n)[:, None] > np.cumsum(t_true[y], 1)).sum(1)
    x, y_noisy = torch.tensor(x, dtype=torch.float32), torch.tensor(y_noisy)
    spec = tiny_spec(
        dataset="synthetic",
        size=8,
        noise="pairflip",
        rate=0.4,
        noise_seed=0,
        method="volminnet",
        backbone="resnet8",
        seed=0,
        epochs=40,
        batch_size=256,
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
        method_params={"t_lr": 0.2},
    )
    torch.manual_seed(0)
    m = get_method("volminnet")(spec, lambda: nn.Linear(d, c), c, CPU, None)
    err = lambda a: np.abs(np.asarray(a) - t_true).sum()
    err_init = err(m.transition().detach())
    for e in range(spec.epochs):
        m.start_epoch(e)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(e))
        diag = m.train_epoch(
            e, [Batch(i, x[i], y_noisy[i], None, None, None) for i in perm.split(spec.batch_size)]
        )
    assert err(diag["T_hat"]) < err(np.eye(c))
    assert err(diag["T_hat"]) < 0.4 * err_init
    np.testing.assert_allclose(diag["T_hat"].sum(1), 1, atol=1e-6)


# -------------------------------------------------------------------- state_dict round trip
@pytest.mark.parametrize(
    "method,params,epochs,split",
    [
        ("sce", {}, 3, 2),
        ("cdr", {"num_gradual": 3}, 3, 1),
        ("trevision", {"revision_lr": 1e-3, "estimation_epochs": 1, "revision_epochs": 2}, 4, 3),
        ("volminnet", {}, 3, 2),
    ],
)
def test_state_dict_round_trip(tmp_path, method, params, epochs, split):
    a, data = build(tmp_path, method, epochs, params)
    run_epochs(a, data, range(split))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    b, _ = build(tmp_path, method, epochs, params, seed=1)  # differently initialised
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
    (da,), (db,) = run_epochs(a, data, [split]), run_epochs(b, data, [split])
    assert da.keys() == db.keys()
    for k in da:
        np.testing.assert_array_equal(da[k], db[k])
    for pa, pb in zip(a.nets.parameters(), b.nets.parameters()):
        assert torch.equal(pa, pb)
    sa, sb = a.extra_state(), b.extra_state()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert (sa[k] is None and sb[k] is None) or torch.equal(sa[k], sb[k])
    if method == "trevision":
        assert sa["t_hat"] is not None and sa["delta"].abs().sum() > 0
