"""Progress bars of the long SemAlign3D loops (tqdm: with ETA)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def bar(items: Iterable[T], progress: bool | None, desc: str, total: int | None = None) -> Iterable[T]:
    """``items`` with a tqdm bar: progress True shows it, False hides it, None shows it only on a terminal."""
    return tqdm(items, desc=desc, total=total, disable=None if progress is None else not progress, leave=False)
