"""Cycle consistency (Zhou et al. 2016): render speed and training step time.

Times (median of --runs after --warmup, device synchronised):
  render     one S×S render (z-buffer, perspective-correct barycentrics, shading) of three meshes:
             the toy car of primitives, a subdivided box, and an icosphere of ~20k faces
             (ShapeNet-sized);
  gt flow    the exact ground-truth flow + matchability between two renders;
  quartet    one training item (two renders + ground-truth flow);
  cycle step one optimiser step on --batch quartets (published: 10) of the published network;
  init step  one optimiser step on --init-batch image pairs (published: 40) against given flows.

    python benchmarks/cyclecorr_speed.py                    # CPU, 128², published batches
    python benchmarks/cyclecorr_speed.py --device cuda
    python benchmarks/cyclecorr_speed.py --threads 1        # renderer on a busy CPU

Network weights are random: speed does not depend on their values.
"""
from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from geocorr.methods.cyclecorr import (
    Camera,
    CycleCorrNet,
    Mesh,
    NetworkConfig,
    Viewpoint,
    box,
    ground_truth_flow,
    render,
    toy_car,
)
from geocorr.methods.cyclecorr.objectives import CycleObjective, InitializationObjective
from geocorr.training.recipes.cyclecorr import CycleTrainConfig


def timed(fn, runs: int, warmup: int, device: torch.device) -> float:
    """Median seconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def to_device(mesh: Mesh, device: torch.device) -> Mesh:
    return Mesh(*(t.to(device) for t in (mesh.vertices, mesh.faces, mesh.vertex_colors, mesh.face_labels)))


def camera_on(view: Viewpoint, size: int, device: torch.device) -> Camera:
    cam = Camera.from_viewpoint(view, (size, size))
    return Camera(cam.rotation.to(device), cam.translation.to(device), cam.focal, cam.image_hw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=128, help="image side (published: 128)")
    parser.add_argument("--batch", type=int, default=CycleTrainConfig.batch_size, help="quartets per cycle step")
    parser.add_argument("--init-batch", type=int, default=40, help="pairs per initialisation step")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = args.size
    print(f"device {device}, {torch.get_num_threads()} CPU threads, {size}×{size}")

    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=5)
    meshes = {
        "toy car": toy_car(),
        "box /4": box((0.8, 0.5, 0.6), subdivisions=4),
        "icosphere": Mesh.from_trimesh(sphere).normalized(),
    }
    view1, view2 = Viewpoint(30.0, 15.0, 1.5), Viewpoint(70.0, 10.0, 1.5)
    cam1, cam2 = camera_on(view1, size, device), camera_on(view2, size, device)
    for name, mesh in meshes.items():
        mesh = to_device(mesh, device)
        seconds = timed(partial(render, mesh, cam1), args.runs, args.warmup, device)
        r1, r2 = render(mesh, cam1), render(mesh, cam2)
        flow_s = timed(partial(ground_truth_flow, r1, r2), args.runs, args.warmup, device)
        print(f"render {name:10s} {len(mesh.faces):6d} faces: {seconds * 1e3:7.1f} ms ({1 / seconds:6.1f} renders/s), "
              f"gt flow {flow_s * 1e3:6.1f} ms")
    car = to_device(meshes["toy car"], device)

    def quartet_item():
        s1, s2 = render(car, cam1), render(car, cam2)
        return ground_truth_flow(s1, s2)

    item_s = timed(quartet_item, args.runs, args.warmup, device)
    print(f"quartet item (2 renders + gt flow): {item_s * 1e3:.1f} ms; "
          f"a batch of {args.batch}: {args.batch * item_s:.2f} s")

    net = CycleCorrNet(NetworkConfig(image_size=size)).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    print(f"network: {sum(p.numel() for p in net.parameters()) / 1e6:.1f} M parameters")
    images = lambda n: torch.rand(n, 3, size, size, device=device)  # noqa: E731
    quartets = {"s1": images(args.batch), "r1": images(args.batch), "r2": images(args.batch), "s2": images(args.batch),
                "flow": torch.randn(args.batch, 2, size, size, device=device) * 5,
                "matchable": (torch.rand(args.batch, 1, size, size, device=device) > 0.5).float()}
    pairs = {"a": images(args.init_batch), "b": images(args.init_batch),
             "flow": torch.randn(args.init_batch, 2, size, size, device=device) * 5}

    def step(objective, batch):
        optimizer.zero_grad(set_to_none=True)
        objective(net, batch)["loss"].backward()
        optimizer.step()

    cycle_s = timed(lambda: step(CycleObjective(), quartets), args.runs, args.warmup, device)
    init_s = timed(lambda: step(InitializationObjective(), pairs), args.runs, args.warmup, device)
    print(f"cycle step ({args.batch} quartets): {cycle_s * 1e3:.0f} ms ({args.batch / cycle_s:.1f} quartets/s); "
          f"200k steps ≈ {200_000 * cycle_s / 3600:.1f} h")
    print(f"init step ({args.init_batch} pairs): {init_s * 1e3:.0f} ms ({args.init_batch / init_s:.1f} pairs/s)")


if __name__ == "__main__":
    main()
