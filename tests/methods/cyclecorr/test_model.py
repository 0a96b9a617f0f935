import pytest
import torch

import geocorr
from geocorr.methods.base import PairContext
from geocorr.methods.cyclecorr import CycleCorr, CycleCorrNet, NetworkConfig
from geocorr.methods.cyclecorr.crop import Crop

from .conftest import ConstantFlow


def test_default_network_is_the_published_architecture():
    net = CycleCorrNet()
    convs = [m for m in net.encoder if isinstance(m, torch.nn.Conv2d)]
    flow_layers = [m for m in net.flow_decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    match_layers = [m for m in net.matchability_decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert (len(convs), len(flow_layers), len(match_layers)) == (8, 9, 9)
    assert all(m.kernel_size == (3, 3) for m in convs + flow_layers + match_layers)
    assert not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) for m in net.modules())
    assert net.config.image_size == 128
    assert isinstance(net.flow_decoder[-1], torch.nn.ConvTranspose2d)  # no ReLU after the last layer


def test_forward_shapes_and_ranges(tiny_network):
    net = CycleCorrNet(tiny_network(32))
    flow, match = net(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert flow.shape == (2, 2, 32, 32) and match.shape == (2, 1, 32, 32)
    assert (match > 0).all() and (match < 1).all()
    with pytest.raises(ValueError, match="images must have shape"):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))


def test_network_config_validation():
    with pytest.raises(ValueError, match="image_size"):
        NetworkConfig(image_size=100)
    with pytest.raises(ValueError, match="up-samples"):
        NetworkConfig(decoder=((8, 2),) * 8)


def test_crop_maps_points_both_ways():
    crop = Crop.from_box((10.2, 20.0, 49.6, 99.0), (120, 200), size=64)
    assert (crop.ix0, crop.iy0, crop.ix1, crop.iy1) == (10, 20, 50, 99)
    pts = torch.tensor([[10.0, 20.0], [30.5, 64.25], [50.0, 99.0]])
    assert torch.allclose(crop.from_crop(crop.to_crop(pts)), pts, atol=1e-5)
    whole = Crop.from_box(None, (48, 64), size=32)
    corners = whole.to_crop(torch.tensor([[-0.5, -0.5], [63.5, 47.5]]))
    assert torch.allclose(corners, torch.tensor([[-0.5, -0.5], [31.5, 31.5]]))
    with pytest.raises(ValueError, match="box"):
        Crop.from_box((5, 5, 1, 1), (10, 10))


def test_crop_labels_take_the_nearest_pixel():
    labels = torch.arange(16).view(4, 4)
    doubled = Crop.from_box((1, 1, 2, 2), (4, 4), size=4).apply_labels(labels)
    assert doubled.tolist() == [[5, 5, 6, 6], [5, 5, 6, 6], [9, 9, 10, 10], [9, 9, 10, 10]]


def test_match_moves_points_by_the_flow_through_the_crops(tiny_network):
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    model.net = ConstantFlow(model.net.config, 2.0, -1.0, matchability=0.75)
    img0, img1 = torch.rand(3, 64, 64), torch.rand(3, 32, 96)  # crop scale: 0.5 in img0; 3 × 1 in img1
    matches = model.match(img0, img1, [[31.5, 31.5], [10.0, 20.0]])
    # img0 (31.5, 31.5) -> crop (15.5, 15.5) -> + flow (17.5, 14.5) -> img1 (x: 18 * 3 - 0.5, y: 15)
    assert matches.points[0].tolist() == pytest.approx([53.5, 14.5])
    assert matches.scores.tolist() == pytest.approx([0.75, 0.75])
    boxes = PairContext(boxes=((16, 16, 47, 47), (0, 0, 95, 31)))  # img1's box: the whole image
    boxed = model.match(img0, img1, [[20.0, 20.0]], boxes)
    # crop of 32 pixels: (20, 20) -> (4, 4) -> (6, 3) -> img1 (6.5 * 3 - 0.5, 3)
    assert boxed.points[0].tolist() == pytest.approx([19.0, 3.0])


def test_match_rejects_bad_points(tiny_network):
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    with pytest.raises(ValueError, match="outside"):
        model.match(torch.rand(3, 20, 20), torch.rand(3, 20, 20), [[25.0, 3.0]])


def test_unknown_option_and_missing_weights(tmp_path):
    with pytest.raises(ValueError, match="unknown option"):
        CycleCorr(size=3)
    with pytest.raises(FileNotFoundError, match=r"nothing\.safetensors"):
        CycleCorr(weights=tmp_path / "nothing.safetensors")


def test_weights_that_are_not_a_state_dict_are_refused_in_one_line(tmp_path):
    import argparse

    torch.save(argparse.Namespace(a=1), tmp_path / "pickle.pth")  # a pickled object, not tensors
    with pytest.raises(ValueError, match=r"pickle.pth: not a cyclecorr weights file") as info:
        CycleCorr(weights=tmp_path / "pickle.pth")
    assert "\n" not in str(info.value)
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pth")  # tensors, but not this network's
    with pytest.raises(ValueError, match=r"other.pth: not weights of this cyclecorr network .*unexpected"):
        CycleCorr(weights=tmp_path / "other.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ValueError, match=r"bad.safetensors: not a readable cyclecorr weights file"):
        CycleCorr(weights=tmp_path / "bad.safetensors")
