import shutil

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from geocorr.datasets import load_dataset
from geocorr.datasets.pf_willow import load_pf_willow


def test_real_pf_willow_has_the_standard_900_pairs(pf_willow_root):
    data = load_pf_willow(pf_willow_root)
    assert len(data) == 900
    assert len(data.categories) == 10 and "duck(S)" in data.categories
    assert len(data.images()) == 100
    pair = data[0]
    assert pair.source.path != pair.target.path and pair.category == pair.source.path.parent.name
    # each ordered pair once
    assert len({(p.source.path, p.target.path) for p in data}) == 900


def test_keypoints_are_zero_based_pixel_centres(pf_willow_root):
    data = load_dataset("pf-willow", pf_willow_root)
    ann = next(a for a in data.images() if a.path.name == "Cars_006a.png")
    raw = loadmat(ann.path.with_suffix(".mat"))["pts_coord"]
    np.testing.assert_allclose(ann.keypoints, raw.T - 1)
    assert ann.visible.all() and ann.size == (300, 200)
    np.testing.assert_allclose(ann.bbox, [*(raw.T - 1).min(0), *(raw.T - 1).max(0)])


def _tiny_tree(tmp_path, pf_willow_root):
    folder = tmp_path / "duck(S)"
    folder.mkdir()
    for src in sorted((pf_willow_root / "duck(S)").glob("*.png"))[:3]:
        shutil.copy(src, folder / src.name)
        shutil.copy(src.with_suffix(".mat"), folder / src.with_suffix(".mat").name)
    return folder


def test_tiny_tree_and_bad_inputs(tmp_path, pf_willow_root):
    folder = _tiny_tree(tmp_path, pf_willow_root)
    assert len(load_pf_willow(tmp_path)) == 6
    with pytest.raises(ValueError, match="only a 'test' split"):
        load_pf_willow(tmp_path, split="train")
    with pytest.raises(FileNotFoundError, match="PF-Willow root"):
        load_pf_willow(tmp_path / "missing")
    first = sorted(folder.glob("*.mat"))[0]
    savemat(first, {"pts_coord": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"pts_coord.*\(2, 10\)"):
        load_pf_willow(tmp_path)
    first.unlink()
    with pytest.raises(FileNotFoundError, match="PF-Willow annotation"):
        load_pf_willow(tmp_path)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'willow'; available: .*pf-willow"):
        load_dataset("willow", ".")
