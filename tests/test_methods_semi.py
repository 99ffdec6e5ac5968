"""DivideMix and DISC, and their shared pieces (mixup, sharpening, the loss GMM, GCE)."""

import io

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from lnm.methods import dividemix as dm_module
from lnm.methods._gmm import clean_probability, minmax_normalise
from lnm.methods._losses import gce
from lnm.methods._mixup import mixup, sample_lambda, sharpen
from lnm.methods._randaugment import OPS, rand_augment
from lnm.methods.disc import disc_sets, ema_thresholds
from lnm.methods.dividemix import division_flags, partition, refine_labels
from tests.conftest import run_method, tiny_method

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():  # as the trainer runs on the CPU; also keeps these tests fast and exact
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_method(tmp_path, name, params=None, seed=0):
    """A method instance on the tiny synthetic problem (96 train samples, 3 classes, 8x8)."""
    return tiny_method(tmp_path, name, epochs=4, params=params, seed=seed)[0]


def run_epoch(method, epoch, seed=123):
    torch.manual_seed(seed)
    np.random.seed(seed)
    method.start_epoch(epoch)
    return method.train_epoch(epoch, method.data.epoch_batches(method.spec.seed, epoch))


# ----------------------------------------------------------------------------- shared pieces
def test_mixup_lambda_folded_and_targets_mixed_like_inputs():
    np.random.seed(0)
    lams = np.array([sample_lambda(4.0) for _ in range(500)])
    assert (lams >= 0.5).all() and (lams <= 1).all() and lams.std() > 0.05
    assert sample_lambda(0.0) == 1.0
    torch.manual_seed(0)
    t = torch.softmax(torch.randn(16, 5), 1)
    x = t.clone()  # inputs equal to their targets: mixing must keep them equal
    gen = torch.Generator().manual_seed(1)
    mixed_x, mixed_t, lam, perm = mixup(x, t, 5.0, gen)
    assert lam >= 0.5 and sorted(perm.tolist()) == list(range(16))
    torch.testing.assert_close(mixed_x, mixed_t)
    torch.testing.assert_close(mixed_t, lam * t + (1 - lam) * t[perm])
    torch.testing.assert_close(mixed_t.sum(1), torch.ones(16))
    images = torch.randn(16, 1, 4, 4)
    mixed_i, _, lam2, perm2 = mixup(images, t, 5.0, lam=0.7)
    assert lam2 == 0.7
    torch.testing.assert_close(mixed_i, 0.7 * images + 0.3 * images[perm2])


def test_sharpen_and_label_refinement_match_their_formulas():
    p = torch.tensor([[0.2, 0.3, 0.5]])
    torch.testing.assert_close(sharpen(p, 0.5), torch.tensor([[0.04, 0.09, 0.25]]) / 0.38)
    torch.testing.assert_close(sharpen(p, 1.0), p)
    # w = 0.8, ỹ = 1, p_net = (0.5, 0.25, 0.25): 0.8·e1 + 0.2·p = (0.1, 0.85, 0.05), squared
    w = torch.tensor([0.8, 0.0])
    y = F.one_hot(torch.tensor([1, 2]), 3).float()
    pn = torch.tensor([[0.5, 0.25, 0.25], [0.6, 0.3, 0.1]])
    t = refine_labels(w, y, pn, 0.5)
    torch.testing.assert_close(t[0], torch.tensor([0.01, 0.7225, 0.0025]) / 0.735)
    torch.testing.assert_close(t[1], torch.tensor([0.36, 0.09, 0.01]) / 0.46)  # w = 0: p only


def test_gce_formula():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    y = torch.tensor([0, 1])
    want = torch.tensor([(1 - 0.5**0.7) / 0.7, (1 - 0.1**0.7) / 0.7])
    torch.testing.assert_close(gce(logits, y, 0.7, reduction="none"), want)
    torch.testing.assert_close(gce(logits, y), want.mean())


