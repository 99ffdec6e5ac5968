"""SOP and SOP+ against shengliu66/SOP (``model/loss.py::overparametrization_loss``,
``trainer/trainer.py``, ``train.py``; transcribed below)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lnm.methods.sop import sop_loss
from tests.methods_new_common import (
    StepSpy,
    assert_grads_close,
    batch,
    frozen,
    grads_of,
    make,
    resume_matches,
)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class OfficialSOP(nn.Module):
    """``overparametrization_loss`` with its u, v given (instead of N(mean, std) draws)."""

    def __init__(self, u, v, num_classes, ratio_consistency=0.0, ratio_balance=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.ratio_consistency, self.ratio_balance = ratio_consistency, ratio_balance
        self.u, self.v = nn.Parameter(u.clone()), nn.Parameter(v.clone())

    def forward(self, index, outputs, label):
        if len(outputs) > len(index):
            output, output2 = torch.chunk(outputs, 2)
        else:
            output = outputs
        eps = 1e-4
        U_square = self.u[index] ** 2 * label
        V_square = self.v[index] ** 2 * (1 - label)
        U_square = torch.clamp(U_square, 0, 1)
        V_square = torch.clamp(V_square, 0, 1)
        original_prediction = F.softmax(output, dim=1)
        prediction = torch.clamp(original_prediction + U_square - V_square.detach(), min=eps)
        prediction = F.normalize(prediction, p=1, eps=eps)
        prediction = torch.clamp(prediction, min=eps, max=1.0)
        label_one_hot = torch.zeros(len(output), self.num_classes, dtype=output.dtype).scatter_(
            1, output.detach().argmax(dim=1).view(-1, 1), 1
        )
        MSE_loss = F.mse_loss((label_one_hot + U_square - V_square), label, reduction="sum") / len(
            label
        )
        loss = torch.mean(-torch.sum((label) * torch.log(prediction), dim=-1))
        loss += MSE_loss
        if self.ratio_balance > 0:
            avg_prediction = torch.mean(prediction, dim=0)
            prior_distr = 1.0 / self.num_classes * torch.ones_like(avg_prediction)
            avg_prediction = torch.clamp(avg_prediction, min=eps, max=1.0)
            balance_kl = torch.mean(-(prior_distr * torch.log(avg_prediction)).sum(dim=0))
            loss += self.ratio_balance * balance_kl
        if (len(outputs) > len(index)) and (self.ratio_consistency > 0):
            preds1 = F.softmax(output, dim=1).detach()
            preds2 = F.log_softmax(output2, dim=1)
            loss_kldiv = torch.sum(F.kl_div(preds2, preds1, reduction="none"), dim=1)
            loss += self.ratio_consistency * torch.mean(loss_kldiv)
        return loss


def hand_case():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64) * 2
    z2 = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = F.one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), 4).double()
    u = torch.tensor(
        [[0.3], [1.4], [0.0], [0.8], [-1.2], [0.1]], dtype=torch.float64
    )  # u² > 1: clamped
    v = torch.randn(6, 4, generator=g, dtype=torch.float64) * 0.7
    v[1, 0] = 1.5  # v² > 1 on a wrong class: clamped
    return z, z2, y, u, v


@pytest.mark.parametrize("rc,rb", [(0.0, 0.0), (0.9, 0.1), (0.0, 0.3), (0.5, 0.0)])
def test_sop_loss_and_its_gradients_match_the_official_loss(rc, rb):
    z, z2, y, u, v = hand_case()
    idx = torch.arange(6)
    off = OfficialSOP(u, v, 4, rc, rb)
    zo = torch.cat([z, z2]).requires_grad_(True)
    want = off(idx, zo if rc > 0 else zo[:6], y)
    zg = z.clone().requires_grad_(True)
    z2g = z2.clone().requires_grad_(True)
    ug, vg = u.clone().requires_grad_(True), v.clone().requires_grad_(True)
    got = sop_loss(zg, y, ug, vg, rb, rc, z2g if rc > 0 else None)
    torch.testing.assert_close(got, want)
    want_g = torch.autograd.grad(want, [zo, off.u, off.v])
    got_g = torch.autograd.grad(got, [zg, z2g, ug, vg], allow_unused=True)
    torch.testing.assert_close(got_g[0], want_g[0][:6])
    if rc > 0:
        torch.testing.assert_close(got_g[1], want_g[0][6:])
    torch.testing.assert_close(got_g[2], want_g[1])
    torch.testing.assert_close(got_g[3], want_g[2])
    # u learns from the CE term only through U (label entries), v only from the squared term
    assert (want_g[2][y.bool()] == 0).all()  # no gradient to v on the label entry


def test_sop_method_steps_network_and_uv_as_the_official_trainer(tmp_path):
    lr_u, lr_v = 1.0, 10.0
    m = make(tmp_path, "sop", {"lr_u": lr_u, "lr_v": lr_v})
    spy = StepSpy(m)
    n, c = m.data.num_train, m.num_classes
    u, v = m.per_sample["u"], m.per_sample["v"]
    assert u.shape == (n, 1) and v.shape == (n, c)
    assert u.abs().max() < 1e-6 and v.abs().max() < 1e-6  # N(0, 1e-8²)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        u.copy_(torch.randn(n, 1, generator=g) * 0.5)
        v.copy_(torch.randn(n, c, generator=g) * 0.5)
    u0, v0 = u.detach().clone().double(), v.detach().clone().double()
    b = batch(m, range(5, 37))
    ref = frozen(m.nets[0]).train()
    spy_steps = []
    real_opt_step = m.optimizers[0].step

    def net_step(*a, **k):  # the network's gradient when its optimiser steps
        spy_steps.append([p.grad.clone() for p in m.nets.parameters()])
        return real_opt_step(*a, **k)

    m.optimizers[0].step = net_step
    m.train_epoch(0, [b])
    off = OfficialSOP(u0, v0, c)
    y = F.one_hot(b.y, c).double()
    want = off(b.idx, ref(b.x).double(), y)
    *want_net, gu, gv = grads_of(want, [*ref.parameters(), off.u, off.v])
    assert_grads_close(spy_steps[0], want_net)
    # plain SGD on u, v with their own learning rates; rows outside the batch do not move
    torch.testing.assert_close(u.detach().double(), u0 - lr_u * gu, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(v.detach().double(), v0 - lr_v * gv, rtol=1e-5, atol=1e-7)
    out = torch.ones(n, dtype=torch.bool)
    out[b.idx] = False
    assert torch.equal(u.detach()[out].double(), u0[out]) and torch.equal(
        v.detach()[out].double(), v0[out]
    )
    assert not spy.losses  # SOP steps its two optimisers itself


def test_sop_plus_forwards_both_views_together(tmp_path, monkeypatch):
    m = make(tmp_path, "sop", {"ratio_consistency": 0.9, "ratio_balance": 0.1})
    c = m.num_classes
    b = batch(m, range(20))
    strong = b.x.flip(3) * 0.9  # any second view
    monkeypatch.setattr(m, "strong_view", lambda bt: strong)
    ref = frozen(m.nets[0]).train()
    u0, v0 = (
        m.per_sample["u"].detach().clone().double(),
        m.per_sample["v"].detach().clone().double(),
    )
    grads = []
    real = m.optimizers[0].step
    m.optimizers[0].step = lambda *a, **k: (
        grads.append([p.grad.clone() for p in m.nets.parameters()]),
        real(*a, **k),
    )[1]
    diag = m.train_epoch(0, [b])
    off = OfficialSOP(u0, v0, c, 0.9, 0.1)
    want = off(b.idx, ref(torch.cat([b.x, strong])).double(), F.one_hot(b.y, c).double())
    assert diag["train_loss"] == pytest.approx(float(want.detach()), rel=1e-5)
    assert_grads_close(grads[0], grads_of(want, ref.parameters()))


def test_uv_learning_rates_follow_no_schedule(tmp_path):
    m = make(tmp_path, "sop", {"lr_u": 2.0, "lr_v": 20.0}, schedule={"name": "cosine"})
    m.start_epoch(2)
    assert m.optimizers[0].param_groups[0]["lr"] < 0.1  # the network's: cosine
    assert [gr["lr"] for gr in m.uv_optimizer.param_groups] == [2.0, 20.0]
    assert all(
        gr["momentum"] == 0 and gr["weight_decay"] == 0 for gr in m.uv_optimizer.param_groups
    )


def test_sop_plus_resumes_exactly(tmp_path):
    resume_matches(tmp_path, "sop", {"ratio_consistency": 0.9, "ratio_balance": 0.1})
