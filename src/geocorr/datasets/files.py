"""Small file helpers shared by the dataset loaders: clear errors for missing parts of a tree."""
from __future__ import annotations

from pathlib import Path

from ..images import image_size as _image_size


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
    """(width, height) of an image file as :func:`geocorr.images.load_image` returns it (EXIF
    orientation applied, so sizes agree with the pixels), read from its header only."""
    return _image_size(require_file(path, "image"), str(path))


def read_mat(path: Path, **options) -> dict:
    """``scipy.io.loadmat(path, **options)``; ValueError naming the file when it is not a readable
    MATLAB file. scipy's reader fails on foreign bytes with assorted exception types (IndexError,
    TypeError, ...), all of which mean the same here; it never unpickles, so nothing is executed."""
    from scipy.io import loadmat

    try:
        return loadmat(path, **options)
    except Exception as err:  # any failure of the reader means: not a readable .mat
        raise ValueError(f"{path}: not a readable .mat file ({type(err).__name__}: {err})") from None
