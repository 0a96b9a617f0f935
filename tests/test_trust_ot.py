"""Issue 17 item 10: the Sinkhorn entry point refuses non-finite input and stays finite on any finite one."""
import math

import pytest
import torch

from geocorr.ot import log_optimal_transport


def _problem(b=2, n=5, m=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(b, n, m, generator=g) * 2 - 1
    log_a = torch.full((b, n + 1), -math.log(n + 1))
    log_b = torch.full((b, m + 1), -math.log(m + 1))
    return scores, log_a, log_b


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_refused(bad):
    scores, log_a, log_b = _problem()
    scores[1, 2, 3] = bad
    with pytest.raises(ValueError, match="scores: 1 of 60 entries are NaN or infinite"):
        log_optimal_transport(scores, log_a, log_b, 0.3)


def test_non_finite_marginals_and_dustbin_are_refused():
    scores, log_a, log_b = _problem()
    nan_a = log_a.clone()
    nan_a[0, 0] = math.nan
    with pytest.raises(ValueError, match="log_a and log_b"):
        log_optimal_transport(scores, nan_a, log_b, 0.3)
    with pytest.raises(ValueError, match="dustbin score must be finite"):
        log_optimal_transport(scores, log_a, log_b, math.inf)
    zero_weight = log_a.clone()
    zero_weight[0, 0] = -math.inf  # a zero marginal entry stays allowed
    assert torch.isfinite(log_optimal_transport(scores, zero_weight, log_b, 0.3)[1]).all()


def test_extreme_finite_scores_give_finite_plans_and_gradients():
    """20 draws of fp32 scores up to the largest float32 (3.4e38, / eps = 0.1 overflows float32):
    plan and gradient finite in every one."""
    non_finite = 0
    for seed in range(20):
        scores, log_a, log_b = _problem(seed=seed)
        scale = torch.finfo(torch.float32).max * (0.05 + 0.95 * seed / 19)
        scores = (scores * scale).requires_grad_(True)
        log_p = log_optimal_transport(scores, log_a, log_b, 0.3, eps=0.1)
        log_p[:, :-1, :-1].logsumexp((1, 2)).sum().backward()
        finite = torch.isfinite(log_p).all() and torch.isfinite(scores.grad).all()
        non_finite += not finite
    assert non_finite == 0
