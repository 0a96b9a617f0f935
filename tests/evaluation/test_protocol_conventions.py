"""Hand-made cases where the presets' conventions disagree; every expected value is worked out here."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from geocorr.conventions import (
    containing_pixel,
    containing_token,
    pixel_corner,
    token_corner,
)
from geocorr.datasets.base import check_keypoints_in_image, with_coordinates
from geocorr.datasets.pf_willow import load_pf_willow
from geocorr.evaluation.pck import correct_keypoints
from geocorr.evaluation.protocols import get_pipeline, get_protocol
from geocorr.grid import TokenGrid
from geocorr.methods.base import DenseMatcher, Features

# ------------------------------------------------------------------ threshold comparison


def test_point_exactly_on_the_threshold():
    # target image 100 x 60: L = 100; alpha 0.1 -> threshold 10 px; the prediction is exactly 10 px away.
    pred, gt, size = np.array([[10.0, 0.0]]), np.array([[0.0, 0.0]]), np.array([100.0])
    assert correct_keypoints(pred, gt, size, [0.1], "<=")[0, 0]  # geocorr: 10 <= 10
    assert correct_keypoints(pred, gt, size, [0.1], "<=f32")[0, 0]  # GECO: f32(10/100) == f32(0.1)
    # GeoAware, box threshold: f32(0.1) = 0.10000000149 times L = 100 in float64 = 10.00000015 > 10: counted
    assert correct_keypoints(pred, gt, size, [0.1], "<f32")[0, 0]
    # GeoAware, image threshold in its 840 frame: f32(0.1) * 840 rounds to exactly 84.0 in float32;
    # a prediction 84 px away is not < 84.
    at_84 = np.array([[84.0, 0.0]])
    assert not correct_keypoints(at_84, gt, np.array([840.0]), [0.1], "<f32", float32_threshold=True)[0, 0]
    assert correct_keypoints(at_84, gt, np.array([840.0]), [0.1], "<=")[0, 0]
    # 1e-9 px beyond the threshold: float64 says no; in float32 15.000000001 rounds to 15 and
    # 15 / 300 rounds to the same float32 as 0.05, so GECO counts it.
    pred = np.array([[15.000000001, 0.0]])
    assert not correct_keypoints(pred, gt, np.array([300.0]), [0.05], "<=")[0, 0]
    assert correct_keypoints(pred, gt, np.array([300.0]), [0.05], "<=f32")[0, 0]


def test_geoaware_frame_rescales_distance_and_threshold():
    # a 420 x 300 target -> 840 frame, scale 2: image L = 420 -> 840, threshold f32(0.1) * 840 = 84.0.
    # d = 41.99 -> 83.98 < 84 counts; d = 42 -> 84 does not (in the original frame 42 <= 42 would).
    gt = np.zeros((2, 2))
    pred = np.array([[41.99, 0.0], [42.0, 0.0]])
    ok = correct_keypoints(pred, gt, np.array([420.0, 420.0]), [0.1], "<f32", scale=np.array([2.0, 2.0]),
                           float32_threshold=True)
    assert ok[:, 0].tolist() == [True, False]
    assert correct_keypoints(pred, gt, np.array([420.0, 420.0]), [0.1], "<=")[:, 0].tolist() == [True, True]


def test_presets_pick_their_comparison_threshold_and_levels():
    geco = get_protocol("geco", "pf-pascal")
    assert (geco.comparison, geco.normalisation, geco.averaging, geco.alphas) == ("<=f32", "image", "point",
                                                                                 (0.05, 0.10, 0.15))
    geo = get_protocol("geoaware", "spair")
    assert (geo.comparison, geo.frame, geo.normalisation, geo.averaging, geo.alphas) == ("<f32", 840, "bbox", "image",
                                                                                        (0.01, 0.05, 0.10))
    assert get_protocol("geocorr", "spair").alphas == (0.01, 0.05, 0.10, 0.15)
    assert get_protocol("geocorr", "pf-willow").comparison == "<="
    assert get_pipeline("geco", "ap10k").upsample == "none" and get_pipeline("geco", "spair").upsample == "features"
    assert get_pipeline("geoaware", "spair").spair_boxes == "pair"
    assert get_pipeline("geco", "spair").spair_boxes == "image"
    assert get_pipeline("geocorr", "pf-willow").coordinates == "pixel-centre"
    with pytest.raises(ValueError, match="unknown protocol"):
        get_pipeline("mine", "spair")


# ------------------------------------------------------------------ token conventions


def test_keypoint_on_a_token_border():
    # 28 x 28 image, 2 x 2 tokens of 14 px: the border between token 0 and 1 is the image edge
    # coordinate 14, i.e. pixel-centre x = 13.5. GECO: floor(v * g / W) with v = x + 0.5.
    grid = TokenGrid((28, 28), (28, 28), (28, 28), 14)
    pts = torch.tensor([[13.5, 13.4], [13.4, 27.5], [-0.5, 0.0]])
    assert containing_token(pts, grid).tolist() == [[1, 0], [0, 1], [0, 0]]
    # a 100-px wide image squeezed into 28 px: token = floor((x + 0.5) / 50)
    wide = TokenGrid((28, 100), (28, 28), (28, 28), 14)
    assert containing_token(torch.tensor([[49.5, 0.0], [49.4, 0.0]]), wide)[:, 0].tolist() == [1, 0]
    # centred padding (GeoAware): a 28 x 14 image placed at left = 7 in a 28 x 28 input: the point's
    # input position is x + 0.5 + 7, token floor((x + 7.5) / 14): x = 6.4 -> 0, x = 6.5 -> 1
    centred = TokenGrid((28, 14), (28, 14), (28, 28), 14, offset=(0, 7))
    assert containing_token(torch.tensor([[6.4, 0.0], [6.5, 0.0]]), centred)[:, 0].tolist() == [0, 1]
    # its corner: token 1 starts at input 14 -> image edge 14 - 7 = 7 -> 6.5; token 0 at -7 -> -7.5
    assert token_corner(torch.tensor([[1, 0], [0, 0]]), centred)[:, 0].tolist() == [6.5, -7.5]
    # containing pixel: floor(x + 0.5), the far edge belongs to the last pixel
    assert containing_pixel(torch.tensor([[13.5, 13.4], [99.5, 0.0]]), (28, 100)).tolist() == [[14, 13], [99, 0]]


def test_geco_corner_prediction():
    # token j of a 100 (101) px wide image cut into 2 tokens: floor(j * W / 2) = 50 for j = 1, i.e.
    # 49.5 in geocorr's pixel-centre frame; token 0 -> -0.5.
    for width in (100, 101):
        grid = TokenGrid((28, width), (28, 28), (28, 28), 14)
        assert token_corner(torch.tensor([[1, 0], [0, 1]]), grid).tolist() == [[49.5, -0.5], [-0.5, 13.5]]
    assert pixel_corner(torch.tensor([[3, 7]])).tolist() == [[2.5, 6.5]]


def _matcher(**conf) -> DenseMatcher:
    return DenseMatcher(torch.nn.Linear(1, 1), **conf).eval()


def _one_hot_features() -> Features:
    # 2 x 2 tokens on a 28 x 28 image; token (column j, row i) has the one-hot feature e_{2i + j}.
    dense = torch.eye(4).reshape(4, 2, 2)[None]
    return Features(dense, [TokenGrid((28, 28), (28, 28), (28, 28), 14)])


def test_token_query_and_corner_prediction_where_conventions_disagree():
    # 2 x 2 tokens on a 28 x 28 image: column 0 carries e0, column 1 carries 10 e1 (both rows).
    dense = torch.zeros(1, 2, 2, 2)
    dense[0, 0, :, 0] = 1.0
    dense[0, 1, :, 1] = 10.0
    feats = Features(dense, [TokenGrid((28, 28), (28, 28), (28, 28), 14)])
    # x = 13.4 lies in token column 0 (edge coordinate 13.9 < 14). Bilinear reads grid coordinate
    # 13.9 / 14 - 0.5 = 0.4929: 0.5071 e0 + 0.4929 * 10 e1 = (0.507, 4.929), cosine 0.102 with e0 and
    # 0.995 with e1 -> best target column 1, centre 1 * 14 + 6.5 = 20.5. The token query reads e0
    # -> column 0, centre 6.5. y = 3 is row 0 (centre 6.5) for both.
    pts = torch.tensor([[13.4, 3.0]])
    assert _matcher(upsample="none").match_features(feats, feats, pts).points.tolist() == [[20.5, 6.5]]
    token = _matcher(upsample="none", query="token").match_features(feats, feats, pts)
    assert token.points.tolist() == [[6.5, 6.5]] and token.scores.item() == pytest.approx(1.0)
    # GECO's corner of token (0, 0) is floor(0) - 0.5 = -0.5; of token (1, 0): floor(1 * 28 / 2) - 0.5 = 13.5
    corner = _matcher(upsample="none", query="token", prediction="corner")
    assert corner.match_features(feats, feats, pts).points.tolist() == [[-0.5, -0.5]]
    assert corner.match_features(feats, feats, torch.tensor([[14.0, 3.0]])).points.tolist() == [[13.5, -0.5]]


def test_upsampled_corner_is_the_pixel_corner():
    # Up-sampled similarity to e0 is 1 on every pixel whose grid coordinate clamps to token (0, 0)
    # (pixels 0..6 in x and y): argmax takes the first, pixel (0, 0): centre (0, 0), corner (-0.5, -0.5).
    feats = _one_hot_features()
    pts = torch.tensor([[2.0, 2.0]])
    assert _matcher(query="token").match_features(feats, feats, pts).points.tolist() == [[0.0, 0.0]]
    assert _matcher(query="token", prediction="corner").match_features(feats, feats, pts).points.tolist() == \
        [[-0.5, -0.5]]


def test_matcher_options_are_validated():
    with pytest.raises(ValueError, match="query must be"):
        _matcher(query="nearest")
    with pytest.raises(ValueError, match="prediction must be"):
        _matcher(prediction="middle")


# ------------------------------------------------------------------ coordinates and silent errors


def _willow_tree(tmp_path, coords: np.ndarray, size=(40, 30), n=2):
    folder = tmp_path / "duck(S)"
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", size).save(folder / f"im{i}.png")
        savemat(folder / f"im{i}.mat", {"pts_coord": coords})
    return tmp_path


def test_one_based_coordinate(tmp_path):
    # MATLAB 1-based value 1 = the first pixel: geocorr's pixel centre 0; read as annotated (0 on the
    # image edge, as the official codes do) it is 1 px from the edge, i.e. 0.5 in the pixel-centre frame.
    coords = np.ones((2, 10))
    coords[:, 1] = [40.0, 30.0]  # the last pixel: 39 / 29.5
    data = load_pf_willow(_willow_tree(tmp_path, coords))
    assert data.pairs[0].source.keypoints[:2].tolist() == [[0.0, 0.0], [39.0, 29.0]]
    official = with_coordinates(data, "as-annotated")
    assert official.pairs[0].source.keypoints[:2].tolist() == [[0.5, 0.5], [39.5, 29.5]]
    assert official.pairs[0].target.bbox.tolist() == [0.5, 0.5, 39.5, 29.5]
    # distances between keypoints do not move
    assert with_coordinates(data, "pixel-centre") is data


def test_annotation_that_does_not_fit_its_image_is_an_error(tmp_path):
    # a 40 x 30 image whose annotation reaches x = 80 (the original of a halved image)
    coords = np.ones((2, 10))
    coords[:, 3] = [80.0, 10.0]
    data = load_pf_willow(_willow_tree(tmp_path, coords))
    with pytest.raises(ValueError, match=r"im0\.png: keypoint 3 at \(79\.0, 9\.0\) lies outside the 40×30 image"):
        check_keypoints_in_image(data)
    clipped, count = check_keypoints_in_image(data, clip=True)
    assert count == 2  # one keypoint in each of the two images
    assert clipped.pairs[0].source.keypoints[3].tolist() == [39.5, 9.0]
    # the far edge itself is accepted (SPair-71k annotates it): x = W - 0.5 + 0.5
    coords[:, 3] = [41.0, 10.0]
    edge = load_pf_willow(_willow_tree(tmp_path / "edge", coords))
    assert check_keypoints_in_image(edge)[1] == 0


def test_mat_full_of_nan_names_the_file(tmp_path):
    root = _willow_tree(tmp_path, np.full((2, 10), np.nan))
    with pytest.raises(ValueError, match=r"im0\.mat: 'pts_coord' holds NaN"):
        load_pf_willow(root)


def test_foreign_mat_file_is_a_clear_error(tmp_path):
    import pickle

    root = _willow_tree(tmp_path, np.ones((2, 10)))
    (root / "duck(S)" / "im0.mat").write_bytes(pickle.dumps({"pts_coord": [1, 2]}))
    with pytest.raises(ValueError, match=r"im0\.mat: not a readable \.mat file"):
        load_pf_willow(root)
