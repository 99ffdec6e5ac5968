"""CDR's threshold without ``torch.kthvalue`` (one GPU block for ~25 M scores per step):
``kth_largest`` (``torch.topk`` of the smaller side) selects the same value, so the same
weights keep their gradient, ties and zeros included."""

import pytest
import torch

from lnm.methods.cdr import kth_largest, mask_noncritical_


def kthvalue_largest(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest as the earlier code found it."""
    return torch.kthvalue(x, x.numel() - k + 1).values


def old_mask_noncritical_(params, keep_frac, scale=1.0):
    """The earlier ``mask_noncritical_`` (kthvalue), transcribed: the reference."""
    params = list(params)
    scores = [(p * p.grad).abs() for p in params]
    total = sum(s.numel() for s in scores)
    k = int(keep_frac * total)
    if k <= 0:
        for p in params:
            p.grad.zero_()
        return
    if k < total:
        thresh = kthvalue_largest(torch.cat([s.reshape(-1) for s in scores]), k)
        zero_thresh = thresh <= 0
        for p, s in zip(params, scores):
            p.grad.mul_(torch.where(zero_thresh, s > 0, s >= thresh))
    if scale != 1.0:
        for p in params:
            p.grad.mul_(scale)


def vectors():
    g = torch.Generator().manual_seed(0)
    yield torch.rand(1000, generator=g)
    yield torch.randint(0, 5, (999,), generator=g).float()  # many ties
    yield torch.zeros(64)  # all tied at 0
    x = torch.rand(500, generator=g)
    x[::3] = 0.0
    yield x
    yield torch.tensor([3.0, float("inf"), 1.0, 1.0, float("-inf")])
    x = torch.rand(200, generator=g)
    x[[5, 17, 99]] = float("nan")  # NaN is the largest, as for kthvalue
    yield x
    yield torch.full((7,), float("nan"))
    yield torch.randn(4097, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("x", list(vectors()), ids=lambda x: f"{x.numel()}-{x.dtype}")
def test_kth_largest_is_kthvalues_value_for_every_k(x):
    n = x.numel()
    ks = sorted({1, 2, n // 3, n // 2, n // 2 + 1, n - 1, n} - {0})
    for k in ks:
        want, got = kthvalue_largest(x, k), kth_largest(x, k)
        assert got.dtype == want.dtype and got.shape == want.shape == ()
        assert torch.equal(got, want) or (got.isnan() and want.isnan()), (k, got, want)


def test_kth_largest_refuses_a_k_outside_the_vector():
    with pytest.raises(ValueError, match="outside 1..3"):
        kth_largest(torch.ones(3), 4)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.6, 0.999, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_the_same_weights_keep_their_gradient_as_with_kthvalue(keep, ties):
    g = torch.Generator().manual_seed(1)
    shapes = [(8, 3, 3, 3), (16, 8), (5, 5, 1, 1)]

    def make():
        torch.manual_seed(2)
        params = []
        for shape in shapes:
            p = torch.nn.Parameter(torch.randn(shape, generator=g.manual_seed(len(shape))))
            grad = torch.randn(shape, generator=g)
            if ties:  # quantised gradients and weights: many equal scores, zeros among them
                grad = grad.round()
                p.data = p.data.round()
            p.grad = grad
            params.append(p)
        return params

    new, old = make(), make()
    mask_noncritical_(new, keep, scale=keep or 1.0)
    old_mask_noncritical_(old, keep, scale=keep or 1.0)
    for a, b in zip(new, old):
        assert torch.equal(a.grad, b.grad)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_threshold_is_the_cpus():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 1000, (2_000_003,), generator=g).float()  # ties, ~ResNet-8 scale
    for k in (1, 1234, 1_000_001, 1_999_999):
        assert torch.equal(kth_largest(x.cuda(), k).cpu(), kthvalue_largest(x, k))
