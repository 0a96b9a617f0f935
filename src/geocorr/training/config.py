"""The generic training configuration every method's config extends."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of one training run (a method subclasses it with its defaults).

    Everything that changes the result is here, so a checkpoint can refuse a resume under another
    config (a resume may change ``max_steps``/``epochs`` to extend a run, and ``keep_checkpoints``);
    where to write is not (an argument of ``Trainer``).
    """

    lr: float = 1e-4  # AdamW learning rate (peak rate with a one-cycle schedule)
    weight_decay: float = 0.0  # AdamW weight decay
    epochs: int = 1  # passes over the training set
    max_steps: int | None = None  # optimiser steps in all; overrides epochs when set
    batch_size: int = 1  # samples per step on each process
    scheduler: str = "none"  # none | onecycle
    warmup: float = 0.3  # one-cycle: share of the steps spent warming up
    grad_clip: float | None = None  # clip the gradient norm to this value
    mixed_precision: str = "no"  # no | bf16 (accelerate's autocast)
    val_every: int = 1000  # validate every this many steps (and at the end); 0 = never
    checkpoint_every: int = 1000  # write a checkpoint every this many steps (and at the end)
    keep_checkpoints: int = 2  # keep the newest this many checkpoints (older ones are deleted)
    log_every: int = 10  # append a line to log.jsonl every this many steps
    num_workers: int = 0  # data-loader worker processes
    seed: int = 0  # seeds the sample order, every sample's augmentation and the torch RNG

    def __post_init__(self) -> None:
        if self.scheduler not in ("none", "onecycle"):
            raise ValueError(f"scheduler must be 'none' or 'onecycle', got {self.scheduler!r}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        for name in ("lr", "batch_size", "epochs"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")

    def to_dict(self) -> dict:
        """JSON-compatible dict (tuples become lists), with the config's class name."""
        return {"class": type(self).__name__, **json.loads(json.dumps(dataclasses.asdict(self)))}
