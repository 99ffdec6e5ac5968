"""ProMix against Justherozen/ProMix (``Train_promix.py::train/eval_train/label_guessing``,
``utils/utils.py``, ``utils/fmix.py``; transcribed below, float64 on the networks' outputs)."""

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lnm.methods import _fmix
from lnm.methods import promix as promix_module
from lnm.methods.promix import css_select, label_guessing, prior_update, unreliable_weight
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


# ------------------------------------------------------------------ transcriptions
def official_css(losses, targets, rho, num_class):
    """``eval_train`` after the losses are computed: the 0/1 ``prob`` of every sample."""
    losses = (losses - losses.min()) / (losses.max() - losses.min())
    prob = np.zeros(targets.shape[0])
    idx_chosen_sm = []
    for j in range(num_class):
        indices = np.where(targets.numpy() == j)[0]
        if len(indices) == 0:
            continue
        bs_j = targets.shape[0] * (1.0 / num_class)
        pseudo_loss_vec_j = losses[indices]
        sorted_idx_j = pseudo_loss_vec_j.sort()[1].numpy()
        partition_j = max(min(int(math.ceil(bs_j * rho)), len(indices)), 1)
        idx_chosen_sm.append(indices[sorted_idx_j[:partition_j]])
    prob[np.concatenate(idx_chosen_sm)] = 1
    return prob


def official_label_guessing(idx_chosen, w_x, batch_size, score1, score2, match, tau, threshold):
    w_x2 = w_x.clone()
    if (1.0 * idx_chosen.shape[0] / batch_size) < threshold:
        high_conf_cond2 = (score1 > tau) * (score2 > tau) * match
        high_conf_cond2 = (1.0 * high_conf_cond2 - w_x.squeeze()) > 0
        hc2_idx = torch.where(high_conf_cond2)[0]
        max_to_sel_num = int(batch_size * threshold) - idx_chosen.shape[0]
        if high_conf_cond2.sum() > max_to_sel_num:
            score_mean = (score1 + score2) / 2
            idx_remove = (-score_mean[hc2_idx]).sort()[1][max_to_sel_num:]
            high_conf_cond2[hc2_idx[idx_remove]] = False
        w_x2[high_conf_cond2] = 1
    return w_x2


def debias_pl(logit, bias, tau):
    return F.softmax(logit - tau * torch.log(bias), dim=1)


def debias_output(logit, bias, tau):
    return logit + tau * torch.log(bias)


def bias_update(input, bias, momentum):
    return momentum * bias + (1 - momentum) * input.detach().mean(dim=0)


def ce_soft(outputs, targets):
    """``CE_Soft_Label.forward`` (the per-sample vector; callers take ``.mean()``)."""
    return -((F.log_softmax(outputs, dim=1) * targets.detach()).sum(dim=1))


def linear_rampup2(current, rampup_length):
    return 1.0 if current >= rampup_length else current / rampup_length


def official_low_freq_image(decay, shape):
    """``make_low_freq_image`` for a 2-D shape, one channel."""
    h, w = shape
    fy = np.expand_dims(np.fft.fftfreq(h), -1)
    fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = np.ones(1) / (np.maximum(freqs, np.array([1.0 / max(w, h)])) ** decay)
    param = np.random.randn(*([1] + list(freqs.shape) + [2]))
    scale = np.expand_dims(scale, -1)[None, :]
    spectrum = scale * param
    spectrum = spectrum[:, 0] + 1j * spectrum[:, 1]
    mask = np.real(np.fft.irfftn(spectrum, shape, axes=(-2, -1)))
    mask = mask[:1, : shape[0], : shape[1]]
    mask = mask - mask.min()
    return mask / mask.max()


def official_binarise_mask(mask, lam, in_shape):
    idx = mask.reshape(-1).argsort()[::-1]
    mask = mask.reshape(-1)
    num = math.ceil(lam * mask.size) if random.random() > 0.5 else math.floor(lam * mask.size)
    mask[idx[:num]] = 1
    mask[idx[num:]] = 0
    return mask.reshape((1, *in_shape))


