"""Reading images: the one loader every face uses (``match``, ``eval``, the API, the demo, training).

Images are converted the way image viewers and ``transformers``' image processors show them:

* grayscale (``L``, ``1``, ``I;16``) -> the grey value on all three channels;
* 16-bit (``I;16*``, ``I`` holding 0…65535) -> scaled to 8 bits (``v / 257``, rounded);
* palette (``P``), CMYK, YCbCr, LAB, HSV -> RGB through Pillow;
* transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent colour) -> composited over a
  **white** background (as ``transformers.image_transforms.convert_to_rgb`` does), not dropped;
* EXIF orientation -> applied (the pixels are rotated/flipped as the camera meant), so points are
  given in the image as every viewer displays it.

Two guards, both with a one-line :class:`ValueError` that names the input:

* a size limit against decompression bombs: at most :func:`max_image_pixels` pixels (default
  :data:`DEFAULT_MAX_PIXELS`; raise it with the environment variable ``GEOCORR_MAX_IMAGE_PIXELS``
  or the ``max_pixels`` argument). It is checked from the file header, before any pixel is decoded;
* ``min_side``: images smaller than this on a side (e.g. one backbone patch) are refused, since
  they hold no structure to match (dense methods pass their patch size).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor

__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "ImageLike", "ImageTooLargeError", "image_size",
           "load_image", "max_image_pixels", "open_image"]

# Pillow's own refusal threshold (2 × PIL.Image.MAX_IMAGE_PIXELS = 2 × 89,478,485): every image
# Pillow opens by default still opens; a 400-Mpx bomb does not.
DEFAULT_MAX_PIXELS = 178_956_970
MAX_PIXELS_ENV = "GEOCORR_MAX_IMAGE_PIXELS"

_OPEN_LOCK = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-global: see _open_header
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageTooLargeError(ValueError):
    """An image has more pixels than the limit in force; ``size`` = (width, height), ``limit``."""

    def __init__(self, message: str, size: tuple[int, int], limit: int):
        super().__init__(message)
        self.size, self.limit = size, limit


def max_image_pixels(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels`` if given, else ``$GEOCORR_MAX_IMAGE_PIXELS``, else the default."""
    if max_pixels is not None:
        if int(max_pixels) < 1:
            raise ValueError(f"max_pixels must be a positive number of pixels, got {max_pixels}")
        return int(max_pixels)
    value = os.environ.get(MAX_PIXELS_ENV)
    if value is None or not value.strip():
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value.replace("_", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"{MAX_PIXELS_ENV}={value!r} is not a positive number of pixels")
    return limit


def _check_size(size: tuple[int, int], name: str, max_pixels: int | None, min_side: int) -> None:
    w, h = size
    limit = max_image_pixels(max_pixels)
    if w * h > limit:
        raise ImageTooLargeError(
            f"{name}: {w}×{h} = {w * h:,} pixels is more than the limit of {limit:,} (a guard against "
            f"decompression bombs); if you trust it, raise the limit: {MAX_PIXELS_ENV}={w * h} "
            f"(Python: max_pixels={w * h})", (w, h), limit
        )
    if min(w, h) < min_side:
        raise ValueError(
            f"{name}: the image is {w}×{h} pixels, smaller than {min_side} pixels on a side (one patch "
            f"of the backbone); it holds nothing to match: use a larger image or upscale it first"
        )


