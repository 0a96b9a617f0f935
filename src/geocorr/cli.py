"""The ``geocorr`` command line: one sub-command per module in :mod:`geocorr.commands`."""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

# sub-command -> (module, one-line help); modules define add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "match": ("geocorr.commands.match", "match points of one image into another"),
    "eval": ("geocorr.commands.eval", "evaluate a method on a benchmark"),
    "metrics": ("geocorr.commands.metrics", "recompute metrics from saved predictions"),
    "train": ("geocorr.commands.train", "train a method"),
    "demo": ("geocorr.commands.demo", "interactive demo in the browser"),
    "track": ("geocorr.commands.track", "track points through a video"),
    "export": ("geocorr.commands.export", "export a model (ONNX)"),
    "semalign3d": ("geocorr.commands.semalign3d", "build SemAlign3D class representations"),
}

# Errors that are the user's input, not a bug: reported in one line, exit code 2.
USER_ERRORS = (ValueError, OSError, ImportError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geocorr", description="Geometry-aware semantic correspondence.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(cmd)
        cmd.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"geocorr {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
