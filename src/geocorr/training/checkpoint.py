"""Training checkpoints: pure data, content-hashed, written atomically, several kept.

A checkpoint is one ``.safetensors`` file. Its tensors (trainable parameters, optimiser moments,
RNG states) are stored as tensors; everything else (step, config, scheduler, optimiser settings,
…) as JSON in the header metadata. Reading one never runs code (no pickle). The metadata also holds
a SHA-256 of the JSON and of every tensor's bytes, verified on load: one flipped bit anywhere is
detected and the file refused (:class:`CheckpointError`), so the trainer can fall back to an older
checkpoint instead of resuming from silently wrong weights.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..files import read_safetensors, safetensors_bytes, tensor_digest, write_atomic

FORMAT = "geocorr-checkpoint"
_NAME = re.compile(r"checkpoint-(\d{8,})\.safetensors")
LEGACY_NAME = "checkpoint.pt"  # geocorr < 0.2 pickled its checkpoints here; never read


class CheckpointError(ValueError):
    """A file that is not an intact geocorr checkpoint (message names the file and the reason)."""


def checkpoint_name(step: int) -> str:
    """File name of the checkpoint after ``step`` optimiser steps."""
    return f"checkpoint-{step:08d}.safetensors"


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoint files in ``folder``, newest (highest step) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]
    return sorted(found, reverse=True)


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """JSON-able form of ``obj``: tensors are moved to ``tensors`` and referenced by key."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone()
        return {"__tensor__": key}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not {"__tensor__", "__tuple__", "__items__"} & set(obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k!r}]")]
                              for k, v in obj.items()]}
    raise TypeError(f"checkpoint: cannot store {where} of type {type(obj).__name__} "
                    f"(only tensors, numbers, strings, lists, tuples and dicts)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


def checkpoint_bytes(state: dict) -> bytes:
    """The file content of a checkpoint holding ``state`` (deterministic for equal states)."""
    tensors: dict[str, torch.Tensor] = {}
    text = json.dumps(_encode(state, tensors, "state"), sort_keys=True, allow_nan=True)
    return safetensors_bytes(tensors, {"format": FORMAT, "state": text, "sha256": tensor_digest(tensors, text)})


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` (a dict of tensors, numbers, strings, lists, tuples, dicts) to ``path``
    atomically; on failure (e.g. disk full) ``path`` and any other file are untouched and an
    ``OSError`` naming ``path`` is raised."""
    write_atomic(path, checkpoint_bytes(state), "checkpoint")


def load_checkpoint(path: str | Path) -> dict:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Raises FileNotFoundError for a missing file and :class:`CheckpointError` (naming the file)
    for anything else than an intact geocorr checkpoint: not safetensors (e.g. a pickle), another
    format, or content that does not match its SHA-256 (bit flip, truncation, tampering).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file: {path}")
    try:
        tensors, meta = read_safetensors(path)
    except Exception as err:
        raise CheckpointError(f"checkpoint: {path} is not a readable safetensors checkpoint "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if meta.get("format") != FORMAT or "state" not in meta or "sha256" not in meta:
        raise CheckpointError(f"checkpoint: {path} is not a geocorr training checkpoint")
    if tensor_digest(tensors, meta["state"]) != meta["sha256"]:
        raise CheckpointError(f"checkpoint: {path} is damaged: its content does not match its SHA-256")
    try:
        state = _decode(json.loads(meta["state"]), tensors)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint: {path} has an unreadable state ({err})") from None
    if not isinstance(state, dict) or "step" not in state or "config" not in state:
        raise CheckpointError(f"checkpoint: {path} is not a geocorr training checkpoint")
    return state


def rng_state() -> dict:
    """The state of every random generator training touches (as tensors and numbers)."""
    kind, keys, pos, has_gauss, cached = cast(tuple, np.random.get_state(legacy=True))
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
