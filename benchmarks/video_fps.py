"""Video point-tracking speed: frames per second of `geocorr track`'s tracker, per backbone and precision.

For each architecture (ViT-S/14, ViT-B/14), dtype and torch.compile setting, tracks --points points
through --frames synthetic frames (--height × --width, in memory, so decoding does not count) in
batches of --batch-size at the published resolution (518 × 518 → 37 × 37 tokens), after one warm-up
batch (which also compiles). Prints frames/s and ms/frame; GECO's headline is 30 fps (ViT-B, GPU).

    python benchmarks/video_fps.py                                        # CPU, fp32 and bf16
    python benchmarks/video_fps.py --device cuda --compile both           # GPU: with and without compile
    python benchmarks/video_fps.py --video clip.mp4 --archs vitb14        # a real video, decoding included

Weights are random unless --backbone names real ones (one architecture then): speed does not depend
on their values.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import geocorr
from geocorr.backbones import architecture_config
from geocorr.demo.tracking import PointTracker, track_video
from geocorr.devices import resolve_device


def synthetic_frames(n: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(model, frames: list[np.ndarray], points: np.ndarray, batch_size: int, device: torch.device) -> float:
    """Seconds to track through ``frames`` after one warm-up batch."""
    tracker = PointTracker(model, frames[0], points)
    tracker(frames[:batch_size])
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(frames), batch_size):
        tracker(frames[i : i + batch_size])
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["vits14", "vitb14"], help="DINOv2 architectures")
    parser.add_argument("--backbone", help="real weights (hub id / folder) instead of random ones")
    parser.add_argument("--method", default="dinov2", help="geocorr method (GECO's merged LoRA costs nothing extra)")
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                        choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--compile", choices=["no", "yes", "both"], default="no", help="torch.compile the backbone")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16, help="timed frames (a multiple of --batch-size)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--video", help="track through this video instead (decoding and drawing included)")
    args = parser.parse_args()
    if args.frames % args.batch_size:
        parser.error("--frames must be a multiple of --batch-size (one compiled batch shape)")
    device = resolve_device(args.device)
    torch.manual_seed(0)
    frames = synthetic_frames(args.frames, args.height, args.width)
    points = np.random.default_rng(1).uniform([0, 0], [args.width - 1, args.height - 1], (args.points, 2))
    specs = {args.backbone: args.backbone} if args.backbone else {a: architecture_config(a) for a in args.archs}
    compiles = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]

    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({hardware}), "
          f"input {args.image_size}², {args.points} points, batch {args.batch_size}, "
          f"{args.video or f'{args.frames} frames {args.width}×{args.height}'}")
    print(f"{'backbone':<28}{'params':>8}{'dtype':>10}{'compile':>9}{'fps':>9}{'ms/frame':>10}")
    for name, spec in specs.items():
        for dtype in args.dtypes:
            for compiled in compiles:
                model = geocorr.load(args.method, backbone=spec, image_size=args.image_size, dtype=dtype,
                                     device=args.device)
                if compiled:
                    model.backbone.model = torch.compile(model.backbone.model)
                params = sum(p.numel() for p in model.parameters()) / 1e6
                if args.video:
                    origin = [[0.0, 0.0]]  # a point inside any first frame
                    track_video(model, args.video, origin, batch_size=args.batch_size, max_frames=args.batch_size,
                                progress=False)  # warm-up (and compilation)
                    summary = track_video(model, args.video, origin, batch_size=args.batch_size,
                                          max_frames=args.frames, progress=False)
                    seconds, count = summary.seconds, summary.frames
                else:
                    seconds, count = measure(model, frames, points, args.batch_size, device), len(frames)
                print(f"{name!s:<28}{params:>7.1f}M{dtype:>10}{'yes' if compiled else 'no':>9}"
                      f"{count / seconds:>9.2f}{1000 * seconds / count:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