def test_gmm_clean_probability_separates_clean_from_noisy_losses():
    rng = np.random.default_rng(0)
    clean = rng.gamma(2.0, 0.15, 700)  # small losses, long right tail
    noisy = rng.normal(1.3, 0.45, 300).clip(0.0)  # large losses, overlapping the tail
    losses = np.concatenate([clean, noisy])
    is_clean = np.r_[np.ones(700, bool), np.zeros(300, bool)]
    assert roc_auc_score(is_clean, losses) < 0.99  # the two groups do overlap
    prob = clean_probability(losses)
    assert roc_auc_score(is_clean, prob) >= 0.9
    assert (prob[is_clean] > 0.5).mean() > 0.8 and (prob[~is_clean] > 0.5).mean() < 0.2
    norm = minmax_normalise(losses)
    assert norm.min() == 0.0 and norm.max() == 1.0
    np.testing.assert_allclose(clean_probability(3.0 * losses + 5.0), prob, atol=1e-6)
    np.testing.assert_array_equal(clean_probability(losses), prob)  # deterministic fit


def test_strong_augmentation_keeps_colour_channels_and_range():
    torch.manual_seed(0)
    img = torch.rand(64, 3, 8, 8)
    img[:, 0] *= 0.3  # channels clearly differ
    mean, std = torch.full((1, 3, 1, 1), 0.4), torch.full((1, 3, 1, 1), 0.25)
    gen = torch.Generator().manual_seed(0)
    out = rand_augment((img - mean) / std, mean, std, gen, prob=1.0)
    back = out * std + mean
    assert out.shape == img.shape and torch.isfinite(out).all()
    assert back.min() >= -1e-5 and back.max() <= 1 + 1e-5
    assert (back[:, 0] - back[:, 1]).abs().mean() > 0.05  # not a grayscale view
    assert (back - img).abs().mean() > 0.01  # something was done
    v, s = torch.full((64,), 0.3), torch.where(torch.rand(64) < 0.5, -1.0, 1.0)
    for op in OPS:
        r = op(img.clone(), v, s)
        assert r.shape == img.shape and torch.isfinite(r).all(), op.__name__


# ----------------------------------------------------------------------------- DivideMix
def test_partition_threshold_and_fallback():
    np.testing.assert_array_equal(
        partition(np.array([0.9, 0.2, 0.6, 0.5]), 0.5), [True, False, True, False]
    )
    w = np.linspace(0.0, 0.4, 250)
    mask = partition(w, 0.5, 0.01)  # nobody passes: top 1 % (3 of 250) by w
    assert mask.sum() == 3 and mask[-3:].all()


def test_dividemix_per_sample_losses_cover_every_sample(tmp_path):
    m = make_method(tmp_path, "dividemix")
    losses = m.per_sample_loss(0)
    m.nets[0].eval()
    x = torch.cat(list(m.data.eval_batches("train")))
    with torch.no_grad():
        want = F.cross_entropy(m.nets[0](x), m.data.train_labels, reduction="none")
    torch.testing.assert_close(losses, want)
    assert len(losses) == m.data.num_train


def test_dividemix_co_divide_each_net_learns_from_the_other_nets_division(tmp_path, monkeypatch):
    m = make_method(tmp_path, "dividemix", {"warmup_epochs": 0})
    n = m.data.num_train
    first = np.arange(n) < n // 2
    probs = [np.where(first, 0.9, 0.1), np.where(first, 0.2, 0.8)]  # net 0 / net 1 divisions
    monkeypatch.setattr(m, "clean_probability", lambda k: probs[k])
    calls, refined_w = [], []
    real_train, real_refine = m._train_net, dm_module.refine_labels

    def spy_train(k, epoch, labelled, w, *rest):
        calls.append((k, labelled.copy(), np.array(w)))
        return real_train(k, epoch, labelled, w, *rest)

    def spy_refine(w, *rest):
        refined_w.append((len(calls) - 1, w.clone()))
        return real_refine(w, *rest)

    monkeypatch.setattr(m, "_train_net", spy_train)
    monkeypatch.setattr(dm_module, "refine_labels", spy_refine)
    diag = run_epoch(m, 0)
    assert [c[0] for c in calls] == [0, 1]
    np.testing.assert_array_equal(calls[0][1], ~first)  # net 0 <- net 1's labelled set
    np.testing.assert_array_equal(calls[0][2], probs[1])
    np.testing.assert_array_equal(calls[1][1], first)  # net 1 <- net 0's labelled set
    np.testing.assert_array_equal(calls[1][2], probs[0])
    np.testing.assert_array_equal(diag["selected_net0"], ~first)
    np.testing.assert_array_equal(diag["selected_net1"], first)
    np.testing.assert_allclose(diag["clean_prob"], (probs[0] + probs[1]) / 2)
    # label refinement used the other net's clean probability, once per labelled sample
    w0 = torch.cat([w for k, w in refined_w if k == 0])
    w1 = torch.cat([w for k, w in refined_w if k == 1])
    assert len(w0) == n - n // 2 and torch.all(w0 == 0.8)
    assert len(w1) == n // 2 and torch.all(w1 == 0.9)
    idx, new = diag["corrected"]
    assert (new != m.data.train_labels.numpy()[idx]).all()
    assert np.isfinite(diag["train_loss"])
    assert diag["unlabelled_frac"] == pytest.approx(0.5)  # each division labels one half
    assert diag["gmm_inverted"] in (0.0, 1.0) and diag["classes_unlabelled"] >= 0


