"""Speed report of GECO inference: per-stage times, images/s, peak memory, for eager / compiled / ONNX.

For each backbone size (ViT-S/14, ViT-B/14), input size (224, 448, 518), dtype the device runs and mode
(eager PyTorch, ``torch.compile`` inductor, ONNX in onnxruntime), measures on one PF-Willow pair:

* stages at batch 1: decode (PNG -> tensor), resize (+ normalise), backbone forward, matching 10
  keypoints on the token grid and with up-sampled features (the published evaluation);
* backbone share = backbone / (decode + resize + backbone + token matching): the goal is >= 95 %;
* images/s of the backbone at batch 1 and at the best of ``--batches``;
* peak memory: GPU memory allocated (CUDA) or the process's peak resident memory (CPU; includes the
  Python + torch baseline of about 0.5 GB);
* one-off costs: torch.compile's first call, ONNX export.

Each configuration runs in its own process (clean peak memory and compile caches); times are medians of
``--runs`` after ``--warmup`` calls, with ``torch.cuda.synchronize`` around every timed call on a GPU.
Speed does not depend on the weights' values: ViT-S uses the real pretrained ViT-S/14 of the shared data
(random weights if absent), ViT-B random weights plus the released GECO LoRA (merged) when present. The
ONNX rows also compare the exported model with PyTorch on the pair (feature error, identical argmax
matches of its 10 keypoints).

    python benchmarks/speed_report.py --quick                  # ViT-S 224² on the CPU: a few minutes
    python benchmarks/speed_report.py --json cpu.json          # the whole grid (hours on 2 CPU cores)
    python benchmarks/speed_report.py --device cuda --archs vitb14 --sizes 518 --batches 1 8 32 64 128
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIR = [SHARED / "PF-dataset-WILLOW" / "car(G)" / name for name in ("Cars_006a.png", "Cars_007a.png")]
ADAPTER = SHARED / "geco-official" / "last_lora_weights.pth"
PRETRAINED = {"vits14": SHARED / "dinov2-small-imgfocus"}  # real weights used where present
MODES = ("eager", "compiled", "onnx")
COLUMNS = [("arch", "<7"), ("size", ">5"), ("dtype", "<9"), ("mode", "<9"), ("decode_ms", ">10.1f"),
           ("resize_ms", ">10.1f"), ("backbone_ms", ">12.1f"), ("match_tok_ms", ">13.2f"), ("match_up_ms", ">12.1f"),
           ("backbone_share", ">15.1%"), ("ips_batch1", ">11.2f"), ("best_batch", ">11"), ("ips_best", ">9.2f"),
           ("peak_mem_mib", ">13.0f"), ("setup_s", ">8.1f")]  # (key, format spec)


def no_sync() -> None:
    """Nothing to wait for: CPU work (and onnxruntime) is synchronous."""


def timed(fn, runs: int, warmup: int, sync) -> float:
    """Median seconds of fn() over ``runs`` calls after ``warmup`` calls, the device synchronised."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(conf: dict) -> dict:
    """Time one configuration (in this process); returns a row of the report."""
    import geocorr
    from geocorr.backbones import architecture_config
    from geocorr.deploy.onnx import OnnxMatcher, export_onnx
    from geocorr.images import load_image

    if conf["threads"]:
        torch.set_num_threads(conf["threads"])
    device = torch.device(conf["device"])
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else no_sync
    runs, warmup = conf["runs"], conf["warmup"]
    adapter = str(ADAPTER) if conf["arch"] == "vitb14" and ADAPTER.is_file() else None
    torch.manual_seed(0)
    weights = PRETRAINED.get(conf["arch"])
    backbone = weights if weights is not None and weights.is_dir() else architecture_config(conf["arch"])
    model = geocorr.load("geco", backbone=backbone, adapter=adapter,
                         image_size=conf["size"], dtype=conf["dtype"], device=conf["device"], upsample="none",
                         compile="inductor" if conf["mode"] == "compiled" else None)
    setup = 0.0
    if conf["mode"] == "onnx":
        start = time.perf_counter()
        path = export_onnx(model, Path(tempfile.mkdtemp()) / "geco.onnx", method="geco")
        setup = time.perf_counter() - start
        providers = ["CUDAExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        exported = OnnxMatcher(path, providers=tuple(providers), threads=conf["threads"], upsample="none")
        agreement = onnx_agreement(model, exported)
        model = exported
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    row = {k: conf[k] for k in ("arch", "size", "dtype", "mode")}
    row["decode_ms"] = 1e3 * timed(lambda: load_image(PAIR[0]), runs, warmup, no_sync)
    image = load_image(PAIR[0])
    row["resize_ms"] = 1e3 * timed(lambda: model.backbone.preprocess(image), runs, warmup, sync)  # on the device
    x, _ = model.backbone.preprocess(image)
    net = model._feature_net()
    ips = {}
    with torch.inference_mode():
        for batch in conf["batches"]:
            xb = x[None].expand(batch, -1, -1, -1).contiguous()  # preprocess put x on the model's device
            if conf["mode"] == "compiled":
                start = time.perf_counter()
                net(xb)
                sync()
                setup += time.perf_counter() - start
            seconds = timed(lambda xb=xb: net(xb), runs, warmup, sync)
            ips[batch] = batch / seconds
            if batch == 1:
                row["backbone_ms"] = 1e3 * seconds
        feats = model.features([load_image(p) for p in PAIR])
        h, w = feats.grids[0].image_hw
        points = torch.rand(10, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([w - 1.0, h - 1.0])
        row["match_tok_ms"] = 1e3 * timed(lambda: model.match_features(feats[0], feats[1], points), runs, warmup,
                                          sync)
        model.conf["upsample"] = "features"
        row["match_up_ms"] = 1e3 * timed(lambda: model.match_features(feats[0], feats[1], points), runs, warmup,
                                         sync)
    pipeline = row["decode_ms"] + row["resize_ms"] + row["backbone_ms"] + row["match_tok_ms"]
    row["backbone_share"] = row["backbone_ms"] / pipeline
    row["ips_batch1"] = ips.get(1, float("nan"))
    row["best_batch"] = max(ips, key=ips.get)
    row["ips_best"] = ips[row["best_batch"]]
    row["ips_by_batch"] = ips
    row["peak_mem_mib"] = (torch.cuda.max_memory_allocated() / 2**20 if cuda
                           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    row["setup_s"] = setup
    if conf["mode"] == "onnx":
        row["onnx_agreement"] = agreement
    return row


def onnx_agreement(model, exported) -> dict:
    """ONNX vs PyTorch on the PF-Willow pair: feature error and identical argmax matches of its keypoints."""
    import scipy.io

    from geocorr.images import load_image

    images = [load_image(p) for p in PAIR]
    ours, theirs = model.features(images), exported.features(images)
    h, w = ours.grids[0].image_hw
    points = torch.tensor(scipy.io.loadmat(PAIR[0].with_suffix(".mat"))["pts_coord"].T, dtype=torch.float32)
    points = points.clamp(min=0).minimum(torch.tensor([w - 1.0, h - 1.0]))
    out = {"relative_error": ((ours.dense - theirs.dense).abs().max() / ours.dense.abs().max()).item(),
           "points": len(points)}
    for upsample in ("none", "features"):
        model.conf["upsample"] = exported.conf["upsample"] = upsample
        same = (model.match_features(ours[0], ours[1], points).points
                == exported.match_features(theirs[0], theirs[1], points).points).all(1)
        out[f"same_matches_{upsample}"] = int(same.sum())
    model.conf["upsample"] = exported.conf["upsample"] = "none"
    return out


def configurations(args) -> list[dict]:
    from geocorr.backbones.precision import check_dtype

    dtypes = []
    for dtype in args.dtypes:
        try:
            check_dtype(dtype, args.device)
            dtypes.append(dtype)
        except ValueError as err:
            print(f"skipping {dtype}: {err}")
    out = []
    for arch in args.archs:
        for size in args.sizes:
            for dtype in dtypes:
                for mode in args.modes:
                    if mode == "onnx" and dtype != "float32":
                        continue  # the export is float32; half precision belongs to the ONNX runtime
                    if args.quick and mode != "eager" and dtype != "float32":
                        continue
                    out.append({"arch": arch, "size": size, "dtype": dtype, "mode": mode, "device": args.device,
                                "batches": args.batches, "runs": args.runs, "warmup": args.warmup,
                                "threads": args.threads})
    return out


def print_row(row: dict) -> None:
    if "error" in row:
        print(" ".join(format(row[name], spec) for name, spec in COLUMNS[:4]), "failed:", row["error"])
        return
    print(" ".join(format(row[name], spec) for name, spec in COLUMNS), flush=True)
    if "onnx_agreement" in row:
        a = row["onnx_agreement"]
        print(f"    ONNX vs PyTorch: max |Δ| / max |f| = {a['relative_error']:.1e}; identical matches of "
              f"{a['points']} PF-Willow keypoints: {a['same_matches_none']} (tokens), "
              f"{a['same_matches_features']} (up-sampled)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="ViT-S at 224², fp32 eager/compiled/ONNX and bf16 eager, batches 1 and 4")
    parser.add_argument("--archs", nargs="+", default=["vits14", "vitb14"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 448, 518])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "float16"],
                        help="those the device cannot run are skipped")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="CPU threads of torch and onnxruntime (default: theirs); "
                        "on a shared, loaded machine 1 avoids thread oversubscription")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("speed_report.json"), help="where to write the rows")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one JSON configuration
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    if args.quick:
        args.archs, args.sizes, args.dtypes, args.batches = ["vits14"], [224], ["float32", "bfloat16"], [1, 4]
        args.runs, args.warmup = 5, 2
    machine = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
               or platform.machine(), "cpu_threads": args.threads or torch.get_num_threads(),
               "cpu_cores": os.cpu_count(), "torch": torch.__version__, "load_average": os.getloadavg()}
    print(f"speed report on {machine}; times are medians of {args.runs} runs")
    print(" ".join(format(name, spec.split(".")[0]) for name, spec in COLUMNS))
    rows = []
    for conf in configurations(args):
        done = subprocess.run([sys.executable, __file__, "--one", json.dumps(conf)], capture_output=True, text=True,
                              check=False)
        try:
            row = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            row = {**{k: conf[k] for k in ("arch", "size", "dtype", "mode")}, "error": last}
        rows.append(row)
        print_row(row)
    args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
