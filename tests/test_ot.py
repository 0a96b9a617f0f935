import math

import numpy as np
import ot as pot
import pytest
import torch

from geocorr.methods.geco.transport import OptimalTransport, OTConfig
from geocorr.ot import log_optimal_transport, mask_marginals


def _problem(b=2, n=5, m=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(b, n, m, generator=g, dtype=dtype) * 2 - 1
    a = torch.rand(b, n + 1, generator=g, dtype=dtype) + 0.1
    bb = torch.rand(b, m + 1, generator=g, dtype=dtype) + 0.1
    return scores, a / a.sum(1, keepdim=True), bb / bb.sum(1, keepdim=True)


def _padded_cost(scores, dustbin):
    b, n, m = scores.shape
    z = torch.full((b, n + 1, m + 1), dustbin, dtype=scores.dtype)
    z[:, :n, :m] = scores
    return -z


def test_balanced_limit_matches_pot_sinkhorn():
    scores, a, b = _problem()
    log_p = log_optimal_transport(scores, a.log(), b.log(), 0.3, eps=0.1, rho_a=math.inf, rho_b=math.inf, iters=2000)
    cost = _padded_cost(scores, 0.3)
    for k in range(scores.shape[0]):
        ref = pot.sinkhorn(a[k].numpy(), b[k].numpy(), cost[k].numpy(), reg=0.1, method="sinkhorn_log",
                           numItermax=10000, stopThr=1e-14)
        np.testing.assert_allclose(log_p[k].exp().numpy(), ref, atol=1e-5)
        np.testing.assert_allclose(log_p[k].exp().sum(1).numpy(), a[k].numpy(), atol=1e-5)
        np.testing.assert_allclose(log_p[k].exp().sum(0).numpy(), b[k].numpy(), atol=1e-5)


@pytest.mark.filterwarnings("ignore:If reg_type = entropy")
def test_unbalanced_matches_pot():
    scores, a, b = _problem(seed=1)
    log_p = log_optimal_transport(scores, a.log(), b.log(), 0.3, eps=0.1, rho_a=10, rho_b=10, iters=3000)
    cost = _padded_cost(scores, 0.3)
    ref = pot.unbalanced.sinkhorn_unbalanced(a[0].numpy(), b[0].numpy(), cost[0].numpy(), reg=0.1, reg_m=10,
                                             reg_type="entropy", method="sinkhorn", numItermax=20000, stopThr=1e-14)
    np.testing.assert_allclose(log_p[0].exp().numpy(), ref, atol=1e-5)
    assert not np.allclose(log_p[0].exp().sum(1).numpy(), a[0].numpy(), atol=1e-3)  # the marginals are relaxed


def test_tolerance_stops_at_the_same_plan():
    scores, a, b = _problem(seed=2)
    full = log_optimal_transport(scores, a.log(), b.log(), 0.3, rho_a=math.inf, rho_b=math.inf, iters=5000)
    early = log_optimal_transport(scores, a.log(), b.log(), 0.3, rho_a=math.inf, rho_b=math.inf, iters=5000, tol=1e-12)
    torch.testing.assert_close(early, full)


def test_masks_equal_unpadded_problem():
    scores, a, b = _problem(b=1, n=3, m=3, seed=3)
    padded = torch.cat([scores, torch.randn(1, 2, 3, dtype=scores.dtype) * 100], 1)
    padded = torch.cat([padded, torch.randn(1, 5, 1, dtype=scores.dtype) * 100], 2)
    log_a = torch.cat([a.log()[:, :3], torch.zeros(1, 2, dtype=a.dtype), a.log()[:, 3:]], 1)
    log_b = torch.cat([b.log()[:, :3], torch.zeros(1, 1, dtype=b.dtype), b.log()[:, 3:]], 1)
    mask_a = torch.tensor([[True, True, True, False, False]])
    mask_b = torch.tensor([[True, True, True, False]])
    got = log_optimal_transport(padded, log_a, log_b, 0.3, mask_a=mask_a, mask_b=mask_b)
    ref = log_optimal_transport(scores, a.log(), b.log(), 0.3)
    torch.testing.assert_close(got[0][[0, 1, 2, 5]][:, [0, 1, 2, 4]], ref[0])
    assert torch.isneginf(got[0, 3:5]).all() and torch.isneginf(got[0, :, 3]).all()


def test_gradcheck_scores_marginals_and_dustbin():
    scores, a, b = _problem(b=1, n=3, m=2, seed=4)
    scores.requires_grad_(True)
    log_a = a.log().requires_grad_(True)
    dustbin = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    mask_a = torch.tensor([[True, True, False]])
    assert torch.autograd.gradcheck(
        lambda s, la, d: log_optimal_transport(s, la, b.log(), d, iters=5, mask_a=mask_a).nan_to_num(neginf=0.0),
        (scores, log_a, dustbin),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e3, 1e6])
