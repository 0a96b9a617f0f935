import math

import pytest
import torch

from geocorr.methods.cyclecorr.flow import (
    compose_flow,
    compose_matchability,
    matchability_loss,
    pixel_grid,
    truncated_flow_loss,
    warp,
)


def constant_flow(dx: float, dy: float, size=(1, 6, 7), dtype=torch.float32) -> torch.Tensor:
    batch, height, width = size
    flow = torch.empty(batch, 2, height, width, dtype=dtype)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def test_pixel_grid_is_pixel_centres():
    grid = pixel_grid(2, 3)
    assert grid[:, 1, 2].tolist() == [2.0, 1.0]
    assert grid[:, 0, 0].tolist() == [0.0, 0.0]


def test_warp_by_integer_translation_shifts_the_field():
    field = torch.arange(42.0).view(1, 1, 6, 7)
    out = warp(field, constant_flow(2, 1))
    assert torch.equal(out[0, 0, :5, :5], field[0, 0, 1:, 2:])


def test_translation_composed_with_its_inverse_is_identity():
    flow = compose_flow(constant_flow(1.5, -2.25), constant_flow(-1.5, 2.25))
    assert torch.allclose(flow, torch.zeros_like(flow), atol=1e-6)


def test_composition_of_translations_adds_them():
    flow = compose_flow(constant_flow(1.0, 0.5), constant_flow(-3.0, 2.0))
    assert torch.allclose(flow, constant_flow(-2.0, 2.5), atol=1e-6)


def test_composition_reads_second_flow_at_the_moved_point():
    flow_ab = torch.zeros(1, 2, 1, 4)
    flow_ab[0, 0, 0, 0] = 1.5  # pixel 0 -> x = 1.5, between pixels 1 and 2
    flow_bc = torch.zeros(1, 2, 1, 4)
    flow_bc[0, 1, 0, 1], flow_bc[0, 1, 0, 2] = 2.0, 4.0
    out = compose_flow(flow_ab, flow_bc)
    assert out[0, :, 0, 0].tolist() == [1.5, 3.0]  # y: bilinear (2 + 4) / 2


def test_matchability_composition_by_hand():
    flow = constant_flow(1, 0, (1, 1, 3))
    match_ab = torch.tensor([[[[0.5, 1.0, 0.8]]]])
    match_bc = torch.tensor([[[[0.9, 0.4, 0.6]]]])
    out = compose_matchability(match_ab, match_bc, flow)
    expected = torch.tensor([0.5 * 0.4, 1.0 * 0.6, 0.0])  # last pixel leaves the image
    assert torch.allclose(out.flatten(), expected)


def test_truncated_loss_by_hand():
    gt = torch.zeros(1, 2, 1, 3)
    pred = torch.zeros(1, 2, 1, 3)
    pred[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # squared error 25
    pred[0, :, 0, 1] = torch.tensor([20.0, 0.0])  # 400, truncated at T² = 225
    pred[0, :, 0, 2] = torch.tensor([100.0, 0.0])  # not matchable
    matchable = torch.tensor([[[[True, True, False]]]])
    loss = truncated_flow_loss(gt, pred, matchable, threshold=15.0)
    assert loss.item() == pytest.approx((25 + 225) / 2)


def test_truncated_loss_without_matchable_pixels_is_zero():
    loss = truncated_flow_loss(torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2))
    assert loss.item() == 0.0


def test_matchability_loss_by_hand():
    gt = torch.tensor([[[[1.0, 0.0]]]])
    pred = torch.tensor([[[[0.8, 0.3]]]])
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert matchability_loss(gt, pred).item() == pytest.approx(expected, rel=1e-6)


def test_composition_gradcheck():
    torch.manual_seed(0)
    flow_ab = (torch.rand(1, 2, 4, 5, dtype=torch.float64) * 2 - 1).requires_grad_()
    flow_bc = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(compose_flow, (flow_ab, flow_bc))


def test_losses_gradcheck():
    torch.manual_seed(0)
    gt = torch.randn(1, 2, 3, 3, dtype=torch.float64) * 10
    pred = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    matchable = torch.rand(1, 1, 3, 3) > 0.3
    assert torch.autograd.gradcheck(lambda p: truncated_flow_loss(gt, p, matchable), (pred,))
    prob = torch.rand(1, 1, 3, 3, dtype=torch.float64).mul(0.8).add(0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: matchability_loss(matchable, p), (prob,))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="flow_ab"):
        compose_flow(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="flow_bc"):
        compose_flow(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 5, 4))
    with pytest.raises(ValueError, match="threshold"):
        truncated_flow_loss(torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1), torch.ones(1, 1, 1), threshold=0)
    with pytest.raises(ValueError, match="match_pred"):
        matchability_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
