"""Co-Correcting against JiarunLiu/Co-Correcting (``Loss.py``, ``Co-Correcting.py::train/
_compute_loss/_get_label_update_stage``, ``utils/curriculum_clustering.py``; transcribed below)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lnm.methods.cocorrecting import (
    co_select,
    curriculum_subsets,
    pencil_kl,
    pencil_loss,
    update_stage,
)
from tests.methods_new_common import (
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
class OfficialLoss:
    """``Loss.py`` (the noise_or_not bookkeeping left out)."""

    def __init__(self, alpha=0.4, beta=0.1):
        self.alpha, self.beta = alpha, beta

    def _pencil_loss_kl(self, X, Y, reduction="mean"):
        if reduction == "none":
            return torch.mean(F.softmax(X, 1) * (F.log_softmax(X, 1) - torch.log(Y)), dim=1)
        return torch.mean(F.softmax(X, 1) * (F.log_softmax(X, 1) - torch.log(Y)))

    def _pencil_loss_entropy(self, X, reduction="mean"):
        if reduction == "none":
            return -torch.mean(torch.mul(F.softmax(X, 1), F.log_softmax(X, 1)), dim=1)
        return -torch.mean(torch.mul(F.softmax(X, 1), F.log_softmax(X, 1)))

    def _pencil_loss(self, X, last_y_var_A, reduction="mean", target_var=None):
        lc = self._pencil_loss_kl(X, last_y_var_A, reduction=reduction)
        le = self._pencil_loss_entropy(X, reduction=reduction)
        lo = F.cross_entropy(last_y_var_A, target_var, reduction=reduction)
        return lc + self.alpha * lo + self.beta * le

    def _get_loss(self, X, Y, loss_type="CE", reduction="mean", **kwargs):
        if loss_type == "CE":
            return F.cross_entropy(X, Y, reduction=reduction)
        if loss_type == "PENCIL_KL":
            return self._pencil_loss_kl(X, Y, reduction=reduction)
        return self._pencil_loss(X, Y, reduction=reduction, **kwargs)

    def loss_coteaching(self, y_1, y_2, t_1, t_2, forget_rate, loss_type="CE", target_var=None):
        kw = {} if loss_type != "PENCIL" else {"target_var": target_var}
        ind_1_sorted = torch.argsort(self._get_loss(y_1, t_1, loss_type, "none", **kw).data)
        ind_2_sorted = torch.argsort(self._get_loss(y_2, t_2, loss_type, "none", **kw).data)
        num_remember = int((1 - forget_rate) * len(ind_1_sorted))
        ind_1_update, ind_2_update = ind_1_sorted[:num_remember], ind_2_sorted[:num_remember]
        kw1 = {} if loss_type != "PENCIL" else {"target_var": target_var[ind_2_update]}
        kw2 = {} if loss_type != "PENCIL" else {"target_var": target_var[ind_1_update]}
        loss_1_update = self._get_loss(
            y_1[ind_2_update], t_2[ind_2_update], loss_type, "none", **kw1
        )
        loss_2_update = self._get_loss(
            y_2[ind_1_update], t_1[ind_1_update], loss_type, "none", **kw2
        )
        return (torch.sum(loss_1_update) / num_remember, torch.sum(loss_2_update) / num_remember,
                ind_1_update, ind_2_update, ind_1_sorted[num_remember:], ind_2_sorted[num_remember:])  # fmt: skip

    def loss_coteaching_plus(
        self, y_1, y_2, t_1, t_2, forget_rate, step, loss_type="CE", target_var=None
    ):
        _, pred1 = torch.max(y_1.data, 1)
        _, pred2 = torch.max(y_2.data, 1)
        disagree_id = torch.where(pred1 == pred2)[0]
        if len(disagree_id) * (1 - forget_rate) >= 1:
            tv = None if target_var is None else target_var[disagree_id]
            l1, l2, u1, u2, d1, d2 = self.loss_coteaching(
                y_1[disagree_id],
                y_2[disagree_id],
                t_1[disagree_id],
                t_2[disagree_id],
                forget_rate,
                loss_type,
                tv,
            )
            return l1, l2, disagree_id[u1], disagree_id[u2], disagree_id[d1], disagree_id[d2]
        logical_disagree_id = torch.zeros(t_1.shape[0], dtype=torch.bool)
        logical_disagree_id[disagree_id] = True
        update_step = (logical_disagree_id | (step < 5000)).float()
        kw = {} if loss_type != "PENCIL" else {"target_var": target_var}
        l1 = self._get_loss(y_1, t_1, loss_type, "mean", **kw)
        l2 = self._get_loss(y_2, t_2, loss_type, "mean", **kw)
        loss_1 = torch.sum(update_step * l1) / t_1.shape[0]
        loss_2 = torch.sum(update_step * l2) / t_2.shape[0]
        upd = torch.where(update_step == 1)[0]
        dis = torch.where(update_step == 0)[0]
        return loss_1, loss_2, upd, upd, dis, dis


def official_update_stage(epoch, stage1, stage2):
    update_stage = 0
    step = (stage2 - stage1) / 3
    for i in range(3):
        if stage1 + step * (i + 1) < epoch:
            update_stage += 1
    return update_stage


def official_curriculum(
    X, y, n_subsets=3, density_t=0.6, dim_reduce=256, batch_max=30000, random_state=0
):
    """``cluster_curriculum_subsets`` (method 'default', no auxiliary info; KMeans with the
    n_init=10 of the scikit-learn of its time)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    pca = (
        PCA(n_components=dim_reduce, copy=False, random_state=random_state)
        if X.shape[1] > dim_reduce
        else None
    )
    all_clustered_labels = np.full(len(y), -1, dtype=np.intp)
    for current_category in set(y):
        dist_list = [i for i, label in enumerate(y) if label == current_category]
        for start in range(0, len(dist_list), batch_max):
            batch_dist_list = dist_list[start : start + batch_max]
            subset_vectors = np.zeros((len(batch_dist_list), X.shape[1]), dtype=np.float32)
            for subset_idx, global_idx in enumerate(batch_dist_list):
                subset_vectors[subset_idx, :] = X[global_idx, :]
            if pca:
                subset_vectors = pca.fit_transform(subset_vectors)
            m = np.dot(subset_vectors, np.transpose(subset_vectors))
            t = np.square(subset_vectors).sum(axis=1)
            distance = np.sqrt(np.abs(-2 * m + t + np.transpose(np.array([t]))))
            densities = np.zeros((len(subset_vectors)), dtype=np.float32)
            flat_distance = distance.reshape(distance.shape[0] * distance.shape[1])
            dist_cutoff = np.sort(flat_distance)[
                int(distance.shape[0] * distance.shape[1] * density_t)
            ]
            for i in range(len(batch_dist_list)):
                densities[i] = len(np.where(distance[i] < dist_cutoff)[0]) - 1
            if len(densities) < n_subsets:
                raise ValueError("Cannot cluster")
            model = KMeans(n_clusters=n_subsets, random_state=random_state, n_init=10)
            model.fit(densities.reshape(len(densities), 1))
            clusters = [densities[np.where(model.labels_ == i)] for i in range(n_subsets)]
            if len(set([k for j in clusters for k in j])) < n_subsets:
                raise ValueError("Cannot cluster")
            bound = np.sort(np.array([np.min(c) for c in clusters]))
            for i in range(len(densities)):
                if densities[i] >= bound[n_subsets - 1]:
                    all_clustered_labels[batch_dist_list[i]] = 0
                else:
                    for j in range(n_subsets - 1):
                        if bound[j] <= densities[i] < bound[j + 1]:
                            all_clustered_labels[batch_dist_list[i]] = len(bound) - j - 1
    return all_clustered_labels


