"""SemAlign3D on the synthetic 3D world: the single-alignment success rate over many random views
and classes (with a 95 % interval), alignment cost, and left/right keypoint transfer.

    python benchmarks/semalign3d_align.py --flip --seeds 0 1 --views 20
    python benchmarks/semalign3d_align.py --flip --set mirror_at=0.5             # mirror hypotheses
    python benchmarks/semalign3d_align.py --flip --steps 1000 --set lr=5e-3   # the published length

Per seed, a class (``SyntheticWorld(seed)``) is built from ``--train`` rendered training views (exact
depth, the "oracle depth" case), then ``--views`` unseen instances from random azimuths, elevations
5-40° and focal lengths 0.6-2 (longer-side units) are aligned, ``--batch`` images per optimisation.
A view *succeeds* when >= 80 % of its visible keypoints project within 0.1 · 48 px (the test's
criterion); it *fails grossly* below 50 %; a failure is a *mirror* when swapping the left/right
twins would have made it succeed. The success rate is pooled over the seeds with its Wilson 95 %
interval. ``--set KEY=VALUE`` overrides any AlignConfig field (Python literals); the defaults here
are the library's except steps 200, lr 5 / steps, 128 object and background pixels.
``--every-start`` also counts the views on which *some* start succeeded: a failure with a successful
start is the pick's (loss + z-order), one without is the search's (the multi-start's). Optionally
``--speed-views`` times one image per optimisation against ``--batch``, and ``--pairs`` matches
front-left views to views from behind (reverse traversal vs feature argmax on the twins).
Costs are CPU seconds of this one-thread process (its wall time depends on the machine's load).

The synthetic world is a test fixture (tests/methods/semalign3d/world.py); this script imports it
from there.

Figures (2026-11-30/12-01, the shared 2-core CPU machine, 1 thread, 48 px images, --flip, 12
training views, 200 steps, lr 0.025, 128 pixels; 20 views per seed):

    objective before background_beyond_frame (L_background blind outside the image), seeds 0-1, batch 10:
    published 16 random starts        27/40 = 67.5 % (Wilson 52.0-79.9 %); 13 failures, 8 gross,
                                      0 mirror; some start succeeded on 28/40 (12 search failures)
    samples_per_focal=8, mirror_at=0.5  seed 0 only: 19/20 (76.4-99.1 %; published 15/20 on it)
                                      (stopped when the objective changed)

    objective with background_beyond_frame=True (the default since 2026-11-30 23:16), batch 10 for
    seeds 0-1, 1 for seeds 2-9 (CPU s per image from seeds 2-9):
    published 16 random starts        seeds 0-1 39/40, 2-5 78/80, 6-9 78/80: 195/200 = 97.5 %
                                      (Wilson 94.3-98.9 %); 5 failures (1 gross, 1 mirror), 4 of
                                      them the pick's; 6.2 CPU s per image (0.16 images per CPU s)
    64 starts pruned to 16 at 25 % + symmetry-spread rotations + --set mirror_at=0.5 (commit 76f3336:
    --set oversample=4 --set rotations=spread; both options removed since, see below)
                                      seeds 0-1 40/40, 2-5 78/80, 6-9 79/80: 197/200 = 98.5 %
                                      (95.7-99.5 %); 3 failures (0 gross), all the pick's;
                                      7.9 CPU s per image (×1.26)

    the published schedule (--steps 1000: lr 5e-3, the library's defaults), published 16 random
    starts, seeds 0 and 1, 10 views each (2026-12-01): 10/10 and 9/10 = 19/20 = 95.0 % (Wilson
    76.4-99.1 %); the one failure neither gross nor mirrored; 28-30 CPU s per image (×4.7)

Single alignments succeed >= 95 % with the published multi-start once L_background sees past the
frame (point estimate 97.5 %; the interval's lower end 94.3 %). The multi-start options (successive
halving, spread rotations, mirror hypotheses) fix search failures, of which 1 in 200 is left; their
2 views of 200 are no significant gain (their interval's lower end clears 95 %, for 26 % more CPU),
so successive halving and spread rotations were removed from the library to keep the alignment
small (reproducible at commit 76f3336) and mirror hypotheses stay an option, off by default.
What remains (1.5-2.5 %) is mostly the pick: the chosen
start's loss + z-order beats a correct start's. Seed 3's two failures (published starts), every
start listed: the chosen poses put 43 % and 50 % of the keypoints right and scored -1.255 and
-1.272, against -1.201 and -1.266 for the best fully correct start; in the first the z-order term
would need a weight > 3.5 (now 1) to flip the choice, in the second the wrong pose also agrees
better with the depth map (z-order 0.086 vs 0.098), so no weight would. The z-order check does its
job elsewhere: by loss alone both views would take a depth-flipped pose (loss -1.458 / -1.447,
z-order 0.81 / 0.62). Batching: on one CPU thread aligning 4 images together costs the same user
time as one by one (4.6 vs 4.8 s) plus 1.2 s of system time (tensors over 32 MB are mapped afresh
every step), hence ``--batch 1`` by default.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import math
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
from geocorr.methods.semalign3d import alignment as alignment_module  # noqa: E402
from geocorr.methods.semalign3d.alignment import AlignConfig, align_many, prepare_target  # noqa: E402
from geocorr.methods.semalign3d.correspondence import AlignedImage, transfer  # noqa: E402
from geocorr.methods.semalign3d.dense import DenseConfig, TrainingView  # noqa: E402
from geocorr.methods.semalign3d.geometry import normalised_to_pixels, project, similarity_residual  # noqa: E402
from geocorr.methods.semalign3d.representation import BuildConfig, build_representation  # noqa: E402
from geocorr.methods.semalign3d.sparse import SparseConfig  # noqa: E402

SIZE = 48


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for z = 1.96)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def overrides(items: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings -> {key: value}; values are Python literals (``lr=1e-3``,
    ``focals=(10.0, 5.0)``, ``mirror_at=None``), anything else is kept as a string."""
    fields = {f.name for f in dataclasses.fields(AlignConfig)}
    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(fields)}")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def render(world, gen, azimuth=None, elevation=None, focal=None):
    points, scale = world.instance(gen)
    az = torch.rand(1, generator=gen).item() * 360 if azimuth is None else azimuth
    el = 5 + torch.rand(1, generator=gen).item() * 35 if elevation is None else elevation
    f = 0.6 + torch.rand(1, generator=gen).item() * 1.4 if focal is None else focal
    return world.render(points, scale, az, el, f, image_hw=(SIZE, SIZE))


