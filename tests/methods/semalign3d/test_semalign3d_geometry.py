"""Pure geometry, priors and cloud helpers of SemAlign3D on tiny known answers."""
import math

import pytest
import torch

from geocorr.methods.semalign3d.alignment import (
    faces_camera,
    random_rotations,
    scheduled,
    semantic_likelihood,
    zorder_disagreement,
)
from geocorr.methods.semalign3d.dense import apply_barycentric, barycentric
from geocorr.methods.semalign3d.depth import disparity_to_depth
from geocorr.methods.semalign3d.focal import estimate_focals
from geocorr.methods.semalign3d.geometry import (
    backproject,
    edge_pair_table,
    geometric_features,
    normalised_to_pixels,
    pixels_to_normalised,
    project,
    similarity_residual,
    similarity_transform,
    tetrahedron_features,
    tetrahedron_table,
)
from geocorr.methods.semalign3d.priors import ShapePrior, beta_log_prob, fit_beta
from geocorr.methods.semalign3d.representation import mirrored_clouds
from geocorr.methods.semalign3d.sparse import build_sparse_cloud, noisy_clouds


def test_pixels_and_normalised_coordinates():
    # 40 x 20 image: centre (19.5, 9.5), one unit = the full longer side, 40 px (authors' units)
    pts = torch.tensor([[19.5, 9.5], [0.0, 0.0], [39.5, 9.5]])
    norm = pixels_to_normalised(pts, (20, 40))
    assert torch.allclose(norm, torch.tensor([[0.0, 0.0], [-0.4875, -0.2375], [0.5, 0.0]]))
    assert torch.allclose(normalised_to_pixels(norm, (20, 40)), pts)


def test_backproject_and_project_are_inverse():
    pts = torch.tensor([[[0.5, 0.0], [-0.2, 0.4]]])
    world = backproject(pts, torch.tensor([[2.0, 4.0]]), torch.tensor([1.0]))
    assert torch.allclose(world[0, 0], torch.tensor([1.0, 0.0, 2.0]))
    assert torch.allclose(project(world, torch.tensor([1.0])), pts)
    with pytest.raises(ValueError, match="focal: expected shape"):
        project(world, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="points: expected a tensor of shape"):
        project(torch.zeros(1, 2, 2), torch.tensor([1.0]))


def test_edge_pair_and_tetrahedron_tables_hold_all_combinations():
    assert edge_pair_table(4).shape == (15, 4)  # 6 edges -> 15 pairs
    with_two = edge_pair_table(4, must_include=2)
    assert (with_two == 2).any(1).all() and len(with_two) == 12  # pairs avoiding 2 use only edges 01, 03, 13
    assert edge_pair_table(5, among=[0, 3, 4]).unique().tolist() == [0, 3, 4]
    assert len(edge_pair_table(30)) == 435 * 434 // 2  # all of them, no random subset
    with pytest.raises(ValueError, match="among"):
        edge_pair_table(3, among=[0, 5])
    assert tetrahedron_table(4).tolist() == [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]]
    assert len(tetrahedron_table(6)) == 15 * 4 and len(tetrahedron_table(3)) == 0
    assert (tetrahedron_table(6, must_include=5) == 5).any(1).all() and len(tetrahedron_table(6, must_include=5)) == 40


def test_tetrahedron_features_known_values_and_chirality():
    # triangle a=(0,0,0), b=(2,0,0), c=(0,1,0): x = (1,0,0), z = (0,0,1), y = (0,1,0)
    pts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [1, 1, math.sqrt(2)]], dtype=torch.float64)
    feats = tetrahedron_features(pts, torch.tensor([[0, 1, 2, 3]]))
    assert torch.allclose(feats, torch.tensor([[0.5, 0.5, math.sqrt(2) / 2]], dtype=torch.float64))
    mirrored = pts * torch.tensor([-1.0, 1, 1], dtype=torch.float64)
    flipped = tetrahedron_features(mirrored, torch.tensor([[0, 1, 2, 3]]))
    assert torch.allclose(flipped, feats * torch.tensor([1.0, 1, -1], dtype=torch.float64))  # z cosine flips
    rot = random_rotations(1, torch.Generator().manual_seed(0))[0].double()
    assert torch.allclose(tetrahedron_features(3.0 * pts @ rot.T + 1.0, torch.tensor([[0, 1, 2, 3]])), feats)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: tetrahedron_features(p, tetrahedron_table(5)), (x,))


