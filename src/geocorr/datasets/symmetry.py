"""Per-dataset keypoint symmetry tables shipped with geocorr.

``twin``: each keypoint's symmetric counterpart (left eye <-> right eye, and front <-> back where a
part repeats); GECO's negatives, visibility buckets and (as published) flip augmentation use it.
``flip``: what a horizontal mirror does to the ids (left <-> right only); GeoAware uses it.
``geo_groups``: GeoAware's semantic subgroups; ``side`` (SPair-71k): 0 neutral, 1 left, 2 right.
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources

DATASETS = ("spair", "ap10k", "cub")


@cache
def _table(dataset: str) -> dict:
    if dataset not in DATASETS:
        raise ValueError(f"no keypoint symmetry table for dataset {dataset!r}; known: {', '.join(DATASETS)}")
    path = resources.files("geocorr") / "data" / "keypoint_symmetry" / f"{dataset}.json"
    return json.loads(path.read_text())


def symmetry_table(dataset: str, category: str | None = None) -> dict:
    """The table of one category: {"names", "twin", "flip", ["geo_groups"], ["side"]}.

    SPair-71k is per category (``category`` required); AP-10K and CUB-200 have one table.
    """
    table = _table(dataset)
    if "categories" not in table:
        return {k: v for k, v in table.items() if k != "source"}
    if category not in table["categories"]:
        raise ValueError(
            f"{dataset} has no category {category!r}; known: {', '.join(sorted(table['categories']))}"
        )
    return table["categories"][category]


def categories(dataset: str) -> list[str]:
    """The categories that have their own table (empty for single-table datasets)."""
    return sorted(_table(dataset).get("categories", {}))
