import numpy as np
import pytest
import torch
from PIL import Image

import geocorr
from geocorr.datasets.base import ImageAnnotation, Pair
from geocorr.datasets.pascal_parts import PartImage
from geocorr.evaluation.cyclecorr import keypoint_transfer_pck, matchability_average_precision, mean_iou
from geocorr.methods.cyclecorr import Camera, Viewpoint, render, toy_car
from geocorr.methods.cyclecorr.parts import matchability_ground_truth, segmentation_transfer, transfer_labels

from ...pascal_parts_toy import two_eyed_cat


class ZeroFlow(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, a, b):
        return torch.zeros(a.shape[0], 2, *a.shape[-2:]), torch.ones(a.shape[0], 1, *a.shape[-2:])


@pytest.fixture
def identity_model(tiny_network):
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    model.net = ZeroFlow(model.net.config)
    return model


def annotation(tmp_path, name, size, keypoints):
    path = tmp_path / f"{name}.png"
    Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(path)
    kps = np.asarray(keypoints, dtype=np.float64)
    box = np.array([0.0, 0.0, size - 1, size - 1])
    return ImageAnnotation(path, kps, np.ones(len(kps), bool), (size, size), "car", box)


def test_keypoint_transfer_pck_on_crops(tmp_path, identity_model):
    # source 64 px and target 128 px crop to the same 32 px frame: crop x = (x + 0.5) / 2 - 0.5 and (x + 0.5) / 4 - 0.5
    source = annotation(tmp_path, "a", 64, [[9.5, 9.5], [33.5, 21.5]])
    target = annotation(tmp_path, "b", 128, [[19.5, 19.5], [67.5 + 40, 43.5]])  # second: 10 crop px off in x
    result = keypoint_transfer_pck(identity_model, [Pair(source, target, "car")], alphas=(0.05, 0.5))
    assert result == {"pck@0.05": 0.5, "pck@0.5": 1.0, "points": 2}
    hidden = annotation(tmp_path, "c", 64, [[1.0, 1.0]])
    hidden = ImageAnnotation(hidden.path, np.full((1, 2), np.nan), np.zeros(1, bool), (64, 64), "car")
    with pytest.raises(ValueError, match="visible in both"):
        keypoint_transfer_pck(identity_model, [Pair(hidden, hidden, "car")])


def test_matchability_ground_truth():
    parts_a = torch.tensor([[0, 1, 2], [3, 3, 1]])
    parts_b = torch.tensor([[1, 1, 0], [0, 3, 5]])
    truth = matchability_ground_truth(parts_a, parts_b)
    assert truth.tolist() == [[False, True, False], [True, True, True]]


def test_transfer_labels_and_mean_iou():
    labels = torch.tensor([[1, 2, 3], [-1, 4, 5]])
    flow = torch.zeros(2, 2, 3)
    flow[0] = 1.0  # one pixel right
    moved = transfer_labels(flow, labels)
    assert moved.tolist() == [[2, 3, 0], [4, 5, 0]]
    truth = torch.tensor([[2, 3, 3], [4, 4, 0]])
    # label 2: 1/1, 3: 1/2, 4: 1/2; 5 is not in the truth: left out (the shared mIoU of part_segmentation)
    assert mean_iou(moved, truth, [2, 3, 4, 5]) == pytest.approx((1 + 0.5 + 0.5) / 3)
    with pytest.raises(ValueError, match="none of the labels"):
        mean_iou(moved, truth, [9])


def test_segmentation_transfer_with_identity_flow_copies_the_render(identity_model):
    car, view = toy_car(), Viewpoint(60.0, 15.0, 1.5)
    shape = render(car, Camera.from_viewpoint(view, (32, 32)))
    labels = segmentation_transfer(identity_model, shape.rgb, shape)
    assert torch.equal(labels, shape.labels.clamp(min=0))
    assert mean_iou(labels, shape.labels.clamp(min=0), [1, 2, 3]) == 1.0
    with pytest.raises(ValueError, match="crop"):
        segmentation_transfer(identity_model, torch.rand(3, 16, 16), shape)
    with pytest.raises(ValueError, match="rendered 32×32"):
        segmentation_transfer(identity_model, shape.rgb, render(car, Camera.from_viewpoint(view, (16, 16))))


