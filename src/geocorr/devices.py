"""Where models run: device names checked against this machine, and GPU memory errors in one line.

``resolve_device("cuda:1")`` -> ``torch.device("cuda", 1)``, or a ValueError that says what is wrong
with the name and what this machine has (no GPU, fewer GPUs, a name torch does not know). Every
model-loading path calls it, so ``--device gpu`` or ``--device cuda:7`` on a one-GPU machine ends in
one clear line on the command line (exit code 2) instead of a traceback deep inside ``torch``.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class DeviceMemoryError(ValueError):
    """The device ran out of memory on the user's input (an image too large, too many points)."""


def _backend_module(kind: str):
    """The ``torch.<kind>`` module of an accelerator type (cuda, xpu, mps, a renamed PrivateUse1 backend)."""
    if kind == "mps":
        return torch.backends.mps
    return getattr(torch, kind, None)


def available_devices() -> list[str]:
    """Names of the devices this machine can run on, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(text: str | torch.device | None) -> torch.device:
    """A device name (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``xpu:N``, ...) checked against this machine.

    ``cuda`` without an index means the current CUDA device. Raises ValueError, in one line naming the
    device and what this machine has, if torch does not know the name, the device type is not
    available here, or the index is out of range. None means ``cpu``.
    """
    if text is None:
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {text!r} is not a device name: use cpu, cuda, cuda:N (N = 0 .. number of GPUs - 1) "
                         f"or mps (this machine: {', '.join(available_devices())})") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "meta":
        raise ValueError("device 'meta' holds no data and computes nothing: use cpu or a GPU")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA support (a CPU build)"
            raise ValueError(f"device {text!r}: no CUDA GPU is available on this machine (torch {torch.__version__} "
                             f"with {built}); use --device cpu")
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise ValueError(f"device {text!r}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                             f"({', '.join(f'cuda:{i}' for i in range(count))})")
        return torch.device("cuda", index)
    module = _backend_module(device.type)
    if module is None or not callable(getattr(module, "is_available", None)) or not module.is_available():
        raise ValueError(f"device {text!r}: {device.type} is not available on this machine "
                         f"(available: {', '.join(available_devices())})")
    count_of = getattr(module, "device_count", None)
    if device.index is not None and callable(count_of) and device.index >= count_of():
        raise ValueError(f"device {text!r}: this machine has {count_of()} {device.type} device(s)")
    return torch.device(device.type, 0 if device.index is None and callable(count_of) else device.index)


@contextmanager
def out_of_memory_as_error(what: str, device: torch.device | str) -> Iterator[None]:
    """Turn a device out-of-memory error inside the block into one :class:`DeviceMemoryError` line.

    what: the work being done, e.g. "features of a 12000×9000 image"; the message adds what to try.
    """
    try:
        yield
    except torch.OutOfMemoryError:
        raise DeviceMemoryError(
            f"out of memory on {device} computing {what}: use a smaller --image-size, fewer points per "
            f"request, --dtype bfloat16, or --device cpu") from None
