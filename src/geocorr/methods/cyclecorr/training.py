"""Training the cycle-consistency network on the shared :class:`geocorr.training.Trainer`.

Two stages, both with the paper's optimiser (ADAM β 0.9/0.999, lr 1e-3 halved every 50k steps,
200k iterations): ``"init"`` regresses a classical flow on pairs sampled from the quartets
(batch 40, :class:`FlowPairDataset`), ``"cycle"`` fine-tunes on quartets (batch 10,
:class:`QuartetDataset`). The export is ``cyclecorr.safetensors`` (network weights, its
configuration in the metadata) which ``geocorr.load("cyclecorr", weights=...)`` reads.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ...training import TrainConfig, Trainer
from .model import CycleCorr
from .objectives import CycleObjective, InitializationObjective

__all__ = ["CycleTrainConfig", "CycleTraining", "InitTrainConfig", "WEIGHTS_FILE", "make_trainer"]

WEIGHTS_FILE = "cyclecorr.safetensors"


@dataclass
class CycleTrainConfig(TrainConfig):
    """Cycle fine-tuning as published: 10 quartets per step, 200k ADAM steps, lr 1e-3 × 0.5 every 50k."""

    lr: float = 1e-3
    max_steps: int | None = 200_000
    batch_size: int = 10
    betas: tuple[float, float] = (0.9, 0.999)  # ADAM moments
    lr_step: int = 50_000  # steps between learning-rate drops
    lr_gamma: float = 0.5  # learning-rate multiplier at each drop
    threshold: float = 15.0  # truncation T of the flow loss, pixels
    matchability_weight: float = 1.0  # weight of the matchability cross-entropy

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr_step < 1 or not 0 < self.lr_gamma <= 1:
            raise ValueError(f"need lr_step >= 1 and 0 < lr_gamma <= 1, got {self.lr_step}, {self.lr_gamma}")


@dataclass
class InitTrainConfig(CycleTrainConfig):
    """Initialisation as published: like the cycle stage, with batches of 40 image pairs."""

    batch_size: int = 40


class CycleTraining(nn.Module):
    """What the trainer drives: the matcher's network plus the stage's objective."""

    def __init__(self, model: CycleCorr, stage: str, conf: CycleTrainConfig):
        super().__init__()
        if stage not in ("init", "cycle"):
            raise ValueError(f"stage must be 'init' or 'cycle', got {stage!r}")
        self.model = model
        self.objective = (
            InitializationObjective() if stage == "init" else CycleObjective(conf.threshold, conf.matchability_weight)
        )

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.model.net.parameters())

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.objective(self.model.net, batch)

    def export(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/cyclecorr.safetensors``; returns its path."""
        from safetensors.torch import save_file

        path = Path(out_dir) / WEIGHTS_FILE
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.net.state_dict().items()}
        save_file(state, path, metadata={"network": json.dumps(asdict(self.model.net.config))})
        return path


def _adam(params: list[nn.Parameter], conf: CycleTrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=conf.lr, betas=tuple(conf.betas), weight_decay=conf.weight_decay)


def _step_decay(optimizer: torch.optim.Optimizer, conf: CycleTrainConfig, total_steps: int):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=conf.lr_step, gamma=conf.lr_gamma)


def make_trainer(
    model: CycleCorr, dataset: Sequence, stage: str, out_dir: str | Path, conf: CycleTrainConfig | None = None, **kwargs
) -> Trainer:
    """A :class:`Trainer` for ``stage`` ("init" on a FlowPairDataset, "cycle" on a QuartetDataset).

    conf defaults to the published setting of the stage; kwargs go to :class:`Trainer`
    (``validate``, ``progress``, …).
    """
    if conf is None:
        conf = InitTrainConfig() if stage == "init" else CycleTrainConfig()
    if conf.scheduler != "none":
        raise ValueError(f"cyclecorr uses its own step decay (lr_step, lr_gamma); scheduler must be 'none', got {conf.scheduler!r}")
    return Trainer(
        CycleTraining(model, stage, conf), dataset, conf, out_dir,
        optimizer_factory=_adam, scheduler_factory=_step_decay, **kwargs,
    )
