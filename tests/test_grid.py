import torch

from geocorr.grid import TokenGrid


def test_stretch_grid_maps_token_centres_to_pixel_centres():
    # 28×42 image stretched to 14×14 input: one token of 14 input px covers 28×42 image px.
    grid = TokenGrid(image_hw=(28, 42), content_hw=(14, 14), input_hw=(14, 14), patch=14)
    assert grid.grid_hw == (1, 1)
    centre = grid.grid_to_image(torch.tensor([[0.0, 0.0]]))
    assert torch.allclose(centre, torch.tensor([[20.5, 13.5]]))  # centre of a 42×28 image
    # The image's outer pixel edges map to the token's edges.
    edges = grid.image_to_grid(torch.tensor([[-0.5, -0.5], [41.5, 27.5]]))
    assert torch.allclose(edges, torch.tensor([[-0.5, -0.5], [0.5, 0.5]]))


def test_round_trip_and_padding():
    grid = TokenGrid(image_hw=(100, 200), content_hw=(49, 98), input_hw=(98, 98), patch=14)
    assert grid.grid_hw == (7, 7) and grid.content_grid_hw == (4, 7)
    pts = torch.tensor([[0.0, 0.0], [199.0, 99.0], [57.3, 12.9]])
    assert torch.allclose(grid.grid_to_image(grid.image_to_grid(pts)), pts, atol=1e-5)
    # The bottom image edge lies at 49 input px = 3.5 tokens, i.e. grid y = 3.0 (edge of token 3).
    assert torch.allclose(grid.image_to_grid(torch.tensor([[0.0, 99.5]]))[0, 1], torch.tensor(3.0))
