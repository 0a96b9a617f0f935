import json

import numpy as np
import pytest

from geocorr.datasets import load_dataset
from geocorr.datasets.spair import load_spair


def test_real_sample_annotations(shared_data):
    data = load_spair(shared_data / "spair-sample" / "SPair-71k")
    assert len(data) == 1 and data.categories == ["aeroplane"]
    pair = data[0]
    assert pair.meta["kps_ids"] == [0, 7, 11] and pair.meta["truncation"] == 2
    mutual = np.flatnonzero(pair.source.visible & pair.target.visible)
    assert mutual.tolist() == pair.meta["kps_ids"]
    assert pair.source.keypoints[7].tolist() == [300, 130] and pair.target.keypoints[11].tolist() == [416, 173]
    assert pair.source.num_keypoints == 25 and pair.source.size == (500, 333)
    assert pair.target.bbox.tolist() == [36, 92, 500, 200]
    assert pair.source.meta["pose"] == "Left"
    assert pair.source.path.parts[-3:] == ("JPEGImages", "aeroplane", "2008_002719.jpg")
    assert len(data.symmetry["aeroplane"]["geo_groups"]) == 16
    assert len(load_spair(shared_data / "spair-sample" / "SPair-71k", layout="small")) == 1


def _image(root, cat, name, kps, size=(64, 48)):
    folder = root / "ImageAnnotation" / cat
    folder.mkdir(parents=True, exist_ok=True)
    record = {"filename": f"{name}.jpg", "image_width": size[0], "image_height": size[1], "category": cat,
              "bndbox": [1, 2, 30, 40], "pose": "Frontal", "truncated": 0, "occluded": 0, "difficult": 0,
              "kps": {str(k): v for k, v in kps.items()}}
    (folder / f"{name}.json").write_text(json.dumps(record))


def _pair(root, split, pid, cat, src, trg):
    folder = root / "PairAnnotation" / split
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{pid:06d}-{src}-{trg}:{cat}"
    record = {"pair_id": pid, "src_imname": f"{src}.jpg", "trg_imname": f"{trg}.jpg", "category": cat,
              "kps_ids": [], "viewpoint_variation": 1, "scale_variation": 0, "truncation": 0, "occlusion": 0,
              "mirror": 0}
    (folder / f"{stem}.json").write_text(json.dumps(record))
    return stem


@pytest.fixture
def fake_tree(tmp_path):
    _image(tmp_path, "cat", "a", {0: [3, 4], 1: None, 9: [10, 20]})
    _image(tmp_path, "cat", "b", {0: [5, 6], 9: [11, 21], 10: [12, 22]})
    _image(tmp_path, "bus", "c", {0: [1, 1]})
    _image(tmp_path, "bus", "d", {29: [2, 2]})
    first = _pair(tmp_path, "test", 1, "cat", "a", "b")
    _pair(tmp_path, "test", 2, "bus", "c", "d")
    (tmp_path / "Layout" / "small").mkdir(parents=True)
    (tmp_path / "Layout" / "small" / "test.txt").write_text(first + "\n")
    return tmp_path


def test_fake_tree_layout(fake_tree):
    data = load_dataset("spair", fake_tree)
    assert len(data) == 2 and data.categories == ["bus", "cat"]
    cat = next(p for p in data if p.category == "cat")
    assert cat.source.visible.tolist()[:2] == [True, False] and cat.source.num_keypoints == 15
    assert cat.meta["viewpoint_variation"] == 1
    bus = next(p for p in data if p.category == "bus")
    assert bus.target.num_keypoints == 30 and bus.target.visible[29]
    assert len(load_spair(fake_tree, layout="small")) == 1
    assert len(load_spair(fake_tree, categories=["bus"])) == 1


def test_bad_inputs(fake_tree):
    with pytest.raises(ValueError, match="split must be one of"):
        load_spair(fake_tree, split="train")
    with pytest.raises(FileNotFoundError, match="SPair-71k val pair annotations"):
        load_spair(fake_tree, split="val")
    with pytest.raises(ValueError, match="unknown SPair-71k categories \\['cats'\\]"):
        load_spair(fake_tree, categories=["cats"])
    with pytest.raises(FileNotFoundError, match="large layout"):
        load_spair(fake_tree, layout="large")
    with pytest.raises(ValueError, match="unknown option"):
        load_dataset("spair", fake_tree, stride=2)
    _image(fake_tree, "cat", "a", {15: [1, 1]})
    with pytest.raises(ValueError, match="keypoint id 15 out of range"):
        load_spair(fake_tree)
    (fake_tree / "ImageAnnotation" / "cat" / "a.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_spair(fake_tree)
