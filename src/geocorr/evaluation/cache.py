"""Per-image feature cache: memory-bounded (least recently used out first), optionally on disk.

Keys are image paths. The on-disk copy lives under ``directory/<fingerprint>/``, where the
fingerprint names the model and its preprocessing: features of another model or config are never
read back by mistake.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch


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


class FeatureCache:
    """Least-recently-used cache of per-image features, bounded by ``max_bytes`` of tensors.

    directory: when given, every stored entry is also written there (``torch.save``) and a miss in
    memory is looked up on disk first. fingerprint: identifies the model + config (required with a
    directory).
    """

    def __init__(self, max_bytes: int = 2 << 30, directory: str | Path | None = None, fingerprint: str = ""):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        if directory is not None and not fingerprint:
            raise ValueError("an on-disk feature cache needs the model's fingerprint")
        self.max_bytes = max_bytes
        self.directory = None if directory is None else Path(directory) / fingerprint
        self._entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = self.disk_hits = 0

    def _file(self, key: str) -> Path:
        return self.directory / (hashlib.sha1(key.encode()).hexdigest() + ".pt")

    def __contains__(self, key: str) -> bool:
        return key in self._entries or (self.directory is not None and self._file(key).is_file())

    def get(self, key: str) -> Any | None:
        """The cached features of ``key`` or None (counted as a miss)."""
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key][0]
        if self.directory is not None and self._file(key).is_file():
            value = torch.load(self._file(key), weights_only=False)
            self.disk_hits += 1
            self._remember(key, value)
            return value
        self.misses += 1
        return None

    def put(self, key: str, value: Any) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            torch.save(value, self._file(key))
        self._remember(key, value)

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
