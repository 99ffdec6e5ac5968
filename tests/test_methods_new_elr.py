"""ELR and ELR+ against shengliu66/ELR (``ELR/model/loss.py``, ``ELR_plus/model/loss.py``,
``ELR_plus/trainer/trainer.py``, ``utils.sigmoid_rampup``; transcribed below)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lnm.methods import elr as elr_module
from lnm.methods.elr import ema_alpha_at, sigmoid_rampup
from tests.methods_new_common import (
    StepSpy,
    assert_grads_close,
    batch,
    frozen,
    grads_of,
    make,
    resume_matches,
    seed_all,
)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ transcriptions (float64)
def official_elr_loss(target_rows, output, label, beta, lam):
    """``elr_loss.forward``: returns (loss, the batch's new target rows)."""
    y_pred = F.softmax(output, dim=1)
    y_pred = torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
    y_pred_ = y_pred.data.detach()
    target = beta * target_rows + (1 - beta) * ((y_pred_) / (y_pred_).sum(dim=1, keepdim=True))
    ce_loss = F.cross_entropy(output, label)
    elr_reg = ((1 - (target * y_pred).sum(dim=1)).log()).mean()
    return ce_loss + lam * elr_reg, target


def official_sigmoid_rampup(current, rampup_length):
    if rampup_length == 0:
        return 1.0
    current = np.clip(current, 0.0, rampup_length)
    phase = 1.0 - current / rampup_length
    return float(np.exp(-5.0 * phase * phase))


def official_update_hist(hist_rows, out, beta, mix_index, mixup_l):
    """``elr_plus_loss.update_hist``: (new rows, q)."""
    y_pred_ = F.softmax(out, dim=1)
    new = beta * hist_rows + (1 - beta) * y_pred_ / (y_pred_).sum(dim=1, keepdim=True)
    return new, mixup_l * new + (1 - mixup_l) * new[mix_index]


def official_elr_plus_loss(iteration, output, y_labeled, q, lam, coef_step):
    """``elr_plus_loss.forward`` (num_classes != 100)."""
    y_pred = F.softmax(output, dim=1)
    y_pred = torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
    ce_loss = torch.mean(-torch.sum(y_labeled * F.log_softmax(output, dim=1), dim=-1))
    reg = ((1 - (q * y_pred).sum(dim=1)).log()).mean()
    return ce_loss + official_sigmoid_rampup(iteration, coef_step) * (lam * reg)


def official_ema_alpha(global_step, alpha_, ema_step, ema_update):
    """``update_ema_variables``'s momentum."""
    if ema_update:
        return official_sigmoid_rampup(global_step + 1, ema_step) * alpha_
    return min(1 - 1 / (global_step + 1), alpha_)


# ------------------------------------------------------------------ pieces
def test_ramps_and_averaging_momentum_match_the_official_code():
    for length in (0, 1, 40000, 7.5):
        for cur in (-1, 0, 1, 3.7, length, length + 5):
            assert sigmoid_rampup(cur, length) == pytest.approx(
                official_sigmoid_rampup(cur, length)
            )
    assert sigmoid_rampup(0, 10) == pytest.approx(np.exp(-5)) and sigmoid_rampup(10, 10) == 1.0
    for step in (0, 1, 7, 39999, 50000):
        for ramp in (True, False):
            assert ema_alpha_at(step, 0.997, 40000, ramp) == pytest.approx(
                official_ema_alpha(step, 0.997, 40000, ramp)
            )


def test_elr_loss_pieces_match_on_extreme_outputs():
    """Hand-built logits with saturated softmax (the clamp at 1e-4 / 1 − 1e-4 matters)."""
    z = torch.tensor([[20.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-20.0, 3.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    t = torch.tensor([[0.9, 0.05, 0.05], [0.0, 0.0, 0.0], [0.2, 0.7, 0.1]], dtype=torch.float64)
    zg = z.clone().requires_grad_(True)
    want, want_t = official_elr_loss(t, zg, y, 0.7, 3.0)
    zm = z.clone().requires_grad_(True)
    new_t = elr_module.elr_target_update(t, zm, 0.7)
    got = F.cross_entropy(zm, y) + 3.0 * elr_module.elr_regulariser(new_t, zm)
    torch.testing.assert_close(new_t, want_t)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, zm)[0], torch.autograd.grad(want, zg)[0])


# ------------------------------------------------------------------ ELR
def test_elr_updates_targets_then_steps_on_ce_plus_regulariser(tmp_path):
    beta, lam = 0.7, 3.0
    m = make(tmp_path, "elr", {"beta": beta, "lambda": lam})
    spy = StepSpy(m)
    n, c = m.data.num_train, m.num_classes
    target = m.per_sample["target0"]
    torch.testing.assert_close(target, torch.zeros(n, c))  # official: zeros
    g = torch.Generator().manual_seed(0)
    target[:] = torch.softmax(torch.randn(n, c, generator=g), 1)  # an earlier epoch's EMA
    before = target.clone()
    b1, b2 = batch(m, range(0, 30)), batch(m, range(30, 64))
    refs = []

    def record(batches):  # the network before each batch's step
        for b in batches:
            refs.append(frozen(m.nets[0]).train())
            yield b

    m.train_epoch(0, record([b1, b2]))
    for i, b in enumerate((b1, b2)):
        out = refs[i](b.x).double()
        want, want_t = official_elr_loss(before[b.idx].double(), out, b.y, beta, lam)
        torch.testing.assert_close(spy.losses[i], want, rtol=1e-5, atol=1e-6)
        assert_grads_close(spy.grads[i], grads_of(want, refs[i].parameters()))
        torch.testing.assert_close(target[b.idx].double(), want_t, rtol=1e-5, atol=1e-7)
    untouched = torch.ones(n, dtype=torch.bool)
    untouched[:64] = False
    assert torch.equal(target[untouched], before[untouched])


def test_elr_first_update_from_zero_targets(tmp_path):
    m = make(tmp_path, "elr", {"beta": 0.9})
    b = batch(m, range(16))
    ref = frozen(m.nets[0]).train()
    m.train_epoch(0, [b])
    p = torch.softmax(ref(b.x).double(), 1).clamp(1e-4, 1 - 1e-4)
    torch.testing.assert_close(
        m.per_sample["target0"][b.idx].double(), 0.1 * p / p.sum(1, keepdim=True)
    )


def test_plain_elr_refuses_a_warm_up(tmp_path):
    with pytest.raises(ValueError, match="warmup_epochs applies to ELR\\+ only"):
        make(tmp_path, "elr", {"warmup_epochs": 2})


# ------------------------------------------------------------------ ELR+
def test_elr_plus_epoch_matches_the_official_trainer(tmp_path, monkeypatch):
    hp = {"plus": True, "beta": 0.7, "lambda": 3.0, "ema_step": 5, "coef_step": 3}
    m = make(tmp_path, "elr", hp)
    spy = StepSpy(m)
    assert len(m.nets) == 2 and len(m.ema_nets) == 2 and m.num_nets == 2
    n, c = m.data.num_train, m.num_classes
    g = torch.Generator().manual_seed(1)
    for k in range(2):
        m.per_sample[f"target{k}"][:] = torch.softmax(torch.randn(n, c, generator=g), 1)
    m.global_step = 2
    hist = [m.per_sample[f"target{k}"].clone().double() for k in range(2)]
    draws, real_mixup = [], elr_module.mixup

    def spy_mixup(x, t, alpha, gen=None, lam=None):
        out = real_mixup(x, t, alpha, gen, lam)
        draws.append((out[2], out[3].clone()))
        return out

    monkeypatch.setattr(elr_module, "mixup", spy_mixup)
    bs = [batch(m, range(0, 24), seed=3), batch(m, range(10, 40), seed=4)]
    monkeypatch.setattr(m, "_net_batches", lambda k, epoch, batches: [bs[k]])
    nets = [frozen(net).train() for net in m.nets]
    emas = [frozen(e).train() for e in m.ema_nets]
    seed_all(5)
    diag = m.train_epoch(0, None)
    assert diag["global_step"] == 3 and m.global_step == 3  # += net 0's local steps
    for k in range(2):
        b, (lam_mix, perm) = bs[k], draws[k]
        assert 0.5 <= lam_mix <= 1.0
        # the peer's averaged network: net 1 sees net 0's average *after* net 0's epoch
        peer = emas[1 - k]
        with torch.no_grad():
            out_orig = peer(b.x).double()
        new_rows, q = official_update_hist(hist[k][b.idx], out_orig, 0.7, perm, lam_mix)
        torch.testing.assert_close(
            m.per_sample[f"target{k}"][b.idx].double(), new_rows, rtol=1e-5, atol=1e-7
        )
        onehot = F.one_hot(b.y, c).double()
        mixed_x = lam_mix * b.x + (1 - lam_mix) * b.x[perm]
        mixed_t = lam_mix * onehot + (1 - lam_mix) * onehot[perm]
        want = official_elr_plus_loss(3, nets[k](mixed_x).double(), mixed_t, q, 3.0, 3)
        torch.testing.assert_close(spy.losses[k], want, rtol=1e-5, atol=1e-6)
        own = list(m.nets[k].parameters())
        got_grads = [gr for gr, p in zip(spy.grads[k], spy.params) if any(p is o for o in own)]
        assert_grads_close(got_grads, grads_of(want, nets[k].parameters()))
        # the own average moved towards the stepped network with the official momentum
        a = official_ema_alpha(3, 0.997, 5, True)
        for e_new, e_old, p in zip(
            m.ema_nets[k].parameters(), emas[k].parameters(), m.nets[k].parameters()
        ):
            torch.testing.assert_close(e_new, a * e_old + (1 - a) * p, rtol=1e-6, atol=1e-7)
        if k == 0:  # net 1's peer is net 0's average as updated above
            emas[0] = frozen(m.ema_nets[0]).train()


def test_elr_plus_warm_up_is_ce_with_own_prediction_targets(tmp_path, monkeypatch):
    m = make(tmp_path, "elr", {"plus": True, "warmup_epochs": 1, "beta": 0.6})
    spy = StepSpy(m)
    bs = [batch(m, range(0, 20)), batch(m, range(20, 40))]
    monkeypatch.setattr(m, "_net_batches", lambda k, epoch, batches: [bs[k]])
    nets = [frozen(net).train() for net in m.nets]
    m.train_epoch(0, None)
    assert m.global_step == 0  # no averaging, no global steps in the warm-up
    for k in range(2):
        out = nets[k](bs[k].x).double()
        torch.testing.assert_close(
            spy.losses[k], F.cross_entropy(out, bs[k].y), rtol=1e-5, atol=1e-6
        )
        p = torch.softmax(out, 1)
        torch.testing.assert_close(
            m.per_sample[f"target{k}"][bs[k].idx].double(), 0.4 * p, rtol=1e-5, atol=1e-7
        )


def test_elr_plus_resumes_exactly(tmp_path):
    resume_matches(tmp_path, "elr", {"plus": True, "warmup_epochs": 1, "ema_step": 20})
