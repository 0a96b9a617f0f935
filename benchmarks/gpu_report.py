"""GPU report: every user path on the device, and one table of speed figures beside a bare transformers DINOv2.

One command for a developer or reviewer who is lent a GPU (about 5 minutes on one H100/H200):

    python benchmarks/gpu_report.py                          # CUDA, ViT-B/14 at 518², bfloat16
    python benchmarks/gpu_report.py --device cpu --quick     # the same paths and table, small, on the CPU

Paths, each run on ``--device`` and reported ok / FAILED (with the error's first line): ``match`` of every
method at tiny size (dinov2, geco, geoaware, cyclecorr; SemAlign3D needs a built class file and is
covered by tests/test_devices_paths.py), ``geocorr match`` from files, evaluation of all 900 PF-Willow
pairs, ``geocorr train`` (30 GECO steps with validation, then a resume that extends the run), ``geocorr
track`` on a synthetic video, ``geocorr export`` to ONNX with its ``--check``.

Figures (medians, device synchronised; random weights of the architecture unless said otherwise, since
speed does not depend on them): feature network at batch 1 (geocorr eager; compiled with
``compile="reduce-overhead"`` = inductor + CUDA graphs on CUDA; bare ``transformers`` Dinov2Model of the
same architecture), images/s at the best batch, ``match()`` of a pair from PNG files and from decoded
arrays, tracking frames/s (640×480 frames, batch 32), evaluation pairs/s, the OT layer's share of a GECO
training step, DINOv3-B/16 at 512² beside DINOv2-B/14 at 518², and the bf16-vs-fp32 agreement of matches
on PF-Willow with the real pretrained ViT-S/14 (../shared/data/dinov2-small-imgfocus).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import geocorr
from geocorr.backbones import architecture_config, build_backbone
from geocorr.backbones.dinov2 import DTYPES
from geocorr.devices import resolve_device

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WILLOW = SHARED / "PF-dataset-WILLOW"
VITS_REAL = SHARED / "dinov2-small-imgfocus"
PAIR = [WILLOW / "car(G)" / "Cars_006a.png", WILLOW / "car(G)" / "Cars_007a.png"]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # ot_speed.py: the OT share of a training step


class Report:
    """Rows of the one table: (what, geocorr, bare transformers DINOv2, note)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []
        self.failures = 0

    def add(self, what: str, ours: str, bare: str = "", note: str = "") -> None:
        self.rows.append((what, ours, bare, note))
        print(f"  {what}: {ours}{f' | bare {bare}' if bare else ''}{f'  ({note})' if note else ''}", flush=True)

    def path(self, what: str, fn: Callable[[], str | None]) -> None:
        """Run one user path; ok (with what it returns) or FAILED with the error's first line."""
        start = time.perf_counter()
        try:
            note = fn() or ""
        except Exception as err:  # the report lists every failure and goes on
            self.failures += 1
            traceback.print_exc()
            self.add(f"path: {what}", "FAILED", note=f"{type(err).__name__}: {str(err).splitlines()[0][:120]}")
            return
        self.add(f"path: {what}", f"ok, {time.perf_counter() - start:.1f} s", note=note)

    def print(self, header: str) -> None:
        widths = [max(len(r[i]) for r in [("figure", "geocorr", "bare HF DINOv2", "note"), *self.rows])
                  for i in range(4)]
        print(f"\n{header}")
        for row in [("figure", "geocorr", "bare HF DINOv2", "note"), tuple("-" * w for w in widths), *self.rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_dinov2(arch: str, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    """A plain transformers Dinov2Model of the architecture (random weights, SDPA attention)."""
    from transformers import AutoModel

    return AutoModel.from_config(architecture_config(arch), attn_implementation="sdpa").to(device, dtype).eval()


def network_figures(report: Report, args, device: torch.device) -> None:
    """Feature network at batch 1 and images/s at the best batch: geocorr eager (and compiled: batch 1 and
    the best eager batch only, one compilation each) vs a bare transformers Dinov2Model."""
    dtype = DTYPES[args.dtype]
    bare = bare_dinov2(args.arch, dtype, device)
    eager = geocorr.load("geco", backbone=f"random:{args.arch}", adapter=None, image_size=args.image_size,
                         dtype=args.dtype, device=str(device))
    side = args.image_size // eager.backbone.patch * eager.backbone.patch
    nets: dict[str, Callable[[torch.Tensor], object]] = {
        "bare": lambda x: bare(pixel_values=x.to(dtype)).last_hidden_state, "eager": eager._feature_net()}
    best: dict[str, tuple[float, int]] = {}
    with torch.inference_mode():
        for batch in args.batches:
            x = torch.rand(batch, 3, side, side, device=device)
            for name, net in nets.items():
                seconds = median_seconds(lambda x=x, net=net: net(x), device, args.runs)
                if batch == 1:
                    report.add(f"feature network, batch 1, {name} (ms)", f"{1000 * seconds:.2f}" if name != "bare"
                               else "", f"{1000 * seconds:.2f}" if name == "bare" else "")
                if batch / seconds > best.get(name, (0.0, 0))[0]:
                    best[name] = (batch / seconds, batch)
        if args.compile:
            fast = geocorr.load("geco", backbone=f"random:{args.arch}", adapter=None, image_size=args.image_size,
                                dtype=args.dtype, device=str(device), compile=args.compile)
            fast.load_state_dict(eager.state_dict())
            for batch in sorted({1, best["eager"][1]}):
                x = torch.rand(batch, 3, side, side, device=device)
                start = time.perf_counter()
                fast._feature_net()(x)
                compile_s = time.perf_counter() - start
                seconds = median_seconds(lambda x=x: fast._feature_net()(x), device, args.runs)
                error = ((fast._feature_net()(x).float() - eager._feature_net()(x).float()).abs().max()
                         / eager._feature_net()(x).float().abs().max()).item()
                report.add(f"feature network, batch {batch}, compile={args.compile} (ms)", f"{1000 * seconds:.2f}",
                           note=f"{batch / seconds:.1f} images/s; first call {compile_s:.0f} s; "
                                f"max |Δ| / max |f| vs eager {error:.1e}")
    for name, (ips, batch) in best.items():
        if name != "bare":
            report.add(f"images/s at the best batch, {name}", f"{ips:.1f} (batch {batch})",
                       f"{best['bare'][0]:.1f} (batch {best['bare'][1]})")


def match_figures(report: Report, args, device: torch.device) -> None:
    from geocorr.demo.tracking import PointTracker
    from geocorr.images import load_image

    arrays = [np.asarray(load_image(p).permute(1, 2, 0).mul(255).round().byte()) for p in PAIR]
    points = np.random.default_rng(0).uniform(20, 80, (10, 2))
    eager = geocorr.load("geco", backbone=f"random:{args.arch}", adapter=None, image_size=args.image_size,
                         dtype=args.dtype, device=str(device))
    models = {"eager": eager}
    if args.compile:
        models[f"compile={args.compile}"] = geocorr.load(
            "geco", backbone=f"random:{args.arch}", adapter=None, image_size=args.image_size, dtype=args.dtype,
            device=str(device), compile=args.compile)
        models[f"compile={args.compile}"].load_state_dict(eager.state_dict())
    for name, model in models.items():
        t_files = median_seconds(lambda m=model: m.match(*[str(p) for p in PAIR], points), device, args.runs)
        t_arrays = median_seconds(lambda m=model: m.match(*arrays, points), device, args.runs)
        same = torch.equal(model.match(*arrays, points).points.cpu(), eager.match(*arrays, points).points.cpu())
        report.add(f"match() of a pair from PNG files, {name} (ms)", f"{1000 * t_files:.2f}",
                   note="10 points, up-sampled argmax")
        report.add(f"match() of a pair from decoded arrays, {name} (ms)", f"{1000 * t_arrays:.2f}",
                   note=f"{1 / t_arrays:.0f} pairs/s" + ("" if name == "eager" else f"; same matches as eager: {same}"))

    rng = np.random.default_rng(0)
    height, width = args.frame_hw
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(args.frames)]
    tracker = PointTracker(eager, frames[0], points)
    tracker(frames[: args.track_batch])  # warm-up
    sync(device)
    start = time.perf_counter()
    for k in range(0, len(frames), args.track_batch):
        tracker(frames[k : k + args.track_batch])
    sync(device)
    fps = len(frames) / (time.perf_counter() - start)
    report.add(f"tracking frames/s ({width}×{height}, batch {args.track_batch}, eager)", f"{fps:.1f}",
               note="decoded frames in memory")


def eval_figures(report: Report, args, device: torch.device) -> None:
    from geocorr.datasets import load_dataset
    from geocorr.evaluation.runner import evaluate

    model = geocorr.load("geco", backbone=f"random:{args.arch}", adapter=None, image_size=args.image_size,
                         dtype=args.dtype, device=str(device))
    dataset = load_dataset("pf-willow", WILLOW)
    pairs = range(min(len(dataset), args.eval_pairs))
    evaluate(model, dataset, pair_indices=range(2), progress=False)  # warm-up
    sync(device)
    start = time.perf_counter()
    evaluate(model, dataset, pair_indices=pairs, batch_size=args.eval_batch, progress=False)
    sync(device)
    seconds = time.perf_counter() - start
    report.add(f"evaluation, {len(pairs)} PF-Willow pairs, eager (pairs/s)", f"{len(pairs) / seconds:.1f}",
               note=f"{seconds:.1f} s after load")


def ot_share(report: Report, args, device: torch.device) -> None:
    from ot_speed import OptimalTransport, ot_inputs, ot_step, timed, training_step_seconds

    ns = argparse.Namespace(backbone=f"random:{args.arch}", step_size=args.train_size, batch=args.train_batch,
                            repeats=args.runs)
    step, n = training_step_seconds(ns, device)
    layer = OptimalTransport().to(device)
    scores, log_a = ot_inputs(args.train_batch, n, device)
    ot = timed(lambda: ot_step(layer, scores, log_a), device, args.runs)
    report.add(f"OT share of a GECO training step ({args.train_size} px, batch {args.train_batch})",
               f"{100 * ot / step:.1f} %", note=f"step {1000 * step:.0f} ms, OT {1000 * ot:.1f} ms (fp32)")


def dinov3_row(report: Report, args, device: torch.device) -> None:
    """DINOv2-B/14 at 518² (37² tokens) beside DINOv3-B/16 at 512² (32² tokens), batch 1 (issue 18)."""
    arch3 = "dinov3-vitb16" if not args.quick else "dinov3-vits16"
    nets = {name: build_backbone(f"random:{spec}", image_size=args.image_size, dtype=args.dtype).eval().to(device)
            for name, spec in (("dinov2", args.arch), ("dinov3", arch3))}
    with torch.inference_mode():
        ms = {}
        for name, net in nets.items():
            x, _ = net.preprocess(torch.rand(3, 480, 640))
            ms[name] = 1000 * median_seconds(lambda x=x, net=net: net(x[None]), device, args.runs)
    report.add(f"feature network, batch 1, DINOv3 {arch3} (ms)", f"{ms['dinov3']:.2f}",
               note=f"DINOv2 {args.arch}: {ms['dinov2']:.2f} ms, same input side")


def agreement(report: Report, args, device: torch.device) -> None:
    """bf16 vs fp32 argmax matches with the real pretrained ViT-S/14 on PF-Willow pairs."""
    if not VITS_REAL.is_dir():
        report.add("bf16 vs fp32 match agreement (real ViT-S/14)", "skipped", note=f"{VITS_REAL} missing")
        return
    from geocorr.datasets import load_dataset
    from geocorr.evaluation.runner import evaluate

    dataset = load_dataset("pf-willow", WILLOW)
    pairs = range(min(len(dataset), args.agreement_pairs))
    predicted = {}
    for dtype in ("float32", "bfloat16"):
        model = geocorr.load("dinov2", backbone=VITS_REAL, image_size=args.image_size, dtype=dtype, device=str(device))
        predicted[dtype] = evaluate(model, dataset, pair_indices=pairs, progress=False)
    a, b = (np.concatenate([np.asarray(r.predicted).reshape(-1, 2) for r in predicted[d].pairs])
            for d in ("float32", "bfloat16"))
    ok = np.isfinite(a).all(1)
    distance = np.linalg.norm(a[ok] - b[ok], axis=1)
    report.add(f"bf16 vs fp32 agreement, real ViT-S/14, {len(pairs)} PF-Willow pairs",
               f"{100 * np.mean(distance == 0):.1f} % identical",
               note=f"{100 * np.mean(distance <= 1.5):.1f} % within 1.5 px, {ok.sum()} points")


def user_paths(report: Report, args, device: torch.device, work: Path) -> None:
    """Every user path on the device (through the CLI where there is a command)."""
    from PIL import Image

    from geocorr.cli import main as cli
    from geocorr.demo.video import VideoWriter

    dev = ["--device", str(device)]
    tiny = ["--backbone", f"random:{args.arch}", "--image-size", str(args.tiny_size), *dev]

    def run(argv: list[str]) -> None:
        rc = cli(argv)
        if rc != 0:
            raise RuntimeError(f"geocorr {argv[0]} exited with {rc}")

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (90, 120, 3), dtype=np.uint8) for _ in range(2)]
    for method in ("dinov2", "geco", "geoaware", "cyclecorr"):
        conf = {} if method == "cyclecorr" else {"backbone": f"random:{args.arch}", "image_size": args.tiny_size}
        if method == "geco":
            conf["weights"] = None

        def match(method=method, conf=conf) -> str:
            model = geocorr.load(method, device=str(device), **conf)
            m = model.match(*arrays, [[10.0, 20.0], [60.0, 45.0]])
            return f"on {m.points.device}: " + ", ".join(f"({x:.1f}, {y:.1f})" for x, y in m.points.tolist())

        report.path(f"{method}.match (tiny)", match)
    report.path("geocorr match (files)", lambda: run(["match", *map(str, PAIR), "--point", "60,80", "--method",
                                                      "dinov2", *tiny]))
    report.path(f"geocorr eval ({args.eval_pairs} PF-Willow pairs max)", lambda: run(
        ["eval", "--method", "dinov2", *tiny, "--dataset", "pf-willow", "--root", str(WILLOW), "--max-pairs",
         str(args.eval_pairs), "--save-predictions", str(work / "preds.json"), "--out", str(work / "eval.json"),
         "--no-progress"]))
    report.path("geocorr metrics", lambda: run(["metrics", str(work / "preds.json"), "--out", str(work / "m.json")]))
    train = ["train", "--method", "geco", "--dataset", "pf-willow", "--root", str(WILLOW), "--val-fraction", "0.3",
             "--val-pairs", "20", "--batch-size", "2", "--image-size", str(args.tiny_size), "--backbone",
             f"random:{args.arch}", "--out", str(work / "run"), "--val-every", str(max(1, args.steps // 2)),
             "--checkpoint-every", str(max(1, args.steps // 2)), *dev, "--dtype", args.train_dtype, "--no-progress"]
    report.path(f"geocorr train ({args.steps // 2} steps + validation)",
                lambda: run([*train, "--max-steps", str(max(1, args.steps // 2))]))
    report.path(f"geocorr train --resume (to {args.steps} steps)",
                lambda: run([*train, "--max-steps", str(args.steps), "--resume"]))
    video = work / "clip.mp4"

    def track() -> None:
        with VideoWriter(video, fps=10) as writer:
            for _ in range(16):
                writer.write(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
        run(["track", str(video), "--point", "20,30", "--method", "dinov2", *tiny, "--csv", str(work / "t.csv"),
             "--no-progress"])

    report.path("geocorr track", track)
    Image.fromarray(arrays[0]).save(work / "a.png")
    report.path("geocorr export --check (ONNX)", lambda: run(
        ["export", "--method", "dinov2", *tiny, "--dtype", "float32", "--out", str(work / "m.onnx"), "--check",
         str(work / "a.png")]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (ViT-S/14 at 112², few pairs/steps/frames): the CPU check of this script")
    parser.add_argument("--compile", default=None,
                        help="compile option of the fast path (default on CUDA: reduce-overhead; 'none' = off)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.compile = None if args.compile == "none" else args.compile or ("reduce-overhead" if cuda else None)
    full = dict(arch="vitb14", image_size=518, batches=[1, 8, 32, 64, 128], runs=20, frame_hw=(480, 640),
                frames=256, track_batch=32, eval_pairs=900, eval_batch=32, train_size=518, train_batch=6,
                agreement_pairs=100, steps=30, tiny_size=112)
    quick = dict(arch="vits14", image_size=112, batches=[1, 4], runs=3, frame_hw=(120, 160), frames=8, track_batch=4,
                 eval_pairs=20, eval_batch=8, train_size=112, train_batch=1, agreement_pairs=4, steps=2, tiny_size=56)
    for key, value in (quick if args.quick else full).items():
        setattr(args, key, value)
    args.train_dtype = "bfloat16" if args.dtype == "bfloat16" and device.type != "cpu" else "float32"
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    header = (f"geocorr GPU report: {name}, torch {torch.__version__}, {args.arch} at {args.image_size}², "
              f"{args.dtype}, compile={args.compile}")
    print(header, flush=True)
    torch.manual_seed(0)
    report = Report()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report.path("user paths", lambda: user_paths(report, args, device, Path(tmp)))
    for section in (network_figures, match_figures, eval_figures, ot_share, dinov3_row, agreement):
        report.path(section.__name__.replace("_", " "), lambda section=section: section(report, args, device))
    report.print(f"{header}; {time.perf_counter() - start:.0f} s in all; {report.failures} failure(s)")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
