"""``geocorr train --method geco --dataset D --root DIR --out DIR``: train a method's weights.

Writes ``DIR/checkpoint.pt`` (every ``--checkpoint-every`` steps, atomically), ``DIR/log.jsonl``
and, at the end, the method's weights (GECO: ``DIR/adapter.safetensors``, usable as
``geocorr eval --method geco --adapter DIR/adapter.safetensors``). ``--resume`` continues a run
bit-exactly from its checkpoint (same options required). Validation PCK comes from
``--val-split`` of the same dataset, or from ``--val-fraction`` of the training images held out
(image-disjoint: no validation image is ever trained on). Several GPUs or nodes:
``accelerate launch -m geocorr.cli train ...``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from importlib import import_module
from pathlib import Path

import torch

from ..datasets import DATASETS, load_dataset
from ..methods.geco.data import attach_masks
from ..training.splits import split_by_images

# method -> "module": the module defines a TrainConfig subclass ``CONFIG`` and
# ``build_trainer(train_set, out_dir, conf, backbone=, adapter=, val_set=, val_pairs=, progress=)``;
# with ``JOINT_TRAINING = True`` train_set is a list of PairDatasets (--dataset repeated, --mask-dir).
TRAINERS: dict[str, str] = {
    "geco": "geocorr.methods.geco.training",
    "geoaware": "geocorr.methods.geoaware.training",
    "cyclecorr": "geocorr.methods.cyclecorr.training",
}

# command-line option -> config field (unset options keep the method's published defaults)
_OVERRIDES = ("epochs", "max_steps", "batch_size", "lr", "image_size", "seed", "val_every",
              "checkpoint_every", "num_workers", "mixed_precision", "per_category", "meshes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="geco", choices=sorted(TRAINERS), help="method (default geco)")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", required=True, action="append", choices=sorted(DATASETS),
                      help="training benchmark; GECO: repeat (with --root each) to train on several jointly")
    data.add_argument("--root", required=True, action="append", type=Path,
                      help="the dataset's folder (official layout), one per --dataset")
    data.add_argument("--mask-dir", action="append", type=Path,
                      help="GECO: precomputed object masks (<image path under root>.png), one per --dataset; "
                           "default: the keypoints' convex hull")
    data.add_argument("--meshes", help="cyclecorr: folder of CAD models (OBJ/OFF/PLY/GLB/STL, searched recursively)")
    data.add_argument("--sam", metavar="MODEL",
                      help="GECO: first write SAM masks (hub id or folder, e.g. facebook/sam-vit-huge) "
                           "into --mask-dir for the images that have none")
    data.add_argument("--split", help="training split (default: the loader's)")
    data.add_argument("--val-split", help="validation split of the (first) dataset")
    data.add_argument("--val-fraction", type=float,
                      help="hold out this share of each category's images of the (first) dataset instead")
    data.add_argument("--val-pairs", type=int, help="validate on the first N validation pairs only")
    model = parser.add_argument_group("model")
    model.add_argument("--backbone", default="facebook/dinov2-base", help="hub id or local folder")
    model.add_argument("--adapter", help="start from this LoRA file (default: a fresh LoRA)")
    conf = parser.add_argument_group("training (unset: the published setting)")
    conf.add_argument("--epochs", type=int)
    conf.add_argument("--max-steps", type=int, help="optimiser steps in all (overrides --epochs)")
    conf.add_argument("--batch-size", type=int)
    conf.add_argument("--lr", type=float)
    conf.add_argument("--image-size", type=int, help="side of the square training images")
    conf.add_argument("--per-category", type=int, help="pairs per category")
    conf.add_argument("--seed", type=int)
    conf.add_argument("--val-every", type=int)
    conf.add_argument("--checkpoint-every", type=int)
    conf.add_argument("--num-workers", type=int)
    conf.add_argument("--mixed-precision", choices=["no", "bf16"])
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, type=Path, help="output folder")
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.val_split and args.val_fraction:
        raise ValueError("give --val-split or --val-fraction, not both")
    method = import_module(TRAINERS[args.method])
    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    conf = dataclasses.replace(method.CONFIG(), **overrides)
    if len(args.root) != len(args.dataset) or (args.mask_dir and len(args.mask_dir) != len(args.dataset)):
        raise ValueError(f"give one --root (and one --mask-dir, if any) per --dataset: {len(args.dataset)} "
                         f"datasets, {len(args.root)} roots, {len(args.mask_dir or [])} mask folders")
    joint = getattr(method, "JOINT_TRAINING", False)
    if (len(args.dataset) > 1 or args.mask_dir) and not joint:
        raise ValueError(f"--method {args.method} trains on one --dataset without --mask-dir")
    split = {"split": args.split} if args.split else {}
    train_sets = [load_dataset(name, root, **split) for name, root in zip(args.dataset, args.root)]
    if args.sam and not args.mask_dir:
        raise ValueError("--sam needs --mask-dir (where the masks are written)")
    if args.sam:
        from ..training.sam_masks import sam_masks  # transformers' SAM only when asked for

        device = "cuda" if torch.cuda.is_available() else "cpu"
        for dataset, root, masks in zip(train_sets, args.root, args.mask_dir):
            masks.mkdir(parents=True, exist_ok=True)
            sam_masks(dataset, root, masks, args.sam, device=device, progress=not args.no_progress)
    if args.mask_dir:
        train_sets = [attach_masks(d, root, masks) for d, root, masks in zip(train_sets, args.root, args.mask_dir)]
    val_set = load_dataset(args.dataset[0], args.root[0], split=args.val_split) if args.val_split else None
    if args.val_fraction:
        train_sets[0], val_set = split_by_images(train_sets[0], args.val_fraction, seed=conf.seed)
    train_set = train_sets if joint else train_sets[0]
    trainer = method.build_trainer(train_set, args.out, conf, backbone=args.backbone, adapter=args.adapter,
                                   val_set=val_set, val_pairs=args.val_pairs, progress=not args.no_progress)
    try:
        result = trainer.fit(resume=args.resume)
    except FloatingPointError as err:
        print(f"geocorr train: error: {err}", file=sys.stderr)
        return 1
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    print(f"outputs in {args.out}")
    return 0
