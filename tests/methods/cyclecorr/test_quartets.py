import pytest
import torch

from geocorr.methods.cyclecorr import Camera, Viewpoint, render, toy_car
from geocorr.methods.cyclecorr.quartets import (
    Quartet,
    QuartetDataset,
    build_quartets,
    estimate_viewpoints,
    hog_descriptor,
    nearest_models,
    viewpoint_grid,
)

SIZE = 48


@pytest.fixture(scope="module")
def cars():
    return [toy_car(1.0, 0.5, 0.12), toy_car(1.3, 0.3, 0.09), toy_car(0.8, 0.7, 0.16)]


def rendered(mesh, view):
    return render(mesh, Camera.from_viewpoint(view, (SIZE, SIZE))).rgb


def test_hog_descriptor_shape_and_error():
    feature = hog_descriptor(torch.rand(3, 32, 32))
    assert feature.shape == (4 * 3 * 3 * 2 * 2 * 9 // 4,)  # 3×3 blocks of 2×2 cells × 9 bins
    with pytest.raises(ValueError, match="3×H×W"):
        hog_descriptor(torch.rand(32, 32))


def test_viewpoint_grid():
    grid = viewpoint_grid(4, (0.0, 20.0))
    assert len(grid) == 8 and grid[1].azimuth == 90.0 and grid[5].elevation == 20.0


def test_estimate_viewpoints_recover_the_rendering_views(cars):
    candidates = viewpoint_grid(6, (10.0,))
    images = torch.stack([rendered(cars[0], candidates[2]), rendered(cars[2], candidates[5])])
    assert estimate_viewpoints(images, cars, candidates) == [candidates[2], candidates[5]]
    with pytest.raises(ValueError, match="candidate"):
        estimate_viewpoints(images, cars, [])


def test_nearest_models_rank_the_rendered_model_first(cars):
    views = [Viewpoint(40.0, 10.0, 1.5), Viewpoint(100.0, 20.0, 1.5)]
    images = torch.stack([rendered(cars[2], views[0]), rendered(cars[1], views[1])])
    neighbours = nearest_models(images, views, cars, k=2)
    assert neighbours.shape == (2, 2)
    assert neighbours[:, 0].tolist() == [2, 1]
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
    assert torch.allclose(item["s1"], rendered(cars[1], views[0]))
    assert torch.allclose(item["s2"], rendered(cars[1], views[1]))
    assert item["flow"].shape == (2, SIZE, SIZE) and item["matchable"].shape == (1, SIZE, SIZE)
    assert item["matchable"].sum() > 50
    assert item["flow"][:, item["matchable"][0] == 0].abs().max() == 0
    with pytest.raises(ValueError, match="no quartets"):
        QuartetDataset(images, views, cars, [])
