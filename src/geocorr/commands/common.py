"""Options shared by the sub-commands that need a model; all of them come from the method registry.

Cheap to import (no torch): the parsers of every command are built from here for ``--help``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import fields
from typing import Any

from ..methods import METHODS, get, option_help

# CLI flag -> the registry option it sets (the same word in every method that has it).
MODEL_FLAGS = {"backbone": "backbone", "weights": "weights", "image_size": "image_size", "dtype": "dtype"}


def methods_epilog() -> str:
    """Every method's options, one line each, for ``--help``."""
    lines = ["method options (--option KEY=VALUE; JSON values are parsed, null = None):"]
    for name, entry in METHODS.items():
        lines.append(f"  {name}: {entry.summary}")
        lines.extend(f"    {line}" for line in option_help(entry))
    return "\n".join(lines)


def add_model_arguments(parser: argparse.ArgumentParser, default_method: str = "geco") -> None:
    """--method, --backbone, --weights, --image-size, --device, --dtype, --option; --help lists every option."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "\n\n".join(e for e in (parser.epilog, methods_epilog()) if e)
    group = parser.add_argument_group("model")
    group.add_argument("--method", default=default_method, choices=sorted(METHODS),
                       help=f"method (default {default_method})")
    group.add_argument("--backbone", help="backbone: hub id (facebook/dinov2-base) or local folder "
                       "(semalign3d: of its feature method)")
    group.add_argument("--weights", help="the method's trained part: GECO's LoRA adapter (a released name such as "
                       "'geco', or a .pth/.safetensors file), GeoAware's post-processor, cyclecorr's network "
                       "(.safetensors), SemAlign3D's class representation (file or folder)")
    group.add_argument("--adapter", dest="weights", help=argparse.SUPPRESS)  # the older name of --weights
    group.add_argument("--image-size", type=int, help="backbone input side in pixels (default: the method's)")
    group.add_argument("--device", default="cpu", help="torch device (default cpu)")
    group.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="compute dtype")
    group.add_argument("--option", action="append", default=[], type=parse_option, metavar="KEY=VALUE",
                       help="any other option of the method (repeatable; listed below), e.g. upsample=none, "
                            "depth=null; JSON values are parsed")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The registry options the user gave: flags that are set, then every --option (None included)."""
    entry = get(args.method)
    known = {f.name for f in fields(entry.options)}
    conf: dict[str, Any] = {"device": args.device}  # checked by MethodEntry.load (geocorr.devices)
    for flag, name in MODEL_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if name not in known:
            raise ValueError(f"--{flag.replace('_', '-')} does not apply to --method {args.method} "
                             f"(its options: {', '.join(sorted(known))})")
        conf[name] = value
    for key, value in getattr(args, "option", []):
        if key in MODEL_FLAGS and key in conf and key != "device":
            raise ValueError(f"--option {key}=...: also given as --{key.replace('_', '-')}; give it once")
        conf[entry.aliases.get(key, key)] = value
    return conf


def load_model(args: argparse.Namespace, **extra: Any):
    """Build ``args.method`` with the options the user gave (unset ones keep the method's defaults)."""
    return get(args.method).load(**{**model_options(args), **extra})


def add_context_arguments(parser: argparse.ArgumentParser, boxes: bool = True) -> None:
    """--category (and --box): what some methods need about the pair (PairContext)."""
    group = parser.add_argument_group("pair")
    group.add_argument("--category", help="the images' object class (per-class methods: semalign3d)")
    if boxes:
        group.add_argument("--box", action="append", type=parse_box, metavar="X0,Y0,X1,Y1",
                           help="object box of the source, then of the target (give both; cyclecorr crops to them)")


def context_from_args(args: argparse.Namespace):
    """The PairContext of --category / --box (None when neither is given)."""
    from ..methods.base import PairContext

    boxes = getattr(args, "box", None)
    if boxes is not None and len(boxes) != 2:
        raise ValueError(f"--box: give it twice (source box, then target box), got {len(boxes)}")
    if args.category is None and boxes is None:
        return None
    return PairContext(category=args.category, boxes=tuple(boxes) if boxes is not None else None)


def parse_option(text: str) -> tuple[str, object]:
    """'key=value' -> (key, value); the value is parsed as JSON when it is JSON (7, 0.5, true, null,
    [1, 2], {"steps": 200}), else kept as text; argparse type."""
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


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'x0,y0,x1,y1' -> (x0, y0, x1, y1) with x1 >= x0, y1 >= y0; argparse type."""
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a box as x0,y0,x1,y1 (e.g. 10,20,200,180), got {text!r}") from None
    if x1 < x0 or y1 < y0:
        raise argparse.ArgumentTypeError(f"box {text!r}: need x1 >= x0 and y1 >= y0")
    return x0, y0, x1, y1
