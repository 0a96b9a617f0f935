"""Small file helpers shared by the dataset loaders: clear errors for missing parts of a tree."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError


def require_dir(path: str | Path, what: str) -> Path:
    """``path`` as a Path; FileNotFoundError naming ``what`` when it is not a directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: no such directory: {path}")
    return path


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path; FileNotFoundError naming ``what`` when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file: {path}")
    return path


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    path = require_file(path, "image")
    try:
        with Image.open(path) as image:
            return image.size
    except UnidentifiedImageError as err:
        raise ValueError(f"{path}: not a readable image file") from err
