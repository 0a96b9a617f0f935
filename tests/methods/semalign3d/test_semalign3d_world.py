"""The synthetic 3D world proves each stage: focal lengths, sparse cloud, alignment, traversal."""
import pytest
import torch
import torch.nn.functional as F

from geocorr.matching import argmax_match
from geocorr.methods.semalign3d.alignment import AlignConfig, Alignment, align_many, prepare_target
from geocorr.methods.semalign3d.correspondence import AlignedImage, transfer
from geocorr.methods.semalign3d.dense import apply_barycentric
from geocorr.methods.semalign3d.focal import FocalConfig, estimate_focals
from geocorr.methods.semalign3d.geometry import (
    backproject,
    edge_pair_table,
    normalised_to_pixels,
    pixels_to_normalised,
    project,
    similarity_residual,
    similarity_transform,
)
from geocorr.methods.semalign3d.sparse import SparseConfig, build_sparse_cloud

from .conftest import random_views
from .world import LEFT_RIGHT, SyntheticWorld

THRESHOLD = 0.1 * 48  # PCK@0.1 of the 48 px images


def _keypoint_inputs(views):
    points = torch.stack([pixels_to_normalised(v.keypoints.double(), (48, 48)) for v in views])
    depth = torch.stack([v.world[:, 2].double() * (1 + i) for i, v in enumerate(views)])  # any per-image scale
    return points, depth, torch.stack([v.visible for v in views])


def test_renderer_sees_left_and_right_swapped_from_behind(world):
    points, scale = world.instance(torch.Generator().manual_seed(0))
    front, behind = world.render(points, scale, 0, 20, 1.0), world.render(points, scale, 180, 20, 1.0)
    assert front.keypoints[2, 0] > front.keypoints[3, 0]  # left wing tip on the image's right
    assert behind.keypoints[2, 0] < behind.keypoints[3, 0]
    assert torch.allclose(front.depth[front.mask].min(), front.world[front.visible, 2].min(), rtol=0.05)
    # the features cannot tell the twins apart
    canon = world.template
    mirrored = canon * torch.tensor([1.0, -1.0, 1.0], dtype=canon.dtype)
    assert torch.allclose(world.feature_field(canon), world.feature_field(mirrored)[list(LEFT_RIGHT)])


def test_focal_estimation_recovers_focal_ratios_of_a_rigid_class():
    world = SyntheticWorld(seed=0, stretch=0.0, jitter=0.0)
    views = random_views(world, 10, torch.Generator().manual_seed(3))
    points, depth, visible = _keypoint_inputs(views)
    focal = estimate_focals(points, depth, visible, edge_pair_table(8), FocalConfig(steps=300))
    true = torch.tensor([v.focal for v in views], dtype=torch.float64)
    ratio = focal / true
    assert (ratio / ratio.mean() - 1).abs().max() < 0.02
    assert (ratio - 1).abs().max() < 0.05


def test_focal_estimation_with_shape_variation(train_views):
    points, depth, visible = _keypoint_inputs(train_views)
    focal = estimate_focals(points, depth, visible, edge_pair_table(8), FocalConfig(steps=200))
    ratio = focal / torch.tensor([v.focal for v in train_views], dtype=torch.float64)
    assert (ratio / ratio.mean() - 1).abs().max() < 0.15


def test_sparse_cloud_matches_the_skeleton_up_to_similarity(world, train_views):
    points, depth, visible = _keypoint_inputs(train_views)
    focal = torch.tensor([v.focal for v in train_views], dtype=torch.float64)
    cloud, _ = build_sparse_cloud(backproject(points, depth, focal), visible, SparseConfig(steps=300, lr=1e-2),
                                  torch.Generator().manual_seed(0))
    assert cloud.mean(0).abs().max() < 1e-6
    assert similarity_residual(cloud, world.template) < 0.1
    # the handedness is right: the mirror image fits worse
    assert similarity_residual(cloud * torch.tensor([-1.0, 1, 1], dtype=cloud.dtype), world.template) > 0.2


