"""OT layer speed: forward + backward of GECO's OT layer (published setting: ε 0.1, KL 10, 10
iterations, dustbin) for N×M tokens, and its share of one GECO training step.

    python benchmarks/ot_speed.py                          # CPU, 64², 1024², 3600² tokens, batch 1
    python benchmarks/ot_speed.py --device cuda --batch 6
    python benchmarks/ot_speed.py --backbone ../shared/data/dinov2-small-imgfocus --step-size 224

On a CPU shared with other jobs, run with ``OMP_NUM_THREADS=1``: contended intra-op threads make
small ops many times slower.

The training-step share runs one full GECO step (backbone forward/backward on both images, OT,
loss) at ``--step-size`` px and reports how much of it the OT layer takes at that token count.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from geocorr.backbones import tiny_config
from geocorr.methods.geco.transport import OptimalTransport
from geocorr.ot import mask_marginals


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        tic = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def ot_inputs(batch: int, n: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    scores = (torch.rand(batch, n, n, generator=g) * 2 - 1).to(device).requires_grad_(True)
    fg = torch.rand(batch, n, generator=g) < 0.5
    counts = torch.full((batch,), 10)
    log_a = mask_marginals(fg, torch.full((batch,), 8), counts).log().to(device)
    return scores, log_a


def ot_step(layer: OptimalTransport, scores: torch.Tensor, log_a: torch.Tensor) -> None:
    log_p = layer(scores, log_a, log_a)  # the raw plan, as GECO's loss reads it
    log_p[:, :-1, :-1].diagonal(dim1=1, dim2=2).sum().neg().backward()


def training_step_seconds(args, device: torch.device) -> tuple[float, int]:
    """Seconds of one GECO training step on random images, and its token count."""
    from geocorr.methods.geco import load
    from geocorr.training.recipes.geco import GecoTrainConfig, GecoTraining

    backbone = args.backbone or tiny_config()
    matcher = load(backbone=backbone, adapter=None, image_size=args.step_size, merge=False)
    model = GecoTraining(matcher, GecoTrainConfig(image_size=args.step_size)).to(device)
    side = args.step_size // matcher.backbone.patch
    n, k, b = side * side, 10, args.batch
    g = torch.Generator().manual_seed(0)
    batch = {
        "source_image": torch.rand(b, 3, args.step_size, args.step_size, generator=g),
        "target_image": torch.rand(b, 3, args.step_size, args.step_size, generator=g),
        "source_tokens": torch.randint(0, n, (b, k), generator=g),
        "target_tokens": torch.randint(0, n, (b, k), generator=g),
        "source_visible": torch.ones(b, k, dtype=torch.bool), "target_visible": torch.rand(b, k, generator=g) < 0.8,
        "twin": torch.arange(k).flip(0).expand(b, k).contiguous(), "keypoint_mask": torch.ones(b, k, dtype=torch.bool),
        "source_foreground": torch.rand(b, n, generator=g) < 0.5,
        "target_foreground": torch.rand(b, n, generator=g) < 0.5,
        "num_keypoints": torch.full((b,), 30),
    }
    batch = {key: v.to(device) for key, v in batch.items()}
    return timed(lambda: model.training_step(batch)["loss"].backward(), device, args.repeats), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 1024, 3600], help="tokens per image (N = M)")
    parser.add_argument("--batch", type=int, default=1, help="pairs per batch (GECO trains with 6)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", help="backbone for the training step (default: a tiny random DINOv2)")
    parser.add_argument("--step-size", type=int, default=224, help="image side of the training step (px)")
    args = parser.parse_args()
    device = torch.device(args.device)
    layer = OptimalTransport().to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"GECO OT layer, forward + backward, batch {args.batch}, {layer.conf.iters} iterations ({name})")
    print(f"{'N x M':>12} {'ms':>10}")
    for n in args.sizes:
        scores, log_a = ot_inputs(args.batch, n, device)
        seconds = timed(lambda s=scores, a=log_a: ot_step(layer, s, a), device, args.repeats)
        print(f"{f'{n} x {n}':>12} {1000 * seconds:>10.2f}")
    step, n = training_step_seconds(args, device)
    scores, log_a = ot_inputs(args.batch, n, device)
    ot = timed(lambda: ot_step(layer, scores, log_a), device, args.repeats)
    which = args.backbone or "tiny random DINOv2 (hidden 32, 2 blocks)"
    print(f"one training step at {args.step_size} px ({n} tokens, batch {args.batch}, {which}): "
          f"{1000 * step:.1f} ms, of which OT {1000 * ot:.1f} ms = {100 * ot / step:.1f} %")


if __name__ == "__main__":
    main()