# ------------------------------------------------------------------ pieces
def hand_case(seed=0, b=12, c=3):
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(b, c, generator=g, dtype=torch.float64) * 2
    z1 = z0 + torch.randn(b, c, generator=g, dtype=torch.float64)  # mostly agreeing
    y = torch.randint(0, c, (b,), generator=g)
    y_dist = torch.softmax(torch.randn(b, c, generator=g, dtype=torch.float64) * 3, 1)
    return z0, z1, y, y_dist


def test_pencil_losses_match_loss_py():
    z, _, y, yd = hand_case()
    off = OfficialLoss(0.4, 0.1)
    torch.testing.assert_close(pencil_loss(z, yd, y, 0.4, 0.1), off._pencil_loss(z, yd, "none", y))
    torch.testing.assert_close(
        pencil_loss(z, yd, y, 0.4, 0.1).mean(), off._pencil_loss(z, yd, "mean", y)
    )
    torch.testing.assert_close(pencil_kl(z, yd), off._pencil_loss_kl(z, yd, "none"))


@pytest.mark.parametrize("stage", ["CE", "PENCIL", "PENCIL_KL"])
@pytest.mark.parametrize("tau", [0.0, 0.3, 0.95])
@pytest.mark.parametrize("step", [10, 6000])
def test_selection_matches_loss_coteaching_plus(stage, tau, step):
    off = OfficialLoss(0.4, 0.1)
    for seed in range(4):
        z0, z1, y, yd = hand_case(seed)
        z0, z1 = z0.requires_grad_(True), z1.requires_grad_(True)
        t = y if stage == "CE" else yd
        want = off.loss_coteaching_plus(z0, z1, t, t, tau, step, stage, target_var=y)
        if stage == "CE":
            l0, l1 = (
                F.cross_entropy(z0, y, reduction="none"),
                F.cross_entropy(z1, y, reduction="none"),
            )
        elif stage == "PENCIL":
            l0, l1 = pencil_loss(z0, yd, y, 0.4, 0.1), pencil_loss(z1, yd, y, 0.4, 0.1)
        else:
            l0, l1 = pencil_kl(z0, yd), pencil_kl(z1, yd)
        pool = z0.detach().argmax(1) == z1.detach().argmax(1)
        sel, discarded = co_select(l0, l1, pool, tau, step, 5000)
        torch.testing.assert_close(sel.parts[0], want[0], check_dtype=False)
        torch.testing.assert_close(sel.parts[1], want[1], check_dtype=False)
        # net 0 trains on what net 1 kept: gradients agree too
        torch.testing.assert_close(
            torch.autograd.grad(sel.loss, z0)[0], torch.autograd.grad(want[0] + want[1], z0)[0]
        )
        as_set = lambda m: set(torch.nonzero(m).squeeze(1).tolist())
        assert as_set(sel.masks["selected_net0"]) == set(want[2].tolist())
        assert as_set(sel.masks["selected_net1"]) == set(want[3].tolist())
        assert as_set(discarded) == set(want[4].tolist()) | set(want[5].tolist())


