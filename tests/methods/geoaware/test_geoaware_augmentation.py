import pytest
import torch

from geocorr.datasets.symmetry import symmetry_table
from geocorr.methods.geoaware.augmentation import (
    POSE_VARIANTS,
    draw_variants,
    flip_permutation,
    hflip_keypoints,
    pose_variant,
)
from geocorr.methods.geoaware.data import PairSample

NAN = float("nan")


def image_with_dots(h, w, points):
    img = torch.zeros(3, h, w)
    for k, (x, y) in enumerate(points):
        img[:, int(y), int(x)] = (k + 1) / 10
    return img


def sample():
    # keypoints: 0 = "left" at x 1, 1 = "right" at x 6, 2 = "middle"; the target has the left one hidden
    src_kps = torch.tensor([[1.0, 2.0], [6.0, 2.0], [3.0, 4.0]])
    tgt_kps = torch.tensor([[NAN, NAN], [5.0, 1.0], [2.0, 3.0]])
    return PairSample(
        source=image_with_dots(5, 8, src_kps), target=image_with_dots(4, 7, tgt_kps[1:]),
        source_keypoints=src_kps, target_keypoints=tgt_kps,
        source_visible=torch.tensor([True, True, True]), target_visible=torch.tensor([False, True, True]),
        source_size=5.0, target_size=3.0,
    )


FLIP = [1, 0, 2]


@pytest.mark.parametrize("dataset, category", [("spair", "cat"), ("spair", "car"), ("ap10k", None),
                                               ("cub", None)])
def test_shipped_flip_twice_is_identity(dataset, category):
    flip = flip_permutation(symmetry_table(dataset, category)["flip"], len(symmetry_table(dataset, category)["names"]))
    assert torch.equal(flip[flip], torch.arange(len(flip)))


def test_hflip_keypoints_mirrors_and_swaps_ids():
    kps = torch.tensor([[1.0, 2.0], [6.0, 2.0], [3.0, 4.0]])
    out, vis = hflip_keypoints(kps, torch.tensor([True, False, True]), 8, FLIP)
    # the old "left" point at x 1 is now at x 6 and is the new "right" (id 1)
    torch.testing.assert_close(out, torch.tensor([[1.0, 2.0], [6.0, 2.0], [4.0, 4.0]]))
    assert vis.tolist() == [False, True, True]
    twice, vis2 = hflip_keypoints(out, vis, 8, FLIP)
    torch.testing.assert_close(twice, kps)
    assert vis2.tolist() == [True, False, True]


def test_hflip_keypoints_follow_the_mirrored_pixels():
    s = sample()
    flipped = pose_variant(s, "single_flip", FLIP)
    for k in range(3):
        x, y = flipped.source_keypoints[k].long().tolist()
        original = FLIP[k]  # the id it had before the flip
        assert flipped.source[0, y, x] == pytest.approx((original + 1) / 10)


def test_single_double_and_self_flip():
    s = sample()
    single = pose_variant(s, "single_flip", FLIP)
    assert torch.equal(single.source, s.source.flip(-1)) and single.target is s.target
    assert torch.equal(single.target_keypoints.isnan(), s.target_keypoints.isnan())

    double = pose_variant(s, "double_flip", FLIP)
    assert torch.equal(double.target, s.target.flip(-1))
    assert double.target_visible.tolist() == [True, False, True]  # hidden left became hidden right
    torch.testing.assert_close(double.target_keypoints[0], torch.tensor([1.0, 1.0]))

    self_flip = pose_variant(s, "self_flip", FLIP)
    assert torch.equal(self_flip.source, s.source) and torch.equal(self_flip.target, s.source.flip(-1))
    assert self_flip.target_size == s.source_size
    torch.testing.assert_close(self_flip.target_keypoints, single.source_keypoints)


def test_draw_variants_probabilities():
    assert draw_variants({"single_flip": 1.0, "double_flip": 0.0, "self_flip": 1.0}) == ["single_flip", "self_flip"]
    assert draw_variants({}) == []
    g = torch.Generator().manual_seed(0)
    counts = sum(len(draw_variants(POSE_VARIANTS, generator=g)) for _ in range(400))
    assert 400 * 2.1 < counts < 400 * 2.4  # 1 + 1 + 0.25 on average


def test_bad_inputs():
    with pytest.raises(ValueError, match="permutation"):
        flip_permutation([0, 0, 1], 3)
    with pytest.raises(ValueError, match="permutation"):
        hflip_keypoints(torch.zeros(3, 2), torch.ones(3, dtype=torch.bool), 4, [1, 0])
    with pytest.raises(ValueError, match="unknown pose variant"):
        pose_variant(sample(), "rotate", FLIP)
    with pytest.raises(ValueError, match="unknown pose variants"):
        draw_variants({"flip": 1.0})
    with pytest.raises(ValueError, match="probability"):
        draw_variants({"self_flip": 2.0})
