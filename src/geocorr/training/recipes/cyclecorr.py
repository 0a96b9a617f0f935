"""The cycle-consistency training recipe (Zhou et al., CVPR 2016) on the shared :class:`~geocorr.training.Trainer`.

Two stages, both with the paper's optimiser (ADAM β 0.9/0.999, lr 1e-3 halved every 50k steps,
200k iterations; no public code, the settings are the paper's): ``init`` regresses a classical
flow on pairs sampled from the quartets (batch 40, :class:`FlowPairDataset`), ``cycle`` fine-tunes
on quartets (batch 10, :class:`QuartetDataset`). The export is ``cyclecorr.safetensors`` (network
weights, its configuration in the metadata) which ``geocorr.load("cyclecorr", weights=...)``
reads. As two commands (each resumable with ``--resume``)::

    geocorr train --method cyclecorr --stage init --dataset pf-willow --root DATA --meshes CARS --out runs/init
    geocorr train --method cyclecorr --stage cycle --dataset pf-willow --root DATA --meshes CARS --out runs/cycle \\
        --weights runs/init/cyclecorr.safetensors
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ...datasets.base import PairDataset
from ...evaluation.cyclecorr import baselines, keypoint_transfer_pck
from ...methods.cyclecorr.crop import load_crops
from ...methods.cyclecorr.mesh import load_meshes
from ...methods.cyclecorr.model import CycleCorr
from ...methods.cyclecorr.network import NetworkConfig
from ...methods.cyclecorr.objectives import (
    CycleObjective,
    FlowPairDataset,
    InitializationObjective,
)
from ...methods.cyclecorr.quartets import QuartetDataset
from .. import TrainConfig, Trainer, TrainingData

__all__ = [
    "CONFIG",
    "STAGES",
    "WEIGHTS_FILE",
    "CycleTrainConfig",
    "CycleTraining",
    "InitTrainConfig",
    "build_trainer",
    "make_trainer",
]

WEIGHTS_FILE = "cyclecorr.safetensors"


@dataclass
class CycleTrainConfig(TrainConfig):
    """Cycle fine-tuning as published: 10 quartets per step, 200k ADAM steps, lr 1e-3 × 0.5 every 50k."""

    lr: float = 1e-3
    max_steps: int | None = 200_000
    batch_size: int = 10
    stage: str = "cycle"  # cycle (quartets) | init (regress the classical flow)
    betas: tuple[float, float] = (0.9, 0.999)  # ADAM moments
    lr_step: int = 50_000  # steps between learning-rate drops
    lr_gamma: float = 0.5  # learning-rate multiplier at each drop
    threshold: float = 15.0  # truncation T of the flow loss, pixels
    matchability_weight: float = 1.0  # weight of the matchability cross-entropy
    image_size: int = 128  # side of the square crops the network sees
    k: int = 20  # nearest CAD models (HOG) kept per real image
    meshes: str | None = None  # folder of CAD models (searched recursively), for build_trainer

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage not in ("init", "cycle"):
            raise ValueError(f"stage must be 'init' or 'cycle', got {self.stage!r}")
        if self.lr_step < 1 or not 0 < self.lr_gamma <= 1:
            raise ValueError(f"need lr_step >= 1 and 0 < lr_gamma <= 1, got {self.lr_step}, {self.lr_gamma}")
        if self.scheduler != "none":
            raise ValueError("cyclecorr uses its own step decay (lr_step, lr_gamma); "
                             f"scheduler must be 'none', got {self.scheduler!r}")


@dataclass
class InitTrainConfig(CycleTrainConfig):
    """Initialisation as published: like the cycle stage, with batches of 40 image pairs."""

    batch_size: int = 40
    stage: str = "init"


CONFIG = CycleTrainConfig  # what ``geocorr train --method cyclecorr`` starts from
STAGES = {"init": InitTrainConfig, "cycle": CycleTrainConfig}  # ``--stage``: each stage's published config


class CycleTraining(nn.Module):
    """What the trainer drives: the matcher's network plus the objective of ``conf.stage``."""

    def __init__(self, model: CycleCorr, conf: CycleTrainConfig):
        super().__init__()
        self.model = model
        self.objective: InitializationObjective | CycleObjective
        if conf.stage == "init":
            self.objective = InitializationObjective()
        else:
            self.objective = CycleObjective(conf.threshold, conf.matchability_weight)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.model.net.parameters())

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.objective(self.model.net, batch)

    def save_weights(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/cyclecorr.safetensors``; returns its path."""
        from safetensors.torch import save_file

        path = Path(out_dir) / WEIGHTS_FILE
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.net.state_dict().items()}
        save_file(state, path, metadata={"network": json.dumps(asdict(self.model.net.config))})
        return path


def _adam(params: list[nn.Parameter], conf: CycleTrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=conf.lr, betas=(conf.betas[0], conf.betas[1]), weight_decay=conf.weight_decay)


def _step_decay(optimizer: torch.optim.Optimizer, conf: CycleTrainConfig, total_steps: int):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=conf.lr_step, gamma=conf.lr_gamma)


def make_trainer(model: CycleCorr, dataset: TrainingData, out_dir: str | Path, conf: CycleTrainConfig | None = None,
                 **kwargs) -> Trainer:
    """A :class:`Trainer` for ``conf.stage``: "cycle" on a QuartetDataset, "init" on a FlowPairDataset.

    conf defaults to the published cycle stage; kwargs go to :class:`Trainer` (``validate``, ``progress``, …).
    """
    conf = CycleTrainConfig() if conf is None else conf
    if conf.image_size != model.image_size:
        raise ValueError(f"conf.image_size {conf.image_size} differs from the network's input size {model.image_size}")
    return Trainer(CycleTraining(model, conf), dataset, conf, out_dir,
                   optimizer_factory=_adam, scheduler_factory=_step_decay, **kwargs)


def build_trainer(train_set: PairDataset, out_dir: str | Path, conf: CycleTrainConfig, backbone=None, adapter=None,
                  val_set: PairDataset | None = None, val_pairs: int | None = None, progress: bool = True) -> Trainer:
    """The trainer behind ``geocorr train --method cyclecorr --meshes DIR``.

    The real images are ``train_set``'s images cut to their boxes, paired within their category
    (give CAD models of the dataset's categories); each gets the HOG-nearest candidate viewpoint
    and its ``conf.k`` nearest CAD models from ``conf.meshes`` (all of them when the folder holds
    fewer), the CAD models rendered framed to their object box as the images are cut to theirs
    (retrieval and quartet renders alike, :func:`~geocorr.methods.cyclecorr.quartets.framed_camera`).
    ``adapter``: start from these network weights (e.g. the "init" stage's export).
    ``backbone`` is unused (the network has its own encoder). Validation: keypoint-transfer PCK
    on ``val_set``'s pairs. Both stages from Python::

        build_trainer(train, "runs/init", InitTrainConfig(meshes="cars")).fit()
        build_trainer(train, "runs/cycle", CycleTrainConfig(meshes="cars"),
                      adapter="runs/init/cyclecorr.safetensors").fit()
    """
    del backbone
    if conf.meshes is None:
        raise ValueError("cyclecorr training needs CAD models: set meshes (--meshes DIR)")
    meshes, _ = load_meshes(conf.meshes)
    if adapter is not None:
        model = CycleCorr(weights=adapter)
    else:
        model = CycleCorr(network=NetworkConfig(image_size=conf.image_size))
    annotations = train_set.images()
    images = load_crops(annotations, conf.image_size)
    categories = [ann.category for ann in annotations]
    quartets = QuartetDataset.from_images(images, meshes, k=min(conf.k, len(meshes)), groups=categories, framed=True)
    dataset = FlowPairDataset(quartets, seed=conf.seed) if conf.stage == "init" else quartets
    validate = None
    if val_set is not None:
        pairs = list(val_set)[:val_pairs]
        reference = baselines(pairs, conf.image_size, seed=conf.seed)  # logged beside every validation figure

        def validate(training: CycleTraining) -> dict[str, float]:
            return {**keypoint_transfer_pck(training.model, pairs), **reference}
    return make_trainer(model, dataset, out_dir, conf, validate=validate, progress=progress)
