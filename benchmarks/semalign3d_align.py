"""SemAlign3D on the synthetic 3D world: build time, alignment time per image and accuracy.

    python benchmarks/semalign3d_align.py --instances 8 --steps 1000

Builds a class from ``--views`` rendered training views, aligns ``--instances`` unseen instances
(random azimuth, elevation 5-40°, focal 1.2-4), and prints the time per image and PCK of the
aligned keypoints' projections; then matches front-left views to views from behind and compares
the reverse traversal with plain feature argmax on the left/right twin keypoints.

Figures on the shared 2-core CPU machine (heavily loaded, 1 thread), 48 px images, seed 0:

    --steps 200 --instances 6 --pairs 4 --sparse-steps 500
    build: 11.4 s for 12 views, 296 dense points; focal ratio error max 0.112; sparse cloud vs skeleton 0.056
    alignment (200 steps, 16 starts): 21.7 ± 8.2 s per image
    aligned keypoints of 6 unseen instances: PCK@0.05 0.912  PCK@0.10 1.000  median error 0.78 px
    front -> behind, 9 left/right keypoints: PCK@0.10 reverse traversal 0.889 vs feature argmax 0.222

    --steps 1000 --instances 3 --pairs 2 (published step count)
    alignment (1000 steps, 16 starts): 72.4 ± 20.3 s per image
    aligned keypoints of 3 unseen instances: PCK@0.05 0.833  PCK@0.10 0.833  median error 1.33 px
    front -> behind, 4 left/right keypoints: PCK@0.10 reverse traversal 0.500 vs feature argmax 0.250
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from geocorr.matching import argmax_match
from geocorr.methods.semalign3d.alignment import AlignConfig, align, prepare_target
from geocorr.methods.semalign3d.correspondence import AlignedImage, transfer
from geocorr.methods.semalign3d.dense import DenseConfig, TrainingView
from geocorr.methods.semalign3d.focal import FocalConfig
from geocorr.methods.semalign3d.geometry import (
    normalised_to_pixels,
    project,
    similarity_residual,
)
from geocorr.methods.semalign3d.representation import BuildConfig, build_representation
from geocorr.methods.semalign3d.sparse import SparseConfig
from geocorr.methods.semalign3d.synthetic import LEFT_RIGHT, SyntheticWorld

SIZE = 48


def render(world, gen, azimuth=None, elevation=None, focal=None):
    points, scale = world.instance(gen)
    az = torch.rand(1, generator=gen).item() * 360 if azimuth is None else azimuth
    el = 5 + torch.rand(1, generator=gen).item() * 35 if elevation is None else elevation
    f = 1.2 + torch.rand(1, generator=gen).item() * 2.8 if focal is None else focal
    return world.render(points, scale, az, el, f, image_hw=(SIZE, SIZE))


def aligned(rep, view, conf, gen):
    target = prepare_target(rep, view.features, view.grid, view.mask, view.depth, conf, gen)
    start = time.perf_counter()
    result = align(rep, target, conf, gen)
    return AlignedImage(view.features, view.grid, result), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=12, help="training views")
    parser.add_argument("--instances", type=int, default=6, help="unseen instances to align")
    parser.add_argument("--pairs", type=int, default=3, help="front/behind pairs to match")
    parser.add_argument("--steps", type=int, default=1000, help="alignment steps (published: 1000)")
    parser.add_argument("--samples-per-focal", type=int, default=4, help="initial rotations per focal (published: 4)")
    parser.add_argument("--sparse-steps", type=int, default=2000, help="keypoint cloud refinement steps")
    parser.add_argument("--sigma-inference", type=float, default=0.05, help="σ of the reverse traversal")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world, gen = SyntheticWorld(seed=args.seed), torch.Generator().manual_seed(args.seed + 1)

    views = [render(world, gen) for _ in range(args.views)]
    build = BuildConfig(sparse=SparseConfig(steps=args.sparse_steps, lr=1e-2), focal=FocalConfig(),
                        dense=DenseConfig(points_per_image=500, clusters=300))
    start = time.perf_counter()
    rep = build_representation([TrainingView(v.features, v.grid, v.depth, v.mask, v.keypoints, v.visible,
                                             keypoint_depth=v.world[:, 2]) for v in views], "synthetic", conf=build)
    ratio = torch.tensor(rep.meta["focals"]) / torch.tensor([v.focal for v in views])
    print(f"build: {time.perf_counter() - start:.1f} s for {args.views} views, {len(rep.dense)} dense points; "
          f"focal ratio error max {float((ratio / ratio.mean() - 1).abs().max()):.3f}; "
          f"sparse cloud vs skeleton (similarity residual) {float(similarity_residual(rep.sparse.double(), world.template)):.3f}")

    conf = AlignConfig(steps=args.steps, lr=5.0 / args.steps, samples_per_focal=args.samples_per_focal,
                       pixels=128, background_pixels=128)
    times, errors = [], []
    for _ in range(args.instances):
        view = render(world, gen)
        result, seconds = aligned(rep, view, conf, gen)
        a = result.alignment
        proj = normalised_to_pixels(project(a.sparse[None], torch.tensor([a.focal]))[0], (SIZE, SIZE))
        errors.append((proj - view.keypoints).norm(dim=1)[view.visible])
        times.append(seconds)
    err = torch.cat(errors)
    print(f"alignment ({args.steps} steps, {len(conf.focals) * conf.samples_per_focal} starts, "
          f"{torch.get_num_threads()} CPU threads): {statistics.mean(times):.1f} ± "
          f"{statistics.pstdev(times):.1f} s per image")
    print(f"aligned keypoints of {args.instances} unseen instances: PCK@0.05 {float((err < 0.05 * SIZE).float().mean()):.3f}"
          f"  PCK@0.10 {float((err < 0.10 * SIZE).float().mean()):.3f}  median error {float(err.median()):.2f} px")

    ours, feats = [], []
    twin = torch.tensor([LEFT_RIGHT[i] != i for i in range(len(LEFT_RIGHT))])
    for _ in range(args.pairs):
        front = render(world, gen, azimuth=30 + 60 * torch.rand(1, generator=gen).item(), elevation=35)
        back = render(world, gen, azimuth=210 + 60 * torch.rand(1, generator=gen).item(), elevation=35)
        both = front.visible & back.visible & twin
        if not both.any():
            continue
        query = front.keypoints[both]
        pts = transfer(rep, aligned(rep, front, conf, gen)[0], aligned(rep, back, conf, gen)[0], query,
                       args.sigma_inference)[0]
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
