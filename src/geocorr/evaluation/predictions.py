"""Exported predictions: everything a metric needs, without the model.

``geocorr eval --save-predictions FILE`` writes one; ``geocorr metrics FILE`` recomputes every metric
from it, so two protocols (or two libraries writing this format) can be compared on identical
predictions. The file is JSON (``.json``; ``.json.gz`` is gzip-compressed)::

    {"format": "geocorr-predictions", "version": 1,
     "dataset": "spair", "split": "test",
     "config": {...},            # the run's config (method, backbone, image size, …)
     "symmetry": {category: {"twin": [...], "geo_groups": [[...]]}},
     "pairs": [{"category", "source", "target",
                "source_keypoints", "target_keypoints",   # K × 2 pixels, null = not annotated
                "source_visible", "target_visible",       # K booleans
                "predicted", "scores",                    # K × 2 target pixels and K scores,
                                                          #   null where the source keypoint is hidden
                "source_bbox", "target_bbox",             # x0, y0, x1, y1
                "source_size", "target_size"}, …]}        # width, height

Coordinates are original-image pixels, pixel-centre convention (see :mod:`geocorr.datasets.base`).
Every keypoint visible in the source is predicted, also those hidden in the target (KAP and
GECO's visibility buckets score those).
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "geocorr-predictions"
VERSION = 1
_ARRAYS = {
    "source_keypoints": (-1, 2), "target_keypoints": (-1, 2), "source_visible": (-1,),
    "target_visible": (-1,), "predicted": (-1, 2), "scores": (-1,), "source_bbox": (4,),
    "target_bbox": (4,), "source_size": (2,), "target_size": (2,),
}


@dataclass
class PairPrediction:
    """The prediction of one pair; K keypoints of the category (shapes in the module docstring)."""

    category: str
    source: str
    target: str
    source_keypoints: np.ndarray
    target_keypoints: np.ndarray
    source_visible: np.ndarray
    target_visible: np.ndarray
    predicted: np.ndarray
    scores: np.ndarray
    source_bbox: np.ndarray
    target_bbox: np.ndarray
    source_size: np.ndarray
    target_size: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.source_visible)
        for name, shape in _ARRAYS.items():
            dtype = bool if name.endswith("visible") else np.float64
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if dtype is bool:
                value = value.astype(bool)
            wanted = tuple(k if s == -1 else s for s in shape)
            if value.shape != wanted:
                raise ValueError(f"pair {self.source} -> {self.target}: {name} must have shape {wanted}, "
                                 f"got {value.shape}")
            setattr(self, name, value)
        for name in ("source_size", "target_size"):
            size = getattr(self, name)
            if not (np.isfinite(size).all() and (size >= 1).all()):
                raise ValueError(f"pair {self.source} -> {self.target}: {name} must be a positive (width, "
                                 f"height), got {size.tolist()}")

    def to_json(self) -> dict:
        out: dict[str, object] = {"category": self.category, "source": self.source, "target": self.target}
        for name in _ARRAYS:
            value = getattr(self, name)
            out[name] = value.tolist() if value.dtype == bool else _nan_to_none(value)
        return out

    @classmethod
    def from_json(cls, record: dict) -> PairPrediction:
        values = {}
        for name in _ARRAYS:
            if name not in record:
                raise ValueError(f"prediction record is missing {name!r}")
            values[name] = np.array(record[name], dtype=np.float64 if not name.endswith("visible") else bool)
        return cls(category=record["category"], source=record["source"], target=record["target"], **values)


def _nan_to_none(array: np.ndarray) -> list:
    """The array as nested lists, NaN as None (JSON null)."""
    out = array.astype(object)
    out[np.isnan(array)] = None
    return out.tolist()


@dataclass
class Predictions:
    """All predictions of one run on one dataset split."""

    dataset: str
    split: str
    config: dict
    pairs: list[PairPrediction]
    symmetry: dict[str, dict] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)  # timing of the run that made them (not a config)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "format": FORMAT, "version": VERSION, "dataset": self.dataset, "split": self.split,
            "config": self.config, "symmetry": self.symmetry, "stats": self.stats,
            "pairs": [p.to_json() for p in self.pairs],
        }
        text = json.dumps(record)
        if path.name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Predictions:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"predictions file: no such file: {path}")
        try:
            raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
            record = json.loads(raw)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a geocorr predictions file ({err})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"{path}: not a geocorr predictions file (no \"format\": \"{FORMAT}\")")
        if record.get("version") != VERSION:
            raise ValueError(f"{path}: predictions format version {record.get('version')}, expected {VERSION}")
        missing = [k for k in ("dataset", "split", "config", "pairs") if k not in record]
        if missing:
            raise ValueError(f"{path}: predictions file lacks {', '.join(missing)}")
        try:
            pairs = [PairPrediction.from_json(p) for p in record["pairs"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: malformed prediction record ({err})") from None
        return cls(record["dataset"], record["split"], record["config"], pairs, record.get("symmetry", {}),
                   record.get("stats", {}))