def keypoint_errors(sparse, focal, view) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel errors of the visible keypoints, as aligned and with the left/right twins swapped."""
    proj = normalised_to_pixels(project(sparse[None], torch.tensor([focal]))[0], (SIZE, SIZE))
    err = (proj - view.keypoints).norm(dim=1)[view.visible]
    swapped = (proj[list(LEFT_RIGHT)] - view.keypoints).norm(dim=1)[view.visible]
    return err, swapped


def succeeds(sparse, focal, view) -> bool:
    """The test's criterion: >= 80 % of the visible keypoints within 0.1 · 48 px."""
    return float((keypoint_errors(sparse, focal, view)[0] < 0.1 * SIZE).float().mean()) >= 0.8


def align_views(rep, views, conf, batch, seed, every_start=None):
    """Alignments of ``views``, ``batch`` per optimisation -> (alignments, CPU seconds of this
    process: on a shared machine its wall time depends on the load, its CPU time much less).
    every_start: a list that receives each image's final starts (sparse (S, L, 3), focal (S,))."""
    gen = torch.Generator().manual_seed(seed)
    out, start = [], time.process_time()
    pick = alignment_module._pick
    if every_start is not None:
        def recording_pick(rep_, target, sparse, focal, loss, conf_):
            every_start.append((sparse.detach().clone(), focal.detach().clone()))
            return pick(rep_, target, sparse, focal, loss, conf_)
        alignment_module._pick = recording_pick
    try:
        for n in range(0, len(views), batch):
            chunk = views[n:n + batch]
            targets = [prepare_target(rep, v.features, v.grid, v.mask, v.depth, conf, gen) for v in chunk]
            out += align_many(rep, targets, conf, gen, progress=None)
    finally:
        alignment_module._pick = pick
    return out, time.process_time() - start


