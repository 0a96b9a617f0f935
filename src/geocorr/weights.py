"""Named weights: where each comes from, how it is checked, and a fast answer when offline.

Every named weights file (``adapter="geco"``) has a :class:`WeightsEntry` in :data:`WEIGHTS`.
:func:`fetch` looks for it in this order and returns a verified local path:

1. geocorr's cache, ``$GEOCORR_HOME/<kind>s/<name>/<filename>`` (``GEOCORR_HOME`` defaults to
   ``~/.cache/geocorr``);
2. a file the user names (``fetch(name, file=...)``, ``geocorr weights add NAME FILE``): checked
   and copied into the cache;
3. the URLs where the authors publish it (downloaded to a temporary file, checked, moved into
   the cache) — skipped at once when offline;
4. otherwise a :class:`WeightsNotFoundError` that says where the authors publish the file and
   how to install it by hand.

Files are checked by their sha256; a file whose hash differs is refused and never enters the
cache. Backbones come from the HuggingFace hub (listed in :mod:`geocorr.backbones.catalog`) and
are cached by ``huggingface_hub``: :func:`hub_cached` says whether one is, and
:func:`hub_local_only` tells the loaders to stay offline (``local_files_only=True``) instead of
spending half a minute in HTTP retries.

Offline means: ``HF_HUB_OFFLINE`` or ``GEOCORR_OFFLINE`` is set to 1/true/yes/on, or a TCP
connection to the host cannot be opened within :data:`PROBE_TIMEOUT_S` (checked once per host
and process). Behind an HTTP(S) proxy the probe cannot tell, so the host is assumed reachable.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import threading
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

__all__ = [
    "PROBE_TIMEOUT_S",
    "WEIGHTS",
    "WeightsEntry",
    "WeightsNotFoundError",
    "add",
    "cache_path",
    "fetch",
    "geocorr_home",
    "hub_cached",
    "hub_local_only",
    "is_offline",
    "listing",
    "quiet_loading",
    "reachable",
    "register",
    "sha256sum",
]

PROBE_TIMEOUT_S = 1.0  # seconds to wait for a TCP connection before calling a host unreachable
_TRUE = {"1", "true", "yes", "on"}


class WeightsNotFoundError(FileNotFoundError):
    """A named weight is neither cached nor obtainable from its sources."""


@dataclass(frozen=True)
class WeightsEntry:
    """One named weights file and its sources, in the order :func:`fetch` tries them."""

    name: str  # registry name, e.g. "geco"
    kind: Literal["adapter"]  # what it is; the cache folder is "<kind>s"
    description: str  # one line for `geocorr weights`
    filename: str  # the file's name as the authors publish it
    sha256: str  # sha256 of that file (hex); a file with another hash is refused
    urls: tuple[str, ...] = ()  # direct download URLs where the authors publish it, in order
    published_at: str = ""  # where to get it by hand (for the error message), when no URL works

    def __post_init__(self) -> None:
        if not self.filename or len(self.sha256) != 64:
            raise ValueError(f"weights {self.name!r}: an entry needs a filename and a 64-hex sha256")


WEIGHTS: dict[str, WeightsEntry] = {}


def register(entry: WeightsEntry) -> WeightsEntry:
    """Add ``entry`` to :data:`WEIGHTS` (under its name; replaces an entry of the same name)."""
    WEIGHTS[entry.name] = entry
    return entry


register(WeightsEntry(
    name="geco",
    kind="adapter",
    description="GECO's released LoRA for DINOv2-B/14 (ICCV 2025), rank 10 on query/value",
    filename="last_lora_weights.pth",
    sha256="63389bd38267b3e6ee324d8e8f6357ae982d74e68d530596cfdfae1943be1092",
    # No direct URL is known: the authors' README (github.com/reginehartwig/geco, "Pretrained
    # Weights") points to download_data/pretrained_weights.sh, added in commit 3d3f375 (issue #2).
    published_at=("the authors' repository github.com/reginehartwig/geco, section \"Pretrained Weights\" "
                  "(script download_data/pretrained_weights.sh)"),
))


def geocorr_home() -> Path:
    """geocorr's cache root: ``$GEOCORR_HOME``, default ``~/.cache/geocorr``."""
    return Path(os.environ.get("GEOCORR_HOME") or Path.home() / ".cache" / "geocorr").expanduser()


def entry(name: str) -> WeightsEntry:
    """The registry entry called ``name``."""
    if name not in WEIGHTS:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[name]


def cache_path(name: str) -> Path:
    """Where the weights ``name`` live in geocorr's cache (the file may not exist)."""
    e = entry(name)
    return geocorr_home() / f"{e.kind}s" / e.name / e.filename


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(e: WeightsEntry, path: Path, what: str, hint: str = "") -> None:
    got = sha256sum(path)
    if got != e.sha256:
        raise ValueError(f"{what} {path} is not the {e.name!r} weights ({e.filename}): sha256 {got}, "
                         f"expected {e.sha256}{hint}")