def test_representation_sparse_cloud_and_semantics(world, representation):
    assert similarity_residual(representation.sparse.double(), world.template) < 0.1
    assert representation.dense.shape[0] > 100
    # every dense point is a barycentric combination of the keypoints
    weights = representation.dense_weights
    assert torch.allclose(weights.sum(1), torch.ones(len(weights)), atol=1e-5)
    # dense points carry the known features of where they sit on the canonical object
    scale, rot, shift = similarity_transform(representation.sparse.double(), world.template)
    where = scale * representation.dense.double() @ rot.T + shift
    truth = F.normalize(world.feature_field(where).float(), dim=1)
    agree = (representation.dense_features * truth).sum(1)
    shuffled = (representation.dense_features[torch.randperm(len(agree))] * truth).sum(1)
    assert agree.mean() > 0.95 and shuffled.mean() < 0.7


# Single alignments can end in a wrong local optimum. benchmarks/semalign3d_align.py measures the
# success rate at these settings (the published 16 random starts, 200 steps) over random views of
# 10 classes (built with --flip and a larger dense cloud than here): 195 of 200 views (97.5 %,
# Wilson 95 % interval 94.3-98.9 %); this sample: 8 of 8. This test aligns a fixed random sample
# of views (seeded, not chosen) and asserts a pass rate those figures support with margin: at
# least 6 of 8 views with PCK@0.1 >= 0.8 (at a true rate of 94.3 %, the interval's lower end, 8
# views fall below 6 with probability 0.8 %; at 97.5 %, 0.1 %).
PASS_RATE = (6, 8)
FAST_ALIGN = AlignConfig(steps=200, lr=0.025, pixels=128, background_pixels=128)


@pytest.fixture(scope="module")
def random_alignments(world, representation):
    gen = torch.Generator().manual_seed(11)
    views = random_views(world, PASS_RATE[1], gen)
    alignments = []
    for view in views:  # one image per optimisation: on one CPU thread batching only adds allocation costs
        target = prepare_target(representation, view.features, view.grid, view.mask, view.depth, FAST_ALIGN, gen)
        alignments += align_many(representation, [target], FAST_ALIGN, gen)
    return views, alignments


def test_alignment_of_random_views_succeeds_at_the_stated_rate(random_alignments):
    views, alignments = random_alignments
    good = 0
    for view, a in zip(views, alignments, strict=True):
        proj = normalised_to_pixels(project(a.sparse[None], torch.tensor([a.focal]))[0], (48, 48))
        err = (proj - view.keypoints).norm(dim=1)[view.visible]
        good += int((err < THRESHOLD).float().mean() >= 0.8)
    assert good >= PASS_RATE[0], f"{good} of {len(views)} views aligned"


def oracle(representation, view) -> AlignedImage:
    """The true alignment of a rendered view: its keypoints in camera coordinates and its focal length."""
    sparse = view.world.float()
    dense = apply_barycentric(representation.dense_index, representation.dense_weights, sparse)
    alignment = Alignment(sparse=sparse, dense=dense, focal=view.focal, loss=0.0, zorder=0.0,
                          candidates=torch.zeros(1))
    return AlignedImage(view.features, view.grid, alignment)


def test_reverse_traversal_finds_twins_seen_from_behind(world, representation):
    """Given alignments (here the true ones), the traversal tells twins apart where features cannot."""
    gen = torch.Generator().manual_seed(7)
    views = []
    for azimuth in (60, 240):
        points, scale = world.instance(gen)
        views.append(world.render(points, scale, azimuth, 35, 1.0))
    view0, view1 = views
    both = view0.visible & view1.visible
    twins = torch.tensor([LEFT_RIGHT[i] != i for i in range(8)]) & both
    assert twins.sum() >= 2  # the pair shows left/right keypoints in both images
    query = view0.keypoints[both]
    points, scores, _, sim = transfer(representation, oracle(representation, view0), oracle(representation, view1),
                                      query, sigma=0.025)
    err = (points - view1.keypoints[both]).norm(dim=1)
    assert (err < THRESHOLD).all(), err
    assert sim.shape == (int(both.sum()), 48, 48) and (scores > 0).all()
    # features alone swap the twins: their argmax lands on the other side
    feats0 = F.normalize(view0.features[:, query[:, 1].round().long(), query[:, 0].round().long()].T, dim=1)
    best, _ = argmax_match(torch.einsum("nc,chw->nhw", feats0, F.normalize(view1.features, dim=0))[None])
    twin_err = (best[0] - view1.keypoints[both]).norm(dim=1)[twins[both]]
    assert (twin_err > THRESHOLD).any()
