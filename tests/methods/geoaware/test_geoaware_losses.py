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
    # orthonormal descriptors: logits = I / t; per row and column CE = log(1 + (N - 1) e^{-1/t})
    t = 0.5
    desc = torch.eye(3)[None]
    valid = torch.ones(1, 3, dtype=torch.bool)
    expected = math.log(1 + 2 * math.exp(-1 / t))
    assert sparse_loss(desc, desc, valid, temperature=t).item() == pytest.approx(expected, rel=1e-5)


def test_sparse_loss_ignores_invalid_keypoints_entirely():
    t = 0.5
    desc = torch.eye(3)[None]
    valid = torch.tensor([[True, False, True]])
    expected = math.log(1 + math.exp(-1 / t))
    other = desc.clone()
    other[0, 1] = torch.tensor([1.0, 0.0, 0.0])  # would be a confusing negative if it counted
    assert sparse_loss(desc, other, valid, temperature=t).item() == pytest.approx(expected, rel=1e-5)


def test_sparse_loss_prefers_correct_correspondences():
    desc = torch.randn(1, 5, 8)
    valid = torch.ones(1, 5, dtype=torch.bool)
    shuffled = desc[:, [1, 2, 3, 4, 0]]
    assert sparse_loss(desc, desc, valid) < sparse_loss(desc, shuffled, valid)


def test_sparse_loss_gradcheck_and_no_nan_for_empty_rows():
    a = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([[True, True, False, True], [False, False, False, False]])
    assert torch.autograd.gradcheck(lambda x, y: sparse_loss(x, y, valid, temperature=0.3), (a, b))
    sparse_loss(a, b, valid).backward()
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
        sparse_loss(torch.randn(1, 2, 3), torch.randn(1, 3, 3), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        sparse_loss(torch.randn(1, 2, 3), torch.randn(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), 0.0)
