"""DINOv2-B/14 vs DINOv3-B/16 feature-network speed at the same input side (random weights).

518² gives DINOv2 37×37 = 1369 tokens; DINOv3's patch 16 gives 512² -> 32×32 = 1024 tokens, so
DINOv3-B is expected to be faster at "the same" resolution despite RoPE. Interleaved runs, median.

    python benchmarks/backbone_speed.py [--device cuda --dtype bfloat16] [--repeats 5]

Measured 2026-11-30 on the CPU (2 threads, a machine shared with other jobs: load ~10), fp32, batch 1,
median of 5: DINOv2-B/14 at 518² (37×37 tokens) 5970 ms, DINOv3-B/16 at 512² (32×32) 5018 ms — 0.84×
the time for 0.75× the tokens. No GPU figure yet (benchmarks/gpu_report.py prints the same row on CUDA).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from geocorr.backbones import build_backbone

SPECS = {"DINOv2-B/14 (random:vitb14)": "random:vitb14", "DINOv3-B/16 (random:dinov3-vitb16)": "random:dinov3-vitb16"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {name: build_backbone(spec, image_size=args.image_size, dtype=args.dtype).eval().to(args.device)
              for name, spec in SPECS.items()}
    inputs = {}
    for name, model in models.items():
        x, grid = model.preprocess(torch.rand(3, 480, 640))
        inputs[name] = (x[None].expand(args.batch_size, -1, -1, -1).contiguous(), grid.grid_hw)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for name, model in models.items():  # warm-up
            model(inputs[name][0])
        for _ in range(args.repeats):
            for name, model in models.items():
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                tic = time.perf_counter()
                model(inputs[name][0])
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - tic)
    print(f"{args.device} {args.dtype}, batch {args.batch_size}, image side {args.image_size}, "
          f"threads {torch.get_num_threads()}, median of {args.repeats}")
    for name, (x, grid_hw) in inputs.items():
        ms = 1000 * statistics.median(times[name])
        print(f"{name:36s} input {x.shape[2]}×{x.shape[3]}  tokens {grid_hw[0]}×{grid_hw[1]}  {ms:8.1f} ms"
              f"  {args.batch_size / ms * 1000:7.2f} images/s")


if __name__ == "__main__":
    main()
