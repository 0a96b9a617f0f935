"""``geocorr metrics FILE``: every metric recomputed from saved predictions, without a model."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluation.predictions import Predictions
from .eval import add_output_arguments, add_protocol_arguments, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", type=Path, help="a file written by geocorr eval --save-predictions")
    add_protocol_arguments(parser)
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    predictions = Predictions.load(args.predictions)
    report(args, predictions, str(predictions.config.get("method", args.predictions.stem)))
    return 0
