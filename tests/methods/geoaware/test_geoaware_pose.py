import pytest
import torch

from geocorr.methods.geoaware.pose import (
    POSES,
    apply_pose,
    imd_features,
    instance_matching_distance,
    pose_points,
    predict_pose,
)


@pytest.mark.parametrize("pose", POSES)
def test_pose_points_follow_the_pixels(pose):
    image = torch.arange(4 * 6, dtype=torch.float32).reshape(1, 4, 6)
    posed = apply_pose(image, pose)
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(6), indexing="ij")
    pts = torch.stack([xs.flatten(), ys.flatten()], -1).float()
    new = pose_points(pts, pose, (4, 6)).long()
    assert torch.equal(posed[0, new[:, 1], new[:, 0]], image[0, ys.flatten(), xs.flatten()])


def test_rot90_is_counter_clockwise():
    image = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    assert apply_pose(image, "rot90")[0].tolist() == [[2.0, 4.0], [1.0, 3.0]]


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


def test_imd_features_resizes_and_normalises():
    out = imd_features(torch.randn(3, 4, 5) + 2, size=8)
    assert out.shape == (3, 8, 8)
    torch.testing.assert_close(out.norm(dim=0), torch.ones(8, 8))


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
    with pytest.raises(ValueError, match="unknown pose"):
        apply_pose(torch.zeros(1, 2, 2), "flip")
    with pytest.raises(ValueError, match="unknown pose"):
        pose_points(torch.zeros(1, 2), "rot45", (2, 2))
    with pytest.raises(ValueError, match="channels"):
        instance_matching_distance(torch.zeros(2, 2, 2), torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="source mask"):
        instance_matching_distance(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), mask_src=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="selects no position"):
        instance_matching_distance(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2),
                                   mask_tgt=torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="template_sets"):
        predict_pose(torch.zeros(2, 2, 2), [])
