import numpy as np
import pytest

from geocorr.evaluation.pck import correct_keypoints, pck, pck_per_category, reference_size


def test_reference_size_image_and_bbox():
    sizes = np.array([[300, 200], [100, 400]])
    boxes = np.array([[10, 20, 60, 40], [0, 0, 30, 90]])
    assert reference_size("image", sizes).tolist() == [300, 400]
    assert reference_size("bbox", sizes, boxes).tolist() == [50, 90]


def test_reference_size_errors():
    with pytest.raises(ValueError, match="normalisation"):
        reference_size("diag", np.zeros((1, 2)))
    with pytest.raises(ValueError, match="needs bbox"):
        reference_size("bbox", np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"bbox must have shape \(N, 4\)"):
        reference_size("bbox", np.zeros((1, 2)), np.zeros((1, 3)))


def test_correct_keypoints_threshold_is_inclusive():
    # L = 100: thresholds 5, 10, 15 px. Distances 0, 5 (3-4-5), 10, 20.
    target = np.zeros((4, 2))
    predicted = np.array([[0, 0], [3, 4], [0, 10], [20, 0]])
    ok = correct_keypoints(predicted, target, np.full(4, 100.0), (0.05, 0.10, 0.15))
    assert ok.tolist() == [
        [True, True, True],
        [True, True, True],
        [False, True, True],
        [False, False, False],
    ]


def test_correct_keypoints_shape_errors():
    with pytest.raises(ValueError, match="target must have shape"):
        correct_keypoints(np.zeros((2, 2)), np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="alphas"):
        correct_keypoints(np.zeros((2, 2)), np.zeros((2, 2)), np.ones(2), alphas=(0.1, -1))


def test_point_vs_image_averaging():
    # pair 0: 1 of 1 correct; pair 1: 1 of 3 correct.
    correct = np.array([[True], [True], [False], [False]])
    pair = np.array([0, 1, 1, 1])
    assert pck(correct, pair, "point") == pytest.approx([2 / 4])
    assert pck(correct, pair, "image") == pytest.approx([(1 + 1 / 3) / 2])


def test_pck_empty_is_nan_and_bad_averaging():
    assert np.isnan(pck(np.zeros((0, 2), bool), np.zeros(0, int))).all()
    with pytest.raises(ValueError, match="averaging"):
        pck(np.ones((1, 1), bool), np.zeros(1, int), "pair")


def test_pck_per_category():
    correct = np.array([[True], [False], [True], [True]])
    out = pck_per_category(correct, np.array([0, 0, 1, 2]), np.array(["cat", "cat", "dog", "dog"]))
    assert out["cat"] == pytest.approx([0.5]) and out["dog"] == pytest.approx([1.0])
