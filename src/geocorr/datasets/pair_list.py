"""Pair lists: evaluate exactly a given list of pairs, and write the list a run used.

Read (``geocorr eval --pairs FILE``):

- ``.csv`` with a header: the source/target columns are ``source``/``target`` (what
  :func:`write_pair_list` writes, with an optional ``category`` column) or ``source_image``/
  ``target_image`` (the official PF-Pascal ``test_pairs_pf_pascal.csv``); other columns are ignored;
- ``.json``: a list of objects with ``source``/``target`` (optional ``category``) or SPair-71k's
  ``src_imname``/``trg_imname``/``category``, or of ``[source, target]`` lists;
- ``.txt``: one pair per line, ``source target`` or SPair-71k layout names
  ``<id>-<src stem>-<trg stem>:<category>``.

An image is named by its path relative to the dataset root, or by any unique tail of it (a file
name, ``category/name``). The pairs are evaluated in the list's order; an entry that names no
pair of the dataset is an error naming the file and line.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from .base import Pair, PairDataset
from .files import require_file


@dataclass(frozen=True)
class PairEntry:
    """One line of a pair list."""

    source: str
    target: str
    category: str | None
    where: str  # "file, line n" for error messages


def _csv_entries(path: Path) -> list[PairEntry]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    columns = set(rows[0])
    for src, trg in (("source", "target"), ("source_image", "target_image")):
        if {src, trg} <= columns:
            return [PairEntry(r[src], r[trg], r.get("category") or None, f"{path}, line {i}")
                    for i, r in enumerate(rows, start=2)]
    raise ValueError(f"{path}: a pair list needs the columns source,target (or source_image,target_image); "
                     f"got {', '.join(rows[0])}")


def _json_entries(path: Path) -> list[PairEntry]:
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(records, list):
        raise ValueError(f"{path}: a pair list must be a JSON list of pairs")
    entries = []
    for i, r in enumerate(records):
        where = f"{path}, entry {i}"
        if isinstance(r, list) and len(r) == 2:
            entries.append(PairEntry(str(r[0]), str(r[1]), None, where))
        elif isinstance(r, dict) and {"source", "target"} <= set(r):
            entries.append(PairEntry(str(r["source"]), str(r["target"]), r.get("category"), where))
        elif isinstance(r, dict) and {"src_imname", "trg_imname"} <= set(r):
            entries.append(PairEntry(str(r["src_imname"]), str(r["trg_imname"]), r.get("category"), where))
        else:
            raise ValueError(f"{where}: expected {{source, target}}, {{src_imname, trg_imname}} or "
                             f"[source, target], got {str(r)[:60]}")
    return entries


def _txt_entries(path: Path) -> list[PairEntry]:
    entries = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        where = f"{path}, line {i}"
        parts = line.split()
        if len(parts) == 2:
            entries.append(PairEntry(parts[0], parts[1], None, where))
            continue
        name, _, category = line.partition(":")
        fields = name.split("-")
        if not category or len(fields) != 3:
            raise ValueError(f"{where}: expected 'source target' or '<id>-<src>-<trg>:<category>', got {line[:60]!r}")
        entries.append(PairEntry(fields[1], fields[2], category, where))
    return entries


def read_pair_list(path: str | Path) -> list[PairEntry]:
    """The entries of a pair list file (formats in the module docstring)."""
    path = require_file(path, "--pairs list")
    readers = {".csv": _csv_entries, ".json": _json_entries, ".txt": _txt_entries}
    if path.suffix.lower() not in readers:
        raise ValueError(f"{path}: a pair list must be .csv, .json or .txt, got {path.suffix or 'no suffix'}")
    entries = readers[path.suffix.lower()](path)
    if not entries:
        raise ValueError(f"{path}: the pair list is empty")
    return entries


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _matches(name: str, relative: str) -> bool:
    """``name`` is the relative path or a tail of it, with or without the file suffix."""
    for candidate in (relative, relative.rsplit(".", 1)[0]):
        if candidate == name or candidate.endswith("/" + name):
            return True
    return False


def select_pairs(dataset: PairDataset, entries: list[PairEntry], root: str | Path) -> list[Pair]:
    """The dataset's pairs named by ``entries``, in their order (ValueError names the entry)."""
    root = Path(root)
    rel = {id(a): _relative(Path(a.path), root) for p in dataset.pairs for a in (p.source, p.target)}
    by_tail: dict[tuple[str, str], list[Pair]] = {}
    for pair in dataset.pairs:
        by_tail.setdefault((Path(rel[id(pair.source)]).name, Path(rel[id(pair.target)]).name), []).append(pair)
    chosen = []
    for entry in entries:
        src_name, trg_name = Path(entry.source).name, Path(entry.target).name
        candidates = by_tail.get((src_name, trg_name), [])
        if not candidates:  # names without a suffix (SPair layout lists)
            candidates = [p for p in dataset.pairs if _matches(entry.source, rel[id(p.source)])
                          and _matches(entry.target, rel[id(p.target)])]
        found = [p for p in candidates if _matches(entry.source, rel[id(p.source)])
                 and _matches(entry.target, rel[id(p.target)])
                 and (entry.category is None or p.category == entry.category)]
        if not found:
            raise ValueError(f"{entry.where}: no pair {entry.source} -> {entry.target}"
                             f"{'' if entry.category is None else f' ({entry.category})'} in {dataset.name} "
                             f"{dataset.split}")
        if len({(rel[id(p.source)], rel[id(p.target)], p.category) for p in found}) > 1:
            raise ValueError(f"{entry.where}: {entry.source} -> {entry.target} names several pairs; "
                             f"give the relative paths or a category")
        chosen.append(found[0])
    return chosen


def write_pair_list(path: str | Path, pairs: list[Pair], root: str | Path) -> Path:
    """Write ``pairs`` as a csv (index, category, source, target; paths relative to ``root``) that
    ``--pairs`` reads back to the same pairs."""
    path, root = Path(path), Path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "category", "source", "target"])
        for i, pair in enumerate(pairs):
            writer.writerow([i, pair.category, _relative(Path(pair.source.path), root),
                             _relative(Path(pair.target.path), root)])
    return path
