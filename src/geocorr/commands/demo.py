"""``geocorr demo [--method geco] [--port P]``: the interactive correspondence page in the browser."""
from __future__ import annotations

import argparse

from .common import add_context_arguments, add_model_arguments, context_from_args, load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    add_context_arguments(parser, boxes=False)
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must lie in 1..65535, got {args.port}")
    try:
        from ..demo.app import build_app
    except ImportError as err:
        raise ImportError(f"geocorr demo needs the 'demo' extra: pip install 'geocorr[demo]' ({err})") from None
    model = load_model(args)
    print(f"serving {args.method} on http://{args.host}:{args.port} (Ctrl+C to stop)")
    build_app(model, title=f"geocorr demo: {args.method}", context=context_from_args(args)).launch(
        server_name=args.host, server_port=args.port, show_error=True, quiet=True)
    return 0
