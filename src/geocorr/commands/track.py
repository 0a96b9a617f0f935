"""``geocorr track VIDEO --point x,y [--point ...] --out out.mp4``: follow points through a video."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_context_arguments, add_model_arguments, context_from_args, load_model, parse_point


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="input video (anything FFmpeg decodes)")
    parser.add_argument("--point", action="append", type=parse_point, required=True,
                        help="point x,y in pixels of the first frame (repeatable)")
    parser.add_argument("--out", type=Path, help="annotated output video (.mp4, .mkv, .mov or .avi)")
    parser.add_argument("--csv", type=Path, help="tracks as CSV: frame, time_s, point, x, y, score")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per forward pass (default 8)")
    parser.add_argument("--momentum", type=float, default=0.0,
                        help="update the query feature over time with this weight (default 0: first frame only)")
    parser.add_argument("--refine", choices=["argmax", "soft"], default="argmax",
                        help="argmax over tokens (default) or window soft-argmax for sub-token positions")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_context_arguments(parser, boxes=False)
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        from ..demo.tracking import track_video
    except ImportError as err:
        raise ImportError(f"geocorr track needs the 'demo' extra: pip install 'geocorr[demo]' ({err})") from None

    if args.out is None and args.csv is None:
        raise ValueError("nothing to write: give --out VIDEO and/or --csv FILE")
    if not args.video.is_file():
        raise FileNotFoundError(f"video: no such file: {args.video}")
    for path in (args.out, args.csv):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    model = load_model(args)
    summary = track_video(model, args.video, args.point, out=args.out, csv_path=args.csv,
                          batch_size=args.batch_size, max_frames=args.max_frames, progress=not args.no_progress,
                          momentum=args.momentum, refine=args.refine, context=context_from_args(args))
    print(f"tracked {len(args.point)} point(s) through {summary.frames} frames in {summary.seconds:.1f} s: "
          f"{summary.fps:.1f} fps overall, {summary.model_fps:.1f} fps model")
    for path in (args.out, args.csv):
        if path is not None:
            print(f"wrote {path}")
    return 0
