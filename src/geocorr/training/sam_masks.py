"""Object masks for training, from SAM (``transformers``) prompted with each image's box and keypoints.

GECO's published marginals come from SAM ViT-H masks, precomputed, each prompted with the object
box plus the visible keypoints (foreground points) and asked for one mask (official:
reginehartwig/geco src/models/segmentation/sam.py ``SAM.forward``, ``multimask_output=False``;
boxes from the annotations in src/dataset/spair_single.py and apk_pairs.py ``get_mask(s)``;
PF-Pascal has no annotated box and is prompted with its keypoints only, pfpascal_pairs.py).
:func:`sam_masks` writes one ``<mask_root>/<image path under image_root>.png`` (white = object)
per image of a dataset, the layout :func:`geocorr.training.recipes.geco.attach_masks`
(``geocorr train --mask-dir``) reads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import SamConfig, SamImageProcessorPil, SamModel, SamProcessor

from ..datasets.base import ImageAnnotation, PairDataset
from ..images import open_image

SAM_HUB_ID = "facebook/sam-vit-huge"
UNBOXED_DATASETS = ("pf-pascal",)  # datasets whose box is not an annotation (PF-Pascal's is the keypoints' own)


class MaskPredictor(Protocol):
    """image, box (4,) (x0, y0, x1, y1) or None, points (n, 2) (x, y) pixels -> (H, W) bool mask."""

    def __call__(self, image: Image.Image, box: np.ndarray | None, points: np.ndarray) -> np.ndarray: ...


class SamPredictor:
    """SAM from a hub id, a local folder or a ``SamConfig`` (random weights), as a :class:`MaskPredictor`."""

    def __init__(self, spec: str | Path | SamConfig = SAM_HUB_ID, device: str = "cpu") -> None:
        if isinstance(spec, SamConfig):
            self.model, self.processor = SamModel(spec).eval(), SamProcessor(SamImageProcessorPil())
        else:
            try:
                self.model = SamModel.from_pretrained(str(spec)).eval()
                self.processor = SamProcessor.from_pretrained(str(spec))
            except OSError as err:
                raise FileNotFoundError(
                    f"SAM model {spec!r}: not a local folder and not downloadable ({err})") from None
        self.model.to(device)

    @torch.inference_mode()
    def __call__(self, image: Image.Image, box: np.ndarray | None, points: np.ndarray) -> np.ndarray:
        """One mask (``multimask_output=False``) for the box and the points (labelled foreground)."""
        if box is None and len(points) == 0:
            return np.zeros((image.height, image.width), dtype=bool)
        prompts: dict = {}
        if box is not None:
            prompts["input_boxes"] = [[np.asarray(box, dtype=np.float64).tolist()]]
        if len(points):
            prompts["input_points"] = [[np.asarray(points, dtype=np.float64).tolist()]]
            prompts["input_labels"] = [[[1] * len(points)]]
        inputs = self.processor(image, return_tensors="pt", **prompts).to(self.model.device)
        out = self.model(**inputs, multimask_output=False)
        masks = self.processor.image_processor.post_process_masks(
            out.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu())[0]
        return masks.reshape(-1, image.height, image.width)[0].numpy().astype(bool)


def sam_masks(dataset: PairDataset, image_root: str | Path, mask_root: str | Path,
              model: str | Path | SamConfig | MaskPredictor = SAM_HUB_ID, device: str = "cpu",
              progress: bool = True) -> int:
    """Write the SAM mask of every image of ``dataset`` that has none yet; returns how many were written.

    Each image is prompted with its annotated box (none for PF-Pascal) and its visible keypoints as
    foreground points; an image with neither gets an empty mask. model: a hub id, folder or
    ``SamConfig`` for :class:`SamPredictor`, or any :class:`MaskPredictor`.
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
    predict: MaskPredictor
    if isinstance(model, (str, Path, SamConfig)):
        predict = SamPredictor(model, device)
    else:
        predict = model
    boxed = dataset.name not in UNBOXED_DATASETS
    for ann, target in tqdm(todo, desc="SAM masks", unit="image", disable=not progress):
        box = ann.bbox if boxed else None
        mask = predict(open_image(ann.path, str(ann.path)), box, np.asarray(ann.keypoints)[ann.visible])
        if mask.shape != (ann.size[1], ann.size[0]):
            raise ValueError(f"mask predictor returned shape {mask.shape} for {ann.path} "
                             f"of {ann.size[1]}×{ann.size[0]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp)
        tmp.replace(target)
    return len(todo)
