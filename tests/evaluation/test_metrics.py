import math

import numpy as np
import pytest

from geocorr.evaluation.metrics import compute_metrics
from geocorr.evaluation.predictions import Predictions
from geocorr.evaluation.protocols import Protocol, get_protocol

# cat: 4 right eye (twin 5), 9/10 front-right/front-left foot (twins, one geo group), 13 tail-tip.
TARGET = {4: (50, 10), 9: (30, 90), 10: (70, 90)}
PREDICTED = {4: (50, 25), 9: (30, 90), 10: (30, 95), 13: (0, 0)}  # 10 lands on its twin 9
SCORES = {4: 0.9, 9: 0.8, 10: 0.7, 13: 0.95}


def _predictions(*pairs) -> Predictions:
    from geocorr.datasets.symmetry import symmetry_table

    return Predictions("spair", "test", {"method": "test"}, list(pairs), {"cat": symmetry_table("spair", "cat")})


def test_all_metrics_by_hand(make_pair):
    # image 200 x 100 -> L = 200, thresholds 10 / 20 / 30 px; errors: eye 15, foot 0, foot 40.3.
    preds = _predictions(make_pair(TARGET, PREDICTED, SCORES, source_visible=[4, 9, 10, 13]))
    m = compute_metrics(preds, get_protocol("geco", "spair"))
    assert m["pck"]["all"] == pytest.approx([100 / 3, 200 / 3, 200 / 3], abs=1e-3)
    assert m["pck"]["num_points"] == 3 and m["pck"]["num_pairs"] == 1
    # bbox 100 x 50 -> L = 100, thresholds 5 / 10 / 15 px
    assert m["pck_variants"]["bbox/point"] == pytest.approx([100 / 3, 100 / 3, 200 / 3], abs=1e-3)
    geo = m["geometry_aware"]  # the two feet are geometry-aware, the eye is not
    assert geo["geo"] == pytest.approx([50, 50, 50])
    assert geo["share_points"] == pytest.approx(200 / 3, abs=1e-3) and geo["share_images"] == 100
    sym = m["symmetry"]
    assert sym["buckets"] == pytest.approx({"n11": 50, "n10": 25, "n1x": 0, "n01": 0, "n00": 0, "n0x": 25})
    assert sym["pck"]["n11"] == pytest.approx([50, 50, 50])
    assert sym["pck"]["n10"] == pytest.approx([0, 100, 100])
    assert all(math.isnan(v) for v in sym["pck"]["n1x"])
    assert sym["swap_rate"] == pytest.approx([50, 50, 50]) and sym["ambiguous_rate"] == [0, 0, 0]
    # KAP: ranking tail(hidden, FP), eye, foot 9, foot 10; P = 3.
    assert m["kap"]["all"] == pytest.approx([100 / 9, 100 * (1 / 2 + 2 / 3) / 3, 100 * (1 / 2 + 2 / 3) / 3], abs=1e-3)


def _naive_group_score(pair, groups, threshold):
    """Share of predictions within the threshold of *some* keypoint of their subgroup (blind to left/right)."""
    hits = []
    for k in np.flatnonzero(pair.source_visible & pair.target_visible):
        group = next(g for g in groups if k in g)
        d = np.linalg.norm(pair.target_keypoints[group] - pair.predicted[k], axis=1)
        hits.append(np.nanmin(d) <= threshold)
    return float(np.mean(hits))


def test_left_right_flip_changes_geo_pck_but_not_a_naive_score(make_pair, cat_symmetry):
    target = {9: (30, 90), 10: (70, 90), 8: (50, 20)}  # two front feet and the mouth
    correct = make_pair(target, {9: (30, 90), 10: (70, 90), 8: (50, 20)}, {9: 1, 10: 1, 8: 1}, [8, 9, 10])
    flipped = make_pair(target, {9: (70, 90), 10: (30, 90), 8: (50, 20)}, {9: 1, 10: 1, 8: 1}, [8, 9, 10])
    protocol = Protocol("t", (0.1,), "image", "point", "pooled")
    groups = cat_symmetry()["cat"]["geo_groups"]
    good, bad = (compute_metrics(_predictions(p), protocol) for p in (correct, flipped))
    assert _naive_group_score(correct, groups, 20) == _naive_group_score(flipped, groups, 20) == 1.0
    assert good["geometry_aware"]["geo"] == [100] and bad["geometry_aware"]["geo"] == [0]
    assert bad["pck"]["all"] == pytest.approx([100 / 3], abs=1e-3)
    assert bad["symmetry"]["swap_rate"] == [100]


def test_image_averaging_and_category_mean(make_pair):
    one = make_pair({4: (50, 10)}, {4: (50, 10)}, {4: 1}, [4])  # 1 of 1
    three = make_pair(TARGET, PREDICTED, SCORES, [4, 9, 10, 13])  # @0.05: 1 of 3
    dog = make_pair({4: (50, 10)}, {4: (50, 90)}, {4: 1}, [4], category="dog")  # 0 of 1
    preds = Predictions("spair", "test", {}, [one, three, dog], {})
    alpha = (0.05,)
    per_point = compute_metrics(preds, Protocol("t", alpha, "image", "point", "pooled"))
    per_image = compute_metrics(preds, Protocol("t", alpha, "image", "image", "pooled"))
    cat_mean = compute_metrics(preds, Protocol("t", alpha, "image", "image", "mean"))
    assert per_point["pck"]["all"] == pytest.approx([100 * 2 / 5])
    assert per_image["pck"]["all"] == pytest.approx([100 * (1 + 1 / 3 + 0) / 3], abs=1e-3)
    assert per_image["pck"]["per_category"]["cat"] == pytest.approx([100 * (1 + 1 / 3) / 2], abs=1e-3)
    assert cat_mean["pck"]["all"] == pytest.approx([100 * ((1 + 1 / 3) / 2 + 0) / 2], abs=1e-3)
    assert "geometry_aware" not in per_point and "symmetry" not in per_point


def test_no_pairs_is_an_error():
    with pytest.raises(ValueError, match="no pair"):
        compute_metrics(Predictions("x", "test", {}, []), get_protocol("geco", "x"))


def test_protocol_presets():
    assert get_protocol("geoaware", "spair") == Protocol("geoaware", (0.01, 0.05, 0.10), "bbox", "image", "pooled",
                                                         "<f32", 840)
    assert get_protocol("geoaware", "pf-pascal").normalisation == "image"
    assert get_protocol("geco", "ap10k") == Protocol("geco", (0.05, 0.10, 0.15), "image", "point", "pooled", "<=f32")
    assert get_protocol("geco", "spair", normalisation="bbox", alphas=[0.1]).alphas == (0.1,)
    with pytest.raises(ValueError, match="unknown protocol 'pck'; available: geco, geoaware, geocorr"):
        get_protocol("pck", "spair")
    with pytest.raises(ValueError, match="averaging"):
        Protocol("x", averaging="pair")
