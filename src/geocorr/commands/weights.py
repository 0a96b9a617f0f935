"""``geocorr weights``: list the named weights and where they are; install a downloaded file.

``geocorr weights`` (or ``weights list``) prints one line per named weight; ``geocorr weights add
geco last_lora_weights.pth`` checks the file's sha256 and copies it into the cache; ``geocorr
weights get geco`` fetches it from its sources (cache, then the authors' URLs) and prints the path.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="list the named weights, whether they are cached, and where (default)")
    add = sub.add_parser("add", help="check a downloaded file's sha256 and copy it into the cache")
    add.add_argument("name", help=f"registry name ({', '.join(sorted(weights.WEIGHTS))})")
    add.add_argument("file", type=Path, help="the downloaded file, e.g. last_lora_weights.pth")
    get = sub.add_parser("get", help="fetch a named weight (cache, then the authors' URLs) and print its path")
    get.add_argument("name", help=f"registry name ({', '.join(sorted(weights.WEIGHTS))})")


def run(args: argparse.Namespace) -> int:
    if args.action == "add":
        path = weights.add(args.name, args.file)
        print(f"{args.name}: sha256 verified, installed at {path}")
        return 0
    if args.action == "get":
        print(weights.fetch(args.name))
        return 0
    rows = weights.listing()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['kind']:<7}  {r['status']:<10}  {r['where']}")
        print(f"{'':<{width}}  {r['description']}")
    print(f"cache: {weights.geocorr_home()} (set GEOCORR_HOME to move it)")
    return 0