def build_class(seed, args):
    """The class of ``SyntheticWorld(seed)`` built from ``args.train`` views -> (world, rep, generator)."""
    world, gen = SyntheticWorld(seed=seed), torch.Generator().manual_seed(seed + 1)
    train = [render(world, gen) for _ in range(args.train)]
    build = BuildConfig(sparse=SparseConfig(steps=args.sparse_steps, lr=1e-2),
                        dense=DenseConfig(points_per_image=500, clusters=300, feature_neighbours=16))
    start = time.perf_counter()
    rep = build_representation([TrainingView(v.features, v.grid, v.depth, v.mask, v.keypoints, v.visible,
                                             keypoint_depth=v.world[:, 2]) for v in train], "synthetic", conf=build,
                               flip=list(LEFT_RIGHT) if args.flip else None, progress=None)
    ratio = torch.tensor(rep.meta["focals"]) / torch.tensor([v.focal for v in train])
    mirror = rep.sparse.double() * torch.tensor([-1.0, 1, 1]).double()
    print(f"seed {seed} build: {time.perf_counter() - start:.1f} s for {args.train} views, {len(rep.dense)} dense "
          f"points; focal ratio spread {float((ratio / ratio.mean() - 1).abs().max()):.3f}; sparse cloud vs "
          f"skeleton {float(similarity_residual(rep.sparse.double(), world.template)):.3f} (mirror "
          f"{float(similarity_residual(mirror, world.template)):.3f})")
    return world, rep, gen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=12, help="training views per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one class (world) per seed")
    parser.add_argument("--views", type=int, default=20, help="unseen random views aligned per seed")
    parser.add_argument("--batch", type=int, default=1, help="images per optimisation (on one CPU thread batching "
                        "saves no CPU time and its large tensors cost system time)")
    parser.add_argument("--speed-views", type=int, default=0, help="views timed one at a time vs batched (0: skip)")
    parser.add_argument("--pairs", type=int, default=0, help="front/behind pairs to match per seed")
    parser.add_argument("--steps", type=int, default=200, help="alignment steps (published: 1000); "
                        "lr = 5 / steps unless --set lr=...")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an AlignConfig field, e.g. --set samples_per_focal=8 --set mirror_at=0.5 "
                        "(give the step count with --steps, which also sets lr = 5 / steps)")
    parser.add_argument("--sparse-steps", type=int, default=500, help="keypoint cloud refinement steps")
    parser.add_argument("--flip", action="store_true", help="add the mirrored training clouds (left/right permutation)")
    parser.add_argument("--every-start", action="store_true",
                        help="also count views where some start (not necessarily the one picked) succeeds")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        changes = overrides(args.set)
    except ValueError as error:
        parser.error(str(error))  # exits with status 2
    conf = dataclasses.replace(AlignConfig(steps=args.steps, lr=5.0 / args.steps, pixels=128,
                                           background_pixels=128), **changes)  # type: ignore[arg-type]
    changed = {f.name: getattr(conf, f.name) for f in dataclasses.fields(conf)
               if getattr(conf, f.name) != getattr(AlignConfig(), f.name)}
    print(f"AlignConfig changes from the defaults: {changed}")

    ok = gross = mirror = failed = any_ok = total = 0
    seconds = 0.0
    ours, feats = [], []
    for seed in args.seeds:
        world, rep, gen = build_class(seed, args)
        if args.speed_views:
            speed = [render(world, gen) for _ in range(args.speed_views)]
            _, single = align_views(rep, speed, conf, 1, seed)
            _, batched = align_views(rep, speed, conf, args.batch, seed)
            print(f"  speed: one at a time {len(speed) / single:.3f} images per CPU s, {min(args.batch, len(speed))} "
                  f"per batch {len(speed) / batched:.3f}")
        views = [render(world, gen) for _ in range(args.views)]
        starts: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if args.every_start else None
        alignments, took = align_views(rep, views, conf, args.batch, seed, starts)
        seconds += took
        s_ok = 0
        for n, (view, a) in enumerate(zip(views, alignments, strict=True)):
            if a.failed:
                failed += 1
                continue
            err, swapped = keypoint_errors(a.sparse, a.focal, view)
            rate = float((err < 0.1 * SIZE).float().mean())
            s_ok += rate >= 0.8
            gross += rate < 0.5
            mirror += rate < 0.8 and float((swapped < 0.1 * SIZE).float().mean()) >= 0.8
            if starts is not None:
                any_ok += any(succeeds(s, float(f), view) for s, f in zip(*starts[n], strict=True))
        ok += s_ok
        total += len(views)
        print(f"  seed {seed}: {s_ok}/{len(views)} aligned ({took:.0f} CPU s, {len(views) / took:.3f} images per "
              "CPU s)")

        for _ in range(args.pairs):
            front = render(world, gen, azimuth=30 + 60 * torch.rand(1, generator=gen).item(), elevation=35)
            back = render(world, gen, azimuth=210 + 60 * torch.rand(1, generator=gen).item(), elevation=35)
            both = front.visible & back.visible & torch.tensor([LEFT_RIGHT[i] != i for i in range(len(LEFT_RIGHT))])
            if not both.any():
                continue
            query = front.keypoints[both]
            (a0, a1), _ = align_views(rep, [front, back], conf, 2, seed)
            pts = transfer(rep, AlignedImage(front.features, front.grid, a0),
                           AlignedImage(back.features, back.grid, a1), query, conf.sigma_inference / 20)[0]
            ours.append((pts - back.keypoints[both]).norm(dim=1))
            q = F.normalize(front.features[:, query[:, 1].round().long(), query[:, 0].round().long()].T, dim=1)
            best = argmax_match(torch.einsum("nc,chw->nhw", q, F.normalize(back.features, dim=0))[None])[0][0]
            feats.append((best - back.keypoints[both]).norm(dim=1))

    low, high = wilson(ok, total)
    print(f"{total} random views ({len(args.seeds)} seeds, {seconds:.0f} CPU s aligning, {total / seconds:.3f} images "
          f"per CPU s): "
          f"success {ok}/{total} = {ok / total:.1%} (95 % Wilson interval {low:.1%}-{high:.1%}); failures "
          f"{total - ok} ({gross} gross, {mirror} left/right mirror, {failed} diverged)")
    if args.every_start:
        print(f"some start succeeded on {any_ok}/{total - failed} views (the pick's share of the failures: "
              f"{any_ok - ok} of {total - ok})")
    if ours:
        ours_t, feats_t = torch.cat(ours), torch.cat(feats)
        print(f"front -> behind, {len(ours_t)} left/right keypoints: PCK@0.10 reverse traversal "
              f"{float((ours_t < 0.1 * SIZE).float().mean()):.3f} vs feature argmax "
              f"{float((feats_t < 0.1 * SIZE).float().mean()):.3f}")


if __name__ == "__main__":
    main()
