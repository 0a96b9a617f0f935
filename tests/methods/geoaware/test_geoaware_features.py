"""GeoAware's features are the official extractor's: last-block tokens without the final LayerNorm,
PIL LANCZOS to a long side of 840, centred on a black canvas (issue 15 item 7)."""
import numpy as np
import pytest
import torch
from PIL import Image

from geocorr.backbones import build_backbone, tiny_config
from geocorr.backbones.dinov2 import IMAGENET_MEAN, IMAGENET_STD
from geocorr.grid import TokenGrid
from geocorr.methods.geoaware import load


def test_published_backbone_settings():
    model = load(backbone=tiny_config())
    c = model.backbone.config
    assert (c.layer, c.final_norm, c.resample, c.pad_position, c.pad_colour, c.image_size, c.resize) == (
        -1, False, "lanczos", "centre", "black", 840, "pad")


def test_features_are_the_last_block_without_the_final_norm():
    model = load(backbone=tiny_config(), image_size=56)
    image = torch.rand(3, 56, 56)  # square: no padding, so the input is the LANCZOS-resized image itself
    x, _ = model.backbone.preprocess(image)
    out = model.backbone.model(pixel_values=x[None], output_hidden_states=True)
    raw = out.hidden_states[-1][:, 1:]  # the last block's output tokens (the hook's), CLS dropped
    expected = torch.nn.functional.normalize(raw.transpose(1, 2).reshape(1, -1, 4, 4), dim=1)
    torch.testing.assert_close(model.features(image).dense, expected, atol=1e-5, rtol=1e-5)
    normed = out.last_hidden_state[:, 1:].transpose(1, 2).reshape(1, -1, 4, 4)
    assert not torch.allclose(model.features(image).dense, torch.nn.functional.normalize(normed, dim=1), atol=1e-3)


def test_lanczos_is_pils_on_the_8_bit_image():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 60, 3), dtype=np.uint8)
    backbone = build_backbone(tiny_config(), image_size=56, resize="pad", resample="lanczos",
                              pad_position="centre", pad_colour="black")
    x, grid = backbone.preprocess(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    # official: long side 840 -> here 56; short side round(56 · 30 / 60) = 28; rows (56 − 28) // 2 = 14 on top
    expected = np.asarray(Image.fromarray(pixels).resize((56, 28), Image.Resampling.LANCZOS), dtype=np.float32) / 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(x[:, 14:42], (torch.from_numpy(expected).permute(2, 0, 1) - mean) / std)
    # the canvas is black (RGB 0) before normalisation, above and below the content
    black = (0 - mean) / std
    torch.testing.assert_close(x[:, :14], black.expand(3, 14, 56))
    torch.testing.assert_close(x[:, 42:], black.expand(3, 14, 56))
    assert grid == TokenGrid(image_hw=(30, 60), content_hw=(28, 56), input_hw=(56, 56), patch=14, offset=(14, 0))


def test_portrait_images_are_centred_horizontally():
    backbone = build_backbone(tiny_config(), image_size=56, resize="pad", pad_position="centre")
    _, grid = backbone.preprocess(torch.rand(3, 80, 20))
    # content 56 × round(56 · 20 / 80) = 14 columns, (56 − 14) // 2 = 21 columns of padding on the left
    assert (grid.content_hw, grid.offset) == ((56, 14), (0, 21))
    assert grid.content_tokens == (0, 4, 1, 3)  # columns 21..35 touch tokens 1 and 2


def test_centred_grid_geometry_by_hand():
    grid = TokenGrid(image_hw=(30, 60), content_hw=(28, 56), input_hw=(56, 56), patch=14, offset=(14, 0))
    # image pixel (x, y) -> input pixel ((x + 0.5) · 56/60 − 0.5, (y + 0.5) · 28/30 − 0.5 + 14)
    # -> grid ((u + 0.5) / 14 − 0.5, (v + 0.5) / 14 − 0.5)
    pts = torch.tensor([[0.0, 0.0], [59.0, 29.0], [29.5, 14.5]])
    u = (pts[:, 0] + 0.5) * 56 / 60 - 0.5
    v = (pts[:, 1] + 0.5) * 28 / 30 - 0.5 + 14
    expected = torch.stack([(u + 0.5) / 14 - 0.5, (v + 0.5) / 14 - 0.5], dim=-1)
    torch.testing.assert_close(grid.image_to_grid(pts), expected)
    assert grid.image_to_grid(torch.tensor([[29.5, 14.5]]))[0].tolist() == pytest.approx([1.5, 1.5])  # the centre
    torch.testing.assert_close(grid.grid_to_image(grid.image_to_grid(pts)), pts)
    # the content's top edge (y = −0.5) is 14 input px = exactly one token down
    assert grid.image_to_grid(torch.tensor([[0.0, -0.5]]))[0, 1].item() == pytest.approx(0.5)
    assert grid.content_tokens == (1, 3, 0, 4) and grid.content_grid_hw == (2, 4)


def test_padding_tokens_never_match_with_centred_padding():
    model = load(backbone=tiny_config(), image_size=56)
    feats = model.features([torch.rand(3, 30, 60), torch.rand(3, 30, 60)])
    sim = model.similarity(feats[0], feats[1], torch.tensor([[10.0, 10.0]]))
    assert (sim[:, 0] == -2).all() and (sim[:, 3] == -2).all()  # rows 0 and 3 are black canvas
    assert (sim[:, 1:3] > -2).all()
    match = model.match_features(feats[0], feats[1], torch.tensor([[10.0, 10.0]]))
    assert 0 <= match.points[0, 1] <= 29  # lands inside the target image, not in the padding


def test_bad_preprocessing_options():
    for key, value in (("resample", "cubic"), ("pad_position", "middle"), ("pad_colour", "white")):
        with pytest.raises(ValueError, match=key):
            build_backbone(tiny_config(), **{key: value})
