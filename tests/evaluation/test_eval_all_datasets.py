"""``geocorr eval --dataset D`` end to end on a tiny tree in each official layout (tiny random DINOv2)."""
import json

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from geocorr.cli import main

from ..pascal_parts_toy import two_eyed_cat

W, H = 32, 24


def _image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _spair(root):
    for i, name in enumerate("ab"):
        _image(root / "JPEGImages" / "cat" / f"{name}.jpg", i)
        folder = root / "ImageAnnotation" / "cat"
        folder.mkdir(parents=True, exist_ok=True)
        kps = {"0": [3 + i, 4], "1": [20, 10 + i], "9": [12, 20], "10": [25, 20]}
        (folder / f"{name}.json").write_text(json.dumps({
            "filename": f"{name}.jpg", "image_width": W, "image_height": H, "bndbox": [1, 1, 30, 22], "kps": kps}))
    (root / "PairAnnotation" / "test").mkdir(parents=True)
    (root / "PairAnnotation" / "test" / "000001-a-b:cat.json").write_text(json.dumps(
        {"pair_id": 1, "src_imname": "a.jpg", "trg_imname": "b.jpg", "category": "cat", "kps_ids": ["0", "1"]}))
    return []


def _pf_pascal(root):
    for i, name in enumerate("ab"):
        _image(root / "PF-dataset-PASCAL" / "JPEGImages" / f"{name}.jpg", i)
    (root / "test_pairs_pf_pascal.csv").write_text(
        "source_image,target_image,class,XA,YA,XB,YB\n"
        "PF-dataset-PASCAL/JPEGImages/a.jpg,PF-dataset-PASCAL/JPEGImages/b.jpg,8,3;20;12,4;10;20,4;21;13,5;11;21\n")
    return []


def _ap10k(root):
    (root / "annotations").mkdir()
    images = [{"id": i, "file_name": f"{i}.jpg", "width": W, "height": H} for i in (1, 2)]
    kps = [v for k in range(17) for v in ((2 + k, 3 + k, 2) if k < 5 else (0, 0, 0))]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 28, 20], "keypoints": kps} for i in (1, 2)]
    cats = [{"id": 1, "name": "dog", "supercategory": "Canidae"}]
    for part in ("train", "val", "test"):
        coco = {"images": images if part == "test" else [], "annotations": anns if part == "test" else [],
                "categories": cats}
        (root / "annotations" / f"ap10k-{part}-split1.json").write_text(json.dumps(coco))
    for i in (1, 2):
        _image(root / "data" / f"{i}.jpg", i)
    return []


def _cub(root):
    (root / "parts").mkdir(parents=True)
    (root / "parts" / "parts.txt").write_text("".join(f"{i} part{i}\n" for i in range(1, 16)))
    for i in (1, 2):
        _image(root / "images" / "001.Bird" / f"{i}.jpg", i)
    (root / "images.txt").write_text("1 001.Bird/1.jpg\n2 001.Bird/2.jpg\n")
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n")
    (root / "classes.txt").write_text("1 001.Bird\n")
    (root / "train_test_split.txt").write_text("1 0\n2 0\n")
    (root / "bounding_boxes.txt").write_text("1 1 1 20 20\n2 2 2 20 20\n")
    (root / "parts" / "part_locs.txt").write_text(
        "".join(f"{i} {p} {p + i}.0 {p}.0 {int(p < 8)}\n" for i in (1, 2) for p in range(1, 16)))
    return ["--dataset-option", "num_pairs=2"]


def _pascal_parts(root):
    (root / "Annotations_Part").mkdir(parents=True)
    for i in (1, 2):
        savemat(root / "Annotations_Part" / f"2008_00000{i}.mat", two_eyed_cat(H, W))
        _image(root / "JPEGImages" / f"2008_00000{i}.jpg", i)
    return ["--dataset-option", "category=cat", "--dataset-option", "num_train=1", "--part-stride", "2"]


def _pf_willow(root, copy_willow):
    copy_willow(root, "duck(S)", images=2)
    return []


BUILDERS = {"spair": _spair, "pf-pascal": _pf_pascal, "ap10k": _ap10k, "cub": _cub, "pascal-parts": _pascal_parts}


@pytest.mark.parametrize("dataset", [*BUILDERS, "pf-willow"])
def test_eval_runs_on_official_layout(dataset, tmp_path, capsys, tiny_backbone_dir, copy_willow):
    root = tmp_path / "data"
    root.mkdir()
    extra = _pf_willow(root, copy_willow) if dataset == "pf-willow" else BUILDERS[dataset](root)
    out = tmp_path / "result.json"
    code = main(["eval", "--method", "dinov2", "--backbone", str(tiny_backbone_dir), "--image-size", "28",
                 "--dataset", dataset, "--root", str(root), "--no-progress", "--out", str(out), *extra])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    metrics = json.loads(out.read_text())["metrics"]
    if dataset == "pascal-parts":
        assert "left/right confusion" in printed.out
        assert np.allclose(np.sum(metrics["part_segmentation"]["confusion"], 1), 1)
    else:
        assert metrics["pck"]["num_points"] > 0 and "all" in printed.out
        assert ("geometry_aware" in metrics) == (dataset in ("spair", "ap10k"))
        assert ("symmetry" in metrics) == (dataset in ("spair", "ap10k", "cub"))