class RedIsMatchable(ZeroFlow):
    def forward(self, a, b):
        return torch.zeros(a.shape[0], 2, *a.shape[-2:]), a[:, :1]


def test_matchability_average_precision_on_part_masks(tmp_path, tiny_network):
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    model.net = RedIsMatchable(model.net.config)
    parts = np.zeros((16, 16), np.int64)
    parts[:, 8:] = 1  # part 0 on the left, part 1 on the right
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, :8, 0] = 255  # the "network" calls the left half matchable
    Image.fromarray(image).save(tmp_path / "a.png")
    source = PartImage(tmp_path / "a.png", parts, "cat")
    left_only = PartImage(tmp_path / "a.png", np.where(parts == 0, 0, -1), "cat")
    right_only = PartImage(tmp_path / "a.png", np.full((16, 16), 1), "cat")
    assert matchability_average_precision(model, [(source, left_only)]) == pytest.approx(1.0)
    assert matchability_average_precision(model, [(source, right_only)]) < 0.6
    with pytest.raises(ValueError, match="at least one pair"):
        matchability_average_precision(model, [])


def test_shared_runner_evaluates_the_matcher(pf_willow_root, tiny_network):
    from geocorr.datasets.pf_willow import load_pf_willow
    from geocorr.evaluation.runner import evaluate

    willow = load_pf_willow(pf_willow_root)
    subset = type(willow)(willow.name, willow.split, willow.pairs[:2])
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    predictions = evaluate(model, subset, progress=False)
    record = predictions.pairs[0]
    assert record.predicted.shape == (10, 2) and np.isfinite(record.predicted).all()
    width, height = record.target_size
    assert (record.predicted >= -0.5).all() and (record.predicted[:, 0] <= width - 0.5).all()
    assert (record.predicted[:, 1] <= height - 0.5).all()


def test_identity_baseline_by_hand(tmp_path):
    from geocorr.evaluation.cyclecorr import baselines, identity_transfer_pck

    # both 64 px images crop (whole image) to the same 32 px frame: identity is right where the keypoint
    # sits at the same relative place; the second one is 16 image px = 8 crop px off
    source = annotation(tmp_path, "a", 64, [[10.0, 10.0], [30.0, 30.0]])
    target = annotation(tmp_path, "b", 64, [[10.0, 10.0], [46.0, 30.0]])
    result = identity_transfer_pck([Pair(source, target, "car")], image_size=32, alphas=(0.1, 0.3))
    assert result == {"pck@0.1": 0.5, "pck@0.3": 1.0, "points": 2}  # 8 px: > 3.2, < 9.6
    both = baselines([Pair(source, target, "car")], image_size=32, alphas=(0.1,))
    assert both["identity_pck@0.1"] == 0.5 and 0.0 <= both["random_pck@0.1"] <= 1.0