def test_dividemix_division_flags_hand_built():
    """Two divisions of 8 samples, classes [0, 0, 0, 0, 1, 1, 2, 2] (class 0 the majority)."""
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    # net 0: the majority class is the low-loss mode; minority classes all unlabelled and the
    # clean component holds 3.0/8 < 0.5 of the posterior mass -> inverted
    w0 = np.array([0.9, 0.9, 0.8, 0.2, 0.1, 0.05, 0.05, 0.0])
    # net 1: a healthy division (mass 6.2/8), one noisy-looking sample of class 1
    w1 = np.array([0.9, 0.9, 0.8, 0.9, 0.2, 0.9, 0.9, 0.7])
    lab = [partition(w, 0.5) for w in (w0, w1)]
    flags = division_flags([w0, w1], lab, labels)
    assert flags["unlabelled_frac"] == pytest.approx((5 / 8 + 1 / 8) / 2)
    assert flags["gmm_inverted"] == 1.0
    assert flags["classes_unlabelled"] == 2  # classes 1 and 2 in net 0's division
    healthy = division_flags([w1, w1], [lab[1], lab[1]], labels)
    assert healthy == {"unlabelled_frac": 1 / 8, "gmm_inverted": 0.0, "classes_unlabelled": 0}


def test_ranking_losses_come_from_float32_logits_under_bf16_autocast(tmp_path, monkeypatch):
    """Method.forward returns float32 even when the network runs under bf16 autocast (as on
    CUDA), and the per-sample losses that rank/partition samples are float32: DivideMix's GMM
    input, DISC's probability memory (its thresholds) and the small-loss CE."""
    from lnm.methods._selection import per_sample_ce
    from lnm.methods.base import Method

    monkeypatch.setattr(Method, "autocast", lambda self: torch.autocast("cpu", torch.bfloat16))
    m = make_method(tmp_path, "dividemix")
    x = next(iter(m.data.eval_batches("train")))
    with torch.autocast("cpu", torch.bfloat16):
        assert m.nets[0](x).dtype == torch.bfloat16  # what autocast alone would give
    assert m.forward(m.nets[0], x).dtype == torch.float32
    assert m.per_sample_loss(0).dtype == torch.float32
    z = m.forward(m.nets[0], x)
    assert per_sample_ce(z, m.data.train_labels[: len(z)]).dtype == torch.float32
    d = make_method(tmp_path, "disc", {"start_epoch": 1})
    run_epoch(d, 0)
    assert d.w_probs.dtype == d.s_probs.dtype == d.tau_w.dtype == torch.float32


def lnmbench_gmm_inputs(losses, window=5):
    """The GMM inputs of LNMBench's ``eval_train`` (DivideMix/Train_<dataset>.py, at
    ``noise_rate == 0.9``), transcribed: the losses min–max normalised and appended to the
    history; the mean of the last five once ``len(all_loss) >= 5``, else the current epoch's."""
    history, out = [], []
    for raw in losses:
        lo, hi = raw.min(), raw.max()
        norm = (raw - lo) / (hi - lo) if hi > lo else raw
        history.append(norm)
        out.append(np.mean(history[-window:], 0) if len(history) >= window else norm)
    return out


def official_gmm_inputs(losses, window=5):
    """The official DivideMix's (``Train_cifar.py``, ``r == 0.9``): ``history[-5:].mean(0)``,
    whatever the number of epochs available."""
    history = []
    for raw in losses:
        history.append((raw - raw.min()) / (raw.max() - raw.min()))
    return [np.mean(history[: k + 1][-window:], 0) for k in range(len(history))]


