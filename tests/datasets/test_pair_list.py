import json
from pathlib import Path

import numpy as np
import pytest

from geocorr.datasets import load_dataset
from geocorr.datasets.base import ImageAnnotation, Pair, PairDataset
from geocorr.datasets.pair_list import read_pair_list, select_pairs, write_pair_list
from geocorr.datasets.spair import with_pair_boxes


def _dataset(root: Path) -> PairDataset:
    def ann(name: str) -> ImageAnnotation:
        return ImageAnnotation(root / "PF-dataset-PASCAL" / "JPEGImages" / name, np.zeros((1, 2)), np.ones(1, bool),
                               (10, 10), "aeroplane")
    names = ["2011_001407.jpg", "2010_004184.jpg", "2009_002432.jpg", "2010_004312.jpg"]
    a = {n: ann(n) for n in names}
    pairs = [Pair(a[names[0]], a[names[1]], "aeroplane"), Pair(a[names[2]], a[names[3]], "aeroplane"),
             Pair(a[names[1]], a[names[0]], "aeroplane")]
    return PairDataset("pf-pascal", "test", pairs, pairwise_keypoints=True)


def test_official_pf_pascal_csv_selects_pairs_in_its_order(tmp_path, shared_data):
    data = _dataset(tmp_path)
    official = (shared_data / "pf-pascal-meta" / "test_pairs_pf_pascal.csv").read_text().splitlines()
    listing = tmp_path / "two.csv"
    listing.write_text("\n".join([official[0], official[2], official[1]]) + "\n")  # header, 2nd row, 1st row
    chosen = select_pairs(data, read_pair_list(listing), tmp_path)
    assert chosen == [data.pairs[1], data.pairs[0]]


def test_written_list_reads_back_to_the_same_pairs(tmp_path):
    data = _dataset(tmp_path)
    path = write_pair_list(tmp_path / "out_pairs.csv", data.pairs[::-1], tmp_path)
    assert path.read_text().splitlines()[1] == \
        "0,aeroplane,PF-dataset-PASCAL/JPEGImages/2010_004184.jpg,PF-dataset-PASCAL/JPEGImages/2011_001407.jpg"
    assert select_pairs(data, read_pair_list(path), tmp_path) == data.pairs[::-1]
    as_json = tmp_path / "pairs.json"
    as_json.write_text(json.dumps([["2009_002432.jpg", "2010_004312.jpg"],
                                   {"source": "2010_004184", "target": "2011_001407", "category": "aeroplane"}]))
    assert select_pairs(data, read_pair_list(as_json), tmp_path) == [data.pairs[1], data.pairs[2]]


def test_unknown_pair_and_bad_files_are_named(tmp_path):
    data = _dataset(tmp_path)
    listing = tmp_path / "bad.csv"
    listing.write_text("source,target\n2011_001407.jpg,2009_002432.jpg\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 2: no pair 2011_001407\.jpg -> 2009_002432\.jpg .*per"):
        select_pairs(data, read_pair_list(listing), tmp_path)
    # datasets whose keypoint ids are shared by all images: a new pair of two of their images is built
    shared = PairDataset("ap10k", "test", data.pairs)
    built = select_pairs(shared, read_pair_list(listing), tmp_path)[0]
    assert (built.source.path.name, built.target.path.name, built.category) == \
        ("2011_001407.jpg", "2009_002432.jpg", "aeroplane")
    listing.write_text("source,target\n2011_001407.jpg,1999_000000.jpg\n")
    with pytest.raises(ValueError, match=r"bad\.csv, line 2: no image 1999_000000\.jpg in ap10k test"):
        select_pairs(shared, read_pair_list(listing), tmp_path)
    listing.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="needs the columns source,target"):
        read_pair_list(listing)
    with pytest.raises(ValueError, match=r"must be \.csv, \.json or \.txt"):
        read_pair_list(listing.rename(tmp_path / "bad.xml"))
    with pytest.raises(FileNotFoundError, match="--pairs list: no such file"):
        read_pair_list(tmp_path / "missing.csv")


def test_spair_layout_list_and_pair_file_boxes(shared_data):
    root = shared_data / "spair-sample" / "SPair-71k"
    data = load_dataset("spair", root, split="test")
    chosen = select_pairs(data, read_pair_list(root / "Layout" / "small" / "test.txt"), root)
    assert chosen == data.pairs
    record = json.loads(next((root / "PairAnnotation" / "test").glob("*.json")).read_text())
    boxed = with_pair_boxes(data)
    assert boxed.pairs[0].target.bbox.tolist() == [float(v) for v in record["trg_bndbox"]]
    assert boxed.pairs[0].source.bbox.tolist() == [float(v) for v in record["src_bndbox"]]


def test_pair_annotation_folders(tmp_path):
    data = PairDataset("ap10k", "test", _dataset(tmp_path).pairs)
    folder = tmp_path / "PairAnnotation" / "test"
    folder.mkdir(parents=True)
    # GeoAware's AP-10K files: the image is the annotation file's stem; read in sorted file order
    (folder / "b-a:aeroplane.json").write_text(json.dumps({
        "src_json_path": "data/ap-10k/ImageAnnotation/x/y/2010_004184.json",
        "trg_json_path": "data/ap-10k/ImageAnnotation/x/y/2011_001407.json"}))
    (folder / "a-b:aeroplane.json").write_text(json.dumps({"src_imname": "2009_002432.jpg",
                                                           "trg_imname": "2010_004312.jpg", "category": "aeroplane"}))
    chosen = select_pairs(data, read_pair_list(folder), tmp_path)
    assert chosen == [data.pairs[1], data.pairs[2]]
    (folder / "c.json").write_text(json.dumps({"pairs": []}))
    with pytest.raises(ValueError, match=r"c\.json: not a pair annotation"):
        read_pair_list(folder)
