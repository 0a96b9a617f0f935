"""SemAlign3D on the synthetic 3D world: build time, alignment speed (images/s, batched or not),
the single-alignment failure rate over many random views, and left/right keypoint transfer.

    python benchmarks/semalign3d_align.py --views 24 --steps 200 --batch 8

Builds a class from ``--train`` rendered training views (exact depth, the "oracle depth" case), then
aligns ``--views`` unseen instances from random azimuths, elevations 5-40° and focal lengths
0.6-2 (longer-side units), ``--batch`` images per optimisation. A view *succeeds* when >= 80 % of
its visible keypoints project within 0.1 · 48 px (the test's criterion); it *fails grossly* below
50 %; a failure is a *mirror* when swapping the left/right twins would have made it succeed.
Finally front-left views are matched to views from behind: reverse traversal vs feature argmax on
the left/right twin keypoints. Every figure depends on the seed: run several (``--seed``).

The synthetic world is a test fixture (tests/methods/semalign3d/world.py); this script imports it
from there.

Figures (2026-11-30, the shared 2-core CPU machine under a load of ~12, 1 thread, 48 px images,
seed 0, 200 steps, published focal starts 10/5/2.5/1.25 × 4 rotations):

    --speed-views 4 --batch 8 (no --flip)
    build: 22.1 s for 12 views, 295 dense points; sparse cloud vs skeleton 0.048 (mirror 0.561)
    speed: one at a time 0.031 images/s, 4 per batch 0.044 images/s (×1.4)

    --views 12 --batch 12 --flip
    12 random views: success 8/12 = 66.7%; failures 4 (1 gross, 1 left/right mirror, 0 diverged)
    --views 12 --batch 12 --flip --mirror-at 0.5 (mirror hypotheses)
    12 random views: success 9/12 = 75.0%; failures 3 (1 gross, 0 left/right mirror, 0 diverged)
    --views 12 --batch 12 --flip --samples-per-focal 8 (32 starts)
    12 random views: success 11/12 = 91.7%; failures 1 (0 gross, 0 left/right mirror, 0 diverged)
    --views 12 --batch 12 --flip --samples-per-focal 8 --mirror-at 0.5
    12 random views: success 12/12 = 100.0%
    the same, --seed 1 (another class and other views)
    12 random views: success 10/12 = 83.3%; failures 2 (1 gross, 0 left/right mirror, 0 diverged)

With the published 16 starts about 2 in 3 single alignments succeed; 32 starts plus mirror
hypotheses reach 22 of 24 (92 %) over two seeds, at twice the cost: short of the ≥ 95 % the issue
asks for. The failures left are neither gross nor mirrored in most cases: 50-80 % of the
keypoints within 0.1 · 48 px, a partly wrong pose.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "methods" / "semalign3d"))

from world import LEFT_RIGHT, SyntheticWorld  # noqa: E402  (the test fixture)

from geocorr.matching import argmax_match  # noqa: E402
from geocorr.methods.semalign3d.alignment import AlignConfig, align_many, prepare_target  # noqa: E402
from geocorr.methods.semalign3d.correspondence import AlignedImage, transfer  # noqa: E402
from geocorr.methods.semalign3d.dense import DenseConfig, TrainingView  # noqa: E402
from geocorr.methods.semalign3d.geometry import normalised_to_pixels, project, similarity_residual  # noqa: E402
from geocorr.methods.semalign3d.representation import BuildConfig, build_representation  # noqa: E402
from geocorr.methods.semalign3d.sparse import SparseConfig  # noqa: E402

SIZE = 48


def render(world, gen, azimuth=None, elevation=None, focal=None):
    points, scale = world.instance(gen)
    az = torch.rand(1, generator=gen).item() * 360 if azimuth is None else azimuth
    el = 5 + torch.rand(1, generator=gen).item() * 35 if elevation is None else elevation
    f = 0.6 + torch.rand(1, generator=gen).item() * 1.4 if focal is None else focal
    return world.render(points, scale, az, el, f, image_hw=(SIZE, SIZE))


def keypoint_errors(alignment, view) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel errors of the visible keypoints, as aligned and with the left/right twins swapped."""
    proj = normalised_to_pixels(project(alignment.sparse[None], torch.tensor([alignment.focal]))[0], (SIZE, SIZE))
    err = (proj - view.keypoints).norm(dim=1)[view.visible]
    swapped = (proj[list(LEFT_RIGHT)] - view.keypoints).norm(dim=1)[view.visible]
    return err, swapped


