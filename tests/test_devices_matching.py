"""Matching memory is bounded for any number of points (issue 14): the up-sampled argmax runs in chunks.

Before: 2,000 points on a 300×200 image built a (2000, 4, 60000) intermediate (480 M values, 4.6 GB
peak); 100,000 points tried to allocate 108 GB. The largest tensor any operation creates is recorded
by a dispatch mode, so the bound is checked exactly, not timed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import geocorr
import geocorr.matching as matching
from geocorr.backbones import tiny_config
from geocorr.grid import TokenGrid
from geocorr.matching import argmax_match, upsampled_argmax, upsampled_cosine_similarity


class LargestTensor(TorchDispatchMode):
    """Records the number of elements of the largest tensor any operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        sizes = [t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self.largest = max([self.largest, *sizes])
        return out


def _grid(image_hw: tuple[int, int], tokens: int = 5, patch: int = 14) -> TokenGrid:
    side = tokens * patch
    return TokenGrid(image_hw=image_hw, content_hw=(side, side), input_hw=(side, side), patch=patch)


@pytest.mark.parametrize("chunk", [1, 500, 4096, None])
@pytest.mark.parametrize("image_hw", [(23, 31), (40, 60), (3, 2)])
def test_chunked_argmax_equals_the_full_map_argmax(chunk, image_hw):
    g = torch.Generator().manual_seed(0)
    feats, query = torch.randn(16, 5, 5, generator=g), torch.randn(37 if chunk != 1 else 3, 16, generator=g)
    grid = _grid(image_hw)
    points, scores = upsampled_argmax(query, feats, grid, chunk_elements=chunk)
    expected_points, expected_scores = argmax_match(upsampled_cosine_similarity(query, feats, grid)[None])
    assert torch.equal(points, expected_points[0])
    torch.testing.assert_close(scores, expected_scores[0], rtol=0, atol=1e-6)  # matmul blocking: ~1 ulp


def test_chunked_argmax_breaks_ties_as_one_argmax():
    feats = torch.ones(4, 5, 5)  # every pixel has the same feature: ties up to rounding everywhere
    query = torch.ones(3, 4)
    points, _ = upsampled_argmax(query, feats, _grid((6, 9)), chunk_elements=8)
    expected, _ = argmax_match(upsampled_cosine_similarity(query, feats, _grid((6, 9)))[None])
    assert torch.equal(points, expected[0])


def test_no_points():
    points, scores = upsampled_argmax(torch.zeros(0, 4), torch.rand(4, 5, 5), _grid((6, 9)))
    assert points.shape == (0, 2) and scores.shape == (0,)


def test_memory_is_bounded_for_2000_points_on_a_300x200_image():
    n, (h, w), chunk = 2000, (200, 300), 1 << 18
    g = torch.Generator().manual_seed(0)
    feats, query = torch.randn(8, 5, 5, generator=g), torch.randn(n, 8, generator=g)
    with LargestTensor() as chunked:
        upsampled_argmax(query, feats, _grid((h, w)), chunk_elements=chunk)
    assert chunked.largest <= chunk  # never 4·N·H·W = 480 M values
    with LargestTensor() as full:  # the old way, on 40 points only (4·40·60000 = 9.6 M values)
        upsampled_cosine_similarity(query[:40], feats, _grid((h, w)))
    assert full.largest >= 4 * 40 * h * w


def test_memory_is_bounded_for_a_large_image():
    """A 3000×2000 image: the per-pixel interpolation terms are chunked too (6 M pixels; the old tables
    alone held 4·6 M values)."""
    g = torch.Generator().manual_seed(0)
    feats, query = torch.randn(8, 5, 5, generator=g), torch.randn(3, 8, generator=g)
    grid = _grid((2000, 3000))
    with LargestTensor() as chunked:
        points, scores = upsampled_argmax(query, feats, grid, chunk_elements=1 << 16)
    assert chunked.largest <= 1 << 16
    expected_points, expected_scores = argmax_match(upsampled_cosine_similarity(query, feats, grid)[None])
    assert torch.equal(points, expected_points[0])
    torch.testing.assert_close(scores, expected_scores[0], rtol=0, atol=1e-6)


def test_match_features_memory_is_bounded_and_results_unchanged(monkeypatch):
    """DenseMatcher.match with 2,000 points on a 300×200 image: the chunk bound holds through the
    whole call, and the matches equal those of the full similarity map."""
    model = geocorr.load("dinov2", backbone=tiny_config(), image_size=56)
    rng = np.random.default_rng(0)
    img0, img1 = (rng.integers(0, 256, (200, 300, 3), dtype=np.uint8) for _ in range(2))
    points = np.stack([rng.uniform(0, 299, 2000), rng.uniform(0, 199, 2000)], 1)
    feats = model.features([img0, img1])
    monkeypatch.setattr(matching, "CHUNK_ELEMENTS", 1 << 18)
    with LargestTensor() as mode:
        matches = model.match_features(feats[0], feats[1], points)
    assert mode.largest <= 1 << 18
    # the same matches as from the full (N, H, W) map (checked on 300 of the points)
    from geocorr.matching import sample_features

    cells = feats.grids[0].image_to_grid(torch.as_tensor(points, dtype=torch.float32))
    q = torch.nn.functional.normalize(sample_features(feats.dense[:1], cells[None])[0], dim=-1)
    for k in range(0, 300, 100):
        best, score = argmax_match(upsampled_cosine_similarity(q[k : k + 100], feats.dense[1], feats.grids[1])[None])
        assert torch.equal(matches.points[k : k + 100], best[0])
        torch.testing.assert_close(matches.scores[k : k + 100], score[0], rtol=0, atol=1e-6)


def test_100000_points_match():
    """100,000 points (the old code tried to allocate 108 GB on a 300×200 image): here on a 30×20 image."""
    model = geocorr.load("dinov2", backbone=tiny_config(), image_size=56)
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    points = np.stack([rng.uniform(0, 29, 100_000), rng.uniform(0, 19, 100_000)], 1)
    with LargestTensor() as mode:
        matches = model.match(img, img, points)
    assert matches.points.shape == (100_000, 2)
    assert mode.largest <= max(matching.CHUNK_ELEMENTS, 100_000 * 32)  # the (N, C) queries at most