def _install(e: WeightsEntry, src: Path, what: str, move: bool = False) -> Path:
    """Verify ``src`` and put it into the cache atomically (copy, or move a temporary download)."""
    _verify(e, src, what)
    dest = cache_path(e.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    try:
        if move:
            shutil.move(str(src), tmp)
        else:
            shutil.copyfile(src, tmp)
        _verify(e, tmp, "copy of")  # the copy, not only the source, must be intact
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def add(name: str, file: str | Path) -> Path:
    """Check ``file`` against the entry's sha256 and copy it into the cache; returns the cached path."""
    e = entry(name)
    src = Path(file).expanduser()
    if not src.is_file():
        raise FileNotFoundError(f"weights file: no such file: {src}")
    return _install(e, src, "file")


def is_offline() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE`` or
    ``GEOCORR_OFFLINE``)."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "GEOCORR_OFFLINE"))


_PROBED: dict[tuple[str, int], bool] = {}
_PROBE_LOCK = threading.Lock()


def _behind_proxy(scheme: str) -> bool:
    names = (f"{scheme}_proxy", "all_proxy")
    return any(os.environ.get(n) or os.environ.get(n.upper()) for n in names)


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` s (cached per host).

    False at once when :func:`is_offline`; True for ``file:`` URLs and behind a proxy (cannot tell).
    Name resolution runs in a daemon thread, so a hanging DNS lookup also ends after ``timeout``.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return True
    if is_offline():
        return False
    if _behind_proxy(parsed.scheme or "https"):
        return True
    key = (parsed.hostname or "", parsed.port or (80 if parsed.scheme == "http" else 443))
    with _PROBE_LOCK:
        if key in _PROBED:
            return _PROBED[key]
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(key, timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    ok = bool(result and result[0])
    with _PROBE_LOCK:
        _PROBED[key] = ok
    return ok


def hub_local_only() -> bool:
    """Whether HuggingFace hub loads should use ``local_files_only=True`` (offline or hub unreachable).

    Pass it to ``from_pretrained``: offline, a model that is not cached then fails in milliseconds
    instead of after ``huggingface_hub``'s five HTTP retries (measured: 23–34 s).
    """
    from huggingface_hub import constants

    return not reachable(constants.ENDPOINT)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence library noise while a model is built: transformers' "Loading weights" progress bar and
    the ``is_gradient_checkpointing`` FutureWarning that ``peft`` triggers (transformers >= 5).

    Only these two: every other warning still reaches the user. The progress-bar setting is restored.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=30) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def fetch(name: str, file: str | Path | None = None) -> Path:
    """A verified local path of the adapter ``name``: cache, then ``file``, then the URLs (see module doc).

    Raises:
        WeightsNotFoundError: not cached, no file given and no URL reachable; the message says
            where the authors publish it and how to install it.
        ValueError: ``file`` or a download has the wrong sha256 (nothing is cached then).
    """
    e = entry(name)
    cached = cache_path(e.name)
    if cached.is_file():
        _verify(e, cached, "cached file", "; delete it and install the file again "
                f"(`geocorr weights add {e.name} FILE`)")
        return cached
    if file is not None:
        return add(e.name, file)
    errors = []
    for url in e.urls:
        if urlparse(url).scheme not in ("https", "http", "file"):
            raise ValueError(f"weights {e.name!r}: unsupported URL scheme in {url}")
        if not reachable(url):
            errors.append(f"{url}: offline or host unreachable")
            continue
        with tempfile.TemporaryDirectory(prefix="geocorr-download-") as tmp:
            part = Path(tmp) / e.filename
            try:
                _download(url, part)
            except OSError as err:
                errors.append(f"{url}: {err}")
                continue
            return _install(e, part, f"download from {url} ->", move=True)
    tried = f" Tried: {'; '.join(errors)}." if errors else ""
    where = e.published_at or ", ".join(e.urls)
    raise WeightsNotFoundError(
        f"weights {e.name!r} ({e.filename}) are not in the cache ({cached}).{tried} Download "
        f"{e.filename} from {where}, then install it with `geocorr weights add {e.name} FILE` "
        f"(Python: geocorr.weights.add({e.name!r}, FILE)), or pass its path: --adapter FILE / adapter='FILE'."
    )


def hub_cached(hub_id: str) -> Path | None:
    """The local snapshot folder of a HuggingFace hub model if its config is cached, else None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(hub_id, "config.json")
    return Path(hit).parent if isinstance(hit, str) else None


def listing() -> list[dict[str, str]]:
    """One row per registry entry: name, kind, status ("cached" / "not cached"), where, description."""
    rows = []
    for e in WEIGHTS.values():
        path = cache_path(e.name)
        cached = path.is_file()
        rows.append({"name": e.name, "kind": e.kind, "status": "cached" if cached else "not cached",
                     "where": str(path) if cached else (e.published_at or e.urls[0]), "description": e.description})
    return rows
