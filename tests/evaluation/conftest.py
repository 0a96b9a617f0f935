"""Hand-made predictions for metric tests (category "cat" of SPair-71k: 15 keypoints)."""
import numpy as np
import pytest

from geocorr.datasets.symmetry import symmetry_table
from geocorr.evaluation.predictions import PairPrediction

K = 15


def _cat_symmetry() -> dict:
    return {"cat": symmetry_table("spair", "cat")}


def _make_pair(target: dict, predicted: dict, scores: dict, source_visible, size=(200, 100),
              bbox=(0, 0, 100, 50), category="cat") -> PairPrediction:
    """target/predicted/scores: keypoint id -> value; unlisted keypoints are hidden / not predicted."""
    tgt = np.full((K, 2), np.nan)
    pred = np.full((K, 2), np.nan)
    score = np.full(K, np.nan)
    for k, xy in target.items():
        tgt[k] = xy
    for k, xy in predicted.items():
        pred[k] = xy
        score[k] = scores[k]
    src_vis = np.zeros(K, bool)
    src_vis[list(source_visible)] = True
    src = np.where(src_vis[:, None], np.ones((K, 2)), np.nan)
    return PairPrediction(
        category=category, source="s.png", target="t.png",
        source_keypoints=src, target_keypoints=tgt,
        source_visible=src_vis, target_visible=~np.isnan(tgt[:, 0]),
        predicted=pred, scores=score,
        source_bbox=np.array(bbox, float), target_bbox=np.array(bbox, float),
        source_size=np.array(size, float), target_size=np.array(size, float),
    )


@pytest.fixture
def cat_symmetry():
    return _cat_symmetry


@pytest.fixture
def make_pair():
    return _make_pair