def test_geometric_features_known_values_and_invariance():
    pts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 2, 0]], dtype=torch.float64)
    table = torch.tensor([[0, 1, 0, 2], [0, 1, 1, 2]])
    angles, ratios = geometric_features(pts, table)  # cosines: e01·e02 = 0, e01·e12 = (1,0,0)·(-1,2,0)/√5
    assert torch.allclose(angles, torch.tensor([0.0, -1 / math.sqrt(5)], dtype=torch.float64))
    assert torch.allclose(ratios, torch.tensor([1 / 3, 1 / (1 + math.sqrt(5))], dtype=torch.float64))
    rot = random_rotations(1, torch.Generator().manual_seed(0))[0].double()
    moved = 3.0 * pts @ rot.T + 5.0
    mirrored = pts * torch.tensor([-1.0, 1, 1], dtype=torch.float64)
    for other in (moved, mirrored):
        a2, r2 = geometric_features(other, table)
        assert torch.allclose(a2, angles, atol=1e-7) and torch.allclose(r2, ratios)


def test_geometric_features_gradcheck():
    pts = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    table = edge_pair_table(4)
    assert torch.autograd.gradcheck(lambda p: geometric_features(p, table), (pts,))


def test_similarity_transform_recovers_a_known_similarity():
    src = torch.randn(6, 3, dtype=torch.float64)
    rot = random_rotations(1, torch.Generator().manual_seed(1))[0].double()
    dst = 2.5 * src @ rot.T + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    scale, r, shift = similarity_transform(src, dst)
    assert torch.allclose(scale, torch.tensor(2.5, dtype=torch.float64)) and torch.allclose(r, rot)
    assert torch.allclose(shift, torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    assert similarity_residual(src, dst) < 1e-6  # the rotation was drawn in float32
    mirrored = src * torch.tensor([-1.0, 1, 1], dtype=torch.float64)
    assert similarity_residual(mirrored, dst) > 0.1  # a rotation cannot undo a mirror ...
    assert similarity_residual(mirrored, dst, allow_reflection=True) < 1e-6  # ... a reflection can
    with pytest.raises(ValueError, match="N >= 3"):
        similarity_transform(src[:2], dst[:2])


def test_fit_beta_recovers_parameters():
    samples = torch.distributions.Beta(2.0, 5.0).sample((20000, 1)).double()
    params = fit_beta(samples, torch.ones_like(samples, dtype=torch.bool))
    assert torch.allclose(params[0], torch.tensor([2.0, 5.0], dtype=torch.float64), rtol=0.05)
    known = torch.tensor([[2.0, 5.0]], dtype=torch.float64)
    x = torch.tensor([[0.1], [0.3]], dtype=torch.float64)
    expected = torch.distributions.Beta(2.0, 5.0).log_prob(x.float()).double()
    assert torch.allclose(beta_log_prob(x, known), expected, atol=1e-5)
    # too few valid samples: uniform
    one = fit_beta(samples[:3], torch.tensor([[True], [False], [False]]))
    assert torch.equal(one, torch.ones(1, 2, dtype=torch.float64))


def test_shape_prior_prefers_the_training_shape_tells_its_mirror_and_has_gradients():
    base = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.7, 0.2]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    clouds = base + 0.02 * torch.randn(30, 5, 3, dtype=torch.float64, generator=gen)
    visible = torch.ones(30, 5, dtype=torch.bool)
    prior = ShapePrior.fit(clouds, visible, edge_pair_table(5), tetrahedron_table(5))
    squashed = base * torch.tensor([1.0, 1.0, 0.3], dtype=torch.float64)
    mirrored = base * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert prior.log_likelihood(base) > prior.log_likelihood(squashed)
    assert prior.log_likelihood(base) > prior.log_likelihood(mirrored) + 1.0  # chirality-aware
    # fitted in batches (memory) = fitted at once
    batched = ShapePrior.fit(clouds, visible, edge_pair_table(5), tetrahedron_table(5), batch=7)
    assert torch.allclose(batched.cos_angle, prior.cos_angle) and torch.allclose(batched.tet, prior.tet)
    # the cosines are fitted on (cos + 1) / 2: the Beta mean is the mean of (cos + 1) / 2
    cos = geometric_features(clouds, edge_pair_table(5)[:1])[0][:, 0]
    a, b = prior.cos_angle[0]
    assert torch.isclose(a / (a + b), ((cos + 1) / 2).mean(), atol=1e-4)
    pts = squashed.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(prior.log_likelihood, (pts,))