def official_fmix(x):
    """``FMix.__call__`` (alpha 1, decay 3, size = the image's); returns (mixed, index, lam)."""
    shape = tuple(x.shape[-2:])
    lam = np.random.beta(1, 1)  # scipy's beta.rvs draws np.random's beta
    mask = official_binarise_mask(official_low_freq_image(3, shape), lam, shape)
    index = torch.randperm(x.size(0))
    mask = torch.from_numpy(mask).to(x.dtype)
    return mask * x + (1 - mask) * x[index], index, lam


def official_fmix_loss(logits, y1_onehot, index, lam):
    y1 = y1_onehot.long()
    y2 = y1[index].max(1)[1]
    y1 = y1.max(1)[1]
    return F.cross_entropy(logits, y1) * lam + F.cross_entropy(logits, y2) * (1 - lam)


def official_train_batch(fwd, inputs_x, inputs_x2, labels, w_x, w_x2, pis, epoch, a):
    """One batch of ``train()``: the total loss and the new (pi1, pi2, pi1_unrel, pi2_unrel).
    ``fwd(k, x, use_ph)`` is network k's forward (float64 logits); ``a`` the arguments."""
    pi1, pi2, pi1_unrel, pi2_unrel = pis
    batch_size = inputs_x.size(0)
    w = linear_rampup2(epoch, a["warmup_ep"])
    alpha_output, debias_beta_pl = a["debias_output"], a["debias_pl"]
    beta = 0.1 * linear_rampup2(epoch, 2 * a["warmup_ep"]) if debias_beta_pl else 1
    labels_x = F.one_hot(labels, a["num_class"]).double()
    w_x, w_x2 = w_x.view(-1, 1).double(), w_x2.view(-1, 1).double()
    outputs_x, outputs_x_ph = fwd(0, inputs_x, True)
    outputs_x2, outputs_x2_ph = fwd(0, inputs_x2, True)
    outputs_a, outputs_a_ph = fwd(1, inputs_x, True)
    outputs_a2, outputs_a2_ph = fwd(1, inputs_x2, True)
    outputs_x_ori, outputs_a_ori = outputs_x.clone().detach(), outputs_a.clone().detach()
    outputs_x, outputs_x2 = (
        debias_output(outputs_x, pi1, alpha_output),
        debias_output(outputs_x2, pi1, alpha_output),
    )
    outputs_a, outputs_a2 = (
        debias_output(outputs_a, pi2, alpha_output),
        debias_output(outputs_a2, pi2, alpha_output),
    )
    outputs_x_unrel_ph = debias_output(outputs_x_ph, pi1_unrel, alpha_output)
    outputs_x2_unrel_ph = debias_output(outputs_x2_ph, pi1_unrel, alpha_output)
    outputs_a_unrel_ph = debias_output(outputs_a_ph, pi2_unrel, alpha_output)
    outputs_a2_unrel_ph = debias_output(outputs_a2_ph, pi2_unrel, alpha_output)
    outputs_x_ph, outputs_x2_ph = (
        debias_output(outputs_x_ph, pi1, alpha_output),
        debias_output(outputs_x2_ph, pi1, alpha_output),
    )
    outputs_a_ph, outputs_a2_ph = (
        debias_output(outputs_a_ph, pi2, alpha_output),
        debias_output(outputs_a2_ph, pi2, alpha_output),
    )
    with torch.no_grad():
        px, px2 = torch.softmax(outputs_x_ori, dim=1), torch.softmax(outputs_a_ori, dim=1)
        debias_px = debias_pl(outputs_x_ori, pi1, debias_beta_pl)
        debias_px2 = debias_pl(outputs_a_ori, pi2, debias_beta_pl)
        debias_px_unrel = debias_pl(outputs_x_ori, pi1_unrel, debias_beta_pl)
        debias_px2_unrel = debias_pl(outputs_a_ori, pi2_unrel, debias_beta_pl)
        pred_net = F.one_hot(debias_px.max(dim=1)[1], a["num_class"]).double()
        pred_net2 = F.one_hot(debias_px2.max(dim=1)[1], a["num_class"]).double()
        high_conf_cond = (labels_x * px).sum(dim=1) > a["tau"]
        high_conf_cond2 = (labels_x * px2).sum(dim=1) > a["tau"]
        w_x[high_conf_cond] = 1
        w_x2[high_conf_cond2] = 1
        pseudo_label_l = labels_x * w_x + pred_net * (1 - w_x)
        pseudo_label_l2 = labels_x * w_x2 + pred_net2 * (1 - w_x2)
        idx_chosen = torch.where(w_x == 1)[0]
        idx_unchosen = torch.where(w_x != 1)[0]
        idx_chosen_2 = torch.where(w_x2 == 1)[0]
        idx_unchosen_2 = torch.where(w_x2 != 1)[0]
        if epoch > a["num_epochs"] - a["start_expand"]:
            score1, score2 = px.max(dim=1)[0], px2.max(dim=1)[0]
            match = px.max(dim=1)[1] == px2.max(dim=1)[1]
            lg = lambda ic, wx: official_label_guessing(
                ic, wx, batch_size, score1, score2, match, a["tau"], a["threshold"]
            )
            hc2_sel_wx1, hc2_sel_wx2 = lg(idx_chosen, w_x), lg(idx_chosen_2, w_x2)
            idx_chosen = torch.where(hc2_sel_wx1 == 1)[0]
            idx_chosen_2 = torch.where(hc2_sel_wx2 == 1)[0]
            idx_unchosen = torch.where(hc2_sel_wx1 != 1)[0]
            idx_unchosen_2 = torch.where(hc2_sel_wx2 != 1)[0]

    def head_losses(k, pseudo, chosen, pi):
        losses = []
        for use_ph in (False, True):
            lam = np.random.beta(4, 4)
            lam = max(lam, 1 - lam)
            X_w_c, pseudo_label_c = inputs_x[chosen], pseudo[chosen]
            idx = torch.randperm(X_w_c.size(0))
            X_mix = lam * X_w_c + (1 - lam) * X_w_c[idx]
            t_mix = lam * pseudo_label_c + (1 - lam) * pseudo_label_c[idx]
            logits_mix = fwd(k, X_mix, True)[1] if use_ph else fwd(k, X_mix, False)
            loss_mix = ce_soft(debias_output(logits_mix, pi, alpha_output), t_mix).mean()
            x_f, index, lam_f = official_fmix(X_w_c)
            logits_f = fwd(k, x_f, True)[1] if use_ph else fwd(k, x_f, False)
            loss_fmix = official_fmix_loss(
                debias_output(logits_f, pi, alpha_output), pseudo_label_c.detach(), index, lam_f
            )
            losses.append((loss_mix, loss_fmix))
        return losses

    (loss_mix, loss_fmix), (loss_mix_ph, loss_fmix_ph) = head_losses(
        0, pseudo_label_l, idx_chosen, pi1
    )
    loss_cr = ce_soft(outputs_x2[idx_chosen], pseudo_label_l[idx_chosen]).mean()
    loss_cr_ph = ce_soft(outputs_x2_ph[idx_chosen], pseudo_label_l[idx_chosen]).mean()
    loss_ce = ce_soft(outputs_x[idx_chosen], pseudo_label_l[idx_chosen]).mean()
    loss_ce_ph = ce_soft(outputs_x_ph[idx_chosen], pseudo_label_l[idx_chosen]).mean()
    loss_net1 = loss_ce + w * (loss_cr + loss_mix + loss_fmix)
    ptx = debias_px_unrel ** (1 / a["T"])
    ptx = ptx / ptx.sum(dim=1, keepdim=True)
    beta = 0 if (epoch >= 2 * a["warmup_ep"] and beta < 1) else beta
    loss_unrel_ph = (
        ce_soft(outputs_x_unrel_ph[idx_unchosen], ptx[idx_unchosen]).mean()
        + w * ce_soft(outputs_x2_unrel_ph[idx_unchosen], ptx[idx_unchosen]).mean()
    )
    loss_net1_ph = beta * loss_unrel_ph + loss_ce_ph + w * (loss_cr_ph + loss_mix_ph + loss_fmix_ph)
    (loss_mix2, loss_fmix2), (loss_mix2_ph, loss_fmix2_ph) = head_losses(
        1, pseudo_label_l2, idx_chosen_2, pi2
    )
    loss_cr2 = ce_soft(outputs_a2[idx_chosen_2], pseudo_label_l2[idx_chosen_2]).mean()
    loss_cr2_ph = ce_soft(outputs_a2_ph[idx_chosen_2], pseudo_label_l2[idx_chosen_2]).mean()
    loss_ce2 = ce_soft(outputs_a[idx_chosen_2], pseudo_label_l2[idx_chosen_2]).mean()
    loss_ce2_ph = ce_soft(outputs_a_ph[idx_chosen_2], pseudo_label_l2[idx_chosen_2]).mean()
    loss_net2 = loss_ce2 + w * (loss_cr2 + loss_mix2 + loss_fmix2)
    ptx2 = debias_px2_unrel ** (1 / a["T"])
    ptx2 = ptx2 / ptx2.sum(dim=1, keepdim=True)
    loss_unrel2_ph = (
        ce_soft(outputs_a_unrel_ph[idx_unchosen_2], ptx2[idx_unchosen_2]).mean()
        + w * ce_soft(outputs_a2_unrel_ph[idx_unchosen_2], ptx2[idx_unchosen_2]).mean()
    )
    loss_net2_ph = (
        beta * loss_unrel2_ph + loss_ce2_ph + w * (loss_cr2_ph + loss_mix2_ph + loss_fmix2_ph)
    )
    loss = loss_net1 + loss_net2 + loss_net1_ph + loss_net2_ph
    m = a["bias_m"]
    pis = (
        bias_update(px[idx_chosen], pi1, m),
        bias_update(px2[idx_chosen_2], pi2, m),
        bias_update(px[idx_unchosen], pi1_unrel, m),
        bias_update(px2[idx_unchosen_2], pi2_unrel, m),
    )
    return loss, pis, (idx_chosen, idx_chosen_2)


