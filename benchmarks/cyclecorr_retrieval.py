"""Cycle consistency (Zhou et al. 2016): HOG viewpoint retrieval from box crops, whole vs framed renders.

Real images reach the method cut to their object box; the candidate renders (training's
``viewpoint_grid``: 12 azimuths × 3 elevations, distance 1.5) show the car on ~21 % of the frame.
This script renders --images procedural toy cars (random proportions, random azimuth in [0, 360),
elevation in [0, 30]) at 4·S and cuts them to their box resized to S×S (as a photo's box is cut and
resized down), retrieves the HOG-nearest render over the grid × 4 toy-car "CAD models"
(:func:`geocorr.methods.cyclecorr.quartets.retrieve_renders`) with the renders whole (training's
retrieval before 2026-11-30) and framed to their object box (:func:`~geocorr.methods.cyclecorr.
quartets.framed_camera`; training's retrieval and renders since), and prints how often the
retrieved azimuth is within 15° / 45° of the truth (chance within 15°: 30/360 = 8 %), how often it
is flipped (> 135°), and how often it is within 15° once front/back flips of the nearly symmetric
toy car count as right ("mod 180°").

    OMP_NUM_THREADS=1 python benchmarks/cyclecorr_retrieval.py            # S = 64 and 128, 40 images, ~20 s

Measured (2026-11-30, one CPU core, 40 images, seed 1):

    ====  =======  ===========  ===========  ============  =================
    S     renders  within 15°   within 45°   flipped >135°  within 15° mod 180°
    ====  =======  ===========  ===========  ============  =================
    64    whole        8 %         20 %         25 %           15 %
    64    framed      68 %         78 %         20 %           85 %
    128   whole       18 %         30 %         22 %           38 %
    128   framed      72 %         80 %         20 %           88 %
    ====  =======  ===========  ===========  ============  =================

Whole renders retrieve the view from box crops about as well as chance; most framed misses are
front/back flips of the nearly symmetric toy car. (Cutting the whole render to its object box
after rendering, :func:`~geocorr.methods.cyclecorr.quartets.object_crop`, which upsamples it, gave
68 % / 65 % within 15° at S = 64 / 128 on the same crops.)
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from geocorr.methods.cyclecorr import Camera, Viewpoint, render, toy_car
from geocorr.methods.cyclecorr.quartets import object_crop, retrieve_renders, viewpoint_grid

MODELS = ((1.0, 0.5, 0.12), (0.9, 0.4, 0.1), (1.2, 0.55, 0.14), (1.1, 0.45, 0.13))  # toy_car arguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="crop sizes S")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    meshes = [toy_car(*params) for params in MODELS]
    for size in args.sizes:
        rng = np.random.default_rng(args.seed)
        crops, truth = [], []
        for _ in range(args.images):
            car = toy_car(*rng.uniform([0.8, 0.35, 0.09], [1.3, 0.6, 0.16]))
            view = Viewpoint(float(rng.uniform(0, 360)), float(rng.uniform(0, 30)), 1.5)
            crops.append(object_crop(render(car, Camera.from_viewpoint(view, (4 * size, 4 * size))), size)[0])
            truth.append(view)
        grid = viewpoint_grid()
        fill = np.mean([render(m, Camera.from_viewpoint(v, (size, size))).mask.float().mean().item()
                        for m in meshes for v in grid])
        print(f"S = {size}: a car covers {100 * fill:.1f} % of a whole render (mean over models × grid views)")
        for framed in (False, True):
            tic = time.perf_counter()
            found = retrieve_renders(torch.stack(crops), meshes, grid, framed=framed)
            error = np.array([abs((v.azimuth - g.azimuth + 180) % 360 - 180)
                              for v, (g, _) in zip(truth, found, strict=True)])
            share = {name: 100 * np.mean(hit) for name, hit in
                     (("15", error <= 15), ("45", error <= 45), ("flip", error > 135),
                      ("sym", np.minimum(error, 180 - error) <= 15))}
            print(f"  renders {'framed' if framed else 'whole '}: azimuth within 15° {share['15']:3.0f} %, "
                  f"within 45° {share['45']:3.0f} %, flipped (>135°) {share['flip']:3.0f} %, within 15° mod 180° "
                  f"{share['sym']:3.0f} % of {len(error)} ({time.perf_counter() - tic:.1f} s)")

if __name__ == "__main__":
    main()
