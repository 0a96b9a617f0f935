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
    # a second animal in the dog's image 1 -> GeoAware keeps the first annotation (the image stays)
    annotations.append({"id": 999, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 1, 1],
                        "keypoints": _keypoints(17), "num_keypoints": 17})
    categories = [{"id": c, "name": n, "supercategory": f} for c, n, f, _ in SPECIES]
    thirds = [images[0::3], images[1::3], images[2::3]]
    for part, subset in zip(("train", "val", "test"), thirds, strict=True):
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
    # dog: 55 - 1 dropped (too few keypoints) - 50 = 4 train images -> 4 * 3 / 2 = 6 pairs (< 200);
    # fox: 52 - 1 - 50 = 1 train image -> no pair
    assert sum(p.category == "dog" for p in train) == 6 and sum(p.category == "fox" for p in train) == 0


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
    pairs_of = [(p.source.path, p.target.path) for p in cross_family]
    assert [(p.source.path, p.target.path) for p in other_seed] != pairs_of


def test_split_images_order():
    from geocorr.datasets.base import ImageAnnotation

    anns = [ImageAnnotation(f"{i}.jpg", np.zeros((17, 2)), np.ones(17, bool), (1, 1), "dog",
                            meta={"file_name": f"{59 - i:02d}.jpg", "image_id": i}) for i in reversed(range(60))]
    parts = split_images(anns)  # ordered by image id, not by file name
    assert [a.meta["image_id"] for a in parts["test"]][:1] == [30]
    assert parts["test"][0].meta["file_name"] == "29.jpg"
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


def test_geoaware_notebook_rules(ap10k_root, tmp_path):
    test = load_ap10k(ap10k_root)
    # GeoAware's shuffle gives pairs a random direction: both directions occur among the dog pairs
    dog = [p for p in test if p.category == "dog"]
    later_first = sum(p.source.meta["image_id"] > p.target.meta["image_id"] for p in dog)
    assert 0 < later_first < len(dog)
    # a crowd list of image ids (zero-padded as GeoAware's file names) drops those images
    crowd = tmp_path / "crowd.txt"
    crowd.write_text("000000000054\n000000000055\n")  # the dog's last two images
    dropped = load_ap10k(ap10k_root, crowd_list=crowd)
    names = {a.meta["image_id"] for p in dropped if p.category == "dog" for a in (p.source, p.target)}
    # usable dog images 2..55 -> test 26..55; without 54 and 55 the last 30 are 24..53
    assert 55 not in names and 54 not in names and min(names) == 24
    crowd.write_text("dog\n")
    with pytest.raises(ValueError, match=r"crowd\.txt, line 1: expected an image id"):
        load_ap10k(ap10k_root, crowd_list=crowd)


def test_half_visible_keypoints(tmp_path):
    # two images of one species whose 4 keypoints have v = 1 in the source and v = 2 in the target:
    # GeoAware's pair rule sums (1/2)(2/2) = 0.5 per keypoint: 4 * 0.5 = 2 < 3 -> no pair; with 6
    # such keypoints 3 >= 3 -> a pair. GeoAware counts v = 1 as visible, GECO does not.
    (tmp_path / "annotations").mkdir()

    def kps(v, n):
        return [value for k in range(17) for value in (10.0 + k, 20.0, v if k < n else 0)]

    for n, expected in ((4, 0), (6, 1)):
        images = [{"id": i, "file_name": f"{i}.jpg", "width": 50, "height": 40} for i in (1, 2)]
        anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9], "keypoints": kps(1, n),
                 "num_keypoints": n},
                {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 9, 9], "keypoints": kps(2, n),
                 "num_keypoints": n}]
        coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "dog", "supercategory": "C"}]}
        (tmp_path / "annotations" / "ap10k-test-split1.json").write_text(json.dumps(coco))
        for part in ("train", "val"):
            (tmp_path / "annotations" / f"ap10k-{part}-split1.json").write_text(
                json.dumps({"images": [], "annotations": [], "categories": []}))
        data = load_ap10k(tmp_path)
        assert len(data) == expected
    pair = data[0]
    source = pair.source if pair.source.meta["image_id"] == 1 else pair.target
    assert source.visible.sum() == 6
    geco = load_ap10k(tmp_path, min_visibility=2)
    source = geco[0].source if geco[0].source.meta["image_id"] == 1 else geco[0].target
    assert source.visible.sum() == 0
