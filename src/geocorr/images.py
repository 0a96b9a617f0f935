"""Reading images into tensors, with errors that name the input and what was wrong."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ImageLike = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]


def load_image(src: ImageLike, name: str = "image") -> torch.Tensor:
    """Read an RGB image into a float tensor.

    Args:
        src: a file path, a PIL image, an ``(H, W, 3)`` uint8 array or a ``(3, H, W)`` float tensor
            with values in [0, 1].
        name: how the input is called in error messages (an argument name or a file).
    Returns:
        (3, H, W) float32 tensor with values in [0, 1].
    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not an image, not RGB (grayscale, RGBA, ...), wrong shape, NaN or out-of-range
            values.
    """
    if isinstance(src, (str, Path)):
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file: {path}")
        try:
            with Image.open(path) as img:
                img.load()
                return _from_pil(img, f"{name} ({path})")
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{name}: {path} is not a readable image file ({err})") from None
    if isinstance(src, Image.Image):
        return _from_pil(src, name)
    if isinstance(src, np.ndarray):
        if src.ndim != 3 or src.shape[2] != 3:
            raise ValueError(f"{name}: expected an (H, W, 3) RGB array, got shape {src.shape}")
        if src.dtype != np.uint8:
            raise ValueError(f"{name}: expected a uint8 array, got {src.dtype}")
        return torch.from_numpy(np.array(src, copy=True)).permute(2, 0, 1).float() / 255.0
    if isinstance(src, torch.Tensor):
        if src.ndim != 3 or src.shape[0] != 3:
            raise ValueError(f"{name}: expected a (3, H, W) RGB tensor, got shape {tuple(src.shape)}")
        if not src.is_floating_point():
            raise ValueError(f"{name}: expected a float tensor in [0, 1], got {src.dtype}")
        if not torch.isfinite(src).all():
            raise ValueError(f"{name}: the image tensor contains NaN or inf")
        if src.min() < 0 or src.max() > 1:
            raise ValueError(f"{name}: values must lie in [0, 1], got [{src.min():.3g}, {src.max():.3g}]")
        return src.float()
    raise TypeError(f"{name}: expected a path, PIL image, numpy array or tensor, got {type(src).__name__}")


def _from_pil(img: Image.Image, name: str) -> torch.Tensor:
    if img.mode != "RGB":
        raise ValueError(
            f"{name}: expected an RGB image, got mode {img.mode!r} "
            "(convert it first, e.g. PIL's image.convert('RGB'))"
        )
    return load_image(np.asarray(img, dtype=np.uint8), name)
