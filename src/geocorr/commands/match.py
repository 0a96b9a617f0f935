"""``geocorr match A B --point x,y``: print where points go, draw the match and the heat map."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..images import load_image
from .common import add_model_arguments, load_model, parse_point


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="source image (the points are given in it)")
    parser.add_argument("target", help="target image")
    parser.add_argument("--point", action="append", type=parse_point, required=True,
                        help="query point x,y in source pixels (repeatable)")
    parser.add_argument("--out", type=Path, help="write a picture: query, match and similarity heat map")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    source, target = load_image(args.source, "source"), load_image(args.target, "target")
    model = load_model(args)
    if hasattr(model, "match_features"):
        feats = model.features([source, target])
        matches = model.match_features(feats[0], feats[1], args.point)
        target_grid = feats.grids[1]
    else:  # a method without reusable features (cyclecorr, semalign3d)
        matches, target_grid = model.match(source, target, args.point), None
    for (qx, qy), (x, y), s in zip(args.point, matches.points.tolist(), matches.scores.tolist()):
        print(f"({qx:g}, {qy:g}) -> ({x:.1f}, {y:.1f})  score {s:.4f}")
    if args.out is not None:
        from ..viz import plot_matches, plot_similarity

        if matches.similarity is not None and target_grid is not None:
            fig = plot_similarity(target, matches.similarity[0], matches.points[:1], grid=target_grid,
                                  source=source, source_point=[args.point[0]],
                                  title=f"match, score {matches.scores[0]:.3f}")
        else:  # no token-level heat map from this method: draw the matches
            fig = plot_matches(source, target, args.point, matches.points)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")
    return 0
