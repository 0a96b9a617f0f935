"""GECO's view of each training dataset: padded keypoint count, augmentation, and PF-Pascal's keypoints.

Facts from the official code (reginehartwig/geco @ 03c8314):

* the object mass of the OT marginals uses the dataset's **padded** keypoint count ``numkp``
  (src/losses/__init__.py ``get_loss``): SPair-71k 30 = rows of ``spair_keypoint_names.csv``
  (src/dataset/spair_single.py ``get_kp_name`` with ``padding_kps``; download_data/prepare_spair.sh
  copies the table into the SPair-71k folder), AP-10K 17 = its keypoint list
  (src/dataset/apk_pairs.py), PF-Pascal 20 (src/dataset/pfpascal_pairs.py ``process_kps_pascal``);
* PF-Pascal trains on the keypoints of its ``Annotations/<class>/<image>.mat`` files, invisible
  ones included, **without augmentation** and without symmetric negatives
  (``PFPascalPairs`` is ``sup_original``; its ``kps_symm_only`` are all zero).

Datasets GECO did not train on (PF-Willow, CUB…) use the largest keypoint count of their
categories and GECO's augmentation.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from ....datasets.base import ImageAnnotation, Pair, PairDataset
from ....datasets.files import require_file

PF_PASCAL_KEYPOINTS = 20  # official padded count (pfpascal_pairs.py process_kps_pascal)
SPAIR_NAMES_FILE = "spair_keypoint_names.csv"
AP10K_ANNOTATION = "annotations/ap10k-train-split1.json"


@dataclass(frozen=True)
class GecoSource:
    """One training dataset as GECO uses it.

    dataset: the pairs (keypoints with ids shared within a category).
    num_keypoints: padded keypoint count of the object mass (foreground share (n_visible + 1) /
        (num_keypoints + 1) · mass).
    augment: random crop, flip, colour jitter, blur, solarize (False: the image resized only).
    """

    dataset: PairDataset
    num_keypoints: int
    augment: bool = True

    def __post_init__(self) -> None:
        largest = max((p.source.num_keypoints for p in self.dataset), default=0)
        if self.num_keypoints < largest:
            raise ValueError(f"{self.dataset.name}: num_keypoints {self.num_keypoints} is below the "
                             f"{largest} keypoints of its categories")


def _image_root(ann: ImageAnnotation, depth: int, folder: str, dataset: str) -> Path:
    """The root of an image stored ``depth`` folders deep under ``<root>/<folder>/``."""
    path = Path(ann.path)
    if len(path.parents) <= depth or path.parents[depth - 1].name != folder:
        raise ValueError(f"{dataset} image {path} is not in the official layout (<root>/{folder}/…)")
    return path.parents[depth]


def spair_padded_keypoints(root: str | Path) -> int:
    """Rows of ``<root>/spair_keypoint_names.csv`` (30 for the official table)."""
    path = require_file(Path(root) / SPAIR_NAMES_FILE,
                        "SPair-71k keypoint-name table (GECO's padded keypoint count; GECO's "
                        "download_data/prepare_spair.sh copies it into the SPair-71k folder)")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or not rows[0] or rows[0][0].strip() != "kp_id":
        raise ValueError(f"{path}: not SPair-71k's keypoint-name table (expected a 'kp_id,<categories>' header)")
    return len(rows) - 1


def ap10k_padded_keypoints(root: str | Path) -> int:
    """Length of the keypoint list of the AP-10K categories in ``annotations/ap10k-train-split1.json`` (17)."""
    path = require_file(Path(root) / AP10K_ANNOTATION, "AP-10K annotation file (GECO's padded keypoint count)")
    try:
        categories = json.loads(path.read_text()).get("categories", [])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    counts = {len(c["keypoints"]) for c in categories if isinstance(c.get("keypoints"), list)}
    if len(counts) != 1 or len(categories) != sum(isinstance(c.get("keypoints"), list) for c in categories):
        raise ValueError(f"{path}: every category needs the same 'keypoints' name list (the padded keypoint count)")
    return counts.pop()


def _pf_pascal_keypoints(ann: ImageAnnotation) -> ImageAnnotation:
    """The image with the keypoints of its ``.mat`` file (K ≤ 20 ids, NaN rows invisible), padded to 20."""
    image = Path(ann.path)
    mat = image.parents[1] / "Annotations" / ann.category / f"{image.stem}.mat"
    require_file(mat, f"PF-Pascal keypoint annotation of {image.name}")
    try:
        kps = np.asarray(loadmat(mat)["kps"], dtype=np.float64)
    except (KeyError, ValueError, MatReadError) as err:
        raise ValueError(f"{mat}: no readable 'kps' array ({err})") from None
    if kps.ndim != 2 or kps.shape[1] != 2 or len(kps) > PF_PASCAL_KEYPOINTS:
        raise ValueError(f"{mat}: 'kps' must be (K ≤ {PF_PASCAL_KEYPOINTS}, 2), got {kps.shape}")
    keypoints = np.full((PF_PASCAL_KEYPOINTS, 2), np.nan)
    keypoints[: len(kps)] = kps - 1.0  # MATLAB 1-based -> 0-based pixel centres (as the csv loader)
    visible = ~np.isnan(keypoints).any(1)
    return replace(ann, keypoints=np.where(visible[:, None], keypoints, np.nan), visible=visible, bbox=None)


def pf_pascal_training_pairs(dataset: PairDataset) -> PairDataset:
    """PF-Pascal pairs with every keypoint of each image's ``.mat`` file (invisible ones too).

    Images are expected at ``<root>/PF-dataset-PASCAL/JPEGImages/<image>.jpg``, annotations at
    ``<root>/PF-dataset-PASCAL/Annotations/<class>/<image>.mat``.
    """
    cache: dict[Path, ImageAnnotation] = {}

    def load(ann: ImageAnnotation) -> ImageAnnotation:
        if Path(ann.path) not in cache:
            _image_root(ann, 1, "JPEGImages", "PF-Pascal")
            cache[Path(ann.path)] = _pf_pascal_keypoints(ann)
        return cache[Path(ann.path)]

    pairs = [Pair(load(p.source), load(p.target), p.category, p.meta) for p in dataset]
    return replace(dataset, pairs=pairs, symmetry={})


def geco_source(dataset: PairDataset) -> GecoSource:
    """GECO's settings for a loaded dataset (see the module docstring); reads the padded count from
    the dataset's folder (found from its images' paths)."""
    if not len(dataset):
        raise ValueError(f"dataset {dataset.name} ({dataset.split}) has no pair")
    first = dataset[0].source
    if dataset.name == "spair":
        return GecoSource(dataset, spair_padded_keypoints(_image_root(first, 2, "JPEGImages", "SPair-71k")))
    if dataset.name == "ap10k":
        return GecoSource(dataset, ap10k_padded_keypoints(_image_root(first, 1, "data", "AP-10K")))
    if dataset.name == "pf-pascal":
        return GecoSource(pf_pascal_training_pairs(dataset), PF_PASCAL_KEYPOINTS, augment=False)
    return GecoSource(dataset, max(p.source.num_keypoints for p in dataset))
