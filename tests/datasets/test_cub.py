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
    with pytest.raises(FileNotFoundError, match="CUB images.txt"):
        load_cub(cub_root)
