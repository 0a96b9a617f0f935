import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from geocorr.datasets.pascal_parts import load_pascal_parts, oriented_parts
from geocorr.evaluation.part_segmentation import (
    confusion_matrix,
    evaluate_part_segmentation,
    nearest_centroid_fit,
    nearest_centroid_predict,
    pca_fit,
    segmentation_scores,
)
from geocorr.grid import TokenGrid
from geocorr.methods.base import Features

H, W = 12, 16


def _struct(fields: dict, n: int):
    out = np.zeros((1, n), dtype=[(k, "O") for k in fields])
    for k, values in fields.items():
        for i, v in enumerate(values):
            out[0, i][k] = v
    return out


def _write_annotation(root, image_id, objects):
    """objects: list of (class, {part_name: mask})."""
    structs = []
    for cls, parts in objects:
        mask = np.zeros((H, W), np.uint8)
        for m in parts.values():
            mask |= m
        part_struct = _struct({"part_name": list(parts), "mask": list(parts.values())}, len(parts))
        structs.append((cls, mask, part_struct))
    objs = _struct({"class": [s[0] for s in structs], "class_ind": [1] * len(structs),
                    "mask": [s[1] for s in structs], "parts": [s[2] for s in structs]}, len(structs))
    savemat(root / "Annotations_Part" / f"{image_id}.mat", {"anno": {"imname": image_id, "objects": objs}})
    Image.new("RGB", (W, H)).save(root / "JPEGImages" / f"{image_id}.jpg")


@pytest.fixture
def parts_root(tmp_path):
    (tmp_path / "Annotations_Part").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    left, right = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
    left[2:10, 2:8], right[2:10, 8:14] = 1, 1
    for i in range(5):
        _write_annotation(tmp_path, f"2008_{i:06d}", [("cat", {"lear": left, "rear": right})])
    _write_annotation(tmp_path, "2008_000100", [("cat", {"lear": left}), ("cat", {"rear": right})])  # 2 cats
    _write_annotation(tmp_path, "2008_000200", [("dog", {"head": left})])
    return tmp_path


class CoordinateModel:
    """Features = (x, y) pixel coordinates; mirrored left/right from call ``mirror_from`` on."""

    def __init__(self, mirror_from: int | None = None):
        self.mirror_from, self.calls = mirror_from, 0

    def features(self, images):
        ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
        if self.mirror_from is not None and self.calls >= self.mirror_from:
            xs = W - 1 - xs
        self.calls += 1
        return Features(torch.stack([xs, ys])[None], [TokenGrid((H, W), (H, W), (H, W), 1)])


def test_loader(parts_root):
    data = load_pascal_parts(parts_root, "cat", num_train=3)
    assert data.part_names == ["lear", "rear"] and data.oriented == [0, 1]
    assert len(data.train) == 3 and len(data.test) == 2  # the two-cat image is left out
    labels = data.train[0].labels
    assert labels[5, 3] == 0 and labels[5, 10] == 1 and labels[0, 0] == -1
    assert data.train[0].path.name == "2008_000000.jpg" and data.train[0].size == (W, H)
    assert oriented_parts(["head", "leye", "reye", "lfleg", "tail"]) == [1, 2]


def test_loader_errors(parts_root):
    with pytest.raises(ValueError, match="category must be one of"):
        load_pascal_parts(parts_root, "dragon")
    with pytest.raises(ValueError, match="need more than num_train=100"):
        load_pascal_parts(parts_root, "cat")
    (parts_root / "Annotations_Part" / "2008_000001.mat").write_bytes(b"junk")
    with pytest.raises(ValueError):
        load_pascal_parts(parts_root, "cat", num_train=3)


def test_coordinate_features_segment_perfectly_and_mirroring_swaps(parts_root):
    data = load_pascal_parts(parts_root, "cat", num_train=3)
    good = evaluate_part_segmentation(CoordinateModel(), data, stride=1)
    assert good["accuracy"] == 100 and good["miou"] == 100 and good["oriented"]["lr_confusion"] == 0
    assert good["confusion"] == [[1, 0], [0, 1]] and good["num_test_images"] == 2
    # test features mirrored w.r.t. the training ones (3 train images come first): every left is right
    bad = evaluate_part_segmentation(CoordinateModel(mirror_from=3), data, stride=1)
    assert bad["accuracy"] == 0 and bad["oriented"]["lr_confusion"] == 100
    assert bad["confusion"] == [[0, 1], [1, 0]]


def test_scores_by_hand():
    confusion = confusion_matrix(np.array([0, 1, 1, 1, 0]), np.array([0, 0, 1, 1, 2]), 3)
    assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    s = segmentation_scores(confusion)
    assert s["accuracy"] == pytest.approx(60)
    assert s["mean_precision"] == pytest.approx(100 * (1 / 2 + 2 / 3 + 0) / 3)
    assert s["mean_recall"] == pytest.approx(100 * (1 / 2 + 1 + 0) / 3)
    assert s["miou"] == pytest.approx(100 * (1 / 3 + 2 / 3 + 0) / 3)
    sub = segmentation_scores(confusion, [0, 1])
    assert sub["accuracy"] == pytest.approx(75) and sub["miou"] == pytest.approx(50)


def test_pca_and_nearest_centroid():
    t = torch.linspace(-1, 1, 21, dtype=torch.float64)
    x = torch.stack([t, t, 0.01 * torch.sin(7 * t)], 1) + 3
    mean, comps = pca_fit(x, 1)
    assert mean.tolist() == pytest.approx([3, 3, 3], abs=1e-3)
    assert comps[:, 0].abs().tolist() == pytest.approx([2 ** -0.5, 2 ** -0.5, 0], abs=1e-2)
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [11.0, 10.0]])
    centroids = nearest_centroid_fit(pts, torch.tensor([0, 0, 2, 2]), 3)
    assert centroids[0].tolist() == [0.5, 0] and torch.isnan(centroids[1]).all()
    assert nearest_centroid_predict(torch.tensor([[2.0, 1.0], [8.0, 9.0]]), centroids).tolist() == [0, 2]
    # Manhattan, not Euclidean: from (0, 0), (3, 3) is at L1 6 / L2 4.2 and (5, 0) at L1 5 / L2 5
    c = torch.tensor([[3.0, 3.0], [5.0, 0.0]])
    assert nearest_centroid_predict(torch.tensor([[0.0, 0.0]]), c).tolist() == [1]
    with pytest.raises(ValueError, match="N >= 2"):
        pca_fit(torch.zeros(1, 3), 2)


def test_cli_cyclecorr_reports_matchability_ap(parts_root, tmp_path, capsys):
    import json

    from geocorr.cli import main

    out = tmp_path / "m.json"
    assert main(["eval", "--method", "cyclecorr", "--dataset", "pascal-parts", "--root", str(parts_root),
                 "--dataset-option", "num_train=1", "--out", str(out)]) == 0
    assert "matchability AP over" in capsys.readouterr().out
    result = json.loads(out.read_text())["metrics"]
    assert 0 <= result["matchability_ap"] <= 100 and result["num_pairs"] >= 1
