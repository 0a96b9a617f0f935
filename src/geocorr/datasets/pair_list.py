"""Pair lists: evaluate exactly a given list of pairs, and write the list a run used.

Read (``geocorr eval --pairs FILE``):

- ``.csv`` with a header: the source/target columns are ``source``/``target`` (what
  :func:`write_pair_list` writes, with an optional ``category`` column) or ``source_image``/
  ``target_image`` (the official PF-Pascal ``test_pairs_pf_pascal.csv``); other columns are ignored;
- ``.json``: a list of objects with ``source``/``target`` (optional ``category``) or SPair-71k's
  ``src_imname``/``trg_imname``/``category``, or of ``[source, target]`` lists;
- ``.txt``: one pair per line, ``source target`` or SPair-71k layout names
  ``<id>-<src stem>-<trg stem>:<category>``;
- a folder of one-pair ``.json`` files, read in sorted order: SPair-71k's ``PairAnnotation/<split>``
  (``src_imname``/``trg_imname``) or the AP-10K ``PairAnnotation/<split>`` files of GeoAware's
  notebook, which GECO reads too (``src_json_path``/``trg_json_path``: the image is named by the
  annotation file's stem, the zero-padded image id).

An image is named by its path relative to the dataset root, or by any unique tail of it (a file
name, ``category/name``), with or without its suffix. The pairs are evaluated in the list's order.
An entry that is not among the loader's pairs but names two images of the dataset (each with one
annotation) becomes that pair (e.g. the other direction, or the authors' AP-10K sample; not for
PF-Pascal, whose keypoints are listed per pair); an entry naming an image the dataset does not hold
is an error naming the file and line.
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


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def _folder_entries(folder: Path) -> list[PairEntry]:
    entries = []
    for path in sorted(folder.glob("*.json")):
        r = _read_json(path)
        category = path.stem.rpartition(":")[2] or None
        if isinstance(r, dict) and {"src_json_path", "trg_json_path"} <= set(r):
            entries.append(PairEntry(Path(str(r["src_json_path"])).stem, Path(str(r["trg_json_path"])).stem, None,
                                     str(path)))
        elif isinstance(r, dict) and {"src_imname", "trg_imname"} <= set(r):
            entries.append(PairEntry(str(r["src_imname"]), str(r["trg_imname"]), r.get("category", category),
                                     str(path)))
        else:
            raise ValueError(f"{path}: not a pair annotation (no src_imname/trg_imname or src_json_path/trg_json_path)")
    return entries


def _json_entries(path: Path) -> list[PairEntry]:
    records = _read_json(path)
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
    """The entries of a pair list file or folder (formats in the module docstring)."""
    if Path(path).is_dir():
        entries = _folder_entries(Path(path))
        if not entries:
            raise ValueError(f"{path}: the pair folder holds no .json pair file")
        return entries
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
    images: dict[str, list] = {}
    for ann in (a for p in dataset.pairs for a in (p.source, p.target)):
        if all(ann is not other for other in images.setdefault(rel[id(ann)], [])):
            images[rel[id(ann)]].append(ann)
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
            found = [_new_pair(entry, images, rel, dataset)]
        if len({(rel[id(p.source)], rel[id(p.target)], p.category) for p in found}) > 1:
            raise ValueError(f"{entry.where}: {entry.source} -> {entry.target} names several pairs; "
                             f"give the relative paths or a category")
        chosen.append(found[0])
    return chosen


def _new_pair(entry: PairEntry, images: dict[str, list], rel: dict[int, str], dataset: PairDataset) -> Pair:
    """The pair of two images of the dataset named by ``entry`` (each must have one annotation)."""
    if dataset.pairwise_keypoints:
        raise ValueError(f"{entry.where}: no pair {entry.source} -> {entry.target} in {dataset.name} {dataset.split} "
                         f"(its keypoints exist per listed pair only)")
    ends = []
    for name in (entry.source, entry.target):
        paths = [r for r in images if _matches(name, r)]
        if not paths:
            raise ValueError(f"{entry.where}: no image {name} in {dataset.name} {dataset.split}")
        if len(paths) > 1 or len(images[paths[0]]) > 1:
            raise ValueError(f"{entry.where}: {name} is not among the dataset's pairs and names several "
                             f"annotated images; give the relative path")
        ends.append(images[paths[0]][0])
    category = entry.category if entry.category is not None else ends[0].category
    if entry.category is not None and entry.category not in dataset.categories:
        category = ends[0].category  # e.g. AP-10K cross-family files say "all"
    return Pair(ends[0], ends[1], category)


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
