"""geocorr.load(...).match / .features: behaviour and bad input."""
import numpy as np
import pytest
import torch

import geocorr
from geocorr.backbones import tiny_config


@pytest.fixture(scope="module")
def model():
    return geocorr.load("dinov2", backbone=tiny_config(), image_size=56)


def test_registry_lists_methods_and_refuses_unknown():
    assert {"dinov2", "geco", "geoaware", "semalign3d", "cyclecorr"} <= set(geocorr.METHODS)
    with pytest.raises(ValueError, match=r"unknown method 'sift'.*available"):
        geocorr.load("sift")


def test_matching_an_image_to_itself_finds_the_same_point(model):
    img = torch.rand(3, 56, 56)
    # Token centres of a 56×56 image on a 4×4 grid (14 px tokens): pixel 6.5 + 14k.
    pts = torch.tensor([[6.5, 6.5], [20.5, 48.5], [48.5, 34.5]])
    m = model.match(img, img, pts)
    assert m.points.shape == (3, 2) and m.scores.shape == (3,) and m.similarity.shape == (3, 4, 4)
    # Up-sampled: the best pixel lies inside the query's own 14-pixel token (border pixels tie).
    assert ((m.points - pts).abs() <= 7).all() and (m.scores > 0.99).all()
    # On the token grid (no up-sampling) the match is the token itself, with similarity 1.
    coarse = geocorr.load("dinov2", backbone=tiny_config(), image_size=56, upsample="none")
    coarse.load_state_dict(model.state_dict())
    exact = coarse.match(img, img, pts)
    assert torch.allclose(exact.points, pts) and torch.allclose(exact.scores, torch.ones(3), atol=1e-5)


def test_upsampled_match_is_the_pixel_whose_feature_equals_the_query(model):
    img = torch.rand(3, 40, 60)
    pts = torch.tensor([[13.0, 7.0], [40.0, 30.0], [25.0, 18.0]])  # away from the clamped border
    m = model.match(img, img, pts)
    assert torch.allclose(m.points, pts)  # each pixel's up-sampled feature is its own best match


def test_zero_points_give_an_empty_result(model):
    m = model.match(torch.rand(3, 20, 20), torch.rand(3, 30, 20), [])
    assert m.points.shape == (0, 2) and m.scores.shape == (0,)


@pytest.mark.parametrize("points,message", [
    ([[120.0, 5.0]], "outside the 50×40 image"),
    ([[float("nan"), 1.0]], "NaN"),
    ([[1.0, 2.0, 3.0]], r"shape \(N, 2\)"),
])
def test_bad_points(model, points, message):
    with pytest.raises(ValueError, match=message):
        model.match(torch.rand(3, 40, 50), torch.rand(3, 40, 50), points)


def test_features_batch_of_mixed_sizes_and_inputs(model, pf_willow_root):
    path = sorted((pf_willow_root / "duck(S)").glob("*.png"))[0]
    arr = np.random.default_rng(0).integers(0, 256, (17, 90, 3), dtype=np.uint8)
    feats = model.features([path, arr, torch.rand(3, 14, 15)])
    assert feats.dense.shape == (3, 32, 4, 4)
    assert [g.image_hw for g in feats.grids][1:] == [(17, 90), (14, 15)]


def test_images_smaller_than_a_patch_are_refused(model):
    with pytest.raises(ValueError, match=r"images\[1\]: the image is 13×5 pixels, smaller than 14 pixels"):
        model.features([torch.rand(3, 20, 20), torch.rand(3, 5, 13)])


def test_empty_image_list_is_refused(model):
    with pytest.raises(ValueError, match="images: got an empty list"):
        model.features([])


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match="unknown option"):
        geocorr.load("dinov2", backbone=tiny_config(), upsampling="none")