def test_depth_anything_disparity_to_depth_follows_the_authors():
    disparity = torch.tensor([[0.0, 2.0], [4.0, -1.0]])
    assert torch.allclose(disparity_to_depth(disparity), torch.tensor([[1.0, 0.85], [0.7, 1.0]]))  # 1 - 0.3 d/max d


def test_noisy_clouds_scale_with_the_shortest_edge():
    cloud = torch.tensor([[[0.0, 0, 0], [0.5, 0, 0], [0, 3, 0]]], dtype=torch.float64)  # shortest edge 0.5
    noisy, vis = noisy_clouds(cloud, torch.ones(1, 3, dtype=torch.bool), 4000, 0.2, torch.Generator().manual_seed(0))
    assert noisy.shape == (4000, 3, 3) and vis.shape == (4000, 3)
    assert (noisy - cloud).std().item() == pytest.approx(0.1, rel=0.03)  # 0.2 x 0.5


def test_mirrored_clouds_flip_x_and_permute_keypoints():
    clouds = torch.tensor([[[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]])
    visible = torch.tensor([[True, False, True]])
    flipped, vis = mirrored_clouds(clouds, visible, [1, 0, 2])
    assert flipped.tolist() == [[[-4.0, 5, 6], [-1, 2, 3], [-7, 8, 9]]] and vis.tolist() == [[False, True, True]]
    with pytest.raises(ValueError, match="permutation"):
        mirrored_clouds(clouds, visible, [0, 0, 2])


def test_focal_estimation_input_checks():
    table = edge_pair_table(4)
    with pytest.raises(ValueError, match="at least 2 images"):
        estimate_focals(torch.zeros(1, 4, 2), torch.ones(1, 4), torch.ones(1, 4, dtype=torch.bool), table)
    with pytest.raises(ValueError, match="positive depth"):
        estimate_focals(torch.zeros(2, 4, 2), -torch.ones(2, 4), torch.ones(2, 4, dtype=torch.bool), table)
    with pytest.raises(ValueError, match="depth"):
        estimate_focals(torch.zeros(2, 4, 2), torch.ones(2, 3), torch.ones(2, 4, dtype=torch.bool), table)


def test_sparse_cloud_needs_each_keypoint_twice():
    visible = torch.ones(3, 4, dtype=torch.bool)
    visible[1:, 3] = False
    with pytest.raises(ValueError, match=r"keypoints \[3\]"):
        build_sparse_cloud(torch.rand(3, 4, 3), visible)


def test_barycentric_coordinates_reproduce_points_and_follow_affine_maps():
    kps = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 2, 2]], dtype=torch.float64)
    pts = torch.tensor([[0.2, 0.2, 0.2], [0.1, 0.5, 0.3]], dtype=torch.float64)
    index, weights = barycentric(pts, kps, torch.tensor([True, True, True, True, False]))
    assert (index < 4).all() and torch.allclose(weights.sum(1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(apply_barycentric(index, weights, kps), pts)
    affine = torch.tensor([[2.0, 0.3, 0], [0, 1, 0.5], [0.1, 0, 3]], dtype=torch.float64)
    moved = kps @ affine.T + 1.0
    assert torch.allclose(apply_barycentric(index, weights, moved), pts @ affine.T + 1.0)
    with pytest.raises(ValueError, match=">= 2 valid keypoints"):
        barycentric(pts, kps, torch.tensor([True, False, False, False, False]))


def test_schedule_and_two_sided_semantic_likelihood():
    sched = ((0.0, 0.5, 1.0), (1.0, 0.1, 0.0))
    assert scheduled(sched, 0.25) == pytest.approx(0.55) and scheduled(2.0, 0.7) == 2.0
    like = semantic_likelihood(torch.tensor([0.9, 0.7, 0.5]), torch.tensor(0.7), torch.tensor(0.1))
    assert torch.allclose(like, torch.tensor([math.exp(-2.0), 1.0, math.exp(-2.0)]))  # Eq. 4: both sides


def test_normal_check_of_flat_classes():
    tri = torch.tensor([[0.0, 0, 5], [1, 0, 5], [0, 1, 5]])  # normal (0, 0, 1): away from the camera
    assert not faces_camera(tri, torch.tensor([0, 1, 2, 1]))
    assert faces_camera(tri, torch.tensor([0, 1, 2, -1]))
    assert faces_camera(tri[[0, 2, 1]], torch.tensor([0, 1, 2, 1]))  # seen from the other side


def test_zorder_disagreement_sees_a_depth_flip():
    ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    depth = 5.0 + xs / 24  # the right side is farther
    mask = torch.ones(24, 24, dtype=torch.bool)
    pix = torch.stack([xs.flatten(), ys.flatten()], 1)
    norm = pixels_to_normalised(pix, (24, 24))
    z = depth.flatten()
    points = torch.cat([norm * z[:, None] / 2.0, z[:, None]], 1)  # focal 2
    flipped = torch.cat([norm * (10.5 - z)[:, None] / 2.0, (10.5 - z)[:, None]], 1)
    assert zorder_disagreement(points, 2.0, depth, mask, cells=6) < 0.05
    assert zorder_disagreement(flipped, 2.0, depth, mask, cells=6) > 0.95


def test_mirror_hypothesis_swaps_the_twins_in_the_image_and_keeps_the_handedness():
    from geocorr.methods.semalign3d.alignment import mirror_hypothesis

    # a chiral cloud in front of the camera; keypoints 1 and 2 are twins
    cloud = torch.tensor([[0.0, 0.0, 10.0], [1.0, 0.2, 10.5], [-1.0, 0.3, 9.4], [0.1, 1.0, 10.2]], dtype=torch.float64)
    flip = [0, 2, 1, 3]
    mirrored = mirror_hypothesis(cloud, flip)
    focal = torch.tensor([2.0], dtype=torch.float64)
    assert torch.allclose(project(mirrored[None], focal), project(cloud[flip][None], focal))  # twins swapped
    assert torch.allclose(mirrored[:, 2].mean(), cloud[:, 2].mean())  # z' = 2 z̄ − z keeps the mean depth
    assert torch.allclose(mirrored[:, 2], 2 * cloud[:, 2].mean() - cloud[flip, 2])
    tet = torch.tensor([[0, 1, 2, 3]])
    # the handedness (sign of the tetrahedron's z cosine) of the twin-swapped pose is restored
    swapped = tetrahedron_features(cloud[flip], tet)[0, 2]
    assert torch.sign(tetrahedron_features(mirrored, tet)[0, 2]) == -torch.sign(swapped)
