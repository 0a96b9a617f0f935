import pytest
import torch

from geocorr.backbones import (
    ARCHITECTURES,
    BackboneConfig,
    BackboneNotFoundError,
    architecture_config,
    build_backbone,
    tiny_config,
)


def test_tiny_backbone_features_shape_and_grid():
    bb = build_backbone(tiny_config(), image_size=56)
    x, grid = bb.preprocess(torch.rand(3, 30, 80))
    assert x.shape == (3, 56, 56) and grid.grid_hw == (4, 4) and grid.image_hw == (30, 80)
    feats = bb(x[None])
    assert feats.shape == (1, 32, 4, 4)


def test_default_config_is_gecos_published_setting():
    conf = BackboneConfig()
    assert (conf.image_size, conf.resize, conf.layer, conf.final_norm) == (518, "stretch", -1, True)
    bb = build_backbone(tiny_config())
    assert bb.preprocess(torch.rand(3, 10, 20))[1].grid_hw == (37, 37)


@pytest.mark.parametrize("resize,size,expect_input,expect_content", [
    ("keep_aspect", 70, (28, 70), (28, 70)),
    ("pad", 70, (70, 70), (35, 70)),
    ("stretch", 70, (70, 70), (70, 70)),
])
def test_resize_modes(resize, size, expect_input, expect_content):
    bb = build_backbone(tiny_config(), image_size=size, resize=resize)
    x, grid = bb.preprocess(torch.rand(3, 50, 100))
    assert tuple(x.shape[1:]) == expect_input == grid.input_hw
    assert grid.content_hw == expect_content


def test_any_image_size_tiny_or_huge_nonsquare():
    bb = build_backbone(tiny_config(), image_size=42, resize="keep_aspect")
    for hw in [(1, 1), (3, 900), (2000, 7)]:
        x, grid = bb.preprocess(torch.rand(3, *hw))
        assert bb(x[None]).shape[-2:] == grid.grid_hw


def test_registers_are_dropped_and_intermediate_layer():
    bb = build_backbone(tiny_config(num_register_tokens=4), image_size=28)
    assert bb.num_prefix_tokens == 5 and bb.patch == 14
    assert bb(torch.randn(2, 3, 28, 42)).shape == (2, 32, 2, 3)
    mid = build_backbone(tiny_config(num_hidden_layers=3), image_size=28, layer=1)
    full = build_backbone(tiny_config(num_hidden_layers=3), image_size=28)
    full.model.load_state_dict(mid.model.state_dict())
    x = torch.randn(1, 3, 28, 28)
    assert not torch.allclose(mid(x), full(x))
    # Layer 1's output equals running the first block only.
    one = build_backbone(tiny_config(num_hidden_layers=1), image_size=28)
    one.model.load_state_dict({k: v for k, v in mid.model.state_dict().items() if ".layer.1" not in k
                               and ".layer.2" not in k})
    assert torch.allclose(mid(x), one(x), atol=1e-5)


def test_released_architectures_have_the_published_sizes():
    widths = {name: architecture_config(name).hidden_size for name in ARCHITECTURES}
    assert widths == {"vits14": 384, "vitb14": 768, "vitl14": 1024, "vitg14": 1536}
    assert architecture_config("vitb14", registers=True).num_register_tokens == 4
    with pytest.raises(ValueError, match="unknown DINOv2 architecture"):
        architecture_config("vitx14")


def test_random_architecture_by_name():
    bb = build_backbone("random:vits14_reg", image_size=28)
    assert (bb.dim, bb.num_layers, bb.num_prefix_tokens) == (384, 12, 5)
    with pytest.raises(ValueError, match="unknown DINOv2 architecture"):
        build_backbone("random:vitq14")


def test_local_folder_round_trip(tmp_path):
    bb = build_backbone(tiny_config(), image_size=28)
    bb.model.save_pretrained(tmp_path / "tiny")
    again = build_backbone(str(tmp_path / "tiny"), image_size=28)
    x = torch.randn(1, 3, 28, 28)
    assert torch.allclose(bb(x), again(x))


def test_real_pretrained_vits14_loads(pretrained_vits14):
    bb = build_backbone(pretrained_vits14, image_size=28)
    assert bb.dim == 384 and bb.num_layers == 12


def test_missing_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(BackboneNotFoundError, match=r"--backbone DIR"):
        build_backbone("facebook/dinov2-base")  # offline in the tests: not cached
    with pytest.raises(BackboneNotFoundError, match="no such folder"):
        build_backbone(str(tmp_path / "missing"))
    with pytest.raises(BackboneNotFoundError, match=r"config\.json"):
        build_backbone(str(tmp_path))


def test_bad_config_values():
    with pytest.raises(ValueError, match="resize"):
        BackboneConfig(resize="crop")
    with pytest.raises(ValueError, match="dtype"):
        BackboneConfig(dtype="int8")
    bb = build_backbone(tiny_config(), image_size=28)
    with pytest.raises(ValueError, match="multiples of 14"):
        bb(torch.randn(1, 3, 30, 28))
