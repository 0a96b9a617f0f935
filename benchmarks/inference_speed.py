"""GECO inference cost vs a bare DINOv2 forward of the same size and resolution.

Times (median of --runs after --warmup, device synchronised) each stage of matching one PF-Willow pair:
decode (PNG -> tensor), resize (+ normalise), backbone forward, similarity + argmax (on the token grid,
and with features up-sampled to the image as in the published evaluation). Prints the ratio
(GECO features + matching) / bare DINOv2 forward (goal <= 1.05) and images/s.

    python benchmarks/inference_speed.py                      # ViT-B/14 shape, 518², CPU, fp32
    python benchmarks/inference_speed.py --device cuda --dtype bfloat16

Weights are random unless --backbone names real ones: speed does not depend on their values; the
released GECO LoRA is loaded and merged when it fits the backbone (ViT-B).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import geocorr
from geocorr.backbones import architecture_config, build_backbone
from geocorr.devices import resolve_device
from geocorr.images import load_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def timed(fns: dict, runs: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each fn() over ``runs`` after ``warmup`` calls; the fns are interleaved run by
    run so that a load change on the machine affects them alike."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=None, help="hub id / folder (default: random ViT-B/14 weights)")
    parser.add_argument("--adapter", default=str(SHARED / "geco-official" / "last_lora_weights.pth"))
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--points", type=int, default=10, help="query points per pair")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = resolve_device(args.device)
    spec = args.backbone or architecture_config("vitb14")
    adapter = args.adapter if Path(args.adapter).is_file() else None

    geco = geocorr.load("geco", backbone=spec, adapter=adapter, image_size=args.image_size,
                        dtype=args.dtype, device=args.device, upsample="none")
    bare = build_backbone(spec, image_size=args.image_size, dtype=args.dtype).to(device).eval()
    pair = sorted((SHARED / "PF-dataset-WILLOW" / "car(G)").glob("*.png"))[:2]

    cpu = torch.device("cpu")
    images = [load_image(p) for p in pair]
    prepped = [geco.backbone.preprocess(im) for im in images]  # moved to the model's device there, once
    t = timed({"decode": lambda: [load_image(p) for p in pair]}, args.runs, args.warmup, cpu)
    t |= timed({"resize": lambda: [geco.backbone.preprocess(im) for im in images]}, args.runs, args.warmup, device)
    x = torch.stack([p[0] for p in prepped])
    grids = [p[1] for p in prepped]
    with torch.inference_mode():
        feats = geocorr.methods.base.Features(geco._dense(x).float(), grids)
        h, w = grids[0].image_hw
        pts = torch.rand(args.points, 2) * torch.tensor([w - 1.0, h - 1.0])
        up = geocorr.load("geco", backbone=architecture_config("vits14"), adapter=None, image_size=28,
                          upsample="features")  # only its matching is used
        t |= timed({"bare": lambda: bare(x[:1]), "geco": lambda: geco._dense(x[:1]),
                    "match": lambda: geco.match_features(feats[0], feats[1], pts),
                    "match_up": lambda: up.match_features(feats[0], feats[1], pts)},
                   args.runs, args.warmup, device)
    t_decode, t_resize, t_bare, t_geco, t_match, t_match_up = (
        t[k] for k in ("decode", "resize", "bare", "geco", "match", "match_up"))

    per_image = t_geco + t_match / 2  # one backbone forward per image; one match per pair of images
    print(f"device {device}, dtype {args.dtype}, input {tuple(x.shape[-2:])}, "
          f"{sum(p.numel() for p in bare.parameters()) / 1e6:.1f} M parameters, {args.points} points, "
          f"median of {args.runs} runs")
    print(f"{'stage':<34}{'ms':>10}")
    for name, t in [("decode (2 PNGs)", t_decode), ("to device, resize + normalise (2)", t_resize),
                    ("bare DINOv2 forward (1 image)", t_bare), ("GECO backbone, LoRA merged (1 image)", t_geco),
                    ("similarity + argmax (tokens)", t_match),
                    ("similarity + argmax (up-sampled)", t_match_up)]:
        print(f"{name:<34}{1000 * t:>10.2f}")
    print(f"ratio (GECO forward + matching per image) / bare forward: {per_image / t_bare:.3f}  (goal <= 1.05)")
    print(f"images/s (GECO forward + matching): {1 / per_image:.2f}")


if __name__ == "__main__":
    main()
