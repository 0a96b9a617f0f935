import pytest
import torch

from geocorr.datasets.symmetry import symmetry_table
from geocorr.methods.geoaware.augmentation import flip_permutation, hflip_keypoints

NAN = float("nan")


def image_with_dots(h, w, points):
    img = torch.zeros(3, h, w)
    for k, (x, y) in enumerate(points):
        img[:, int(y), int(x)] = (k + 1) / 10
    return img


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
    kps = torch.tensor([[1.0, 2.0], [6.0, 2.0], [3.0, 4.0]])
    image = image_with_dots(5, 8, kps)
    mirrored, _ = hflip_keypoints(kps, torch.ones(3, dtype=torch.bool), 8, FLIP)
    for k in range(3):
        x, y = mirrored[k].long().tolist()
        original = FLIP[k]  # the id it had before the flip
        assert image.flip(-1)[0, y, x] == pytest.approx((original + 1) / 10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="permutation"):
        flip_permutation([0, 0, 1], 3)
    with pytest.raises(ValueError, match="permutation"):
        hflip_keypoints(torch.zeros(3, 2), torch.ones(3, dtype=torch.bool), 4, [1, 0])
