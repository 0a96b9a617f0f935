"""``geocorr semalign3d build``: a SemAlign3D class representation from an annotated dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..datasets import DATASETS, keypoint_bbox, load_dataset
from ..images import load_image
from ..methods.semalign3d.dense import DenseConfig, TrainingView
from ..methods.semalign3d.depth import DEFAULT_DEPTH_MODEL, DepthEstimator, DepthFiles
from ..methods.semalign3d.progress import bar
from ..methods.semalign3d.representation import BuildConfig, build_representation
from ..methods.semalign3d.sparse import SparseConfig
from .common import add_model_arguments, load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = sub.add_parser("build", help="build a class representation (.safetensors) from a dataset split")
    build.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="benchmark name")
    build.add_argument("--root", required=True, type=Path, help="dataset root folder")
    build.add_argument("--split", default="trn", help="split whose images are used (default trn)")
    build.add_argument("--category", required=True, help="object class")
    build.add_argument("--output", required=True, type=Path, help="representation file to write (.safetensors)")
    build.add_argument("--depth", default=DEFAULT_DEPTH_MODEL,
                       help=f"Depth Anything V2: hub id or local folder (default {DEFAULT_DEPTH_MODEL})")
    build.add_argument("--depth-dir", type=Path, help="use depth files <image stem>.npy / .png from here instead")
    build.add_argument("--mask-dir", type=Path,
                       help="object masks <image stem>.png (default: the object's bounding box)")
    build.add_argument("--max-images", type=int, help="use at most this many images")
    build.add_argument("--sparse-steps", type=int, default=SparseConfig.steps,
                       help=f"joint refinement steps of the keypoint cloud (default {SparseConfig.steps})")
    build.add_argument("--clusters", type=int, default=DenseConfig.clusters,
                       help=f"points of the dense cloud before density filtering (default {DenseConfig.clusters})")
    build.add_argument("--no-flip", action="store_true",
                       help="do not add the horizontally flipped training clouds (published: added, with the "
                            "dataset's left/right keypoint permutation when it has one)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_model_arguments(build, default_method="geoaware")


def _mask(mask_dir: Path | None, stem: str, bbox: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    if mask_dir is not None:
        path = mask_dir / f"{stem}.png"
        if not path.is_file():
            raise FileNotFoundError(f"mask file not found: {path}")
        mask = torch.from_numpy(np.asarray(Image.open(path).convert("L")) > 127)
        if tuple(mask.shape) != hw:
            raise ValueError(f"{path}: mask of shape {tuple(mask.shape)} does not match the image {hw}")
        return mask
    x0, y0, x1, y1 = bbox
    ys, xs = torch.arange(hw[0])[:, None], torch.arange(hw[1])[None]
    return (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)


def run(args: argparse.Namespace) -> int:
    if args.max_images is not None and args.max_images < 2:
        raise ValueError(f"--max-images must be >= 2, got {args.max_images}")
    dataset = load_dataset(args.dataset, args.root, split=args.split)
    anns = [a for a in dataset.images() if a.category == args.category][: args.max_images]
    if len(anns) < 2:
        raise ValueError(f"--category {args.category!r}: {len(anns)} image(s) in {args.dataset} {args.split}; "
                         f"categories: {', '.join(dataset.categories)}")
    depth = DepthFiles(args.depth_dir) if args.depth_dir is not None else DepthEstimator(args.depth)
    model = load_model(args)
    progress = None if not args.no_progress else False
    views = []
    for ann in bar(anns, progress, "features and depth", total=len(anns)):
        image = load_image(ann.path)
        hw = (image.shape[1], image.shape[2])
        feats = model.features(image)
        h, w = feats.grids[0].grid_hw
        bbox = ann.bbox if ann.bbox is not None else keypoint_bbox(ann.keypoints, ann.visible)
        views.append(TrainingView(feats.dense[0, :, :h, :w].float().cpu(), feats.grids[0], depth(image, Path(ann.path)),
                                  _mask(args.mask_dir, Path(ann.path).stem, bbox, hw),
                                  torch.as_tensor(ann.keypoints, dtype=torch.float32), torch.as_tensor(ann.visible)))
    conf = BuildConfig(sparse=SparseConfig(steps=args.sparse_steps), dense=DenseConfig(clusters=args.clusters),
                       seed=args.seed)
    flip = None if args.no_flip else (dataset.symmetry.get(args.category) or {}).get("flip")
    rep = build_representation(views, args.category, dataset.keypoint_names.get(args.category), conf,
                               meta={"features": args.method, "backbone": args.backbone, "dataset": args.dataset,
                                     "split": args.split}, flip=flip, progress=progress)
    rep.save(args.output)
    print(f"wrote {args.output}: {rep.num_keypoints} keypoints, {rep.dense.shape[0]} dense points")
    return 0
