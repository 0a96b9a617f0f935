"""Files geocorr writes: atomically (a crash never leaves a half-written file under the real name),
deterministically (the same content gives the same bytes, so a hash identifies it), and with clear
errors when the disk is full.

Everything here is pure data: tensors go into ``.safetensors`` (no code can run when reading one),
everything else into JSON. Nothing in geocorr unpickles a file.
"""
from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save


def os_error(code: int | None, message: str) -> OSError:
    """An ``OSError`` whose text is just ``message`` (no ``[Errno N]`` prefix), keeping ``errno``."""
    err = OSError(message)
    err.errno = code
    return err


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to the file descriptor (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_atomic(path: str | Path, data: bytes, what: str = "file") -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder: write, fsync, rename.

    A reader sees the old file or the new one, never a mix; temporary files of writers killed before
    (``.<name>.<pid>.tmp``) are removed. On failure (disk full, permissions …)
    the temporary file is removed, ``path`` is untouched, and an ``OSError`` whose message names
    ``what`` and ``path`` is raised (one line, e.g. ``checkpoint: cannot write …: no space left``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a writer killed mid-write
        stale.unlink(missing_ok=True)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        reason = "no space left on the device" if err.errno in (errno.ENOSPC, errno.EDQUOT) else (
            err.strerror or str(err))
        kept = " (the previous file is kept)" if path.exists() else ""
        raise os_error(err.errno, f"{what}: cannot write {path}: {reason}{kept}") from None
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the data itself is on disk
    finally:
        os.close(dir_fd)


def safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """The ``.safetensors`` serialisation of ``tensors`` with ``metadata``, byte-for-byte
    deterministic: the library orders tensors by name but writes the metadata in hash-map order,
    so the header is re-written here with the metadata keys sorted (same length, same offsets).
    """
    data = safetensors_save({k: v.contiguous() for k, v in tensors.items()}, metadata=dict(metadata))
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    if "__metadata__" in header:
        header = {"__metadata__": dict(sorted(header.pop("__metadata__").items())), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # cannot happen: same keys and values, only reordered
        raise RuntimeError("safetensors header grew while sorting its metadata")
    return data[:8] + text.ljust(size, b" ") + data[8 + size :]


def tensor_digest(tensors: Mapping[str, torch.Tensor], text: str = "") -> str:
    """SHA-256 of ``text`` and of every tensor's name, dtype, shape and bytes (sorted by name)."""
    digest = hashlib.sha256(text.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"\n{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a ``.safetensors`` file, every tensor read; reading one runs no code.
    Raises what safetensors raises for a file that is not one (callers name the file in their error)."""
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}  # noqa: SIM118 (not a dict)
