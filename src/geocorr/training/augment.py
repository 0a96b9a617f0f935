"""Image augmentations that carry keypoints (and an optional mask) along, drawn from a generator.

Pixel-centre convention (see :mod:`geocorr.grid`). Every random number comes from the
``torch.Generator`` passed in, so a sample's augmentation is reproducible from its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps


@dataclass
class AugmentConfig:
    """Random augmentations of one training image.

    Crop and flip are GECO's published setting; the paper names colour jitter, blur and solarize
    without their strengths, so those values are ours (mild, SimCLR-like).
    """

    crop_scale: tuple[float, float] = (0.5, 0.98)  # RandomResizedCrop: share of the image area
    crop_ratio: tuple[float, float] = (0.9, 1.1)  # RandomResizedCrop: aspect ratio range
    flip: float = 0.5  # horizontal flip probability (keypoint ids permuted)
    jitter: float = 0.3  # brightness/contrast/saturation factors drawn from [1 - j, 1 + j]
    jitter_p: float = 0.8  # probability of the colour jitter
    blur_p: float = 0.2  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # its sigma range, in output pixels
    solarize_p: float = 0.1  # probability of solarizing (invert above 128)

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < lo <= hi, got {self.crop_ratio}")
        for name in ("flip", "jitter_p", "blur_p", "solarize_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")


def _uniform(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def random_crop_box(width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
                    g: torch.Generator) -> tuple[float, float, float, float]:
    """RandomResizedCrop's box (x0, y0, x1, y1) in pixel-edge coordinates; whole image if 10 tries fail."""
    area = width * height
    for _ in range(10):
        target = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            x0 = int(torch.randint(0, width - w + 1, (), generator=g))
            y0 = int(torch.randint(0, height - h + 1, (), generator=g))
            return x0, y0, x0 + w, y0 + h
    return 0, 0, width, height


def crop_keypoints(keypoints: np.ndarray, visible: np.ndarray, box, size: tuple[int, int]):
    """Keypoints (K, 2) of the image -> of ``box`` resized to ``size`` = (W, H); outside -> invisible."""
    x0, y0, x1, y1 = box
    w, h = size
    scale = np.array([w / (x1 - x0), h / (y1 - y0)])
    out = (keypoints + 0.5 - np.array([x0, y0])) * scale - 0.5
    inside = (out[:, 0] >= -0.5) & (out[:, 0] <= w - 0.5) & (out[:, 1] >= -0.5) & (out[:, 1] <= h - 0.5)
    vis = np.asarray(visible, dtype=bool) & np.nan_to_num(inside, nan=0).astype(bool)
    return np.where(vis[:, None], out, np.nan), vis


def flip_keypoints(keypoints: np.ndarray, visible: np.ndarray, width: int, permutation: np.ndarray):
    """Mirror keypoints (K, 2) of an image of ``width`` and relabel them: keypoint k becomes ``permutation[k]``."""
    mirrored = keypoints.copy()
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    inverse = np.argsort(permutation)
    return mirrored[inverse], np.asarray(visible)[inverse]


def augment(image: Image.Image, keypoints: np.ndarray, visible: np.ndarray, size: tuple[int, int],
            conf: AugmentConfig, g: torch.Generator, permutation: np.ndarray | None = None,
            mask: Image.Image | None = None):
    """Random crop resized to ``size`` = (W, H), flip, colour jitter, blur, solarize.

    keypoints: (K, 2) pixels (NaN if invisible); visible: (K,) bool. permutation: keypoint ids
    after a horizontal flip (None: never flip). mask: an "L" image, cropped and flipped alike.
    Returns (RGB image of ``size``, keypoints (K, 2), visible (K,), mask or None).
    """
    box = random_crop_box(image.width, image.height, conf.crop_scale, conf.crop_ratio, g)
    image = image.convert("RGB").resize(size, Image.BILINEAR, box=box)
    mask = mask.resize(size, Image.BILINEAR, box=box) if mask is not None else None
    keypoints, visible = crop_keypoints(keypoints, visible, box, size)
    if permutation is not None and _uniform(g) < conf.flip:
        image, mask = ImageOps.mirror(image), ImageOps.mirror(mask) if mask is not None else None
        keypoints, visible = flip_keypoints(keypoints, visible, size[0], permutation)
    if _uniform(g) < conf.jitter_p:
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            image = enhance(image).enhance(_uniform(g, 1 - conf.jitter, 1 + conf.jitter))
    if _uniform(g) < conf.blur_p:
        image = image.filter(ImageFilter.GaussianBlur(_uniform(g, *conf.blur_sigma)))
    if _uniform(g) < conf.solarize_p:
        image = ImageOps.solarize(image, 128)
    return image, keypoints, visible, mask
