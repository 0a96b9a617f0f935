"""Object masks for training, from SAM (``transformers``) prompted with each image's keypoints.

GECO's published marginals come from SAM ViT-H masks, precomputed. :func:`sam_masks` writes one
``<mask_root>/<image path under image_root>.png`` (white = object) per image of a dataset, the
layout :func:`geocorr.methods.geco.data.attach_masks` (``geocorr train --mask-dir``) reads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import PretrainedConfig, SamImageProcessorPil, SamModel, SamProcessor

from ..datasets.base import ImageAnnotation, PairDataset

SAM_HUB_ID = "facebook/sam-vit-huge"


def load_sam(spec: str | Path | PretrainedConfig = SAM_HUB_ID) -> tuple[SamModel, SamProcessor]:
    """SAM and its processor from a hub id, a local folder or a ``SamConfig`` (random weights)."""
    if isinstance(spec, PretrainedConfig):
        return SamModel(spec).eval(), SamProcessor(SamImageProcessorPil())
    try:
        return SamModel.from_pretrained(str(spec)).eval(), SamProcessor.from_pretrained(str(spec))
    except OSError as err:
        raise FileNotFoundError(f"SAM model {spec!r}: not a local folder and not downloadable ({err})") from None


@torch.inference_mode()
def sam_mask(model: SamModel, processor: SamProcessor, image: Image.Image, points: np.ndarray) -> np.ndarray:
    """The mask (H, W) bool of the object under ``points`` (n, 2) (x, y) pixels; the best of SAM's three."""
    if len(points) == 0:
        return np.zeros((image.height, image.width), dtype=bool)
    inputs = processor(image, input_points=[[points.tolist()]], return_tensors="pt").to(model.device)
    out = model(**inputs, multimask_output=True)
    masks = processor.image_processor.post_process_masks(out.pred_masks.cpu(), inputs["original_sizes"].cpu(),
                                                         inputs["reshaped_input_sizes"].cpu())[0][0]
    return masks[int(out.iou_scores[0, 0].argmax())].numpy().astype(bool)


def sam_masks(dataset: PairDataset, image_root: str | Path, mask_root: str | Path,
              model: str | Path | PretrainedConfig = SAM_HUB_ID, device: str = "cpu",
              progress: bool = True) -> int:
    """Write the SAM mask of every image of ``dataset`` that has none yet; returns how many were written.

    Each image is prompted with its visible keypoints as foreground points (an image with none
    gets an empty mask).
    """
    image_root, mask_root = Path(image_root).resolve(), Path(mask_root)
    todo: list[tuple[ImageAnnotation, Path]] = []
    for ann in dataset.images():
        try:
            relative = Path(ann.path).resolve().relative_to(image_root)
        except ValueError:
            raise ValueError(f"image {ann.path} is not under the dataset root {image_root}") from None
        target = (mask_root / relative).with_suffix(".png")
        if not target.exists():
            todo.append((ann, target))
    if not todo:
        return 0
    sam, processor = load_sam(model)
    sam.to(device)
    for ann, target in tqdm(todo, desc="SAM masks", unit="image", disable=not progress):
        with Image.open(ann.path) as img:
            mask = sam_mask(sam, processor, img.convert("RGB"), np.asarray(ann.keypoints)[ann.visible])
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp)
        tmp.replace(target)
    return len(todo)
