"""Per-image feature cache: memory-bounded (least recently used out first), optionally on disk.

Keys are image paths. The on-disk copy lives under ``directory/<fingerprint>/``, where the
fingerprint names the model and its preprocessing: features of another model or config are never
read back by mistake.

An on-disk entry is one ``.safetensors`` file (reading it never runs code): the dense features as
a tensor, and in its metadata the key, the fingerprint, the SHA-256 of the image file the features
were computed from, the token grid and a SHA-256 of all of that and the feature bytes. It is only
used if every one of them matches, so a swapped, damaged or stale file (the image changed since) is
recomputed (and re-written), never used: the cache cannot change a PCK.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..files import read_safetensors, safetensors_bytes, tensor_digest, write_atomic
from ..grid import TokenGrid
from ..methods.base import Features
from ..weights import sha256sum

FORMAT = "geocorr-features"


def nbytes(obj: Any) -> int:
    """Bytes held by the tensors inside ``obj`` (a tensor, a dataclass, a list, a dict …)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    if hasattr(obj, "__dict__"):
        return nbytes(vars(obj))
    return 0


def _own_copy(value: Any) -> Any:
    """``value`` with every tensor cloned: a cached image keeps only its own features, not the
    whole batch a slice of it was taken from."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, Features):
        return Features(value.dense.detach().clone(), list(value.grids))
    if isinstance(value, dict):
        return {k: _own_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_own_copy(v) for v in value)
    return value


class FeatureCache:
    """Least-recently-used cache of per-image features, bounded by ``max_bytes`` of tensors.

    directory: when given, every stored :class:`Features` entry is also written there and a miss in
    memory is looked up on disk first (verified, see the module docstring). fingerprint: identifies
    the model + config (required with a directory).
    Counters: ``hits`` (memory), ``disk_hits``, ``misses``, ``rejected`` (disk files not used).
    """

    def __init__(self, max_bytes: int = 2 << 30, directory: str | Path | None = None, fingerprint: str = ""):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        if directory is not None and not fingerprint:
            raise ValueError("an on-disk feature cache needs the model's fingerprint")
        self.max_bytes = max_bytes
        self.fingerprint = fingerprint
        self.directory = None if directory is None else Path(directory) / fingerprint
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = self.disk_hits = self.rejected = 0

    def _file(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:40] + ".safetensors")

    @staticmethod
    def _source_digest(key: str) -> str:
        """SHA-256 of the image file ``key`` names ("" when the key is not a file)."""
        path = Path(key)
        return sha256sum(path) if path.is_file() else ""

    def __contains__(self, key: str) -> bool:
        return key in self._entries or (self.directory is not None and self._file(key).is_file())

    def get(self, key: str) -> Any | None:
        """The cached features of ``key`` or None (counted as a miss)."""
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key][0]
        if self.directory is not None and self._file(key).is_file():
            value = self._read(key, self._file(key))
            if value is not None:
                self.disk_hits += 1
                self._remember(key, value)
                return value
        self.misses += 1
        return None

    def put(self, key: str, value: Any) -> None:
        """Cache a copy of ``value`` (on disk too, with a directory: ``value`` must be Features of one image)."""
        value = _own_copy(value)
        if self.directory is not None:
            self._write(key, value)
        self._remember(key, value)

    def _write(self, key: str, value: Any) -> None:
        if not isinstance(value, Features) or len(value) != 1:
            raise TypeError(f"the on-disk feature cache stores the Features of one image, got {type(value).__name__}")
        grid = value.grids[0]
        meta = {"key": key, "fingerprint": self.fingerprint, "image_sha256": self._source_digest(key),
                "grid": json.dumps(dataclasses.asdict(grid))}
        text = json.dumps(meta, sort_keys=True)
        tensors = {"dense": value.dense}
        write_atomic(self._file(key), safetensors_bytes(
            tensors, {"format": FORMAT, "entry": text, "sha256": tensor_digest(tensors, text)}), "feature cache")

    def _read(self, key: str, path: Path) -> Features | None:
        """The verified entry of ``key`` in ``path``, or None (with a warning saying why) to recompute."""
        try:
            tensors, meta = read_safetensors(path)
            if meta.get("format") != FORMAT or set(tensors) != {"dense"}:
                raise ValueError("not a geocorr feature-cache file")
            if tensor_digest(tensors, meta["entry"]) != meta["sha256"]:
                raise ValueError("damaged: its content does not match its SHA-256")
            entry = json.loads(meta["entry"])
            if entry["key"] != key or entry["fingerprint"] != self.fingerprint:
                raise ValueError(f"holds the features of {entry['key']!r} (model {entry['fingerprint']}), "
                                 f"not of {key!r}")
            if entry["image_sha256"] != self._source_digest(key):
                raise ValueError(f"stale: {key} changed since its features were cached")
            fields = json.loads(entry["grid"])
            grid = TokenGrid(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})  # type: ignore[arg-type]
            dense = tensors["dense"]
            if dense.ndim != 4 or dense.shape[0] != 1 or tuple(dense.shape[2:]) != grid.grid_hw:
                raise ValueError(f"features of shape {tuple(dense.shape)} do not fit its token grid {grid.grid_hw}")
        except Exception as err:
            self.rejected += 1
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            warnings.warn(f"feature cache: {path} not used ({reason}); recomputing", stacklevel=3)
            return None
        return Features(dense, [grid])

    def _remember(self, key: str, value: Any) -> None:
        size = nbytes(value)
        if key in self._entries:
            self.bytes -= self._entries.pop(key)[1]
        if size > self.max_bytes:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self.bytes -= self._entries.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._entries)


def model_fingerprint(model: torch.nn.Module, config: dict) -> str:
    """A short hash of the model's config and of every parameter and buffer value."""
    digest = hashlib.sha256(repr(sorted(config.items())).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
