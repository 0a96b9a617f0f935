import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb

from geocorr.grid import TokenGrid
from geocorr.viz import (
    CORRECT_COLOR,
    DRAW_MAX_SIDE,
    WRONG_COLOR,
    draw_points,
    figure_to_array,
    heatmap_overlay,
    pck_title,
    plot_keypoints,
    plot_match_summary,
    plot_matches,
    plot_pck_curves,
    plot_similarity,
    point_colors,
    sharpen,
)


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


def test_plot_matches_lines_join_source_and_shifted_target():
    img0, img1 = _image(4, 5), _image(8, 3, seed=1)  # the target is drawn at half size (s = 4 / 8)
    pts0 = torch.tensor([[0.0, 1.0], [4.0, 3.0]])
    pts1 = np.array([[2.0, 6.0], [0.0, 0.0]])
    fig = plot_matches(img0, img1, pts0, pts1, gap=2)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), img0.permute(1, 2, 0).numpy())
    np.testing.assert_allclose(ax.images[1].get_array(), img1.permute(1, 2, 0).numpy())
    assert ax.images[0].get_extent() == pytest.approx((-0.5, 4.5, 3.5, -0.5))
    assert ax.images[1].get_extent() == pytest.approx((7 - 0.25, 7 + 1.25, 3.75, -0.25))  # x0 = W0 + gap = 7
    assert ax.get_xlim() == pytest.approx((-0.5, 8.25)) and ax.get_ylim() == pytest.approx((3.5, -0.5))
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[0, 1], [7 + 2 / 2, 6 / 2]])
    np.testing.assert_allclose(ax.lines[1].get_xydata(), [[4, 3], [7 + 0, 0]])
    assert to_rgb(ax.lines[0].get_color()) != to_rgb(ax.lines[1].get_color())
    assert [t.get_text() for t in ax.texts] == ["1", "1", "2", "2"]  # both ends numbered


def test_plot_matches_draws_every_point_pixel_check():
    # Black images, five matches: the rendered figure has each match's colour at both of its ends.
    black = np.zeros((60, 80, 3), dtype=np.uint8)
    pts0 = np.array([[10.0, 10.0], [70.0, 10.0], [40.0, 30.0], [10.0, 50.0], [70.0, 50.0]])
    pts1 = pts0[::-1] + [0.0, 0.0]
    fig = plot_matches(black, black, pts0, pts1, gap=10, numbers=False, markersize=9)
    arr = figure_to_array(fig).astype(int)
    ax, height = fig.axes[0], arr.shape[0]
    for k, colour in enumerate(point_colors(5)):
        for xy in (pts0[k], pts1[k] + [80 + 10, 0]):
            x, y = ax.transData.transform(xy)
            pixel = arr[round(float(height - y)), round(float(x))]
            assert np.abs(pixel - 255 * colour).max() < 60, (k, xy, pixel, colour)


def test_large_images_are_drawn_downscaled_in_original_coordinates():
    big = torch.rand(3, 3000, 2000)
    fig = plot_matches(big, big, [[1999.0, 2999.0]], [[0.0, 0.0]], gap=0)
    ax = fig.axes[0]
    assert max(ax.images[0].get_array().shape[:2]) == DRAW_MAX_SIDE  # 1024 x 683, not 3000 x 2000
    assert ax.images[0].get_extent() == pytest.approx((-0.5, 1999.5, 2999.5, -0.5))
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[1999, 2999], [2000, 0]])  # same heights: s = 1


def test_plot_matches_colours_correct_green_and_wrong_red():
    img = _image(8, 8)
    pts = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    fig = plot_matches(img, img, pts, pts, correct=torch.tensor([True, False, True]))
    colours = [to_rgb(line.get_color()) for line in fig.axes[0].lines]
    assert colours == [CORRECT_COLOR, WRONG_COLOR, CORRECT_COLOR]


def test_plot_matches_bad_input():
    img = _image(8, 8)
    with pytest.raises(ValueError, match="pts0 and pts1"):
        plot_matches(img, img, torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="pts1: expected points of shape"):
        plot_matches(img, img, torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"correct: expected shape \(3,\)"):
        plot_matches(img, img, torch.zeros(3, 2), torch.zeros(3, 2), correct=[True])
    with pytest.raises(ValueError, match="img1"):
        plot_matches(img, torch.rand(2, 8, 8), torch.zeros(3, 2), torch.zeros(3, 2))


def test_plot_similarity_places_token_heatmap_with_padding():
    # 21 px wide image resized 1:1 into a 28 px input: the second token column is mostly padding.
    grid = TokenGrid(image_hw=(28, 21), content_hw=(28, 21), input_hw=(28, 28), patch=14)
    heat = torch.tensor([[0.0, 1.0], [0.5, 0.2]])
    fig = plot_similarity(_image(28, 21), heat, point=(3.0, 4.0), grid=grid, twin_point=[[17.0, 4.0]],
                          temperature=None)
    ax = fig.axes[0]
    assert ax.images[1].get_extent() == pytest.approx((-0.5, 27.5, 27.5, -0.5))
    assert ax.get_xlim() == pytest.approx((-0.5, 20.5))  # the view stays on the image
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[3.0, 4.0]])
    np.testing.assert_allclose(ax.lines[1].get_xydata(), [[17.0, 4.0]])


