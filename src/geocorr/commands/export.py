"""``geocorr export --method geco --format onnx --out model.onnx``: the dense feature network as ONNX."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..methods import METHODS, get
from .common import add_model_arguments, load_model

FORMATS = {"onnx": ("onnx", "onnxscript", "onnxruntime")}  # format -> packages it needs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="onnx", help=f"export format: {', '.join(FORMATS)} (default onnx)")
    parser.add_argument("--out", type=Path, required=True, help="file to write (model.onnx)")
    parser.add_argument("--dynamic", action="store_true",
                        help="any input height and width (multiples of the patch); default: fixed to the "
                             "backbone input size, free batch")
    parser.add_argument("--check", nargs="+", metavar="IMAGE",
                        help="run the exported model on these images and compare with PyTorch "
                             "(an unreadable image is reported and the others are still checked)")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..deploy.onnx import OnnxMatcher, export_onnx, require

    entry = get(args.method)
    if not entry.exportable:
        exportable = ", ".join(n for n, e in METHODS.items() if e.exportable)
        raise ValueError(f"--method {args.method}: has no dense feature network to export as ONNX "
                         f"(exportable: {exportable})")
    if args.format not in FORMATS:
        raise ValueError(f"--format: unknown export format {args.format!r}; available: {', '.join(FORMATS)}")
    require(*FORMATS[args.format])
    if args.dtype not in (None, "float32"):
        raise ValueError(f"--dtype {args.dtype}: ONNX export is float32 (half precision belongs to the runtime, "
                         f"e.g. a TensorRT engine built with --fp16 / --bf16)")
    model = load_model(args)
    path = export_onnx(model, args.out, dynamic=args.dynamic, method=args.method)
    exported = OnnxMatcher(path)
    height, width = exported.backbone.fixed_hw or ("H", "W")
    print(f"wrote {path}: image (B, 3, {height}, {width}) normalised -> features "
          f"(B, {exported.backbone.dim}, H/{exported.backbone.patch}, W/{exported.backbone.patch})")
    if not args.check:
        return 0
    return _check(model, exported, args.check)


def _check(model, exported, images: list[str]) -> int:
    """Compare PyTorch and ONNX features image by image; report unreadable images on stderr."""
    import torch.nn.functional as F

    from ..deploy.batch import features_per_item

    names = [f"--check[{i}]" for i in range(len(images))]
    ours = features_per_item(model, images, names)
    for message in ours.errors.values():
        print(f"geocorr export: error: {message}", file=sys.stderr)
    if ours.features is None:
        return 2
    theirs = exported.features([images[i] for i in ours.index])
    for row, i in enumerate(ours.index):
        (h, w) = ours.features.grids[row].grid_hw
        a, b = ours.features.dense[row, :, :h, :w].cpu(), theirs.dense[row, :, :h, :w]  # onnxruntime's are on the CPU
        error = (a - b).abs().max().item() / a.abs().max().clamp_min(1e-12).item()
        cosine = F.cosine_similarity(a, b, dim=0).min().item()
        print(f"{images[i]}: max |Δ| / max |f| = {error:.2e}, min cosine = {cosine:.6f}")
    return 2 if ours.errors else 0
