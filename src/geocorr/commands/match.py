"""``geocorr match A B --point x,y``: print where points go, draw the match and the heat map."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..images import load_image
from ..methods.base import match_pair
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
    source, target = load_image(args.source, "source"), load_image(args.target, "target")
    model = load_model(args)
    target_grid = []

    def features_of(image):  # dense methods: keep the target's grid for the heat map
        feats = model.features([image])
        target_grid.append(feats.grids[0])
        return feats

    matches = match_pair(model, source, target, args.point, context_from_args(args), features_of=features_of)
    grid = target_grid[-1] if target_grid else None
    for (qx, qy), (x, y), s in zip(args.point, matches.points.tolist(), matches.scores.tolist()):
        print(f"({qx:g}, {qy:g}) -> ({x:.1f}, {y:.1f})  score {s:.4f}")
    if args.out is not None:
        from ..viz import plot_matches, plot_similarity

        if matches.similarity is not None and grid is not None:
            fig = plot_similarity(target, matches.similarity[0], matches.points[:1], grid=grid,
                                  source=source, source_point=[args.point[0]],
                                  title=f"match, score {matches.scores[0]:.3f}")
        else:  # no token-level heat map from this method: draw the matches
            fig = plot_matches(source, target, args.point, matches.points)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")
    return 0