def test_plot_similarity_resized_grid_spans_image_and_source_panel():
    grid = TokenGrid(image_hw=(10, 20), content_hw=(28, 28), input_hw=(28, 28), patch=14)
    fig = plot_similarity(_image(10, 20), np.zeros((2, 2)), grid=grid, source=_image(5, 5), source_point=(1, 2))
    src_ax, tgt_ax = fig.axes[:2]
    assert tgt_ax.images[1].get_extent() == pytest.approx((-0.5, 19.5, 9.5, -0.5))
    np.testing.assert_allclose(src_ax.lines[0].get_xydata(), [[1.0, 2.0]])


def test_plot_similarity_bad_heatmap():
    grid = TokenGrid(image_hw=(28, 28), content_hw=(28, 28), input_hw=(28, 28), patch=14)
    with pytest.raises(ValueError, match="does not match the token grid"):
        plot_similarity(_image(28, 28), torch.zeros(3, 3), grid=grid)
    with pytest.raises(ValueError, match="heatmap: expected a non-empty"):
        plot_similarity(_image(28, 28), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="NaN"):
        plot_similarity(_image(28, 28), torch.full((2, 2), float("nan")))


def test_heatmap_overlay_bilinear_known_values():
    black = np.zeros((1, 4, 3), dtype=np.uint8)
    out = heatmap_overlay(black, np.array([[0.0, 1.0]]), alpha=1.0, cmap="gray", temperature=None)
    # pixel centres x = 0..3 fall on cells -0.25, 0.25, 0.75, 1.25 -> 0, 0.25, 0.75, 1 (border-clamped)
    np.testing.assert_allclose(out[0, :, 0], [0, 64, 191, 255], atol=1)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)


def test_heatmap_overlay_on_padded_grid_uses_only_content_tokens():
    grid = TokenGrid(image_hw=(14, 14), content_hw=(14, 14), input_hw=(14, 28), patch=14)
    black = np.zeros((14, 14, 3), np.uint8)
    out = heatmap_overlay(black, torch.tensor([[0.0, 1.0]]), grid=grid, alpha=1.0, cmap="gray", temperature=None)
    # the right-most pixel centre x = 13 is grid x = 13.5 / 14 - 0.5 = 0.464 -> 0.464 of the way to 1
    assert out[0, 0, 0] == pytest.approx(0, abs=1)
    assert out[0, 13, 0] == pytest.approx(0.4643 * 255, abs=1.5)


def test_heatmap_overlay_alpha_zero_is_the_image():
    img = (np.arange(2 * 3 * 3).reshape(2, 3, 3) * 9).astype(np.uint8)
    np.testing.assert_array_equal(heatmap_overlay(img, np.random.rand(4, 4), alpha=0.0), img)
    with pytest.raises(ValueError, match="alpha"):
        heatmap_overlay(img, np.random.rand(4, 4), alpha=1.5)


def test_plot_pck_curves_one_line_per_method():
    fig = plot_pck_curves([0.05, 0.1, 0.15], {"geco": [50, 70, 80], "dinov2": [40.0, 60.0, 72.0]})
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["geco", "dinov2"]
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[0.05, 50], [0.1, 70], [0.15, 80]])
    with pytest.raises(ValueError, match="increasing"):
        plot_pck_curves([0.1, 0.05], {"a": [1, 2]})
    with pytest.raises(ValueError, match=r"pck\['a'\]: expected 2 values"):
        plot_pck_curves([0.05, 0.1], {"a": [1, 2, 3]})
    with pytest.raises(ValueError, match="percentages"):
        plot_pck_curves([0.05, 0.1], {"a": [1, 200]})


def test_pck_title_names_method_dataset_protocol_and_threshold():
    fig = plot_pck_curves([0.05, 0.1], {"dinov2": [40.0, 60.0]}, method="dinov2", dataset="pf-willow",
                          protocol="geco", threshold="bbox")
    ax = fig.axes[0]
    assert ax.get_title() == ("dinov2 on pf-willow · protocol geco · PCK@α, threshold α·max(h, w) of the "
                              "target object box")
    assert "object box" in ax.get_xlabel()
    assert "of the target image" in pck_title("geco", "spair", "geocorr", "image")
    with pytest.raises(ValueError, match="together"):
        plot_pck_curves([0.05], {"a": [1.0]}, method="geco")


