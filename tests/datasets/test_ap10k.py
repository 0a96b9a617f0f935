import json

import numpy as np
import pytest

from geocorr.datasets.ap10k import load_ap10k, split_images

# family "Canidae": dog (55 images), fox (52); family "Felidae": cat (52). Image ids are global.
SPECIES = [(1, "dog", "Canidae", 55), (2, "fox", "Canidae", 52), (3, "cat", "Felidae", 52)]


def _keypoints(n_visible):
    kps = []
    for k in range(17):
        kps += [10 + k, 20 + k, 2] if k < n_visible else [0, 0, 0]
    return kps


def _write(root):
    (root / "annotations").mkdir()
    images, annotations, image_id = [], [], 0
    for cat_id, _, _, count in SPECIES:
        for i in range(count):
            image_id += 1
            images.append({"id": image_id, "file_name": f"{cat_id}_{i:03d}.jpg", "width": 100, "height": 80})
            visible = 2 if i == 0 else 17  # image 0 of each species has too few keypoints
            annotations.append({"id": image_id, "image_id": image_id, "category_id": cat_id, "iscrowd": 0,
                                "bbox": [5, 6, 50, 40], "keypoints": _keypoints(visible), "num_keypoints": visible})
    # a second animal in the dog's image 1 -> that image is dropped
    annotations.append({"id": 999, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 1, 1],
                        "keypoints": _keypoints(17), "num_keypoints": 17})
    categories = [{"id": c, "name": n, "supercategory": f} for c, n, f, _ in SPECIES]
    thirds = [images[0::3], images[1::3], images[2::3]]
    for part, subset in zip(("train", "val", "test"), thirds):
        ids = {im["id"] for im in subset}
        coco = {"images": subset, "annotations": [a for a in annotations if a["image_id"] in ids],
                "categories": categories}
        (root / "annotations" / f"ap10k-{part}-split1.json").write_text(json.dumps(coco))


@pytest.fixture(scope="module")
def ap10k_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ap10k")
    _write(root)
    return root


def test_intra_species_splits(ap10k_root):
    test = load_ap10k(ap10k_root)
    assert test.categories == ["cat", "dog", "fox"]
    assert len(test) == 3 * 30 * 29 // 2  # all unordered pairs of the last 30 images
    dog = [p for p in test if p.category == "dog"]
    names = sorted({p.source.meta["file_name"] for p in dog} | {p.target.meta["file_name"] for p in dog})
    assert names[0] == "1_025.jpg" and names[-1] == "1_054.jpg"
    assert dog[0].source.bbox.tolist() == [5, 6, 55, 46] and dog[0].source.size == (100, 80)
    assert test.symmetry["dog"]["twin"][0] == 1
    val = load_ap10k(ap10k_root, split="val")
    assert len(val) == 3 * 20 * 19 // 2
    train = load_ap10k(ap10k_root, split="train")
    # dog: 55 - 2 dropped (too few keypoints; two animals) - 50 = 3 train images -> 3 pairs (< 150);
    # fox: 52 - 1 - 50 = 1 train image -> no pair
    assert sum(p.category == "dog" for p in train) == 3 and sum(p.category == "fox" for p in train) == 0


def test_cross_settings(ap10k_root):
    cross_species = load_ap10k(ap10k_root, setting="cross-species")
    assert {p.category for p in cross_species} == {"Canidae"}
    assert all(p.source.category != p.target.category for p in cross_species)
    cross_family = load_ap10k(ap10k_root, split="val", setting="cross-family")
    assert len(cross_family) == 20
    assert all(p.source.meta["family"] != p.target.meta["family"] for p in cross_family)
    assert len(cross_species) == 30 * 30  # every dog-fox pair of the test split (fewer than 900 valid)
    again = load_ap10k(ap10k_root, split="val", setting="cross-family")
    assert [(p.source.path, p.target.path) for p in again] == [(p.source.path, p.target.path) for p in cross_family]
    other_seed = load_ap10k(ap10k_root, split="val", setting="cross-family", seed=0)
    assert [(p.source.path, p.target.path) for p in other_seed] != [(p.source.path, p.target.path) for p in cross_family]


def test_split_images_order():
    from geocorr.datasets.base import ImageAnnotation

    anns = [ImageAnnotation(f"{i}.jpg", np.zeros((17, 2)), np.ones(17, bool), (1, 1), "dog",
                            meta={"file_name": f"{i:02d}.jpg"}) for i in reversed(range(60))]
    parts = split_images(anns)
    assert [a.meta["file_name"] for a in parts["test"]][:1] == ["30.jpg"]
    assert len(parts["val"]) == 20 and len(parts["train"]) == 10


def test_bad_inputs(ap10k_root, tmp_path):
    with pytest.raises(ValueError, match="setting must be one of"):
        load_ap10k(ap10k_root, setting="cross-genus")
    with pytest.raises(ValueError, match="train split is intra-species only"):
        load_ap10k(ap10k_root, split="train", setting="cross-family")
    with pytest.raises(FileNotFoundError, match="AP-10K annotation file"):
        load_ap10k(tmp_path)
    (tmp_path / "annotations").mkdir()
    for part in ("train", "val", "test"):
        (tmp_path / "annotations" / f"ap10k-{part}-split1.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="not a COCO keypoint file"):
        load_ap10k(tmp_path)
