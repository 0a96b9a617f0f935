"""``geocorr weights``: the named weights and backbones, whether they are cached, and installing a file.

``geocorr weights`` (or ``weights list``) prints one line per named weights file and per backbone
(cached or not: read from the caches, no network); ``geocorr weights add geco
last_lora_weights.pth`` checks the file's sha256 and copies it into the cache; ``geocorr weights
get geco`` fetches it from its sources (cache, then the authors' URLs) and prints the path.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(sorted(weights.WEIGHTS))
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.add_parser("list", help="list named weights and backbones, cached or not, and where (default)")
    add = sub.add_parser("add", help="check a downloaded file's sha256 and copy it into the cache")
    add.add_argument("name", help=f"registry name ({names})")
    add.add_argument("file", type=Path, help="the downloaded file, e.g. last_lora_weights.pth")
    get = sub.add_parser("get", help="fetch named weights (cache, then the authors' URLs) and print the path")
    get.add_argument("name", help=f"registry name ({names})")


def _backbone_rows() -> list[tuple[str, str, str, str]]:
    from ..backbones.catalog import BACKBONES

    rows = []
    for info in BACKBONES.values():
        folder = weights.hub_cached(info.hub_id)
        where = str(folder) if folder else f"huggingface.co/{info.hub_id}"
        about = f"{info.family} {info.params_m:g} M params, patch {info.patch}, {info.licence}"
        rows.append((info.name, "cached" if folder else "not cached", where, about))
    return rows


def run(args: argparse.Namespace) -> int:
    if args.action == "add":
        path = weights.add(args.name, args.file)
        print(f"{args.name}: sha256 verified, installed at {path}")
        return 0
    if args.action == "get":
        print(weights.fetch(args.name))
        return 0
    rows = [(r["name"], r["status"], r["where"], r["description"]) for r in weights.listing()]
    backbones = _backbone_rows()
    width = max(len(r[0]) for r in rows + backbones)
    for title, table in (("weights files (geocorr weights add NAME FILE)", rows),
                         ("backbones (--backbone NAME; downloaded by huggingface_hub)", backbones)):
        print(title)
        for name, status, where, about in table:
            print(f"  {name:<{width}}  {status:<10}  {where}")
            print(f"  {'':<{width}}  {about}")
    print(f"geocorr cache: {weights.geocorr_home()} (set GEOCORR_HOME to move it)")
    return 0
