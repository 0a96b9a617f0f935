import csv
import shutil

import numpy as np
import pytest
from PIL import Image

from geocorr.datasets import load_dataset
from geocorr.datasets.pf_pascal import load_pf_pascal


def _write_images(root, names, size=(12, 8)):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            Image.new("RGB", size, (0, 128, 0)).save(path)


def test_real_test_list(tmp_path, shared_data):
    listing = shared_data / "pf-pascal-meta" / "test_pairs_pf_pascal.csv"
    rows = list(csv.DictReader(listing.open()))
    _write_images(tmp_path, {r["source_image"] for r in rows} | {r["target_image"] for r in rows})
    shutil.copy(listing, tmp_path / "test_pairs_pf_pascal.csv")
    data = load_dataset("pf-pascal", tmp_path)
    assert len(data) == 299 and len(data.categories) == 20
    first = data[0]
    assert first.category == "aeroplane" and first.source.path.name == "2011_001407.jpg"
    assert first.source.keypoints[0] == pytest.approx([253.631662222222 - 1, 58.1813333333333 - 1])
    assert first.target.keypoints[-1] == pytest.approx([231.41072 - 1, 86.1214285714286 - 1])
    assert first.source.num_keypoints == first.target.num_keypoints == 11
    assert first.source.size == (12, 8) and first.source.visible.all()
    np.testing.assert_allclose(first.target.bbox[:2], first.target.keypoints.min(0))


def test_bad_rows(tmp_path):
    _write_images(tmp_path, ["a.jpg", "b.jpg"])
    listing = tmp_path / "test_pairs_pf_pascal.csv"
    header = "source_image,target_image,class,XA,YA,XB,YB\n"
    listing.write_text(header + "a.jpg,b.jpg,21,1;2,1;2,1;2,1;2\n")
    with pytest.raises(ValueError, match=r"line 2: class must be a VOC class index 1\.\.20, got 21"):
        load_pf_pascal(tmp_path)
    listing.write_text(header + "a.jpg,b.jpg,1,1;2,1;2,1,1;2\n")
    with pytest.raises(ValueError, match="same number of keypoints"):
        load_pf_pascal(tmp_path)
    listing.write_text(header + "a.jpg,b.jpg,1,1;x,1;2,1;2,1;2\n")
    with pytest.raises(ValueError, match="column XA"):
        load_pf_pascal(tmp_path)
    listing.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="expected the columns"):
        load_pf_pascal(tmp_path)
    listing.write_text(header + "a.jpg,missing.jpg,1,1;2,1;2,1;2,1;2\n")
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg"):
        load_pf_pascal(tmp_path)
    with pytest.raises(FileNotFoundError, match="PF-Pascal pair list"):
        load_pf_pascal(tmp_path, split="val")