def test_empty_agreement_trains_on_the_batch_until_warm_steps_then_on_nothing():
    z0 = torch.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
    z1 = torch.tensor([[0.0, 2.0], [2.0, 0.0]], requires_grad=True)  # they never agree
    y = torch.tensor([0, 1])
    pool = z0.argmax(1) == z1.argmax(1)
    l0, l1 = F.cross_entropy(z0, y, reduction="none"), F.cross_entropy(z1, y, reduction="none")
    sel, _ = co_select(l0, l1, pool, 0.2, 4999, 5000)
    torch.testing.assert_close(sel.parts[0], l0.mean())
    sel, discarded = co_select(l0, l1, pool, 0.2, 5000, 5000)
    assert float(sel.loss.detach()) == 0.0 and discarded.all()


def test_label_update_stage_matches_the_official_schedule():
    for s1, s2 in ((70, 200), (1, 4), (3, 3), (0, 10)):
        for e in range(0, 260):
            assert update_stage(e, s1, s2) == official_update_stage(e, s1, s2), (s1, s2, e)


def test_curriculum_subsets_match_curriculum_clustering():
    rng = np.random.default_rng(0)
    n, d = 90, 12
    labels = rng.integers(0, 3, n)
    feats = (rng.normal(size=(n, d)) * rng.uniform(0.2, 2.0, size=(n, 1))).astype(np.float32)
    for dim_reduce, batch_max in ((256, 30000), (4, 30000), (256, 17)):
        want = official_curriculum(feats, labels, dim_reduce=dim_reduce, batch_max=batch_max)
        got = curriculum_subsets(feats, labels, dim_reduce=dim_reduce, batch_max=batch_max)
        np.testing.assert_array_equal(got, want)
        assert set(got) == {0, 1, 2}
    # a class too small to cluster (official: ValueError) goes to subset 0
    small = np.array([0] * 30 + [1] * 2)
    with pytest.raises(ValueError):
        official_curriculum(feats[:32], small)
    got = curriculum_subsets(feats[:32], small)
    assert (got[30:] == 0).all() and set(got[:30]) == {0, 1, 2}


