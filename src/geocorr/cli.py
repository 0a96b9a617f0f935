"""The ``geocorr`` command line: one sub-command per module in :mod:`geocorr.commands`.

Start-up stays cheap: ``geocorr --help`` imports no sub-command, and ``geocorr CMD ...`` imports only
the module of CMD (each defines ``add_arguments(parser)`` and ``run(args) -> int``).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from . import __version__

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "match": ("geocorr.commands.match", "match points of one image into another"),
    "eval": ("geocorr.commands.eval", "evaluate a method on a benchmark"),
    "metrics": ("geocorr.commands.metrics", "recompute metrics from saved predictions"),
    "train": ("geocorr.commands.train", "train a method"),
    "demo": ("geocorr.commands.demo", "interactive demo in the browser"),
    "track": ("geocorr.commands.track", "track points through a video"),
    "export": ("geocorr.commands.export", "export a model's feature network as ONNX"),
    "semalign3d": ("geocorr.commands.semalign3d", "build SemAlign3D class representations"),
    "weights": ("geocorr.commands.weights", "list named weights; install a downloaded weights file"),
}

# Errors that are the user's input, not a bug: reported in one line, exit code 2.
USER_ERRORS = (ValueError, OSError, ImportError, KeyError)


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; the full options of ``commands`` only (default: every command, which imports them all)."""
    parser = argparse.ArgumentParser(prog="geocorr", description="Geometry-aware semantic correspondence.")
    parser.add_argument("--version", action="version", version=f"geocorr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if commands is not None and name not in commands:
            continue
        mod = import_module(module)
        mod.add_arguments(cmd)
        cmd.set_defaults(_run=mod.run)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    args = build_parser([command] if command in COMMANDS else []).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"geocorr {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