def test_eval_command_reports_matchability_ap_on_pascal_parts(tmp_path, tiny_network, capsys):
    import dataclasses
    import json

    from scipy.io import savemat

    from geocorr.cli import main

    root = tmp_path / "parts"
    (root / "Annotations_Part").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for i in (1, 2, 3):  # 1 training image, 2 test images: one consecutive pair
        savemat(root / "Annotations_Part" / f"2008_00000{i}.mat", two_eyed_cat())
        Image.fromarray(np.full((24, 32, 3), 40 * i, np.uint8)).save(root / "JPEGImages" / f"2008_00000{i}.jpg")
    network = json.dumps(dataclasses.asdict(tiny_network(32)))
    out = tmp_path / "result.json"
    code = main(["eval", "--method", "cyclecorr", "--option", f"network={network}", "--dataset", "pascal-parts",
                 "--root", str(root), "--dataset-option", "category=cat", "--dataset-option", "num_train=1",
                 "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "matchability AP over 1 consecutive test pairs of cat: 100.0" in capsys.readouterr().out
    # both test images hold both parts, and the crop (the annotated box) holds only part pixels:
    # every pixel is truly matchable, so any ranking has AP 100
    assert '"matchability_ap": 100.0' in out.read_text()


def test_matchability_chance_is_the_share_of_matchable_pixels(tmp_path, tiny_network):
    from geocorr.evaluation.cyclecorr import matchability_chance

    model = geocorr.load("cyclecorr", network=tiny_network(32))
    parts = np.zeros((16, 16), np.int64)
    parts[:, 8:] = 1  # part 0 left, part 1 right: each half of the 32 px crop
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    source = PartImage(tmp_path / "a.png", parts, "cat")
    left_only = PartImage(tmp_path / "a.png", np.where(parts == 0, 0, -1), "cat")
    assert matchability_chance(model, [(source, left_only)]) == pytest.approx(0.5)  # the left half
    assert matchability_chance(model, [(source, source)]) == pytest.approx(1.0)
    # pooled over pairs: 512 + 1024 matchable of 2048 pixels
    assert matchability_chance(model, [(source, left_only), (source, source)]) == pytest.approx(0.75)


def test_identity_predictions_are_the_zero_flow_matcher_through_the_same_crops(pf_willow_root, tiny_network):
    from geocorr.datasets.pf_willow import load_pf_willow
    from geocorr.evaluation.cyclecorr import identity_predictions
    from geocorr.evaluation.runner import evaluate

    willow = load_pf_willow(pf_willow_root)
    subset = type(willow)(willow.name, willow.split, willow.pairs[:3])
    model = geocorr.load("cyclecorr", network=tiny_network(32))
    trained = evaluate(model, subset, progress=False)
    model.net = ZeroFlow(model.net.config)
    zero_flow = evaluate(model, subset, progress=False)
    identity = identity_predictions(trained, 32)
    for got, want, other in zip(identity.pairs, zero_flow.pairs, trained.pairs, strict=True):
        np.testing.assert_allclose(got.predicted, want.predicted, atol=1e-3)
        assert np.isfinite(got.predicted).all() and not np.allclose(got.predicted, other.predicted, atol=1e-2)


def test_identity_predictions_by_hand():
    from geocorr.evaluation.cyclecorr import identity_predictions
    from geocorr.evaluation.predictions import PairPrediction, Predictions

    # source 64×64 box (0, 0, 63, 63) and target 128×128 box (0, 0, 127, 127) both crop to 32 px:
    # crop x = (x + 0.5) / 2 - 0.5, image x' = (crop x + 0.5) * 4 - 0.5, so x' = 2 x + 0.5
    record = PairPrediction(
        category="car", source="a", target="b", source_keypoints=np.array([[9.5, 21.5], [1.0, 1.0]]),
        target_keypoints=np.zeros((2, 2)), source_visible=np.array([True, False]),
        target_visible=np.array([True, True]), predicted=np.array([[0.0, 0.0], [np.nan, np.nan]]),
        scores=np.array([0.3, np.nan]), source_bbox=np.array([0.0, 0.0, 63.0, 63.0]),
        target_bbox=np.array([0.0, 0.0, 127.0, 127.0]), source_size=np.array([64, 64]),
        target_size=np.array([128, 128]))
    out = identity_predictions(Predictions("pf-willow", "test", {}, [record]), 32).pairs[0]
    np.testing.assert_allclose(out.predicted[0], [19.5, 43.5])
    assert np.isnan(out.predicted[1]).all() and out.scores[0] == 1.0 and np.isnan(out.scores[1])


def test_eval_command_prints_keypoint_baselines_for_cyclecorr(tmp_path, tiny_network, pf_willow_root, capsys):
    import dataclasses
    import json

    from geocorr.cli import main

    network = json.dumps(dataclasses.asdict(tiny_network(32)))
    out = tmp_path / "result.json"
    code = main(["eval", "--method", "cyclecorr", "--option", f"network={network}", "--dataset", "pf-willow",
                 "--root", str(pf_willow_root), "--max-pairs", "2", "--no-progress", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "baselines on the same pairs, crops and protocol (geco), PCK over all:" in printed.out
    lines = {line.split()[0]: line for line in printed.out.splitlines() if line.startswith("  ")}
    assert "identity" in lines and "random" in lines
    result = json.loads(out.read_text())["metrics"]
    assert set(result["baselines"]) == {"identity", "random network"}
    for scores in result["baselines"].values():
        assert scores["pck"]["num_pairs"] == 2 and len(scores["pck"]["all"]) == len(result["pck"]["all"])
        assert all(0 <= v <= 100 for v in scores["pck"]["all"])