# ------------------------------------------------------------------ pieces
def test_class_wise_small_loss_selection_matches_eval_train():
    g = torch.Generator().manual_seed(0)
    losses = torch.rand(40, generator=g, dtype=torch.float64)
    labels = torch.tensor([0] * 25 + [1] * 12 + [3] * 3)  # imbalanced; class 2 empty
    for rho in (0.5, 0.7, 0.2, 0.01, 1.0):
        want = official_css(losses.clone(), labels, rho, 4)
        got = css_select(losses, labels, rho, 4)
        np.testing.assert_array_equal(got.numpy(), want.astype(bool))
    # quota ⌈ρ·N/C⌉ = ⌈0.5·10⌉ = 5 per class: the majority class is capped at 5, class 3 keeps
    # all of its 3 samples (min with n_j), and at least one is always kept
    got = css_select(losses, labels, 0.5, 4)
    assert [int(got[labels == j].sum()) for j in (0, 1, 2, 3)] == [5, 5, 0, 3]
    assert int(css_select(losses, labels, 0.01, 4)[labels == 0].sum()) == 1


def test_label_guessing_matches_the_official_function():
    g = torch.Generator().manual_seed(1)
    for trial in range(40):
        b = 10
        s1 = torch.rand(b, generator=g, dtype=torch.float64) * 0.5 + 0.5
        s2 = torch.rand(b, generator=g, dtype=torch.float64) * 0.5 + 0.5
        match = torch.rand(b, generator=g) < 0.8
        chosen = torch.rand(b, generator=g) < [0.1, 0.5, 0.9, 0.0][trial % 4]
        tau, thr = [0.6, 0.9, 0.5, 0.95][trial % 4], [0.9, 0.5, 0.95, 0.75][trial // 10]
        idx_chosen = torch.where(chosen)[0]
        want = official_label_guessing(
            idx_chosen, chosen.double().view(-1, 1), b, s1, s2, match, tau, thr
        )
        got = label_guessing(chosen, s1, s2, match, tau, thr)
        np.testing.assert_array_equal(got.numpy(), want.view(-1).numpy() == 1, err_msg=str(trial))


def official_beta(epoch, warmup_ep, debias_pl):
    """``train()``: ``beta`` as first set, then reset to 0 (as the loss sees it)."""
    beta = 0.1 * linear_rampup2(epoch, 2 * warmup_ep) if debias_pl else 1
    return 0 if (epoch >= 2 * warmup_ep and beta < 1) else beta


def test_unreliable_weight_schedule_matches_train():
    for warm in (0, 1, 2, 50):
        for b_pl in (0.8, 0.0):
            for e in range(0, 130):
                assert unreliable_weight(e, warm, b_pl) == pytest.approx(
                    official_beta(e, warm, b_pl)
                )
    assert (
        unreliable_weight(3, 2, 0.8) == pytest.approx(0.075) and unreliable_weight(4, 2, 0.8) == 0
    )


def test_prior_update_and_debiasing_match_and_skip_an_empty_set():
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p = torch.softmax(torch.randn(5, 3, dtype=torch.float64), 1)
    torch.testing.assert_close(prior_update(pi, p, 0.9), bias_update(p, pi, 0.9))
    assert torch.isnan(bias_update(p[:0], pi, 0.9)).all()  # the official poisons π
    assert torch.equal(prior_update(pi, p[:0], 0.9), pi)
    z = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(promix_module.debias_output(z, pi, 0.8), debias_output(z, pi, 0.8))
    torch.testing.assert_close(promix_module.debias_pl(z, pi, 0.8), debias_pl(z, pi, 0.8))


@pytest.mark.parametrize("shape", [(8, 8), (28, 28), (7, 9)])
def test_fmix_masks_and_loss_match_the_official_code(shape):
    for seed in range(5):
        np.random.seed(seed)
        random.seed(seed)
        want = official_binarise_mask(official_low_freq_image(3, shape), 0.37, shape)
        np.random.seed(seed)
        random.seed(seed)
        got = _fmix.binarise(_fmix.low_freq_image(*shape, 3.0), 0.37)
        np.testing.assert_array_equal(got, want[0])
    x = torch.randn(6, 2, *shape, dtype=torch.float64)
    for seed in range(3):
        np.random.seed(seed)
        random.seed(seed)
        torch.manual_seed(seed)
        want_x, want_i, want_l = official_fmix(x)
        np.random.seed(seed)
        random.seed(seed)
        torch.manual_seed(seed)
        got_x, got_i, got_l = _fmix.fmix(x, None)
        assert got_l == want_l and torch.equal(got_i, want_i)
        torch.testing.assert_close(got_x, want_x)
    z = torch.randn(6, 3, dtype=torch.float64)
    y1h = F.one_hot(torch.tensor([0, 1, 2, 2, 1, 0]), 3).double()
    torch.testing.assert_close(
        _fmix.fmix_loss(z, y1h.argmax(1), want_i, want_l),
        official_fmix_loss(z, y1h, want_i, want_l),
    )


# ------------------------------------------------------------------ one training batch
ARGS = dict(warmup_ep=2, debias_output=0.8, debias_pl=0.8, tau=0.45, threshold=0.9, T=0.5,
            bias_m=0.9, start_expand=4, num_epochs=4, num_class=3)  # fmt: skip


@pytest.mark.parametrize("epoch", [1, 4])  # 1: ramps half-way, β > 0; 4: β = 0 (e = 2·warmup_ep)
def test_promix_batch_matches_the_official_train_step(tmp_path, monkeypatch, epoch):
    a = dict(ARGS)
    params = {
        k: a[k]
        for k in (
            "warmup_ep",
            "debias_output",
            "debias_pl",
            "tau",
            "threshold",
            "T",
            "bias_m",
            "start_expand",
        )
    }
    m = make(
        tmp_path, "promix", {**params, "pretrain_ep": 0, "rho_start": 0.3, "rho_end": 0.6}, epochs=4
    )
    spy = StepSpy(m, [*m.nets.parameters(), *m.pseudo_heads.parameters()])
    g = torch.Generator().manual_seed(0)
    for key in m.priors:  # estimates away from uniform
        m.priors[key] = torch.softmax(torch.randn(3, generator=g), 0)
    pis = tuple(m.priors[k].double() for k in ("clean0", "clean1", "other0", "other1"))
    b = batch(m, range(0, 48))
    strong = b.x.flip(3) + 0.1
    monkeypatch.setattr(m, "strong_view", lambda bt: strong)
    nets = [frozen(n) for n in m.nets]
    heads = [frozen(h) for h in m.pseudo_heads]
    # CSS from the networks as they are (eval mode), with the epoch's ρ
    rho = 0.3 + 0.3 * linear_rampup2(epoch, 2)
    x_all = torch.cat(list(m.data.eval_batches("train")))
    probs = []
    for net in nets:
        net.eval()
        with torch.no_grad():
            losses = F.cross_entropy(net(x_all).double(), m.data.train_labels, reduction="none")
        probs.append(torch.from_numpy(official_css(losses, m.data.train_labels, rho, 3)))
        net.train()

    def fwd(k, x, use_ph):
        feats = nets[k].body(x)
        out = nets[k].fc(feats).double()
        return (out, heads[k](feats).double()) if use_ph else out

    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    diag = m.train_epoch(epoch, [b])
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    want, want_pis, chosen = official_train_batch(
        fwd, b.x, strong, b.y, probs[0][b.idx], probs[1][b.idx], pis, epoch, a
    )
    torch.testing.assert_close(spy.losses[0], want, rtol=1e-5, atol=1e-6)
    params_ref = [
        *nets[0].parameters(),
        *nets[1].parameters(),
        *heads[0].parameters(),
        *heads[1].parameters(),
    ]
    assert_grads_close(spy.grads[0], grads_of(want, params_ref))
    for key, wp in zip(("clean0", "clean1", "other0", "other1"), want_pis, strict=True):
        torch.testing.assert_close(m.priors[key].double(), wp, rtol=1e-5, atol=1e-7)
    for k in range(2):
        np.testing.assert_array_equal(
            np.nonzero(diag[f"selected_net{k}"][b.idx.numpy()])[0], chosen[k].numpy()
        )
    # the selections were neither empty nor everything, so every term was exercised
    assert all(0 < len(c) < len(b) for c in chosen)


def test_empty_clean_or_other_sets_leave_terms_out(tmp_path, monkeypatch):
    m = make(tmp_path, "promix", {"pretrain_ep": 0, "tau": 1.0, "start_expand": 0})
    b = batch(m, range(32))
    for fill in (False, True):  # no clean sample / every sample clean
        monkeypatch.setattr(
            promix_module,
            "css_select",
            lambda losses, labels, rho, c, fill=fill: torch.full_like(
                labels, fill, dtype=torch.bool
            ),
        )
        before = {k: v.clone() for k, v in m.priors.items()}
        diag = m.train_epoch(0, [b])
        assert np.isfinite(diag["train_loss"])
        changed = "other" if fill else "clean"
        for k in range(2):
            assert torch.equal(m.priors[f"{changed}{k}"], before[f"{changed}{k}"])
        assert all(torch.isfinite(p).all() for p in m.nets.parameters())


def test_warm_up_trains_both_networks_on_ce(tmp_path):
    m = make(tmp_path, "promix", {"pretrain_ep": 1})
    spy = StepSpy(m)
    b = batch(m, range(20))
    nets = [frozen(n).train() for n in m.nets]
    m.train_epoch(0, [b])
    want = sum(F.cross_entropy(n(b.x).double(), b.y) for n in nets)
    torch.testing.assert_close(spy.losses[0], want, rtol=1e-5, atol=1e-6)


def test_promix_resumes_exactly_with_label_guessing(tmp_path):
    curve = resume_matches(
        tmp_path, "promix", {"pretrain_ep": 1, "warmup_ep": 2, "start_expand": 2, "tau": 0.6}
    )
    assert curve["clean_ratio"].iloc[1:].notna().all()
