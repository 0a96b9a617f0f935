"""Image augmentations that carry keypoints (and an optional mask) along, drawn from a generator.

Pixel-centre convention (see :mod:`geocorr.grid`). Every random number comes from the
``torch.Generator`` passed in, so a sample's augmentation is reproducible from its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps


@dataclass
class AugmentConfig:
    """Random augmentations of one training image; the defaults are GECO's published values.

    Official: reginehartwig/geco src/dataset/augmentations.py (``DataAugmentation``) with the
    arguments of src/dataset/spair_single.py / apk_pairs.py (crop 400, scale 0.5–0.98). The
    400 px crop is resized again to the training size (518) by the model, as there.
    """

    crop_scale: tuple[float, float] = (0.5, 0.98)  # RandomResizedCrop: share of the image area
    crop_ratio: tuple[float, float] = (0.9, 1.1)  # RandomResizedCrop: aspect ratio range
    crop_size: int | None = 400  # the crop is resized to this square first, then to the output size (None: once)
    flip: float = 0.5  # horizontal flip probability (keypoint ids permuted)
    brightness: float = 0.4  # colour jitter: brightness factor from [1 - b, 1 + b]
    contrast: float = 0.4  # colour jitter: contrast factor from [1 - c, 1 + c]
    saturation: float = 0.2  # colour jitter: saturation factor from [1 - s, 1 + s]
    hue: float = 0.1  # colour jitter: hue shift from [-h, h] (share of the hue circle)
    jitter_p: float = 0.8  # probability of the colour jitter (its four parts in random order)
    blur_p: float = 0.9  # probability of the Gaussian blur (official GaussianBlur(p=0.1) applies it with 1 - 0.1)
    blur_kernel: int = 9  # blur kernel side, in output pixels
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # blur sigma range, in output pixels
    solarize_p: float = 0.2  # probability of solarizing (invert values >= 128)

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < lo <= hi, got {self.crop_ratio}")
        if self.crop_size is not None and self.crop_size < 1:
            raise ValueError(f"crop_size must be >= 1 or None, got {self.crop_size}")
        for name in ("flip", "jitter_p", "blur_p", "solarize_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5 or min(self.brightness, self.contrast, self.saturation) < 0:
            raise ValueError("brightness, contrast and saturation must be >= 0 and hue in [0, 0.5]")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be an odd number >= 1, got {self.blur_kernel}")


def _uniform(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def random_crop_box(width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
                    g: torch.Generator) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (x0, y0, x1, y1) in pixel-edge coordinates.

    Ten tries of an area share from ``scale`` and a log-uniform aspect ratio; if none fits, the
    central crop of the image clamped to ``ratio`` (torchvision's rule).
    """
    area = width * height
    for _ in range(10):
        target = area * _uniform(g, *scale)
        aspect = math.exp(_uniform(g, math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            x0 = int(torch.randint(0, width - w + 1, (), generator=g))
            y0 = int(torch.randint(0, height - h + 1, (), generator=g))
            return x0, y0, x0 + w, y0 + h
    w, h = width, height
    if width / height < ratio[0]:
        h = round(width / ratio[0])
    elif width / height > ratio[1]:
        w = round(height * ratio[1])
    x0, y0 = (width - w) // 2, (height - h) // 2
    return x0, y0, x0 + w, y0 + h


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


def adjust_hue(image: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue of an RGB image by ``shift`` of the circle (uint8 HSV arithmetic, as torchvision's PIL path)."""
    h, s, v = image.convert("HSV").split()
    step = int(shift * 255)  # truncated toward zero, then added modulo 256
    hue = Image.fromarray(((np.asarray(h, dtype=np.int16) + step) % 256).astype(np.uint8), "L")
    return Image.merge("HSV", (hue, s, v)).convert("RGB")


def gaussian_blur(image: Image.Image, kernel: int, sigma: float) -> Image.Image:
    """Blur with a ``kernel``-tap separable Gaussian of ``sigma`` pixels, reflect padding, rounded to uint8."""
    x = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    taps = (taps / taps.sum()).float()
    pixels = torch.as_tensor(np.array(image), dtype=torch.float32).permute(2, 0, 1)[:, None]  # (3, 1, H, W)
    pad = kernel // 2
    pixels = F.conv2d(F.pad(pixels, (pad, pad, 0, 0), mode="reflect"), taps.view(1, 1, 1, -1))
    pixels = F.conv2d(F.pad(pixels, (0, 0, pad, pad), mode="reflect"), taps.view(1, 1, -1, 1))
    out = pixels[:, 0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(out, "RGB")


def colour_jitter(image: Image.Image, conf: AugmentConfig, g: torch.Generator) -> Image.Image:
    """Brightness, contrast, saturation and hue changes in a random order (torchvision's ColorJitter)."""
    enhancers = {0: (ImageEnhance.Brightness, conf.brightness), 1: (ImageEnhance.Contrast, conf.contrast),
                 2: (ImageEnhance.Color, conf.saturation)}
    for part in torch.randperm(4, generator=g).tolist():
        if part in enhancers:
            enhancer, strength = enhancers[part]
            image = enhancer(image).enhance(_uniform(g, max(0.0, 1 - strength), 1 + strength))
        else:
            image = adjust_hue(image, _uniform(g, -conf.hue, conf.hue))
    return image


def resize_only(image: Image.Image, keypoints: np.ndarray, visible: np.ndarray, size: tuple[int, int],
                mask: Image.Image | None = None):
    """The whole image resized to ``size`` = (W, H), no random change (e.g. GECO's PF-Pascal pairs)."""
    box = (0, 0, image.width, image.height)
    keypoints, visible = crop_keypoints(keypoints, visible, box, size)
    mask = mask.resize(size, Image.Resampling.NEAREST) if mask is not None else None
    return image.convert("RGB").resize(size, Image.Resampling.BILINEAR), keypoints, visible, mask


def augment(image: Image.Image, keypoints: np.ndarray, visible: np.ndarray, size: tuple[int, int],
            conf: AugmentConfig, g: torch.Generator, permutation: np.ndarray | None = None,
            mask: Image.Image | None = None):
    """Random crop resized to ``size`` = (W, H) (through ``conf.crop_size`` first), flip, colour
    jitter, blur, solarize.

    keypoints: (K, 2) pixels (NaN if invisible); visible: (K,) bool. permutation: keypoint ids
    after a horizontal flip (None: never flip). mask: an "L" image, cropped and flipped alike
    (nearest neighbour, so it stays binary). The official code flips before cropping; with a
    uniformly placed crop the two orders give the same distribution.
    Returns (RGB image of ``size``, keypoints (K, 2), visible (K,), mask or None).
    """
    box = random_crop_box(image.width, image.height, conf.crop_scale, conf.crop_ratio, g)
    image = image.convert("RGB")
    if conf.crop_size is not None:
        image = image.resize((conf.crop_size, conf.crop_size), Image.Resampling.BILINEAR, box=box)
        image = image.resize(size, Image.Resampling.BILINEAR)
    else:
        image = image.resize(size, Image.Resampling.BILINEAR, box=box)
    mask = mask.resize(size, Image.Resampling.NEAREST, box=box) if mask is not None else None
    keypoints, visible = crop_keypoints(keypoints, visible, box, size)
    if permutation is not None and _uniform(g) < conf.flip:
        image, mask = ImageOps.mirror(image), ImageOps.mirror(mask) if mask is not None else None
        keypoints, visible = flip_keypoints(keypoints, visible, size[0], permutation)
    if _uniform(g) < conf.jitter_p:
        image = colour_jitter(image, conf, g)
    if _uniform(g) < conf.blur_p:
        image = gaussian_blur(image, conf.blur_kernel, _uniform(g, *conf.blur_sigma))
    if _uniform(g) < conf.solarize_p:
        image = ImageOps.solarize(image, 128)
    return image, keypoints, visible, mask