@pytest.mark.parametrize("partial", [False, True])
def test_dividemix_loss_average_follows_lnmbench_or_the_official_code(
    tmp_path, monkeypatch, partial
):
    """``loss_avg_partial: false`` (reference, with ``loss_avg_epochs: 5``): the GMM sees the
    current epoch's normalised losses for the first four epochs after warm-up and the mean of
    the last five from the fifth on (LNMBench); ``true``: the mean of the 1-4 available first
    (official DivideMix)."""
    g = np.random.default_rng(4)
    losses = [g.gamma(2.0, 0.5 + 0.1 * k, 96) for k in range(8)]
    m = make_method(tmp_path, "dividemix", {"loss_avg_epochs": 5, "loss_avg_partial": partial})
    seen = []

    def capture(values, random_state=0):
        seen.append(np.array(values, dtype=np.float64))
        return np.full(len(values), 0.5)

    monkeypatch.setattr(dm_module, "gmm_clean_probability", capture)
    calls = iter(losses)
    monkeypatch.setattr(m, "per_sample_loss", lambda k: torch.from_numpy(next(calls)))
    for _ in losses:
        m.clean_probability(0)
    want = (official_gmm_inputs if partial else lnmbench_gmm_inputs)(losses)
    for got, exp in zip(seen, want, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-12)
    other = (lnmbench_gmm_inputs if partial else official_gmm_inputs)(losses)
    assert not np.allclose(seen[1], other[1])  # the two rules differ in epochs 2-4 ...
    np.testing.assert_allclose(seen[4], other[4], rtol=1e-12)  # ... and agree from the fifth


def test_dividemix_views_are_augmented_only_under_harmonized():
    """MixMatch's two views are the run's augment applied twice: two different augmented views
    under harmonized (train.augment); under reference (recipes.dividemix.augment: none) both are
    the raw image, as LNMBench's MedMNIST loaders give."""
    from lnm.config import load_config, run_spec
    from lnm.train.augment import Augmenter
    from tests.conftest import REPO

    raw = torch.randint(0, 256, (16, 3, 28, 28), dtype=torch.uint8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    views = {}
    for preset in ("reference", "demo"):
        cfg = load_config(REPO / "presets" / f"{preset}.yaml")
        spec = run_spec(cfg, "pathmnist", "symmetric", "0.9", "0", "dividemix", "resnet50", "0")
        aug = Augmenter(mean, std, **spec.augment)
        gen = torch.Generator().manual_seed(0)
        views[preset] = (aug(raw, gen), aug(raw, gen), aug.normalize(raw.clone()))
    x1, x2, plain = views["reference"]
    assert torch.equal(x1, x2) and torch.equal(x1, plain)
    x1, x2, plain = views["demo"]
    assert not torch.equal(x1, x2) and not torch.equal(x1, plain)


def test_dividemix_lambda_u_ramp(tmp_path):
    m = make_method(tmp_path, "dividemix", {"warmup_epochs": 5, "rampup_epochs": 16})
    assert m._lambda_u(5.0) == 0.0 and m._lambda_u(3.0) == 0.0
    assert m._lambda_u(13.0) == pytest.approx(12.5) and m._lambda_u(40.0) == 25.0


# ----------------------------------------------------------------------------- DISC
@pytest.mark.parametrize("pool", ["fixmatch", "lnmbench"])
def test_disc_strong_view_is_the_chosen_pool_on_a_second_crop_flip_view(tmp_path, pool):
    from lnm.methods._randaugment import lnmbench_rand_augment

    m = make_method(tmp_path, "disc", {"strong_pool": pool})
    b = next(iter(m.data.epoch_batches(0, 0)))
    state = b.gen.get_state()
    got = m.strong_view(b)
    b.gen.set_state(state)
    aug = m.data.augmenter
    base = b.view()  # a second, independently drawn crop/flip view
    if pool == "lnmbench":
        want = lnmbench_rand_augment(base, aug.mean, aug.std, b.gen, 2, 5, 0.5, 0.15)
    else:
        want = rand_augment(base, aug.mean, aug.std, b.gen, 2, 5.0, 0.5, 0.15)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert not torch.equal(got, b.x)
    with pytest.raises(ValueError, match=r"strong_max_magnitude 4\.5 with strong_pool lnmbench"):
        make_method(tmp_path, "disc", {"strong_pool": "lnmbench", "strong_max_magnitude": 4.5})


def test_disc_reference_views_are_lnmbenchs():
    """Under presets/reference.yaml DISC's weak view is torchvision's RandomResizedCrop with its
    default scale and ratio plus a horizontal flip (LNMBench's TransformFixMatch_PathMNIST) and
    its strong pool is LNMBench's; harmonized keeps the padded crop and the FixMatch-style pool."""
    import torchvision.transforms as T

    from lnm.config import load_config, run_spec
    from tests.conftest import REPO

    default = T.RandomResizedCrop(224)
    spec = lambda cfg: run_spec(cfg, "pathmnist", "symmetric", "0.5", "0", "disc", "resnet50", "0")
    ref = spec(load_config(REPO / "presets" / "reference.yaml"))
    crop = ref.augment["resized_crop"]
    assert tuple(crop["scale"]) == default.scale and tuple(crop["ratio"]) == default.ratio
    assert ref.augment["hflip"] and not ref.augment["vflip"] and ref.augment["crop_padding"] == 0
    assert ref.method_params["strong_pool"] == "lnmbench"
    assert ref.method_params["strong_max_magnitude"] == 5 and ref.method_params["cutout"] == 0.15
    harm = spec(load_config(REPO / "config.yaml"))
    assert harm.method_params["strong_pool"] == "fixmatch" and harm.augment["crop_padding"] == 4
    assert harm.augment.get("resized_crop") is None


def test_disc_thresholds_follow_their_ema():
    tau = torch.tensor([0.1, 0.5])
    p1 = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.6, 0.2]])
    p2 = torch.tensor([[0.3, 0.4, 0.3], [0.1, 0.1, 0.8]])
    tau = ema_thresholds(tau, p1, 0.9)
    torch.testing.assert_close(tau, torch.tensor([0.18, 0.51]))
    torch.testing.assert_close(ema_thresholds(tau, p2, 0.9), torch.tensor([0.202, 0.539]))


