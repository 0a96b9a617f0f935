import pytest
import torch

from geocorr.grid import TokenGrid
from geocorr.matching import (
    argmax_match,
    cosine_similarity,
    mutual_nearest_neighbours,
    sample_features,
    soft_argmax,
    upsample_features,
    upsampled_cosine_similarity,
    window_soft_argmax,
)


def test_cosine_similarity_known_values():
    a = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    b = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]])
    sim = cosine_similarity(a, b)
    r = 2 ** -0.5
    assert torch.allclose(sim, torch.tensor([[[1.0, 0.0, -1.0], [r, r, -r]]]))
    with pytest.raises(ValueError, match="desc0"):
        cosine_similarity(torch.zeros(2, 3), b)


def test_argmax_match_returns_xy_of_peak():
    sim = torch.zeros(1, 2, 3, 4)
    sim[0, 0, 2, 1] = 5.0  # row 2, column 1 -> (x, y) = (1, 2)
    sim[0, 1, 0, 3] = 7.0
    pts, scores = argmax_match(sim)
    assert pts.tolist() == [[[1.0, 2.0], [3.0, 0.0]]]
    assert scores.tolist() == [[5.0, 7.0]]


def test_soft_argmax_symmetric_and_sharp():
    sim = torch.zeros(1, 1, 5, 5)
    assert torch.allclose(soft_argmax(sim, temperature=1.0), torch.tensor([[[2.0, 2.0]]]))
    sim[0, 0, 1, 3] = 1.0
    assert torch.allclose(soft_argmax(sim, temperature=0.01), torch.tensor([[[3.0, 1.0]]]), atol=1e-4)


def test_window_soft_argmax_ignores_far_mass_and_returns_single_peak():
    sim = torch.zeros(1, 1, 9, 9)
    sim[0, 0, 2, 2] = 1.0
    assert torch.allclose(window_soft_argmax(sim, window=3, temperature=0.01), torch.tensor([[[2.0, 2.0]]]), atol=1e-4)
    # A second, slightly lower peak far away pulls the global soft-argmax but not the windowed one.
    sim[0, 0, 8, 8] = 0.99
    glob = soft_argmax(sim, temperature=0.05)
    win = window_soft_argmax(sim, window=3, temperature=0.05)
    assert glob[0, 0, 0] > 4.0
    assert torch.allclose(win, torch.tensor([[[2.0, 2.0]]]), atol=1e-3)
    # Inside the window: two equal cells next to each other -> their midpoint.
    sim = torch.zeros(1, 1, 5, 5)
    sim[0, 0, 2, 1] = sim[0, 0, 2, 2] = 1.0
    assert torch.allclose(window_soft_argmax(sim, window=3, temperature=0.001), torch.tensor([[[1.5, 2.0]]]), atol=1e-3)
    with pytest.raises(ValueError, match="odd"):
        window_soft_argmax(sim, window=4)


def test_soft_argmax_gradients():
    sim = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: soft_argmax(s, temperature=0.5), (sim,))
    assert torch.autograd.gradcheck(lambda s: window_soft_argmax(s, window=3, temperature=0.5), (sim,))


def test_mutual_nearest_neighbours():
    sim = torch.tensor([[[0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.0, 0.1, 0.7]]])
    # row 0 <-> col 0 mutual; row 1 -> col 0 but col 0 -> row 0; row 2 <-> col 2.
    assert mutual_nearest_neighbours(sim).tolist() == [[0, -1, 2]]
    assert mutual_nearest_neighbours(torch.zeros(1, 0, 3)).shape == (1, 0)


def test_sample_features_bilinear_known_values_and_gradient():
    feats = torch.arange(6.0).reshape(1, 1, 2, 3)  # value = 3*y + x
    pts = torch.tensor([[[0.0, 0.0], [2.0, 1.0], [0.5, 0.5], [1.25, 0.0]]])
    assert torch.allclose(sample_features(feats, pts)[0, :, 0], torch.tensor([0.0, 5.0, 2.0, 1.25]))
    f = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    p = torch.tensor([[[1.3, 2.2], [0.4, 0.9]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sample_features, (f, p))


def test_upsample_features_follows_grid_geometry():
    # A 2×2 grid over a 4×4 image: pixel centres at grid coords -0.25, 0.25, 0.75, 1.25.
    grid = TokenGrid(image_hw=(4, 4), content_hw=(28, 28), input_hw=(28, 28), patch=14)
    feats = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])  # value = x on the grid
    up = upsample_features(feats, grid)
    assert up.shape == (1, 1, 4, 4)
    assert torch.allclose(up[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))  # clamped at the border


@pytest.mark.parametrize("image_hw,grid_hw", [((40, 60), (4, 4)), ((9, 13), (1, 3)), ((30, 20), (5, 1))])
def test_upsampled_cosine_similarity_equals_explicit_upsampling(image_hw, grid_hw):
    grid = TokenGrid(image_hw=image_hw, content_hw=(grid_hw[0] * 14, grid_hw[1] * 14),
                     input_hw=(grid_hw[0] * 14, grid_hw[1] * 14), patch=14)
    feats = torch.randn(1, 8, *grid_hw, dtype=torch.float64)
    query = torch.randn(3, 8, dtype=torch.float64)
    dense = upsample_features(feats, grid).flatten(2).transpose(1, 2)  # (1, H*W, C)
    expected = cosine_similarity(query[None], dense)[0].reshape(3, *image_hw)
    assert torch.allclose(upsampled_cosine_similarity(query, feats[0], grid), expected, atol=1e-6)
