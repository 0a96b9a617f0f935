import numpy as np
import pytest
import torch

from geocorr.methods.cyclecorr import Camera, Viewpoint, box, ground_truth_flow, render, toy_car
from geocorr.methods.cyclecorr.quartets import (
    Quartet,
    QuartetDataset,
    build_quartets,
    estimate_viewpoints,
    framed_camera,
    hog_descriptor,
    nearest_models,
    object_crop,
    viewpoint_grid,
)

SIZE = 48


@pytest.fixture(scope="module")
def cars():
    return [toy_car(1.0, 0.5, 0.12), toy_car(1.3, 0.3, 0.09), toy_car(0.8, 0.7, 0.16)]


def rendered(mesh, view):
    return render(mesh, Camera.from_viewpoint(view, (SIZE, SIZE))).rgb


def framed(mesh, view, size=SIZE):
    return render(mesh, framed_camera(mesh, view, size))


def photo_crop(mesh, view, size):
    """A "photo" box crop: rendered at 4× the resolution, cut to its object box, resized down (anti-aliased)."""
    return object_crop(render(mesh, Camera.from_viewpoint(view, (4 * size, 4 * size))), size)


def test_hog_descriptor_shape_and_error():
    feature = hog_descriptor(torch.rand(3, 32, 32))
    assert feature.shape == (4 * 3 * 3 * 2 * 2 * 9 // 4,)  # 3×3 blocks of 2×2 cells × 9 bins
    with pytest.raises(ValueError, match="3×H×W"):
        hog_descriptor(torch.rand(32, 32))


def test_viewpoint_grid():
    grid = viewpoint_grid(4, (0.0, 20.0))
    assert len(grid) == 8 and grid[1].azimuth == 90.0 and grid[5].elevation == 20.0


def test_framed_camera_puts_the_object_box_on_the_frame(cars):
    view = Viewpoint(30.0, 20.0, 1.5)
    shape = framed(cars[0], view)
    rows, cols = torch.nonzero(shape.mask, as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, SIZE - 1, 0, SIZE - 1)
    # the same picture as a whole render at 8× the resolution cut to its object box (up to a pixel's edge)
    crop_rgb, crop_labels = object_crop(render(cars[0], Camera.from_viewpoint(view, (8 * SIZE, 8 * SIZE))), SIZE)
    assert ((crop_labels >= 0) == shape.mask).float().mean() > 0.95
    assert (crop_rgb - shape.rgb).abs().mean() < 0.05
    # a box seen face-on is a rectangle: the framed render shows the box on every pixel
    assert framed(box((1.0, 0.5, 0.2)), Viewpoint(0.0, 0.0, 3.0, focal=400.0)).mask.all()
    with pytest.raises(ValueError, match="inside the mesh"):
        framed_camera(cars[0], Viewpoint(0.0, 0.0, 0.05), SIZE)


def test_ground_truth_flow_between_framed_renders_is_exact(cars):
    s1, s2 = framed(cars[1], Viewpoint(20.0, 10.0, 1.5)), framed(cars[1], Viewpoint(50.0, 25.0, 1.5))
    flow, matchable = ground_truth_flow(s1, s2)
    assert matchable.sum() > 0.3 * s1.mask.sum()
    rows, cols = torch.nonzero(matchable, as_tuple=True)
    target = (torch.stack([cols, rows]).float() + flow[:, rows, cols]).round().long()
    inside = (target >= 0).all(0) & (target < SIZE).all(0)
    seen = s2.points[target[1, inside], target[0, inside]]
    # the surface point a pixel sees is where the flow lands in s2, up to rounding to s2's pixel (~1/48 of the car)
    assert (seen - s1.points[rows[inside], cols[inside]]).norm(dim=1).median() < 0.01


def test_estimate_viewpoints_recover_the_rendering_views(cars):
    candidates = viewpoint_grid(6, (10.0,))
    images = torch.stack([framed(cars[0], candidates[2]).rgb, framed(cars[2], candidates[5]).rgb])
    assert estimate_viewpoints(images, cars, candidates) == [candidates[2], candidates[5]]
    whole = torch.stack([rendered(cars[0], candidates[2]), rendered(cars[2], candidates[5])])
    assert estimate_viewpoints(whole, cars, candidates, framed=False) == [candidates[2], candidates[5]]
    with pytest.raises(ValueError, match="candidate"):
        estimate_viewpoints(images, cars, [])


def test_viewpoints_of_box_crops_are_retrieved_well_above_chance():
    """Box crops of unseen toy cars at random views: the retrieved azimuth is within 15° of the truth far
    more often than chance (30/360 = 8 %). Whole renders (the car on ~21 % of the frame) gave 0-29 % on
    six such draws of 24 crops, framed renders 62-88 % (benchmarks/cyclecorr_retrieval.py)."""
    size, rng = 64, np.random.default_rng(0)
    meshes = [toy_car(1.0, 0.5, 0.12), toy_car(0.9, 0.4, 0.1), toy_car(1.2, 0.55, 0.14)]
    crops, truth = [], []
    for _ in range(24):
        car = toy_car(*rng.uniform([0.8, 0.35, 0.09], [1.3, 0.6, 0.16]))
        view = Viewpoint(float(rng.uniform(0, 360)), float(rng.uniform(0, 30)), 1.5)
        crops.append(photo_crop(car, view, size)[0])
        truth.append(view.azimuth)
    found = estimate_viewpoints(torch.stack(crops), meshes, viewpoint_grid())
    error = np.abs((np.array([view.azimuth for view in found]) - np.array(truth) + 180) % 360 - 180)
    assert np.mean(error <= 15) >= 0.5  # 6× chance


def test_nearest_models_rank_the_rendered_model_first(cars):
    views = [Viewpoint(40.0, 10.0, 1.5), Viewpoint(100.0, 20.0, 1.5)]
    images = torch.stack([framed(cars[2], views[0]).rgb, framed(cars[1], views[1]).rgb])
    neighbours = nearest_models(images, views, cars, k=2)
    assert neighbours.shape == (2, 2)
    assert neighbours[:, 0].tolist() == [2, 1]
    whole = torch.stack([rendered(cars[2], views[0]), rendered(cars[1], views[1])])
    assert nearest_models(whole, views, cars, k=2, framed=False)[:, 0].tolist() == [2, 1]
    with pytest.raises(ValueError, match="k must be"):
        nearest_models(images, views, cars, k=4)
    with pytest.raises(ValueError, match="one viewpoint per image"):
        nearest_models(images, views[:1], cars, k=1)


def test_build_quartets_takes_models_shared_by_both_images():
    neighbours = torch.tensor([[0, 1], [1, 2], [3, 4]])
    assert build_quartets(neighbours) == [Quartet(1, 0, 1), Quartet(1, 1, 0)]
    shared = torch.tensor([[0, 1], [1, 0], [0, 2]])
    assert build_quartets(shared, ["car", "bus", "car"]) == [Quartet(0, 0, 2), Quartet(0, 2, 0)]
    with pytest.raises(ValueError, match="one group per image"):
        build_quartets(shared, ["car"])


def test_quartet_items_hold_renders_of_one_model(cars):
    views = [Viewpoint(60.0, 10.0, 1.5), Viewpoint(80.0, 15.0, 1.5)]
    images = torch.rand(2, 3, SIZE, SIZE)
    dataset = QuartetDataset(images, views, cars, [Quartet(1, 0, 1)])
    item = dataset[0]
    assert torch.equal(item["r1"], images[0]) and torch.equal(item["r2"], images[1])
    s1, s2 = framed(cars[1], views[0]), framed(cars[1], views[1])  # framed like the image crops
    assert torch.allclose(item["s1"], s1.rgb) and torch.allclose(item["s2"], s2.rgb)
    assert torch.allclose(item["flow"], ground_truth_flow(s1, s2)[0])
    whole = QuartetDataset(images, views, cars, [Quartet(1, 0, 1)], framed=False)[0]
    assert torch.allclose(whole["s1"], rendered(cars[1], views[0]))
    assert torch.allclose(whole["s2"], rendered(cars[1], views[1]))
    assert item["flow"].shape == (2, SIZE, SIZE) and item["matchable"].shape == (1, SIZE, SIZE)
    assert item["matchable"].sum() > 50
    assert item["flow"][:, item["matchable"][0] == 0].abs().max() == 0
    with pytest.raises(ValueError, match="no quartets"):
        QuartetDataset(images, views, cars, [])
