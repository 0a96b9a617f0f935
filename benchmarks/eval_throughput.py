"""Evaluation throughput of ``geocorr.evaluation.evaluate``: images/s and pairs/s.

Runs the evaluation runner on the first --max-pairs pairs of PF-Willow (default: one sub-folder,
10 images, 90 pairs) and prints

- features: images forwarded through the backbone per second (each image once, batched);
- matching: pairs/s once every feature is cached (the second pass), with the published
  up-sampled argmax and with the token-grid argmax (``upsample="none"``);
- end to end: pairs/s of the first pass (features + matching), i.e. what ``geocorr eval`` costs.

    python benchmarks/eval_throughput.py                            # ViT-B/14 shape, 518², CPU
    python benchmarks/eval_throughput.py --device cuda --dtype bfloat16 --max-pairs 900

Weights are random unless --backbone names real ones (speed does not depend on their values).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import geocorr
from geocorr.backbones import ARCHITECTURES, architecture_config
from geocorr.datasets import load_dataset
from geocorr.evaluation.cache import FeatureCache
from geocorr.evaluation.runner import evaluate

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "PF-dataset-WILLOW"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="PF-Willow folder")
    parser.add_argument("--backbone", default="vitb14",
                        help=f"architecture ({', '.join(ARCHITECTURES)}: random weights), hub id or folder")
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-pairs", type=int, default=90)
    args = parser.parse_args()

    dataset = load_dataset("pf-willow", args.root)
    dataset.pairs = dataset.pairs[: args.max_pairs]
    num_images = len(dataset.images())
    print(f"device {args.device}, backbone {args.backbone}, {args.image_size}², {args.dtype}, batch {args.batch_size}: "
          f"{len(dataset)} pairs / {num_images} images of PF-Willow")
    spec = architecture_config(args.backbone) if args.backbone in ARCHITECTURES else args.backbone
    for upsample in ("features", "none"):
        model = geocorr.load("dinov2", backbone=spec, image_size=args.image_size, dtype=args.dtype,
                             device=args.device, upsample=upsample, batch_size=args.batch_size)
        evaluate(model, dataset, pair_indices=range(1), progress=False)  # warm-up
        cache = FeatureCache()
        first = evaluate(model, dataset, batch_size=args.batch_size, cache=cache, progress=False).stats
        second = evaluate(model, dataset, batch_size=args.batch_size, cache=cache, progress=False).stats
        label = "up-sampled argmax (published)" if upsample == "features" else "token-grid argmax"
        if upsample == "features":
            print(f"features:   {first['images_forwarded']} images in {first['feature_seconds']:.2f} s "
                  f"-> {first['images_forwarded'] / first['feature_seconds']:.2f} images/s")
        print(f"matching, {label}: {second['pairs']} pairs in {second['seconds']:.2f} s "
              f"-> {second['pairs'] / second['seconds']:.1f} pairs/s (features cached)")
        print(f"end to end, {label}: {first['pairs'] / first['seconds']:.1f} pairs/s "
              f"({first['seconds']:.2f} s, one forward per image)")


if __name__ == "__main__":
    main()
