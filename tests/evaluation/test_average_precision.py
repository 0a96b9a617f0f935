"""The one average precision (evaluation/kap.py): known answers computed by hand, ties included."""
import numpy as np
import pytest

from geocorr.evaluation.kap import average_precision, kap


def test_without_ties_it_is_the_mean_precision_at_each_positive():
    # ranks: T (1/1), F, T (2/3), F; a third positive is never predicted (precision 0)
    assert average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 3) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision([0.1, 0.9], [True, False]) == pytest.approx(1 / 2)  # P defaults to the positives


def test_a_tie_block_is_one_threshold():
    # three equal scores, two positives: at the block's end precision 2/3 for both -> 2/3
    # (input order would give 1 with positives first, 7/12 with the negative first)
    assert average_precision([0.5, 0.5, 0.5], [True, True, False]) == pytest.approx(2 / 3)
    assert average_precision([0.5, 0.5, 0.5], [False, True, True]) == pytest.approx(2 / 3)
    # 0.9: T (precision 1); block {0.5, 0.5}: one new positive at precision 2/3; 0.1: none
    assert average_precision([0.9, 0.5, 0.5, 0.1], [True, False, True, False], 2) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.9, 0.5, 0.5, 0.1], [True, True, False, False], 2) == pytest.approx((1 + 2 / 3) / 2)


def test_result_does_not_depend_on_the_input_order():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, 40).astype(float)  # many ties
    positive = rng.random(40) < 0.4
    perm = rng.permutation(40)
    assert average_precision(scores, positive, 20) == average_precision(scores[perm], positive[perm], 20)


def test_edge_cases_and_errors():
    assert np.isnan(average_precision([0.3], [False], 0))
    with pytest.raises(ValueError, match="smaller than the true positives"):
        average_precision([0.3, 0.2], [True, True], 1)
    with pytest.raises(ValueError, match="NaN"):
        average_precision([np.nan, 0.2], [True, False])
    with pytest.raises(ValueError, match="shape"):
        average_precision([0.3, 0.2], [True])


def test_kap_counts_hidden_keypoints_as_false_positives():
    # 3 predictions ranked 0.9, 0.8, 0.7; the second is of a keypoint hidden in the target
    scores = np.array([0.9, 0.8, 0.7])
    correct = np.array([[True, True], [True, True], [False, True]])
    visible = np.array([True, False, True])
    # α0: TP, FP, FN(wrong) -> (1) / 2 ; α1: TP, FP, TP -> (1 + 2/3) / 2
    np.testing.assert_allclose(kap(scores, correct, visible), [1 / 2, (1 + 2 / 3) / 2])