# ------------------------------------------------------------------ the method
def run_spied_epoch(m, epoch, b):
    """Train ``m`` for one epoch on ``b``; record both networks' gradients at their steps."""
    grads = []
    for k, opt in enumerate(m.optimizers):
        real = opt.step

        def step(*a, real=real, k=k, **kw):
            grads.append([p.grad.clone() for p in m.nets[k].parameters()])
            return real(*a, **kw)

        opt.step = step
    diag = m.train_epoch(epoch, [b])
    return diag, grads


PARAMS = {"forget_rate": 0.3, "num_gradual": 1, "stage1": 1, "stage2": 3, "lambda1": 150.0}


@pytest.mark.parametrize("curriculum", [False, True])
def test_stage_two_batch_matches_the_official_train_step(tmp_path, curriculum):
    m = make(tmp_path, "cocorrecting", {**PARAMS, "curriculum": curriculum})
    n, c = m.data.num_train, m.num_classes
    g = torch.Generator().manual_seed(3)
    yl = m.per_sample["y_logits"]
    yl[:] = yl + torch.randn(n, c, generator=g) * 2  # labels that have moved already
    if curriculum:
        m.per_sample["subset"] = torch.randint(0, 3, (n,), generator=g)
    before = yl.clone().double()
    b = batch(m, range(8, 56))
    nets = [frozen(net).train() for net in m.nets]
    epoch = 2  # stage 2; update stage of epoch 2 with stages (1, 3): 2 > 1 + 2/3 -> 1
    assert update_stage(epoch, 1, 3) == 1
    _, grads = run_spied_epoch(m, epoch, b)
    off = OfficialLoss(0.4, 0.1)
    outA, outB = (net(b.x).double() for net in nets)
    yd = torch.softmax(before[b.idx], 1)
    step = epoch * m.data.batches_per_epoch()
    lossA, lossB, *_ = off.loss_coteaching_plus(
        outA, outB, yd, yd, 0.3, step, "PENCIL", target_var=b.y
    )
    assert_grads_close(grads[0], grads_of(lossA, nets[0].parameters()))
    assert_grads_close(grads[1], grads_of(lossB, nets[1].parameters()))
    # the label update (Co-Correcting.py train(): mix_grad 1, discard 0, curriculum)
    yy_A = before[b.idx].clone().requires_grad_(True)
    yy_B = before[b.idx].clone().requires_grad_(True)
    la = off._get_loss(outA.detach(), F.softmax(yy_A, 1), "PENCIL", target_var=b.y)
    lb = off._get_loss(outB.detach(), F.softmax(yy_B, 1), "PENCIL", target_var=b.y)
    la.backward()
    lb.backward()
    new = yy_A.data - 150.0 * (yy_A.grad.data + yy_B.grad.data)
    want = before.clone()
    moves = torch.ones(len(b), dtype=torch.bool)
    if curriculum:
        moves = m.per_sample["subset"][b.idx] <= 1
        assert 0 < int(moves.sum()) < len(b)
    want[b.idx[moves]] = new[moves]
    torch.testing.assert_close(yl.double(), want, rtol=1e-5, atol=1e-5)
    assert not torch.equal(yl.double(), before)