def test_finite_for_any_score_range(dtype, scale):
    scores, a, b = _problem(seed=7, dtype=torch.float32)
    scores = (scores * scale).to(dtype).requires_grad_(True)
    log_p = log_optimal_transport(scores, a.log().to(dtype), b.log().to(dtype), 0.3)
    assert torch.isfinite(log_p).all()
    log_p[:, :-1, 0].sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_mask_marginals_published_shares():
    fg = torch.tensor([[True, True, False, False, False, False]])
    marg = mask_marginals(fg, torch.tensor([4]), torch.tensor([9]), mass=0.9)
    fg_share = 0.9 * 5 / 10
    expected = torch.tensor([[fg_share / 2, fg_share / 2, 0.025, 0.025, 0.025, 0.025, 0.9 - fg_share]])
    torch.testing.assert_close(marg, expected)
    assert marg.sum().item() == pytest.approx(1.0)


def test_mask_marginals_empty_masks():
    none = mask_marginals(torch.zeros(1, 4, dtype=torch.bool), torch.tensor([1]), torch.tensor([3]))
    torch.testing.assert_close(none[0, :4], torch.full((4,), (0.1 + 0.9 * 2 / 4) / 4))
    # no background token: the dustbin takes the background share (official
    # get_partial_distributions_input_marginals): 3 of 3 visible -> foreground 0.9 · 4/4, dustbin 1 - 0.9
    full = mask_marginals(torch.ones(1, 4, dtype=torch.bool), torch.tensor([3]), torch.tensor([3]))
    torch.testing.assert_close(full, torch.tensor([[0.225, 0.225, 0.225, 0.225, 0.1]]))
    # GECO's padded count: SPair bottle, 2 of its keypoints visible, numkp 30 -> object 0.9 · 3/31
    padded = mask_marginals(torch.tensor([[True, True, False]]), torch.tensor([2]), torch.tensor([30]))
    torch.testing.assert_close(padded, torch.tensor([[0.9 * 3 / 31 / 2, 0.9 * 3 / 31 / 2, 0.1, 0.9 - 0.9 * 3 / 31]]))


def test_module_dustbin_learnable_only_when_configured():
    assert not OptimalTransport().dustbin.requires_grad
    layer = OptimalTransport(OTConfig(learn_dustbin=True))
    scores, a, b = _problem(dtype=torch.float32)
    layer(scores, a.log(), b.log())[:, :-1, -1].exp().sum().backward()
    assert layer.dustbin.grad is not None and layer.dustbin.grad != 0


def test_bad_input():
    scores, a, b = _problem()
    with pytest.raises(ValueError, match="log_a and log_b"):
        log_optimal_transport(scores, a.log()[:, :-1], b.log(), 0.3)
    with pytest.raises(ValueError, match="scores"):
        log_optimal_transport(scores[0], a.log(), b.log(), 0.3)
    with pytest.raises(ValueError, match="eps"):
        log_optimal_transport(scores, a.log(), b.log(), 0.3, eps=0)
    with pytest.raises(ValueError, match="mask_a"):
        log_optimal_transport(scores, a.log(), b.log(), 0.3, mask_a=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="num_visible"):
        mask_marginals(torch.ones(1, 4, dtype=torch.bool), torch.tensor([5]), torch.tensor([3]))
