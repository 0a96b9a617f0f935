"""``geocorr match A B --point x,y``: print where points go, draw the match and the heat map."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_context_arguments, add_model_arguments, context_from_args, load_model, parse_point


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="source image (the points are given in it)")
    parser.add_argument("target", help="target image")
    parser.add_argument("--point", action="append", type=parse_point, required=True,
                        help="query point x,y in source pixels (repeatable)")
    parser.add_argument("--out", type=Path, help="write a picture: query, match and similarity heat map")
    add_context_arguments(parser)
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..images import load_image
    from ..methods.base import match_pair

    source, target = load_image(args.source, "source"), load_image(args.target, "target")
    model = load_model(args)
    target_grid = []

    def features_of(image):  # dense methods: keep the target's grid for the heat map
        feats = model.features([image])
        target_grid.append(feats.grids[0])
        return feats

    matches = match_pair(model, source, target, args.point, context_from_args(args), features_of=features_of)
    grid = target_grid[-1] if target_grid else None
    for (qx, qy), (x, y), s in zip(args.point, matches.points.tolist(), matches.scores.tolist(), strict=True):
        print(f"({qx:g}, {qy:g}) -> ({x:.1f}, {y:.1f})  score {s:.4f}")
    if args.out is not None:
        from ..viz import plot_match_summary

        # every match numbered; per-query sharpened heat maps when the method has token similarities
        heat = matches.similarity if grid is not None else None
        fig = plot_match_summary(source, target, args.point, matches.points, scores=matches.scores,
                                 similarity=heat, grid=grid, title=f"{args.method}: {len(args.point)} point(s)")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")
    return 0
