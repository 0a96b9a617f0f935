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
from ..methods.semalign3d.depth import (
    DEFAULT_DEPTH_MODEL,
    DepthEstimator,
    load_depth_file,
)
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
    build.add_argument("--seed", type=int, default=0)
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


def _depth_file(depth_dir: Path, stem: str, hw: tuple[int, int]) -> torch.Tensor:
    for suffix in (".npy", ".png"):
        if (depth_dir / f"{stem}{suffix}").is_file():
            return load_depth_file(depth_dir / f"{stem}{suffix}", hw)
    raise FileNotFoundError(f"depth file not found: {depth_dir / stem}.npy (or .png)")


def run(args: argparse.Namespace) -> int:
    if args.max_images is not None and args.max_images < 2:
        raise ValueError(f"--max-images must be >= 2, got {args.max_images}")
    dataset = load_dataset(args.dataset, args.root, split=args.split)
    anns = [a for a in dataset.images() if a.category == args.category][: args.max_images]
    if len(anns) < 2:
        raise ValueError(f"--category {args.category!r}: {len(anns)} image(s) in {args.dataset} {args.split}; "
                         f"categories: {', '.join(dataset.categories)}")
    model = load_model(args)
    depth_model = None if args.depth_dir is not None else DepthEstimator(args.depth)
    views = []
    for ann in anns:
        image = load_image(ann.path)
        hw = tuple(image.shape[1:])
        feats = model.features(image)
        h, w = feats.grids[0].grid_hw
        depth = _depth_file(args.depth_dir, Path(ann.path).stem, hw) if depth_model is None else depth_model(image)
        bbox = ann.bbox if ann.bbox is not None else keypoint_bbox(ann.keypoints, ann.visible)
        views.append(TrainingView(feats.dense[0, :, :h, :w].cpu(), feats.grids[0], depth,
                                  _mask(args.mask_dir, Path(ann.path).stem, bbox, hw),
                                  torch.as_tensor(ann.keypoints, dtype=torch.float32), torch.as_tensor(ann.visible)))
        print(f"{ann.path}: {int(ann.visible.sum())} keypoints")
    conf = BuildConfig(sparse=SparseConfig(steps=args.sparse_steps), dense=DenseConfig(clusters=args.clusters),
                       seed=args.seed)
    rep = build_representation(views, args.category, dataset.keypoint_names.get(args.category), conf,
                               meta={"features": args.method, "dataset": args.dataset, "split": args.split})
    rep.save(args.output)
    print(f"wrote {args.output}: {rep.num_keypoints} keypoints, {rep.dense.shape[0]} dense points")
    return 0
