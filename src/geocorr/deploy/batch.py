"""Features of a batch in which some members may be unreadable: the others are not lost."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..images import ImageLike, load_image
from ..methods.base import DenseMatcher, Features


@dataclass
class BatchFeatures:
    """Features of the readable members of a batch, and why the others failed.

    features: Features of the readable images (row k is input ``index[k]``), None if none was readable.
    index: input position of each row of ``features``.
    errors: input position -> message naming the item and what was wrong.
    """

    features: Features | None
    index: list[int]
    errors: dict[int, str]


def features_per_item(model: DenseMatcher, images: Sequence[ImageLike],
                      names: Sequence[str] | None = None) -> BatchFeatures:
    """``model.features(images)`` where an unreadable image is reported instead of failing the batch.

    names: what each image is called in error messages (default ``images[i]``).
    """
    if names is not None and len(names) != len(images):
        raise ValueError(f"names: expected one per image ({len(images)}), got {len(names)}")
    loaded, index, errors = [], [], {}
    for i, image in enumerate(images):
        try:
            loaded.append(load_image(image, names[i] if names is not None else f"images[{i}]"))
            index.append(i)
        except (ValueError, OSError, TypeError) as err:
            errors[i] = str(err)
    return BatchFeatures(model.features(loaded) if loaded else None, index, errors)
