"""``geocorr train --method geco --dataset D --root DIR --out DIR``: train a method's weights.

Writes ``DIR/checkpoint-<step>.safetensors`` (every ``--checkpoint-every`` steps, atomically, content-hashed;
the newest ``--keep-checkpoints`` are kept), ``DIR/log.jsonl``
and, at the end, the method's weights (GECO: ``DIR/adapter.safetensors``, usable as
``geocorr eval --method geco --weights DIR/adapter.safetensors``). ``--seed`` seeds model construction
too (a ``random:`` backbone, a fresh LoRA). ``--resume`` continues a run bit-exactly from its newest intact
checkpoint; it refuses other options (those in ``_NOT_THE_RUN`` excepted) or a model built differently, and
a larger ``--max-steps``/``--epochs`` extends a finished run (said on stderr). Validation PCK comes from
``--val-split`` of the same dataset, or from ``--val-fraction`` of the training images held out
(image-disjoint: no validation image is ever trained on). Several GPUs or nodes:
``accelerate launch -m geocorr.cli train ...``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from importlib import import_module
from pathlib import Path

import torch
from accelerate.utils import set_seed

from ..backbones.precision import check_dtype
from ..datasets import DATASETS, load_dataset
from ..devices import resolve_device
from ..training.recipes.geco import attach_masks
from ..training.splits import split_by_images
from ..weights import sha256sum

# method -> "module": the module defines a TrainConfig subclass ``CONFIG`` and
# ``build_trainer(train_set, out_dir, conf, backbone=, adapter=, val_set=, val_pairs=, progress=)``;
# with ``JOINT_TRAINING = True`` train_set is a list of PairDatasets (--dataset repeated, --mask-dir).
TRAINERS: dict[str, str] = {
    "geco": "geocorr.training.recipes.geco",
    "geoaware": "geocorr.training.recipes.geoaware",
    "cyclecorr": "geocorr.training.recipes.cyclecorr",
}

# command-line option -> config field (unset options keep the method's published defaults)
_OVERRIDES = ("epochs", "max_steps", "batch_size", "lr", "image_size", "seed", "val_every",
              "checkpoint_every", "num_workers", "mixed_precision", "per_category", "meshes", "keep_checkpoints",
              "scheduler")
# options that do not change what is trained (a resume may change them); every other option is part
# of the run's fingerprint, stored in its checkpoints (the config overrides are checked as the config)
_NOT_THE_RUN = ("command", "_run", "out", "resume", "no_progress", "device")


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
    data.add_argument("--stage", choices=["init", "cycle"],
                      help="cyclecorr: init (regress a classical flow, batch 40) or cycle (quartets, batch 10; "
                           "start it from the init weights with --weights); default cycle")
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
    model.add_argument("--weights", help="start from these weights (GECO: a LoRA file; default: a fresh LoRA)")
    model.add_argument("--adapter", dest="weights", help=argparse.SUPPRESS)  # the older name of --weights
    conf = parser.add_argument_group("training (unset: the published setting)")
    conf.add_argument("--epochs", type=int)
    conf.add_argument("--max-steps", type=int, help="optimiser steps in all (overrides --epochs)")
    conf.add_argument("--batch-size", type=int)
    conf.add_argument("--lr", type=float)
    conf.add_argument("--scheduler", choices=["none", "onecycle"], help="learning-rate schedule")
    conf.add_argument("--image-size", type=int, help="side of the square training images")
    conf.add_argument("--per-category", type=int, help="pairs per category")
    conf.add_argument("--seed", type=int)
    conf.add_argument("--val-every", type=int)
    conf.add_argument("--checkpoint-every", type=int)
    conf.add_argument("--keep-checkpoints", type=int, help="keep the newest N checkpoints (default 2)")
    conf.add_argument("--num-workers", type=int)
    conf.add_argument("--mixed-precision", choices=["no", "bf16"])
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, type=Path, help="output folder")
    run.add_argument("--resume", action="store_true", help="continue from the newest intact checkpoint in OUT")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--device", help="torch device: cpu, cuda, cuda:N, mps (default: accelerate's choice, a GPU "
                     "if there is one); not with `accelerate launch` (each process gets its own GPU)")
    run.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                     help="compute dtype of the forward passes: bfloat16 = --mixed-precision bf16 (autocast; "
                          "weights and optimiser stay float32); float16 is refused (it needs loss scaling)")


def run(args: argparse.Namespace) -> int:
    if args.val_split and args.val_fraction:
        raise ValueError("give --val-split or --val-fraction, not both")
    method = import_module(TRAINERS[args.method])
    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    device = _training_device(args, overrides)
    if args.stage is not None and args.method != "cyclecorr":
        raise ValueError(f"--stage applies to --method cyclecorr, not {args.method}")
    conf = dataclasses.replace(method.STAGES[args.stage]() if args.stage else method.CONFIG(), **overrides)
    if len(args.root) != len(args.dataset) or (args.mask_dir and len(args.mask_dir) != len(args.dataset)):
        raise ValueError(f"give one --root (and one --mask-dir, if any) per --dataset: {len(args.dataset)} "
                         f"datasets, {len(args.root)} roots, {len(args.mask_dir or [])} mask folders")
    joint = getattr(method, "JOINT_TRAINING", False)
    if (len(args.dataset) > 1 or args.mask_dir) and not joint:
        raise ValueError(f"--method {args.method} trains on one --dataset without --mask-dir")
    split = {"split": args.split} if args.split else {}
    train_sets = [load_dataset(name, root, **split) for name, root in zip(args.dataset, args.root, strict=True)]
    if args.sam and not args.mask_dir:
        raise ValueError("--sam needs --mask-dir (where the masks are written)")
    if args.sam:
        from ..training.sam_masks import sam_masks  # transformers' SAM only when asked for

        sam_device = str(device) if device is not None else "cuda" if torch.cuda.is_available() else "cpu"
        for dataset, root, masks in zip(train_sets, args.root, args.mask_dir, strict=True):
            masks.mkdir(parents=True, exist_ok=True)
            sam_masks(dataset, root, masks, args.sam, device=sam_device, progress=not args.no_progress)
    if args.mask_dir:
        train_sets = [attach_masks(d, root, masks)
                      for d, root, masks in zip(train_sets, args.root, args.mask_dir, strict=True)]
    val_set = load_dataset(args.dataset[0], args.root[0], split=args.val_split) if args.val_split else None
    if args.val_fraction:
        train_sets[0], val_set = split_by_images(train_sets[0], args.val_fraction, seed=conf.seed)
    train_set = train_sets if joint else train_sets[0]
    set_seed(conf.seed)  # model construction (random backbone, fresh LoRA) is part of the seeded run
    trainer = method.build_trainer(train_set, args.out, conf, backbone=args.backbone, adapter=args.weights,
                                   val_set=val_set, val_pairs=args.val_pairs, progress=not args.no_progress)
    trainer.run = run_fingerprint(args)
    if device is not None and trainer.accelerator.device != device:
        raise ValueError(f"--device {args.device}: accelerate is already set up on {trainer.accelerator.device} "
                         f"in this process")
    try:
        result = trainer.fit(resume=args.resume)
    except FloatingPointError as err:
        print(f"geocorr train: error: {err}", file=sys.stderr)
        return 1
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    print(f"outputs in {args.out}")
    return 0


def _training_device(args: argparse.Namespace, overrides: dict) -> torch.device | None:
    """--device and --dtype checked against this machine; --dtype becomes the config's mixed precision.

    The device is handed to accelerate (``ACCELERATE_TORCH_DEVICE``), which moves the model and every
    batch there. None: accelerate's own choice.
    """
    if args.dtype is not None:
        if args.dtype == "float16":
            raise ValueError("--dtype float16: training runs in float32 or bfloat16 (float16 needs loss scaling); "
                             "use --dtype bfloat16")
        precision = {"float32": "no", "bfloat16": "bf16"}[args.dtype]
        if overrides.setdefault("mixed_precision", precision) != precision:
            raise ValueError(f"--dtype {args.dtype} contradicts --mixed-precision {args.mixed_precision}")
    if args.device is None:
        if args.dtype is not None:
            check_dtype(args.dtype, "cuda" if torch.cuda.is_available() else "cpu")
        return None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--device: under `accelerate launch`/torchrun each process already has its own device; "
                         "drop --device")
    device = resolve_device(args.device)
    check_dtype(args.dtype or "float32", device)
    os.environ["ACCELERATE_TORCH_DEVICE"] = str(device)
    return device


def _plain(value):
    """An option's value as JSON: paths resolved to absolute strings."""
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run_fingerprint(args: argparse.Namespace) -> dict:
    """Every option that changes the run, except the config overrides (checked with the config):
    method, datasets, roots, splits, masks, validation set, backbone, starting weights (their path and
    SHA-256), … A resume under other values is refused."""
    skip = set(_NOT_THE_RUN) | set(_OVERRIDES)
    fingerprint = {k: _plain(v) for k, v in sorted(vars(args).items()) if k not in skip}
    if args.weights:
        weights = Path(args.weights).expanduser()
        fingerprint["weights"] = str(weights.resolve())
        fingerprint["weights_sha256"] = sha256sum(weights) if weights.is_file() else None
    return fingerprint
