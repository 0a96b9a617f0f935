import numpy as np
import pytest
from PIL import Image

from geocorr.datasets import load_dataset
from geocorr.datasets.cub import load_cub

PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing", "nape",
         "right eye", "right leg", "right wing", "tail", "throat"]


@pytest.fixture
def cub_root(tmp_path):
    """6 images (ids 1..6) of 2 species; 1, 2, 3, 5 are test images."""
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "parts.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(PARTS)))
    lines, locs = [], []
    for i in range(1, 7):
        rel = f"{1 + (i > 3):03d}.Bird_{i}/img_{i}.jpg"
        (tmp_path / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40 + i, 30), (200, 10, 10)).save(tmp_path / "images" / rel)
        lines.append(f"{i} {rel}")
        for p in range(1, 16):
            visible = int(p <= 10)
            locs.append(f"{i} {p} {float(p * 2 if visible else 0)} {float(i if visible else 0)} {visible}")
    (tmp_path / "images.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "image_class_labels.txt").write_text("".join(f"{i} {1 + (i > 3)}\n" for i in range(1, 7)))
    (tmp_path / "classes.txt").write_text("1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n")
    (tmp_path / "train_test_split.txt").write_text("".join(f"{i} {int(i in (4, 6))}\n" for i in range(1, 7)))
    (tmp_path / "bounding_boxes.txt").write_text("".join(f"{i} 1.0 2.0 10.0 20.0\n" for i in range(1, 7)))
    (tmp_path / "parts" / "part_locs.txt").write_text("\n".join(locs) + "\n")
    return tmp_path


def test_fake_tree(cub_root):
    data = load_dataset("cub", cub_root, num_pairs=5)
    assert len(data) == 5 and data.categories == ["bird"]
    assert len({(p.source.path, p.target.path) for p in data}) == 5
    test_names = {"img_1.jpg", "img_2.jpg", "img_3.jpg", "img_5.jpg"}
    assert all(p.source.path.name in test_names and p.source.path != p.target.path for p in data)
    ann = data[0].source
    i = int(ann.path.stem.split("_")[1])
    assert ann.visible.tolist() == [True] * 10 + [False] * 5
    assert ann.keypoints[1].tolist() == [4.0, float(i)] and np.isnan(ann.keypoints[12]).all()
    assert ann.bbox.tolist() == [1, 2, 11, 22] and ann.size == (40 + i, 30)
    assert data.symmetry["bird"]["twin"][6] == 10  # left eye <-> right eye
    # all 4 * 3 ordered test pairs when asking for more; seeded
    assert len(load_cub(cub_root, num_pairs=100)) == 12
    assert [p.source.path for p in load_cub(cub_root, num_pairs=5)] == [p.source.path for p in data]


def test_bad_inputs(cub_root):
    with pytest.raises(ValueError, match="split must be one of"):
        load_cub(cub_root, split="val")
    with pytest.raises(ValueError, match="num_pairs"):
        load_cub(cub_root, num_pairs=0)
    (cub_root / "parts" / "parts.txt").write_text("1 back\n")
    with pytest.raises(ValueError, match="expected 15 parts"):
        load_cub(cub_root)
    (cub_root / "bounding_boxes.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="line 1: expected 5 columns"):
        load_cub(cub_root)
    (cub_root / "images.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"CUB images\.txt"):
        load_cub(cub_root)


def test_geco_cleaned_mat_and_half_split_pairs(tmp_path):
    from PIL import Image
    from scipy.io import savemat

    from geocorr.datasets.cub import half_split_pairs, load_cub

    # GECO's sampler by its rule: permutation seeded 123 + pairs so far, first half -> second half
    first, second = half_split_pairs(5, 4)
    p0, p1, p2 = (np.random.RandomState(seed).permutation(4) for seed in (123, 125, 127))
    assert first == [*p0[:2], *p1[:2], p2[0]]
    assert second[:2] == p0[2:].tolist() and all(a != b for a, b in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="at least 2 images"):
        half_split_pairs(3, 1)
    # a 3-image cleaned .mat: part 0 at x = W (kept), part 1 at x = W + 1 and part 2 at y = -1 (outside:
    # invisible), part 3 with v = 0 (hidden)
    (tmp_path / "images").mkdir()
    records = np.zeros((3,), dtype=[("rel_path", "O"), ("parts", "O"), ("bbox", "O"), ("width", "O"), ("height", "O")])
    for i in range(3):
        Image.new("RGB", (40, 30)).save(tmp_path / "images" / f"b{i}.jpg")
        parts = np.ones((3, 15)) * 5
        parts[:, 0], parts[:, 1], parts[:, 2], parts[2, 3] = (40, 5, 1), (41, 5, 1), (5, -1, 1), 0
        records[i] = (f"b{i}.jpg", parts, {"x1": 1.0, "y1": 2.0, "x2": 30.0, "y2": 20.0}, 40, 30)
    savemat(tmp_path / "test_cub_cleaned.mat", {"images": records})
    data = load_cub(tmp_path, num_pairs=4, cleaned_mat=tmp_path / "test_cub_cleaned.mat")
    src, trg = half_split_pairs(4, 3)
    assert [(p.source.path.name, p.target.path.name) for p in data] == [(f"b{a}.jpg", f"b{b}.jpg") for a, b in
                                                                        zip(src, trg, strict=True)]
    ann = data[0].source
    assert ann.visible[:4].tolist() == [True, False, False, False] and ann.visible[4:].all()
    assert ann.keypoints[0].tolist() == [40.0, 5.0] and ann.bbox.tolist() == [1.0, 2.0, 30.0, 20.0]
    assert ann.size == (40, 30) and ann.meta["outside_image"] == 2
    with pytest.raises(ValueError, match="cleaned_mat gives GECO's test split"):
        load_cub(tmp_path, split="train", cleaned_mat=tmp_path / "test_cub_cleaned.mat")