def _open_header(path: Path, name: str) -> Image.Image:
    """Image.open (reads the header only) with Pillow's bomb check replaced by ours."""
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {path}")
    with _OPEN_LOCK:
        pil_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit (which the user can raise) is checked next
        try:
            return Image.open(path)
        except (UnidentifiedImageError, OSError, ValueError) as err:  # ValueError: e.g. a zTXt bomb
            raise ValueError(f"{name}: {path} is not a readable image file ({err})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = pil_limit


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation in the file header is applied (5–8 swap the sides).

    Reads only EXIF data already parsed with the header (JPEG, WebP, TIFF and PNG with an early
    eXIf chunk), so no pixel is decoded.
    """
    raw = img.info.get("exif")
    exif = Image.Exif()
    if raw:
        exif.load(raw)
    elif img.format == "TIFF":
        exif = img.getexif()
    orientation = exif.get(0x0112, 1)
    return (img.height, img.width) if orientation in (5, 6, 7, 8) else (img.width, img.height)


def image_size(path: str | Path, name: str = "image") -> tuple[int, int]:
    """(width, height) of an image file as :func:`load_image` returns it (EXIF orientation applied),
    from its header only (no pixel is decoded)."""
    with _open_header(Path(path), name) as img:
        return _oriented_size(img)


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Any Pillow mode -> an 8-bit RGB image, converted as documented in the module docstring."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{name}: 32-bit integer image with values in [{values.min()}, {values.max()}]; "
                             "expected 16-bit values in [0, 65535]")
        grey = np.round(values / 257.0).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > 1):
            raise ValueError(f"{name}: floating-point image with values outside [0, 1]")
        return Image.fromarray(np.round(values * 255).astype(np.uint8)).convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as err:
        raise ValueError(f"{name}: cannot convert an image of mode {mode!r} to RGB ({err})") from None


def open_image(src: str | Path | Image.Image, name: str = "image", *, max_pixels: int | None = None,
               min_side: int = 1) -> Image.Image:
    """A file or Pillow image as an 8-bit RGB Pillow image (EXIF rotation applied, converted as the
    module docstring says), after the size checks. For code that works on Pillow images (training
    augmentation, the demo); :func:`load_image` is the same as a tensor.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not an image, too many pixels (names the limit and how to raise it), a side
            smaller than ``min_side``, or a mode that cannot be converted.
    """
    if isinstance(src, Image.Image):
        label, img, owned = name, src, False
    else:
        path = Path(src).expanduser()
        label, img, owned = f"{name} ({path})" if name != str(path) else name, _open_header(path, name), True
    try:
        _check_size(img.size, label, max_pixels, min_side)  # rotation keeps the count and the short side
        try:
            img.load()
            upright = ImageOps.exif_transpose(img)
        except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt pixel data
            raise ValueError(f"{label}: the image data cannot be decoded ({err})") from None
        return _to_rgb(upright, label)
    finally:
        if owned:
            img.close()


def _from_array(arr: np.ndarray, name: str, max_pixels: int | None, min_side: int) -> torch.Tensor:
    """(H, W), (H, W, 1|3|4) uint8/uint16/float-in-[0, 1] array -> (3, H, W) float32."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, got shape {arr.shape}")
    _check_size((arr.shape[1], arr.shape[0]), name, max_pixels, min_side)
    if arr.dtype == np.uint8:
        x = torch.from_numpy(np.array(arr, copy=True)).float() / 255.0
    elif arr.dtype == np.uint16:
        x = torch.from_numpy(arr.astype(np.float32)) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        x = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True))
    else:
        raise ValueError(f"{name}: expected a uint8, uint16 or float array, got {arr.dtype}")
    return _channels_first(x.permute(2, 0, 1), name)


def _channels_first(x: torch.Tensor, name: str) -> torch.Tensor:
    """(C, H, W) float, C in {1, 3, 4}, checked for [0, 1] -> (3, H, W) float32 (alpha over white)."""
    if x.numel():
        lo, hi = x.aminmax()  # NaN propagates into both; one pass (isfinite().all() is 30x slower on CPU)
        if not (torch.isfinite(lo) and torch.isfinite(hi)):
            raise ValueError(f"{name}: the image contains NaN or inf")
        if lo < 0 or hi > 1:
            raise ValueError(f"{name}: values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]")
    if x.shape[0] == 4:
        x = x[:3] * x[3:] + (1 - x[3:])  # composite over white
    elif x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x if x.dtype == torch.float32 and x.is_contiguous() else x.float().contiguous()


def load_image(src: ImageLike, name: str = "image", *, max_pixels: int | None = None,
               min_side: int = 1) -> torch.Tensor:
    """Read an image into a (3, H, W) float32 RGB tensor with values in [0, 1].

    Args:
        src: a file path or a Pillow image (any mode: grayscale, 16-bit, palette, RGBA, CMYK …;
            EXIF rotation applied; see the module docstring for each conversion); an (H, W),
            (H, W, 1), (H, W, 3) or (H, W, 4) array (uint8, uint16 or float in [0, 1]); or a
            (C, H, W) tensor with C in {1, 3, 4} (float in [0, 1], or uint8 as
            ``torchvision.io.read_image`` returns). One channel is grey, four is RGBA (composited
            over white).
        name: how the input is called in error messages (an argument name or a file).
        max_pixels: refuse images with more pixels (default: :func:`max_image_pixels`).
        min_side: refuse images smaller than this on a side (dense methods: the backbone patch).
    Returns:
        (3, H, W) float32 tensor in [0, 1]; a (3, H, W) float32 tensor input is returned as is.
    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not an image, too many pixels, too small, wrong shape, NaN or out-of-range values.
    """
    if isinstance(src, (str, Path, Image.Image)):
        rgb = open_image(src, name, max_pixels=max_pixels, min_side=min_side)
        return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
    if isinstance(src, np.ndarray):
        return _from_array(src, name, max_pixels, min_side)
    if isinstance(src, torch.Tensor):
        if src.ndim == 2:
            src = src[None]
        if src.ndim != 3 or src.shape[0] not in (1, 3, 4):
            raise ValueError(f"{name}: expected a (3, H, W) RGB tensor (or 1 / 4 channels), "
                             f"got shape {tuple(src.shape)}")
        _check_size((src.shape[2], src.shape[1]), name, max_pixels, min_side)
        if src.dtype == torch.uint8:
            src = src.float() / 255.0
        elif not src.is_floating_point():
            raise ValueError(f"{name}: expected a float tensor in [0, 1] or uint8, got {src.dtype}")
        return _channels_first(src, name)
    raise TypeError(f"{name}: expected a path, PIL image, numpy array or tensor, got {type(src).__name__}")