def test_stage_one_and_three_keep_the_labels_and_use_ce_then_kl(tmp_path):
    m = make(tmp_path, "cocorrecting", {**PARAMS, "stage1": 1, "stage2": 2})
    c = m.num_classes
    k_onehot = 10.0 * F.one_hot(m.data.train_labels, c).float()
    assert torch.equal(m.per_sample["y_logits"], k_onehot)  # K·onehot(ỹ)
    b = batch(m, range(40))
    off = OfficialLoss()
    for epoch, kind in ((0, "CE"), (2, "PENCIL_KL")):
        nets = [frozen(net).train() for net in m.nets]
        before = m.per_sample["y_logits"].clone()
        _, grads = run_spied_epoch(m, epoch, b)
        outA, outB = (net(b.x).double() for net in nets)
        t = b.y if kind == "CE" else torch.softmax(before[b.idx].double(), 1)
        tau = 0.0 if epoch == 0 else 0.3
        lossA, lossB, *_ = off.loss_coteaching_plus(
            outA, outB, t, t, tau, epoch * m.data.batches_per_epoch(), kind
        )
        assert_grads_close(grads[0], grads_of(lossA, nets[0].parameters()))
        assert_grads_close(grads[1], grads_of(lossB, nets[1].parameters()))
        assert torch.equal(m.per_sample["y_logits"], before)


def test_clustering_happens_at_stage1_from_both_networks_features(tmp_path):
    m = make(tmp_path, "cocorrecting", {**PARAMS, "stage1": 1})
    b = batch(m, range(16))
    m.train_epoch(0, [b])
    assert (m.per_sample["subset"] == -1).all()
    feats = []
    for net in m.nets:
        ev = frozen(net).eval()
        with torch.no_grad():
            feats.append(torch.cat([ev.body(x) for x in m.data.eval_batches("train")]))
    want = official_curriculum(torch.cat(feats, 1).numpy(), m.data.train_labels.numpy())
    assert set(want) == {0, 1, 2}
    m.train_epoch(1, [b])
    np.testing.assert_array_equal(m.per_sample["subset"].numpy(), want)


def test_cocorrecting_resumes_exactly_in_stage_two(tmp_path):
    curve = resume_matches(tmp_path, "cocorrecting", {**PARAMS, "lambda1": 2000.0})
    assert curve["clean_ratio"].notna().all()


def test_forget_rate_is_the_oracle_or_the_cells_estimate(tmp_path, monkeypatch):
    """``forget_rate`` is declared like the Co-teaching family's: null = the cell's nominal rate
    (oracle ᵒ), ``estimated`` = the estimation stage's rate."""
    from lnm import grid
    from lnm.train.data import DeviceData

    assert grid.rate_params("cocorrecting") == ("forget_rate",)
    m = make(tmp_path, "cocorrecting", {"num_gradual": 1})
    assert (m.tau, m.noise_rate_source, m.uses_true_noise_rate) == (0.4, "oracle", True)
    monkeypatch.setattr(DeviceData, "noise_estimate", {"estimated_rate": 0.15}, raising=False)
    m = make(tmp_path, "cocorrecting", {"forget_rate": "estimated", "num_gradual": 1})
    assert (m.tau, m.noise_rate_source, m.uses_true_noise_rate) == (0.15, "estimated", False)
    assert m.forget_rate(0) == 0.0 and m.forget_rate(1) == pytest.approx(0.15)