def align_views(rep, views, conf, batch, seed):
    """Alignments of ``views``, ``batch`` per optimisation -> (alignments, seconds)."""
    gen = torch.Generator().manual_seed(seed)
    out, start = [], time.perf_counter()
    for n in range(0, len(views), batch):
        chunk = views[n:n + batch]
        targets = [prepare_target(rep, v.features, v.grid, v.mask, v.depth, conf, gen) for v in chunk]
        out += align_many(rep, targets, conf, gen, progress=None)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=12, help="training views")
    parser.add_argument("--views", type=int, default=24, help="unseen views aligned for the failure rate")
    parser.add_argument("--batch", type=int, default=8, help="images per optimisation")
    parser.add_argument("--speed-views", type=int, default=4, help="views timed one at a time vs batched (0: skip)")
    parser.add_argument("--pairs", type=int, default=3, help="front/behind pairs to match")
    parser.add_argument("--steps", type=int, default=200, help="alignment steps (published: 1000)")
    parser.add_argument("--samples-per-focal", type=int, default=4, help="initial rotations per focal (published: 4)")
    parser.add_argument("--sparse-steps", type=int, default=500, help="keypoint cloud refinement steps")
    parser.add_argument("--flip", action="store_true", help="add the mirrored training clouds (left/right permutation)")
    parser.add_argument("--mirror-at", type=float, help="add mirror hypotheses at this progress (needs --flip)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world, gen = SyntheticWorld(seed=args.seed), torch.Generator().manual_seed(args.seed + 1)

    train = [render(world, gen) for _ in range(args.train)]
    build = BuildConfig(sparse=SparseConfig(steps=args.sparse_steps, lr=1e-2),
                        dense=DenseConfig(points_per_image=500, clusters=300, feature_neighbours=16))
    start = time.perf_counter()
    rep = build_representation([TrainingView(v.features, v.grid, v.depth, v.mask, v.keypoints, v.visible,
                                             keypoint_depth=v.world[:, 2]) for v in train], "synthetic", conf=build,
                               flip=list(LEFT_RIGHT) if args.flip else None, progress=None)
    ratio = torch.tensor(rep.meta["focals"]) / torch.tensor([v.focal for v in train])
    print(f"build: {time.perf_counter() - start:.1f} s for {args.train} views, {len(rep.dense)} dense points; "
          f"focal ratio spread {float((ratio / ratio.mean() - 1).abs().max()):.3f}; sparse cloud vs skeleton "
          f"{float(similarity_residual(rep.sparse.double(), world.template)):.3f} (mirror "
          f"{float(similarity_residual(rep.sparse.double() * torch.tensor([-1.0, 1, 1]).double(), world.template)):.3f}"
          ")")

    conf = AlignConfig(steps=args.steps, lr=5.0 / args.steps, samples_per_focal=args.samples_per_focal,
                       pixels=128, background_pixels=128, mirror_at=args.mirror_at)
    starts = len(conf.focals) * conf.samples_per_focal
    if args.speed_views:
        speed = [render(world, gen) for _ in range(args.speed_views)]
        _, single = align_views(rep, speed, conf, 1, args.seed)
        _, batched = align_views(rep, speed, conf, args.batch, args.seed)
        print(f"speed ({args.steps} steps, {starts} starts, {args.threads} thread(s)): one at a time "
              f"{len(speed) / single:.3f} images/s, {min(args.batch, len(speed))} per batch "
              f"{len(speed) / batched:.3f} images/s")

    views = [render(world, gen) for _ in range(args.views)]
    alignments, seconds = align_views(rep, views, conf, args.batch, args.seed)
    ok = gross = mirror = failed = 0
    for view, a in zip(views, alignments, strict=False):
        if a.failed:
            failed += 1
            continue
        err, swapped = keypoint_errors(a, view)
        rate = float((err < 0.1 * SIZE).float().mean())
        ok += rate >= 0.8
        gross += rate < 0.5
        mirror += rate < 0.8 and float((swapped < 0.1 * SIZE).float().mean()) >= 0.8
    n = len(views)
    print(f"{n} random views ({seconds:.0f} s, {n / seconds:.3f} images/s): success {ok}/{n} = {ok / n:.1%}; "
          f"failures {n - ok} ({gross} gross, {mirror} left/right mirror, {failed} diverged)")

    ours, feats = [], []
    twin = torch.tensor([LEFT_RIGHT[i] != i for i in range(len(LEFT_RIGHT))])
    for _ in range(args.pairs):
        front = render(world, gen, azimuth=30 + 60 * torch.rand(1, generator=gen).item(), elevation=35)
        back = render(world, gen, azimuth=210 + 60 * torch.rand(1, generator=gen).item(), elevation=35)
        both = front.visible & back.visible & twin
        if not both.any():
            continue
        query = front.keypoints[both]
        (a0, a1), _ = align_views(rep, [front, back], conf, 2, args.seed)
        pts = transfer(rep, AlignedImage(front.features, front.grid, a0), AlignedImage(back.features, back.grid, a1),
                       query, conf.sigma_inference / 20)[0]
        ours.append((pts - back.keypoints[both]).norm(dim=1))
        q = F.normalize(front.features[:, query[:, 1].round().long(), query[:, 0].round().long()].T, dim=1)
        best = argmax_match(torch.einsum("nc,chw->nhw", q, F.normalize(back.features, dim=0))[None])[0][0]
        feats.append((best - back.keypoints[both]).norm(dim=1))
    if ours:
        ours_t, feats_t = torch.cat(ours), torch.cat(feats)
        print(f"front -> behind, {len(ours_t)} left/right keypoints: PCK@0.10 reverse traversal "
              f"{float((ours_t < 0.1 * SIZE).float().mean()):.3f} vs feature argmax "
              f"{float((feats_t < 0.1 * SIZE).float().mean()):.3f}")


if __name__ == "__main__":
    main()