def test_disc_method_sets_then_ema_once_per_epoch(tmp_path):
    m = make_method(tmp_path, "disc", {"momentum": 0.9})
    n = m.data.num_train
    torch.testing.assert_close(m.tau_w, torch.full((n,), 1.0 / n))  # original init 1/N
    g = torch.Generator().manual_seed(0)
    for epoch in (1, 2):
        m.w_probs = torch.softmax(3 * torch.randn(n, 3, generator=g), 1)
        m.s_probs = torch.softmax(3 * torch.randn(n, 3, generator=g), 1)
        tw, ts = m.tau_w.clone(), m.tau_s.clone()
        m.update_sets(epoch)
        want = disc_sets(m.w_probs, m.s_probs, m.data.train_labels, tw, ts, 0.5, 0.99)
        for k, v in want.items():  # sets come from the thresholds *before* the update
            assert torch.equal(m.sets[k], v), k
        torch.testing.assert_close(m.tau_w, 0.9 * tw + 0.1 * m.w_probs.max(1).values)
        torch.testing.assert_close(m.tau_s, 0.9 * ts + 0.1 * m.s_probs.max(1).values)
        before = m.tau_w.clone()
        m.update_sets(epoch)  # a second call in the same epoch changes nothing
        assert torch.equal(m.tau_w, before)


def test_disc_clean_hard_corrected_sets_follow_the_rule():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 0])
    w = torch.tensor(
        [
            [0.7, 0.2, 0.1],  # 0: both views pass -> clean
            [0.7, 0.2, 0.1],  # 1: weak only -> hard
            [0.5, 0.2, 0.3],  # 2: strong only -> hard
            [0.9, 0.05, 0.05],  # 3: neither, confident on 0 -> corrected to 0
            [0.6, 0.2, 0.2],  # 4: neither, not confident enough -> no set
            [0.7, 0.28, 0.02],  # 5: neither, low thresholds -> corrected to 0
            [0.02, 0.975, 0.005],  # 6: threshold capped at 0.99, 0.98 < 0.99
            [0.0, 0.995, 0.005],
        ]
    )  # 7: 0.995 > cap 0.99 -> corrected to 1
    s = torch.tensor(
        [
            [0.6, 0.3, 0.1],
            [0.1, 0.8, 0.1],
            [0.2, 0.5, 0.3],
            [0.85, 0.1, 0.05],
            [0.5, 0.3, 0.2],
            [0.8, 0.18, 0.02],
            [0.02, 0.985, 0.005],
            [0.0, 0.995, 0.005],
        ]
    )
    tau = torch.tensor([0.3, 0.3, 0.3, 0.3, 0.3, 0.05, 0.95, 0.95])
    sets = disc_sets(w, s, labels, tau, tau, sigma=0.5, cap=0.99)
    as_idx = lambda m: torch.nonzero(m).squeeze(1).tolist()
    assert as_idx(sets["clean"]) == [0]
    assert as_idx(sets["hard"]) == [1, 2]
    assert as_idx(sets["weak_selected"]) == [0, 1] and as_idx(sets["strong_selected"]) == [0, 2]
    assert as_idx(sets["corrected"]) == [3, 5, 7]
    assert as_idx(sets["mix"]) == [0, 1, 2, 3, 5, 7]
    assert sets["mix_labels"].tolist() == [0, 0, 1, 0, 2, 0, 0, 1]
    c, h, p = sets["clean"], sets["hard"], sets["corrected"]
    assert not (c & h).any() and not (c & p).any() and not (h & p).any()
    assert torch.equal(sets["mix"], c | h | p)