def test_sharpen_is_softmax_at_the_temperature():
    sim = np.array([[0.50, 0.48], [0.30, -2.0]])
    p = sharpen(sim, 0.02)
    e = np.exp(np.array([0.50, 0.48, 0.30, -2.0]) / 0.02)
    np.testing.assert_allclose(p.ravel(), e / e.sum())  # 0.731, 0.269, 1.2e-5, ~0
    assert p[0, 0] / p[0, 1] == pytest.approx(np.exp(1.0))  # 0.02 apart in cosine -> e times
    np.testing.assert_array_equal(sharpen(sim, None), sim)
    with pytest.raises(ValueError, match="temperature"):
        sharpen(sim, 0.0)


def test_sharpened_heatmap_peak_stands_out():
    # Cosine 0.1 on the background, 0.45 over the object (4x4 cells), 0.5 at the match: min-max
    # colours the whole object warm (0.875 of the scale); sharpened, the object is e^-2.5 = 8% of the peak.
    sim = np.full((6, 6), 0.10)
    sim[1:5, 1:5] = 0.45
    sim[2, 3] = 0.50
    grey = np.zeros((6, 6, 3), np.uint8)
    raw = heatmap_overlay(grey, sim, alpha=1.0, cmap="gray", temperature=None)[..., 0]
    sharp = heatmap_overlay(grey, sim, alpha=1.0, cmap="gray")[..., 0]
    assert (raw > 128).sum() >= 16 and (sharp > 128).sum() <= 2 and sharp[2, 3] == 255


def test_match_summary_numbers_every_match_and_draws_heatmaps():
    grid = TokenGrid(image_hw=(28, 42), content_hw=(28, 42), input_hw=(28, 42), patch=14)
    pts0 = np.array([[3.0, 3.0], [20.0, 10.0], [40.0, 25.0]])
    pts1 = np.array([[5.0, 20.0], [30.0, 5.0], [10.0, 10.0]])
    sims = torch.rand(3, 2, 3)
    fig = plot_match_summary(_image(28, 42), _image(28, 42, 1), pts0, pts1, scores=[0.9, 0.5, 0.1],
                             similarity=sims, grid=grid, max_heatmaps=2)
    top, *maps = fig.axes
    assert len(top.lines) == 3 and sorted(t.get_text() for t in top.texts) == ["1", "1", "2", "2", "3", "3"]
    assert len(maps) == 2 and [m.get_title() for m in maps] == ["#1 score 0.900", "#2 score 0.500"]
    np.testing.assert_allclose(maps[1].images[1].get_array(), sharpen(sims[1]))
    with pytest.raises(ValueError, match=r"similarity: expected \(3, h, w\)"):
        plot_match_summary(_image(28, 42), _image(28, 42), pts0, pts1, similarity=sims[:2], grid=grid)


def test_plot_keypoints_labels_visible_points_only():
    pts = np.array([[1.0, 1.0], [np.nan, np.nan], [5.0, 6.0], [2.0, 2.0]])
    fig = plot_keypoints(_image(8, 8), pts, ["l_eye", "r_eye", "nose", "tail"], visible=[True, True, True, False])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["l_eye", "nose"]
    np.testing.assert_allclose(ax.texts[1].xy, (5.0, 6.0))
    with pytest.raises(ValueError, match="names: expected 4"):
        plot_keypoints(_image(8, 8), pts, ["a"])


def test_figure_to_array_renders_rgb():
    fig = plot_keypoints(_image(8, 8), np.array([[1.0, 1.0]]))
    arr = figure_to_array(fig)
    w, h = fig.canvas.get_width_height()
    assert arr.shape == (h, w, 3) and arr.dtype == np.uint8


def test_draw_points_circles_and_trails():
    frame = np.zeros((11, 11, 3), dtype=np.uint8)
    out = draw_points(frame, [[5.0, 5.0], [np.nan, 1.0]], np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), radius=2,
                      trails=[np.array([[0.0, 10.0], [10.0, 10.0]]), np.zeros((0, 2))])
    assert tuple(out[5, 5]) == (255, 0, 0)
    assert tuple(out[0, 0]) == (0, 0, 0)
    assert tuple(out[10, 4]) == (255, 0, 0)  # the trail along the bottom row
    assert not (out[..., 1] > 0).any()  # the NaN point is not drawn
    assert frame.max() == 0  # the input is untouched
    with pytest.raises(ValueError, match="frame: expected an"):
        draw_points(frame.astype(np.float32), [[1.0, 1.0]])
    with pytest.raises(ValueError, match="colors"):
        draw_points(frame, [[1.0, 1.0]], np.zeros((2, 3)))


def test_draw_points_hollow_rings():
    frame = np.zeros((21, 21, 3), dtype=np.uint8)
    out = draw_points(frame, [[10.0, 10.0]], np.array([[0.0, 0.0, 1.0]]), radius=8, hollow=True)
    assert tuple(out[10, 10]) == (0, 0, 0)  # the centre stays free
    assert tuple(out[10, 2]) == (0, 0, 255)  # the ring, 8 px left of the centre


def test_point_colors_distinct():
    cols = point_colors(5)
    assert cols.shape == (5, 3)
    assert len({tuple(c) for c in cols.round(6)}) == 5
