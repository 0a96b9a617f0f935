"""The demo's logic without a browser: matching clicked points, pictures, text, uploads."""
import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from geocorr.demo.app import DemoMatch, PointMatcher, example_pairs, read_upload, render, summary
from geocorr.grid import TokenGrid
from geocorr.methods.base import Matches


def test_matcher_finds_the_square_and_its_flipped_twin(colour_matcher, square_frames):
    source, target = square_frames[0], square_frames[3]
    result = PointMatcher(colour_matcher)(source, target, [[6.5, 20.5], [60.0, 45.0]], twin=True)
    np.testing.assert_allclose(result.points[0], [48.5, 20.5])  # token (3, 1): the red square
    np.testing.assert_allclose(result.scores[0], 1.0, atol=1e-5)
    # the mirrored query (x = 83 - 6.5) lies on the mirrored red square: colour has no left/right
    np.testing.assert_allclose(result.twins[0], [48.5, 20.5])
    assert result.similarity.shape == (4, 6) and result.grid.grid_hw == (4, 6)


def test_matcher_caches_features(colour_matcher, square_frames, count_features):
    counting, calls = count_features(colour_matcher)
    matcher = PointMatcher(counting)
    matcher(square_frames[0], square_frames[1], [[6.5, 20.5]])
    matcher(square_frames[0], square_frames[1], [[20.0, 20.5]])
    assert calls == [1, 1]  # source and target once each


class ShiftMatcher:
    """A method without dense features (no heat map): every point 3 px to the right."""

    def match(self, img0, img1, points, context=None):
        pts = np.asarray(points, dtype=np.float32) + [3.0, 0.0]
        return Matches(torch.from_numpy(pts), torch.ones(len(pts)))


def test_methods_without_features_and_the_pictures(square_frames):
    source, target = square_frames[0], square_frames[1]
    queries = [(40.0, 45.0)]  # on the grey background
    result = PointMatcher(ShiftMatcher())(source, target, queries, twin=True)
    np.testing.assert_allclose(result.points, [[43.0, 45.0]])
    np.testing.assert_allclose(result.twins, [[83 - 40 + 3.0, 45.0]])
    assert result.similarity is None
    left, right = render(source, target, queries, result)
    assert left.shape == source.shape and right.shape == target.shape
    assert (left[45, 40] != source[45, 40]).any()  # the clicked point is drawn
    assert (right[45, 43] != target[45, 43]).any()  # and its match
    assert (right[45, 46 + 7] != target[45, 46 + 7]).any()  # and the twin's ring (radius 4 + 3)
    assert summary(queries, result) == "#1 (40, 45) -> (43.0, 45.0)  score 1.000  twin -> (46.0, 45.0)"


def test_large_uploads_are_drawn_down_scaled_at_the_right_places():
    """A 2520×1680 pair is drawn at 1024×683 (a 7000² upload drew the heat map at full size: 8.6 GB);
    points and the heat map land where they are in the uploaded pixels (scale 1024 / 2520)."""
    grey = np.full((1680, 2520, 3), 128, dtype=np.uint8)
    grid = TokenGrid(image_hw=(1680, 2520), content_hw=(56, 84), input_hw=(56, 84), patch=14)
    similarity = torch.zeros(4, 6)
    similarity[1, 3] = 1.0  # token (x 3, y 1): image pixels x in [1260, 1680), y in [420, 840)
    result = DemoMatch(np.array([[300.0, 1400.0]]), np.ones(1), similarity=similarity, grid=grid)
    left, right = render(grey, grey, [(2000.0, 1500.0)], result)
    assert left.shape == right.shape == (683, 1024, 3)
    scale = 1024 / 2520
    assert (left[round(1500.5 * scale - 0.5), round(2000.5 * scale - 0.5)] != 128).any()  # the query
    assert (right[round(1400.5 * scale - 0.5), round(300.5 * scale - 0.5)] != 128).any()  # its match
    hot = right[..., 0].astype(int) - right[..., 2]  # jet: red where the map is high
    hot[round(1400.5 * scale) - 30:, : round(300.5 * scale) + 30] = -255  # not the drawn match
    y, x = np.unravel_index(np.argmax(hot), hot.shape)
    assert 1260 * scale <= x < 1680 * scale and 420 * scale <= y < 840 * scale


def test_read_upload(tmp_path):
    rgba = tmp_path / "a.png"
    Image.new("RGBA", (5, 4), (10, 20, 30, 128)).save(rgba)
    image = read_upload({"path": str(rgba), "orig_name": "a.png"}, "Source")
    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    assert read_upload(None, "Source") is None
    bad = tmp_path / "x.jpg"
    bad.write_text("not an image")
    with pytest.raises(gr.Error, match=r"Target: 'photo\.jpg' is not an image file"):
        read_upload({"path": str(bad), "orig_name": "photo.jpg"}, "Target")


def test_bundled_examples_are_small_pf_willow_pairs():
    pairs = example_pairs()
    assert len(pairs) == 4
    for pair in pairs:
        for path in pair:
            with Image.open(path) as img:
                assert img.mode == "RGB" and max(img.size) == 300


def test_an_upload_smaller_than_a_patch_is_refused_naming_it(tmp_path):
    tiny = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(tiny)
    payload = {"path": str(tiny), "orig_name": "dot.png"}
    assert read_upload(payload, "Source").shape == (1, 1, 3)  # no model constraint: any size
    with pytest.raises(gr.Error, match=r"Source: 'dot\.png' is 1×1 pixels; the model needs at least 14 pixels"):
        read_upload(payload, "Source", min_side=14)


def test_the_page_refuses_uploads_smaller_than_the_models_patch(tiny_backbone_dir, tmp_path):
    import geocorr
    from geocorr.demo.app import build_app

    model = geocorr.load("dinov2", backbone=str(tiny_backbone_dir), image_size=28)
    app = build_app(model)
    tiny = tmp_path / "dot.png"
    Image.new("RGB", (13, 900)).save(tiny)
    check = next(fn.fn for fn in app.fns.values() if fn.fn is not None and fn.fn.__name__ == "check_source")
    with pytest.raises(gr.Error, match=r"Source: 'dot\.png' is 13×900 pixels; the model needs at least 14"):
        check({"path": str(tiny), "orig_name": "dot.png"})