def test_disc_training_uses_sets_and_reports_them(tmp_path):
    m = make_method(tmp_path, "disc", {"start_epoch": 1})
    run_epoch(m, 0)
    assert (m.w_probs.sum(1) > 0).sum() == 96 and (m.s_probs.sum(1) > 0).sum() == 96
    diag = run_epoch(m, 1)
    assert m.sets_epoch == 1
    np.testing.assert_array_equal(diag["selected"], m.sets["clean"].numpy())
    idx, new = diag["corrected"]
    np.testing.assert_array_equal(idx, torch.nonzero(m.sets["corrected"]).squeeze(1).numpy())
    assert diag["hard_count"] == int(m.sets["hard"].sum()) and np.isfinite(diag["train_loss"])


# ----------------------------------------------------------------------------- state
def _state_equal(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_state_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize(
    "name,params",
    [("dividemix", {"warmup_epochs": 1, "loss_avg_epochs": 3}), ("disc", {"start_epoch": 1})],
)
def test_state_dict_round_trip_continues_identically(tmp_path, name, params):
    a = make_method(tmp_path, name, params, seed=0)
    for epoch in (0, 1):
        run_epoch(a, epoch)
    buf = io.BytesIO()  # a real round trip (no tensors shared between a and b)
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = make_method(tmp_path, name, params, seed=7)  # different initialisation
    b.load_state_dict(torch.load(buf, weights_only=False))
    assert _state_equal(a.state_dict(), b.state_dict())
    da, db = run_epoch(a, 2), run_epoch(b, 2)
    assert da["train_loss"] == db["train_loss"]
    assert _state_equal(a.state_dict(), b.state_dict())


@pytest.mark.parametrize(
    "name,params",
    [("dividemix", {"warmup_epochs": 1, "rampup_epochs": 2}), ("disc", {"start_epoch": 1})],
)
def test_resume_after_warmup_matches_uninterrupted(tmp_path, name, params):
    full, _ = run_method(tmp_path, name, epochs=3, params=params, out="full")

    def crash(line):
        if "epoch 2/3" in line:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        run_method(tmp_path, name, epochs=3, params=params, out="resumed", log=crash)
    resumed, out = run_method(tmp_path, name, epochs=3, params=params, out="resumed")
    drop = lambda m: {k: v for k, v in m.items() if k != "provenance"}
    assert drop(resumed) == drop(full)
    curve = pd.read_csv(out / "per_epoch.csv")
    pd.testing.assert_frame_equal(curve, pd.read_csv(tmp_path / "full" / "per_epoch.csv"))
    scored = "gmm_auc" if name == "dividemix" else "clean_ratio"
    assert curve[scored].iloc[1:].notna().all()


def test_dividemix_regulariser_prior_uniform_or_label_frequencies(tmp_path):
    m = make_method(tmp_path, "dividemix", {})
    torch.testing.assert_close(m.reg_prior(), torch.full((m.num_classes,), 1 / m.num_classes))
    m = make_method(tmp_path, "dividemix", {"reg_prior": "labels"})
    counts = torch.bincount(m.data.train_labels, minlength=m.num_classes).float()
    torch.testing.assert_close(m.reg_prior(), counts / counts.sum())
    m = make_method(tmp_path, "dividemix", {"reg_prior": "balanced"})
    with pytest.raises(ValueError, match="'balanced'.*allowed: 'uniform', 'labels'"):
        m.reg_prior()
