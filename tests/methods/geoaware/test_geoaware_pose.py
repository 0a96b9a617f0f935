import pytest
import torch

from geocorr.methods.geoaware.pose import (
    imd_features,
    instance_matching_distance,
    predict_pose,
)


def test_imd_known_values():
    src = torch.tensor([[[0.0, 1.0]], [[0.0, 0.0]]])  # C 2, 1×2: points (0,0), (1,0)
    tgt = torch.tensor([[[0.0, 3.0, 0.0]], [[2.0, 0.0, 0.0]]])  # (0,2), (3,0), (0,0)
    assert instance_matching_distance(src, src).item() == 0.0
    assert instance_matching_distance(src, tgt).item() == pytest.approx(0.5)  # (0 + 1) / 2
    mask = torch.tensor([[False, True]])
    assert instance_matching_distance(src, tgt, mask_src=mask).item() == pytest.approx(1.0)
    tmask = torch.tensor([[True, False, False]])
    # (0,0) -> (0,2): 2 ; (1,0) -> (0,2): sqrt(5)
    assert instance_matching_distance(src, tgt, mask_tgt=tmask).item() == pytest.approx((2 + 5 ** 0.5) / 2)


def test_imd_features_normalise_then_resize():
    feat = torch.randn(3, 4, 5) + 2
    out = imd_features(feat, size=8)
    assert out.shape == (3, 8, 8)
    expected = torch.nn.functional.interpolate(torch.nn.functional.normalize(feat, dim=0)[None], size=(8, 8),
                                               mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(imd_features(feat, None).norm(dim=0), torch.ones(4, 5))


def test_predict_pose_votes_over_template_sets():
    torch.manual_seed(0)
    left, right = torch.randn(4, 3, 3), torch.randn(4, 3, 3)
    query = left + 0.05 * torch.randn(4, 3, 3)
    sets = [{"left": left, "right": right},
            {"left": left + 0.1 * torch.randn(4, 3, 3), "right": right},
            {"left": right, "right": left}]  # a bad set votes "right"
    assert predict_pose(query, sets) == "left"
    assert predict_pose(query, [{"left": right, "right": left}]) == "right"


def test_bad_inputs():
    with pytest.raises(ValueError, match="channels"):
        instance_matching_distance(torch.zeros(2, 2, 2), torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="source mask"):
        instance_matching_distance(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), mask_src=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="selects no position"):
        instance_matching_distance(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2),
                                   mask_tgt=torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="template_sets"):
        predict_pose(torch.zeros(2, 2, 2), [])
