"""Options shared by the sub-commands that need a model."""
from __future__ import annotations

import argparse
import json

import geocorr


def add_model_arguments(parser: argparse.ArgumentParser, default_method: str = "geco") -> None:
    """--method, --backbone, --adapter, --image-size, --device, --dtype."""
    group = parser.add_argument_group("model")
    group.add_argument("--method", default=default_method, choices=sorted(geocorr.METHODS),
                       help=f"method (default {default_method})")
    group.add_argument("--backbone", help="backbone: hub id (facebook/dinov2-base) or local folder")
    group.add_argument("--adapter", help="adapter: a released name ('geco') or a .pth/.safetensors file "
                       "(geoaware: the trained post-processor .safetensors; cyclecorr: the trained network .safetensors)")
    group.add_argument("--image-size", type=int, help="backbone input side in pixels (default: the method's)")
    group.add_argument("--device", default="cpu", help="torch device (default cpu)")
    group.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="compute dtype")
    group.add_argument("--option", action="append", default=[], type=parse_option, metavar="KEY=VALUE",
                       help="any other option of the method's load() (repeatable), e.g. "
                            "representation=classes/ (semalign3d), upsample=none; JSON values are parsed")


def load_model(args: argparse.Namespace, **extra):
    """geocorr.load() with the options the user gave (unset ones keep the method's defaults)."""
    conf = {"backbone": args.backbone, "adapter": args.adapter, "image_size": args.image_size,
            "dtype": args.dtype, **dict(getattr(args, "option", [])), **extra}
    conf = {k: v for k, v in conf.items() if v is not None}
    if "adapter" in conf and args.method in ("geoaware", "cyclecorr"):
        conf["weights"] = conf.pop("adapter")  # GeoAware's post-processor / the cyclecorr network (.safetensors)
    if "adapter" in conf and args.method != "geco":
        raise ValueError(f"--adapter applies to --method geco, geoaware or cyclecorr, not {args.method}")
    return geocorr.load(args.method, device=args.device, **conf)


def parse_option(text: str) -> tuple[str, object]:
    """'key=value' -> (key, value); the value is parsed as JSON when it is JSON (7, 0.5, true, [1, 2],
    {"steps": 200}), else kept as text; argparse type."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_point(text: str) -> tuple[float, float]:
    """'x,y' -> (x, y); argparse type."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a point as x,y (e.g. 120,80), got {text!r}") from None
    return x, y
