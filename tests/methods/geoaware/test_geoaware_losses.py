import math

import pytest
import torch

from geocorr.methods.geoaware.losses import dense_loss, sparse_loss


def peak_map(h, w, x, y, high=1.0):
    sim = torch.full((h, w), -1.0)
    sim[y, x] = high
    return sim


def test_dense_loss_is_zero_at_a_sharp_peak_on_the_target():
    sim = torch.stack([peak_map(5, 6, 4, 1), peak_map(5, 6, 0, 3)])[None]  # (1, 2, 5, 6)
    target = torch.tensor([[[4.0, 1.0], [0.0, 3.0]]])
    loss = dense_loss(sim, target, torch.ones(1, 2, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_dense_loss_mean_end_point_error_over_valid_points():
    sim = torch.stack([peak_map(5, 6, 4, 1), peak_map(5, 6, 0, 3)])[None]
    target = torch.tensor([[[1.0, 5.0], [0.0, 0.0]]])  # errors: 5 (3-4-5) and 3
    valid = torch.tensor([[True, True]])
    assert dense_loss(sim, target, valid).item() == pytest.approx(4.0, abs=1e-5)
    assert dense_loss(sim, target, torch.tensor([[False, True]])).item() == pytest.approx(3.0, abs=1e-5)
    assert dense_loss(sim, target, torch.tensor([[False, False]])).item() == 0.0


def test_dense_loss_noise_moves_the_target():
    sim = peak_map(4, 4, 2, 2)[None, None]
    target = torch.tensor([[[2.0, 2.0]]])
    noise = torch.tensor([[[0.0, -1.5]]])
    loss = dense_loss(sim, target, torch.ones(1, 1, dtype=torch.bool), noise=noise)
    assert loss.item() == pytest.approx(1.5, abs=1e-5)


def test_dense_loss_two_equal_peaks_average():
    sim = torch.full((1, 1, 3, 5), -1.0)
    sim[0, 0, 1, 0] = sim[0, 0, 1, 4] = 1.0  # soft-argmax -> (2, 1)
    loss = dense_loss(sim, torch.tensor([[[2.0, 1.0]]]), torch.ones(1, 1, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


def test_dense_loss_gradcheck():
    sim = torch.randn(1, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 2, dtype=torch.float64) * 3
    valid = torch.tensor([[True, False, True]])
    assert torch.autograd.gradcheck(lambda s: dense_loss(s, target, valid, temperature=0.5), (sim,))


def test_sparse_loss_known_value():
    # orthonormal descriptors: logits = s · I; per row and column CE = log(1 + (N - 1) e^{-s})
    s = 2.0
    desc = torch.eye(3)[None]
    valid = torch.ones(1, 3, dtype=torch.bool)
    expected = math.log(1 + 2 * math.exp(-s))
    assert sparse_loss(desc, desc, valid, logit_scale=s).item() == pytest.approx(expected, rel=1e-5)


def test_sparse_loss_at_the_published_initial_scale_by_hand():
    # s = 1/0.07; cos = [[1, 0.6], [0, 0.8]] -> four CEs, each log(1 + e^{-s·gap}), averaged
    s = 1 / 0.07
    src = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    tgt = torch.tensor([[[1.0, 0.0], [0.6, 0.8]]])
    valid = torch.ones(1, 2, dtype=torch.bool)
    ce = [math.log(1 + math.exp(-s * g)) for g in (1 - 0.6, 0.8 - 0.0, 1 - 0.0, 0.8 - 0.6)]
    #     row 0 (1 vs 0.6), row 1 (0.8 vs 0), column 0 (1 vs 0), column 1 (0.8 vs 0.6)
    expected = sum(ce) / 4
    assert sparse_loss(src, tgt, valid, torch.tensor(s)).item() == pytest.approx(expected, rel=1e-5)


def test_sparse_loss_gradient_reaches_the_logit_scale():
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    desc = torch.randn(1, 4, 8)
    sparse_loss(desc, torch.randn(1, 4, 8), torch.ones(1, 4, dtype=torch.bool), log_scale.exp()).backward()
    assert log_scale.grad is not None and log_scale.grad.abs() > 0


def test_sparse_loss_ignores_invalid_keypoints_entirely():
    t = 0.5
    desc = torch.eye(3)[None]
    valid = torch.tensor([[True, False, True]])
    expected = math.log(1 + math.exp(-1 / t))
    other = desc.clone()
    other[0, 1] = torch.tensor([1.0, 0.0, 0.0])  # would be a confusing negative if it counted
    assert sparse_loss(desc, other, valid, logit_scale=1 / t).item() == pytest.approx(expected, rel=1e-5)


def test_sparse_loss_prefers_correct_correspondences():
    desc = torch.randn(1, 5, 8)
    valid = torch.ones(1, 5, dtype=torch.bool)
    shuffled = desc[:, [1, 2, 3, 4, 0]]
    assert sparse_loss(desc, desc, valid, 1 / 0.07) < sparse_loss(desc, shuffled, valid, 1 / 0.07)


def test_sparse_loss_gradcheck_and_no_nan_for_empty_rows():
    a = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([[True, True, False, True], [False, False, False, False]])
    assert torch.autograd.gradcheck(lambda x, y: sparse_loss(x, y, valid, logit_scale=1 / 0.3), (a, b))
    sparse_loss(a, b, valid, 1 / 0.07).backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


def test_bad_shapes():
    with pytest.raises(ValueError, match="dense_loss"):
        dense_loss(torch.randn(1, 2, 3, 3), torch.randn(1, 3, 2), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="valid"):
        dense_loss(torch.randn(1, 2, 3, 3), torch.randn(1, 2, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="noise"):
        dense_loss(torch.randn(1, 2, 3, 3), torch.randn(1, 2, 2), torch.ones(1, 2, dtype=torch.bool),
                   noise=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="sparse_loss"):
        sparse_loss(torch.randn(1, 2, 3), torch.randn(1, 3, 3), torch.ones(1, 2, dtype=torch.bool), 1.0)
    with pytest.raises(ValueError, match="logit_scale"):
        sparse_loss(torch.randn(1, 2, 3), torch.randn(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), 0.0)
