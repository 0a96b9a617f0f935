"""PCK of one dense model under each ``--protocol`` preset (geocorr, geco, geoaware) on PF-Willow.

Features are computed once and shared by the three pipelines (they differ only in coordinates,
matching conventions and scoring). Prints one line per preset: its own threshold base, and the
keypoint-bbox threshold (the README's figures).

    python benchmarks/protocol_figures.py --root ../shared/data/PF-dataset-WILLOW \\
        --backbone ../shared/data/dinov2-small-imgfocus --image-size 518 [--max-pairs N]
"""
from __future__ import annotations

import argparse
import time

import torch

from geocorr.datasets import load_dataset
from geocorr.datasets.base import check_keypoints_in_image, with_coordinates
from geocorr.evaluation.cache import FeatureCache
from geocorr.evaluation.metrics import compute_metrics
from geocorr.evaluation.protocols import PRESETS, get_pipeline, get_protocol
from geocorr.evaluation.runner import evaluate
from geocorr.methods.base import DenseMatcher
from geocorr.methods.dinov2 import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="PF-Willow folder")
    parser.add_argument("--backbone", required=True, help="DINOv2 hub id or local folder")
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--max-pairs", type=int, help="first N pairs only")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    args = parser.parse_args()

    torch.manual_seed(0)
    base = load(backbone=args.backbone, image_size=args.image_size)
    full = load_dataset("pf-willow", args.root)
    if args.max_pairs is not None:
        full.pairs = full.pairs[: args.max_pairs]
    cache = FeatureCache(4 << 30)
    print(f"PF-Willow, {len(full)} pairs, image size {args.image_size}, backbone {args.backbone}")
    for preset in args.presets:
        pipeline = get_pipeline(preset, "pf-willow")
        dataset, _ = check_keypoints_in_image(with_coordinates(full, pipeline.coordinates))
        matcher = DenseMatcher(base.backbone, **{**base.conf, **pipeline.matcher_options()}).eval()
        tic = time.perf_counter()
        predictions = evaluate(matcher, dataset, cache=cache, progress=False)
        seconds = time.perf_counter() - tic
        for normalisation in (None, "bbox"):
            protocol = get_protocol(preset, "pf-willow", normalisation=normalisation)
            pck = compute_metrics(predictions, protocol)["pck"]["all"]
            levels = " / ".join(f"{v:.2f}" for v in pck)
            alphas = "/".join(f"{a:g}" for a in protocol.alphas)
            print(f"{preset:<9} {pipeline.coordinates:<13} query={pipeline.query:<8} "
                  f"prediction={pipeline.prediction:<6} "
                  f"upsample={pipeline.upsample:<8} {protocol.normalisation:<5} {protocol.averaging:<5} "
                  f"{protocol.comparison:<5} PCK@{alphas} = {levels}   ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
