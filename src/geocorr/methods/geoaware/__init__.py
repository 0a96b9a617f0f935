"""GeoAware ("Telling Left from Right", CVPR 2024): geometry-aware semantic correspondence.

>>> model = geocorr.load("geoaware")                          # zero-shot DINOv2-B/14 at 840²
>>> model = geocorr.load("geoaware", weights="geoaware_postprocessor.safetensors")  # supervised
>>> model.match(img0, img1, points=[[120, 80]]).points         # window soft-argmax, pixels
>>> aligned = geocorr.load("geoaware", pose_align=True, flips={"cat": flip_table})   # the paper's † rows
>>> aligned.match(img0, img1, points, PairContext(category="cat", keypoint_ids=ids, ...))

or ``geocorr eval --method geoaware --pose-align``. Training: :mod:`geocorr.training.recipes.geoaware`.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ...backbones import BackboneSpec, build_backbone
from .augmentation import hflip_keypoints
from .losses import dense_loss, sparse_loss
from .model import GeoAware, load_post_processor, save_post_processor
from .pose import instance_matching_distance, predict_pose
from .postprocessor import PostProcessor, PostProcessorConfig
from .sd import SD15_HUB_ID, SDConfig, StableDiffusionFeatures, load_stable_diffusion

ZERO_SHOT_WINDOW = 11  # radius 5, the published zero-shot window


def load(backbone: BackboneSpec = "facebook/dinov2-base", weights: str | Path | None = None,
         zero_shot: bool | None = None, image_size: int = 840, resize: str = "pad", dtype: str = "float32",
         device: str = "cpu", post_processor: dict | None = None,
         sd: str | Path | StableDiffusionFeatures | None = None, sd_image_size: int = 960,
         layer: int = -1, final_norm: bool = False, resample: str = "lanczos", pad_position: str = "centre",
         pad_colour: str = "black", debias_components: int = 0, **conf) -> GeoAware:
    """GeoAware matcher, published setting by default (DINOv2-B/14, 840² padded input, 60×60 grid).

    Features as the official extractor computes them (Junyi42/GeoAware-SC @ 99fd6b6,
    ``preprocess_map.py``: layer 11, facet "token"; ``model_utils/extractor_dino.py``: a forward hook
    on that block, i.e. its output tokens **without** the final LayerNorm; ``utils/utils_correspondence.py``
    ``resize``: PIL LANCZOS, long side 840, centred on a black canvas): ``layer=-1`` (the last block,
    block 11 of ViT-B/14), ``final_norm=False``, ``resample="lanczos"``, ``pad_position="centre"``,
    ``pad_colour="black"`` (see :class:`geocorr.backbones.BackboneConfig`).

    backbone: hub id, local folder or transformers config (see :func:`geocorr.backbones.build_backbone`).
    weights: a post-processor saved by training (``geoaware_postprocessor.safetensors``).
    zero_shot: no post-processor (normalised raw features, window 11); default: True without
        ``weights``. ``zero_shot=False`` without weights gives a fresh post-processor to train.
    post_processor: widths for a fresh post-processor (fields of :class:`PostProcessorConfig`
        except ``in_channels``, which comes from the feature sources).
    sd: add Stable Diffusion features (the paper's SD+DINOv2): a hub id (``SD15_HUB_ID``), a local
        diffusers folder or a built :class:`StableDiffusionFeatures`; needs ``geocorr[sd]``.
    sd_image_size: SD input side (published 960).
    conf: options of :attr:`GeoAware.default_conf` (inference, window, temperature, ...).
    """
    zero_shot = weights is None if zero_shot is None else zero_shot
    if zero_shot and (weights is not None or post_processor):
        raise ValueError("zero_shot=True takes no weights and no post_processor settings")
    built = build_backbone(backbone, image_size=image_size, resize=resize, dtype=dtype, layer=layer,
                           final_norm=final_norm, resample=resample, pad_position=pad_position, pad_colour=pad_colour,
                           debias_components=debias_components)
    if sd is not None and not isinstance(sd, StableDiffusionFeatures):
        sd = load_stable_diffusion(sd, SDConfig(image_size=sd_image_size))
    channels = (*(sd.channels if sd is not None else ()), built.dim)
    head = None
    if zero_shot:
        conf.setdefault("window", ZERO_SHOT_WINDOW)
    elif weights is not None:
        if post_processor:
            raise ValueError("post_processor settings apply to a fresh post-processor, not to loaded weights")
        head = load_post_processor(weights)
    else:
        allowed = {f.name for f in fields(PostProcessorConfig)} - {"in_channels"}
        unknown = set(post_processor or {}) - allowed
        if unknown:
            raise ValueError(f"unknown post_processor option(s) {sorted(unknown)}; valid: {sorted(allowed)}")
        head = PostProcessor(PostProcessorConfig(in_channels=channels, **(post_processor or {})))
    model = GeoAware(built, head, sd, **conf)
    return model.to(device).eval()


__all__ = [
    "SD15_HUB_ID",
    "GeoAware",
    "PostProcessor",
    "PostProcessorConfig",
    "SDConfig",
    "StableDiffusionFeatures",
    "dense_loss",
    "hflip_keypoints",
    "instance_matching_distance",
    "load",
    "load_post_processor",
    "load_stable_diffusion",
    "predict_pose",
    "save_post_processor",
    "sparse_loss",
]
