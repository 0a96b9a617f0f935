import math

import numpy as np
import pytest
import torch

from geocorr.methods.cyclecorr import Camera, Mesh, Viewpoint, box, ground_truth_flow, load_mesh, render, toy_car
from geocorr.methods.cyclecorr.flow import pixel_grid, sample_at
from geocorr.methods.cyclecorr.render import rasterize


def quad(z: float, half: float, label: int = 0) -> Mesh:
    """A square facing a camera on the +z axis, at height z (world)."""
    vertices = torch.tensor([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return Mesh(vertices, faces, torch.full((4, 3), 0.5), torch.full((2,), label))


def front_camera(size=(32, 32), focal=40.0) -> Camera:
    return Camera.from_viewpoint(Viewpoint(0.0, 0.0, distance=2.0, focal=focal * 128 / size[1]), size)


def test_camera_looks_at_origin():
    camera = Camera.from_viewpoint(Viewpoint(70.0, 25.0, distance=3.0), (48, 64))
    uv, depth = camera.project(torch.zeros(1, 3))
    assert uv[0].tolist() == pytest.approx([31.5, 23.5], abs=1e-5)
    assert depth.item() == pytest.approx(3.0, abs=1e-6)
    up_point, _ = camera.project(torch.tensor([[0.0, 0.5, 0.0]]))
    assert up_point[0, 1] < 23.5  # world up is image up
    assert torch.allclose(camera.rotation @ camera.rotation.T, torch.eye(3), atol=1e-6)
    assert torch.linalg.det(camera.rotation).item() == pytest.approx(1.0, abs=1e-6)


def test_square_covers_the_expected_pixels():
    # half-width 0.5 at depth 2 with focal 40 -> x in 15.5 ± 10 pixels: columns 6..25
    square = quad(0.0, 0.5)
    frags = rasterize(square.vertices, square.faces, front_camera())
    mask = frags.face_index >= 0
    assert mask.sum().item() == 20 * 20
    assert mask[6:26, 6:26].all()
    assert torch.allclose(frags.depth[mask], torch.full((400,), 2.0))


def test_nearer_surface_wins_the_z_buffer():
    far, near = quad(0.0, 0.5, label=1), quad(0.5, 0.2, label=2)
    both = Mesh(
        torch.cat([far.vertices, near.vertices]),
        torch.cat([far.faces, near.faces + 4]),
        torch.cat([far.vertex_colors, near.vertex_colors]),
        torch.cat([far.face_labels, near.face_labels]),
    )
    out = render(both, front_camera())
    assert out.labels[15, 15].item() == 2
    assert out.labels[7, 7].item() == 1
    assert out.labels[0, 0].item() == -1
    assert out.depth[15, 15].item() == pytest.approx(1.5)


def test_rendered_points_reproject_to_their_pixel_centres():
    mesh = toy_car()
    camera = Camera.from_viewpoint(Viewpoint(35.0, 20.0, distance=1.5), (64, 64))
    out = render(mesh, camera)
    uv, depth = camera.project(out.points[out.mask])
    grid = pixel_grid(64, 64).permute(1, 2, 0)[out.mask]
    assert out.mask.sum() > 500
    assert (uv - grid).abs().max().item() < 1e-3
    assert torch.allclose(depth, out.depth[out.mask], rtol=1e-5)
    assert out.rgb.shape == (3, 64, 64) and out.rgb.min() >= 0 and out.rgb.max() <= 1
    assert set(out.labels.unique().tolist()) == {-1, 1, 2, 3}


@pytest.mark.parametrize("mesh", [box((0.8, 0.5, 0.6), subdivisions=3), toy_car()], ids=["box", "car"])
def test_ground_truth_flow_maps_vertices_to_their_projection(mesh):
    size = (96, 96)
    cam1 = Camera.from_viewpoint(Viewpoint(30.0, 20.0, distance=1.6), size)
    cam2 = Camera.from_viewpoint(Viewpoint(75.0, 10.0, distance=1.8), size)
    r1, r2 = render(mesh, cam1), render(mesh, cam2)
    flow, matchable = ground_truth_flow(r1, r2)
    uv1, depth1 = cam1.project(mesh.vertices)
    uv2, _ = cam2.project(mesh.vertices)
    # vertices whose four neighbouring pixels are all matchable: the flow is smooth around them
    corners = torch.stack([uv1.floor(), uv1.floor() + torch.tensor([1.0, 0]), uv1.floor() + torch.tensor([0, 1.0]),
                           uv1.floor() + 1]).long()
    inside = ((corners >= 0) & (corners < 96)).all(-1).all(0)
    corners = corners.clamp(0, 95)
    usable = inside & matchable[corners[..., 1], corners[..., 0]].all(0)
    # the vertex is visible in view 1 and its four pixels see one flat region (no crease or edge)
    seen_depth = r1.depth[corners[..., 1], corners[..., 0]]
    usable &= ((seen_depth - depth1).abs() < 0.02 * depth1).all(0)
    tri = mesh.vertices[mesh.faces]
    normals = torch.nn.functional.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=-1)
    seen_normals = normals[r1.face_index[corners[..., 1], corners[..., 0]]]
    usable &= ((seen_normals - seen_normals[0]).norm(dim=-1) < 1e-4).all(0)
    assert usable.sum() >= 8
    moved = uv1 + sample_at(flow[None], uv1.T.reshape(1, 2, -1, 1))[0, :, :, 0].T
    assert (moved[usable] - uv2[usable]).norm(dim=1).max().item() < 0.5


def test_same_view_flow_is_zero_and_everything_matchable():
    mesh = toy_car()
    camera = Camera.from_viewpoint(Viewpoint(120.0, 15.0, distance=1.5), (48, 48))
    out = render(mesh, camera)
    flow, matchable = ground_truth_flow(out, out)
    assert torch.equal(matchable, out.mask)
    assert flow.abs().max().item() < 1e-3


def test_opposite_views_of_a_box_share_no_visible_pixel():
    mesh = box((0.6, 0.6, 0.6))
    front = render(mesh, Camera.from_viewpoint(Viewpoint(0.0, 0.0, 2.0), (32, 32)))
    back = render(mesh, Camera.from_viewpoint(Viewpoint(180.0, 0.0, 2.0), (32, 32)))
    _, matchable = ground_truth_flow(front, back)
    assert front.mask.sum() > 100 and matchable.sum().item() == 0


@pytest.mark.parametrize("suffix", [".obj", ".off", ".glb"])
def test_load_mesh_round_trip(tmp_path, suffix):
    import trimesh

    path = tmp_path / f"box{suffix}"
    trimesh.creation.box(extents=(2.0, 1.0, 1.0)).export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 12
    diagonal = (mesh.vertices.max(0).values - mesh.vertices.min(0).values).norm().item()
    assert diagonal == pytest.approx(1.0, abs=1e-6)
    assert mesh.vertices.mean(0).abs().max().item() < 1e-6
    assert math.isclose(load_mesh(path, normalize=False).vertices[:, 0].max().item(), 1.0, abs_tol=1e-6)


def test_load_mesh_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.obj"):
        load_mesh(tmp_path / "missing.obj")
    bad = tmp_path / "bad.off"
    bad.write_text("this is not a mesh")
    with pytest.raises(ValueError, match=r"bad\.off"):
        load_mesh(bad)


def test_mesh_folder_skips_degenerate_meshes_with_a_count_and_names_an_unusable_folder(tmp_path):
    import trimesh

    from geocorr.methods.cyclecorr.mesh import load_meshes

    good = trimesh.creation.box(extents=(2.0, 1.0, 1.0))
    good.export(tmp_path / "good.obj")
    (tmp_path / "nan.off").write_text("OFF\n3 1 0\nnan 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    (tmp_path / "flat.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")  # zero area
    (tmp_path / "broken.off").write_text("not a mesh")
    # a zero-area face inside a good mesh is dropped, the mesh kept
    extra = trimesh.Trimesh(np.vstack([good.vertices, [[0, 0, 0], [1, 1, 1], [2, 2, 2]]]),
                            np.vstack([good.faces, [[8, 9, 10]]]), process=False)
    extra.export(tmp_path / "extra.off")
    with pytest.warns(UserWarning, match=r"skipped 3 of 5 mesh files"):
        meshes, paths = load_meshes(tmp_path)
    assert [p.name for p in paths] == ["extra.off", "good.obj"] and len(meshes[0].faces) == 12
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.obj").write_text("garbage")
    with pytest.raises(ValueError, match=r"empty: none of its 1 mesh files is usable"):
        load_meshes(empty)


def test_mesh_validation():
    with pytest.raises(ValueError, match="faces index"):
        Mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 3]]), torch.zeros(3, 3), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="distance"):
        Camera.from_viewpoint(Viewpoint(0.0, 0.0, distance=-1.0))
