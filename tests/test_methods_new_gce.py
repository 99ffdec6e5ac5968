"""GCE and truncated GCE against the paper and AlanChou/Truncated-Loss (transcribed below)."""

import numpy as np
import pytest
import torch

from lnm.methods._losses import gce
from lnm.methods.gce import is_prune_epoch, prune_weights, truncated_loss
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


# ------------------------------------------------------------------ transcriptions (float64)
def official_truncated_loss(logits, targets, weight, q=0.7, k=0.5):
    """AlanChou ``TruncatedLoss.forward`` (weight: the (N, 1) rows of the batch)."""
    p = torch.softmax(logits, dim=1)
    yg = torch.gather(p, 1, torch.unsqueeze(targets, 1))
    loss = ((1 - (yg**q)) / q) * weight - ((1 - (k**q)) / q) * weight
    return torch.mean(loss)


def official_update_weight(logits, targets, q=0.7, k=0.5):
    """AlanChou ``TruncatedLoss.update_weight``: the new (N, 1) weights."""
    p = torch.softmax(logits, dim=1)
    yg = torch.gather(p, 1, torch.unsqueeze(targets, 1))
    lq = (1 - (yg**q)) / q
    lqk = torch.full_like(lq, (1 - (k**q)) / q)
    return torch.gt(lqk, lq).double()


def official_prunes(epoch, start_prune=40):
    """``main.py::train`` (0-based epoch): ``(epoch+1) >= start_prune and (epoch+1) % 10 == 0``."""
    return (epoch + 1) >= start_prune and (epoch + 1) % 10 == 0


def paper_lq(logits, targets, q=0.7):
    """Zhang & Sabuncu eq. (5): mean over the batch of (1 − f_y(x)^q)/q."""
    p = torch.softmax(logits, 1).gather(1, targets.view(-1, 1)).squeeze(1)
    return ((1 - p**q) / q).mean()


HAND_LOGITS = torch.tensor(
    [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [5.0, -5.0, 1.0]],
    dtype=torch.float64,
)
HAND_Y = torch.tensor([0, 2, 0, 1, 0])


def test_truncated_loss_and_weights_match_the_official_code():
    w = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    for q, k in ((0.7, 0.5), (0.3, 0.2), (1.0, 0.6)):
        want = official_truncated_loss(HAND_LOGITS, HAND_Y, w.view(-1, 1), q, k)
        got = truncated_loss(HAND_LOGITS, HAND_Y, w, q, k)
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-7)
        p_y = torch.softmax(HAND_LOGITS, 1).gather(1, HAND_Y.view(-1, 1)).squeeze(1)
        new = prune_weights(p_y, k)
        np.testing.assert_array_equal(
            new.numpy(), official_update_weight(HAND_LOGITS, HAND_Y, q, k).view(-1).numpy()
        )
    # all pruned: the loss is 0 (mean over the whole batch, not over the kept samples)
    zero = truncated_loss(HAND_LOGITS, HAND_Y, torch.zeros(5, dtype=torch.float64), 0.7, 0.5)
    assert float(zero) == 0.0
    # a tie p_y == k is pruned (L_q(k) > L_q(p) is false), as in update_weight
    tie = torch.zeros(1, 2, dtype=torch.float64)  # p = (0.5, 0.5)
    assert float(official_update_weight(tie, torch.tensor([0]))) == 0.0
    assert float(prune_weights(torch.softmax(tie, 1)[:, 0], 0.5)) == 0.0


def test_plain_gce_is_the_papers_lq():
    for q in (0.7, 0.1, 1.0):
        torch.testing.assert_close(
            gce(HAND_LOGITS, HAND_Y, q).double(),
            paper_lq(HAND_LOGITS, HAND_Y, q),
            rtol=1e-6,
            atol=1e-7,
        )


def test_pruning_schedule_matches_the_official_epochs():
    for e in range(130):
        assert is_prune_epoch(e, 40, 10) == official_prunes(e), e
    assert [e for e in range(120) if is_prune_epoch(e, 40, 10)] == list(range(39, 120, 10))
    assert not is_prune_epoch(38, 40, 10) and is_prune_epoch(39, 40, 10)
    # a start that is not a multiple of the period: the first pruning waits for the period
    assert [e for e in range(30) if is_prune_epoch(e, 5, 10)] == [9, 19, 29]
    assert [e for e in range(8) if is_prune_epoch(e, 4, 2)] == [3, 5, 7]


def test_truncated_gce_prunes_from_the_current_network_and_steps_on_the_weighted_loss(tmp_path):
    q, k = 0.7, 0.34
    params = {"truncated": True, "k": k, "start_prune": 2, "prune_every": 2}
    m = make(tmp_path, "gce", params)
    spy = StepSpy(m)
    n = m.data.num_train
    idx = list(range(0, 40, 2))
    # epoch 0: no pruning, every weight 1 -> the truncated loss of the whole batch
    ref = frozen(m.nets[0]).train()
    b = batch(m, idx)
    diag = m.train_epoch(0, [b])
    assert "selected" not in diag  # nothing pruned yet
    want = official_truncated_loss(
        ref(b.x).double(), b.y, torch.ones(len(idx), 1, dtype=torch.float64), q, k
    )
    torch.testing.assert_close(spy.losses[0], want, rtol=1e-5, atol=1e-7)
    assert_grads_close(spy.grads[0], grads_of(want, ref.parameters()))
    # epoch 1 (e + 1 = 2): weights from the network as it is now, in eval mode, unaugmented
    ev = frozen(m.nets[0]).eval()
    x_all = torch.cat(list(m.data.eval_batches("train")))
    with torch.no_grad():
        w_all = official_update_weight(ev(x_all).double(), m.data.train_labels, q, k).view(-1)
    assert 0 < w_all.sum() < n  # the check below can tell kept from pruned
    ref = frozen(m.nets[0]).train()
    diag = m.train_epoch(1, [b])
    np.testing.assert_array_equal(m.per_sample["weight"].numpy(), w_all.numpy())
    np.testing.assert_array_equal(diag["selected"], w_all.numpy() > 0)
    assert diag["pruned_frac"] == pytest.approx(100.0 * (1 - float(w_all.mean())))
    want = official_truncated_loss(ref(b.x).double(), b.y, w_all[b.idx].view(-1, 1), q, k)
    torch.testing.assert_close(spy.losses[1], want, rtol=1e-5, atol=1e-7)
    assert_grads_close(spy.grads[1], grads_of(want, ref.parameters()))
    # epoch 2: no pruning (weights kept); epoch 3: recomputed from scratch, so pruned samples
    # come back (not an AND with the earlier weights)
    m.train_epoch(2, [b])
    np.testing.assert_array_equal(m.per_sample["weight"].numpy(), w_all.numpy())
    m.per_sample["weight"] = torch.zeros(n)
    ev = frozen(m.nets[0]).eval()
    with torch.no_grad():
        w3 = official_update_weight(ev(x_all).double(), m.data.train_labels, q, k).view(-1)
    m.train_epoch(3, [b])
    np.testing.assert_array_equal(m.per_sample["weight"].numpy(), w3.numpy())


def test_truncated_gce_resumes_exactly_after_a_pruning(tmp_path):
    # pruning at the start of epochs 1 and 3; killed in epoch 3 -> the weights of the epoch-1
    # pruning come from the checkpoint
    curve = resume_matches(
        tmp_path, "gce", {"truncated": True, "k": 0.34, "start_prune": 2, "prune_every": 2}
    )
    assert curve["clean_ratio"].iloc[1:].notna().all()
