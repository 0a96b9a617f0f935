"""The runner's PairContext: what a pair tells a method (boxes, category, masks), by hand on PF-Willow."""
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from geocorr.datasets.pf_willow import load_pf_willow
from geocorr.evaluation.runner import evaluate, pair_context
from geocorr.methods.base import Matches


@pytest.fixture(scope="module")
def willow(pf_willow_root):
    return load_pf_willow(pf_willow_root)


def test_default_context_is_category_boxes_and_query_ids(willow):
    pair = willow[0]
    index = np.flatnonzero(pair.source.visible)
    context = pair_context(pair, index)
    assert context.given() == {"category", "boxes", "keypoint_ids"}
    assert context.category == pair.category
    src = pair.source.keypoints[pair.source.visible]  # PF-Willow: the box of the visible keypoints
    np.testing.assert_allclose(context.boxes[0], [*src.min(0), *src.max(0)])
    assert context.target_keypoints is None  # the answer is never given unless asked


def test_masks_come_from_the_annotations(willow, tmp_path):
    pair = willow[0]
    masks = []
    for k, ann in enumerate((pair.source, pair.target)):
        width, height = ann.size
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[: height // 2] = 255  # white = object
        Image.fromarray(mask).save(tmp_path / f"{k}.png")
        masks.append(dataclasses.replace(ann, meta={"mask": tmp_path / f"{k}.png"}))
    with_masks = dataclasses.replace(pair, source=masks[0], target=masks[1])
    context = pair_context(with_masks, np.arange(3), {"masks", "category"})
    assert context.given() == {"masks", "category"}
    height = pair.source.size[1]
    assert context.masks[0][: height // 2].all() and not context.masks[0][height // 2 :].any()
    assert pair_context(pair, np.arange(3), {"masks"}).masks is None  # not annotated: the method's own
    with pytest.raises(ValueError, match="not PairContext fields"):
        pair_context(pair, np.arange(3), {"colour"})


def test_evaluate_passes_the_context_to_the_method(willow):
    seen = []

    class Recorder:
        def match(self, img0, img1, points, context=None):
            seen.append(context)
            return Matches(torch.zeros(len(points), 2), torch.ones(len(points)))

    evaluate(Recorder(), willow, pair_indices=[0, 1], progress=False, context={"boxes"})
    assert [c.given() for c in seen] == [{"boxes"}, {"boxes"}]
