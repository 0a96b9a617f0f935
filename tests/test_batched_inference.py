"""Batched inference: a list of mixed-size images gives the one-by-one results; bad members are named."""
import pytest
import torch

import geocorr
from geocorr.backbones import tiny_config
from geocorr.deploy.batch import features_per_item
from geocorr.methods.base import same_shape_batches

ATOL = 1e-5  # fp32: batching changes only the order of floating-point sums


def _geco(resize: str, **conf):
    """Tiny GECO with a non-zero random LoRA (merged), so the adapter takes part in every forward."""
    model = geocorr.load("geco", backbone=tiny_config(), adapter=None, image_size=70, resize=resize,
                         merge=False, **conf)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.3)
    return model.merge().eval()


@pytest.fixture(scope="module")
def images(pf_willow_root):
    """Real PF-Willow photos of different sizes plus synthetic ones of very different aspect."""
    photos = [min((pf_willow_root / c).glob("*.png")) for c in ("car(G)", "duck(S)", "winebottle(M)")]
    g = torch.Generator().manual_seed(0)
    return [*photos, torch.rand(3, 40, 90, generator=g), torch.rand(3, 90, 40, generator=g),
            torch.rand(3, 64, 64, generator=g), torch.rand(3, 41, 89, generator=g)]


def test_same_shape_batches_groups_in_order_of_first_appearance():
    a, b = (3, 70, 70), (3, 42, 70)
    assert same_shape_batches([a, b, a, a, b], 2) == [[0, 2], [3], [1, 4]]
    assert same_shape_batches([], 4) == []
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        same_shape_batches([a], 0)


@pytest.mark.parametrize("resize", ["stretch", "keep_aspect", "pad"])
def test_batched_features_equal_one_by_one(images, resize):
    model = _geco(resize, batch_size=3)
    batched = model.features(images)
    assert len(batched) == len(images)
    for i, image in enumerate(images):
        single = model.features(image)
        assert batched.grids[i] == single.grids[0]
        h, w = single.grids[0].grid_hw
        torch.testing.assert_close(batched.dense[i, :, :h, :w], single.dense[0], atol=ATOL, rtol=0)
        assert (batched.dense[i, :, h:, :] == 0).all() and (batched.dense[i, :, :, w:] == 0).all()
    if resize == "keep_aspect":  # really mixed: 40×90 and 41×89 share an input size, 90×40 does not
        sizes = {g.input_hw for g in batched.grids}
        assert len(sizes) > 2 and batched.grids[3].input_hw == batched.grids[6].input_hw


def test_batched_matches_equal_one_by_one(images, pf_willow_root):
    model = _geco("keep_aspect", batch_size=4)
    points = torch.tensor([[5.0, 7.0], [30.0, 20.0], [12.0, 35.0]])  # inside every image
    feats = model.features(images)
    for i, j in [(3, 4), (4, 6), (0, 3)]:
        batched = model.match_features(feats[i], feats[j], points)
        single = model.match(images[i], images[j], points)
        torch.testing.assert_close(batched.points, single.points, atol=0, rtol=0)
        torch.testing.assert_close(batched.scores, single.scores, atol=ATOL, rtol=0)


def test_a_corrupt_member_is_named(images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    model = _geco("stretch")
    with pytest.raises(ValueError, match=r"images\[1\]: .*broken.png is not a readable image"):
        model.features([images[0], bad, images[3]])


def test_features_per_item_keeps_the_rest_of_the_batch(images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    model = _geco("keep_aspect", batch_size=2)
    batch = [images[3], bad, images[0], tmp_path / "missing.png", images[4]]
    result = features_per_item(model, batch)
    assert result.index == [0, 2, 4] and sorted(result.errors) == [1, 3]
    assert "images[1]" in result.errors[1] and "not a readable image" in result.errors[1]
    assert "images[3]" in result.errors[3] and "no such file" in result.errors[3]
    for row, i in enumerate(result.index):
        single = model.features(batch[i])
        h, w = single.grids[0].grid_hw
        torch.testing.assert_close(result.features.dense[row, :, :h, :w], single.dense[0], atol=ATOL, rtol=0)
    named = features_per_item(model, [bad], names=["frame 7"])
    assert named.features is None and named.errors[0].startswith("frame 7: ")
    with pytest.raises(ValueError, match="names: expected one per image"):
        features_per_item(model, [bad], names=[])
