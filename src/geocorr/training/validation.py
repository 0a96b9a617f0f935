"""Validation during training: PCK of the model being trained on a held-out pair set."""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast, runtime_checkable

import torch

from ..datasets.base import PairDataset
from ..evaluation.metrics import compute_metrics
from ..evaluation.protocols import get_protocol
from ..evaluation.runner import evaluate
from ..methods.base import Matcher


@runtime_checkable
class WrapsMatcher(Protocol):
    """A training module around the matcher it trains (e.g. GECO's ``GecoTraining.matcher``)."""

    matcher: Matcher


def pck_validator(dataset: PairDataset, protocol: str = "geco", max_pairs: int | None = None,
                  batch_size: int = 8) -> Callable[[torch.nn.Module], dict[str, float]]:
    """A ``validate(model)`` for :class:`geocorr.training.Trainer`: PCK at the protocol's alphas.

    The matcher evaluated is ``model.matcher`` for a :class:`WrapsMatcher`, else the model itself.
    max_pairs: evaluate the first this many pairs only (a quick signal on long runs).
    Returns {"pck@0.05": …, "pck@0.10": …, …} in percent.
    """
    indices = range(min(len(dataset), max_pairs)) if max_pairs is not None else None
    proto = get_protocol(protocol, dataset.name)

    def validate(model: torch.nn.Module) -> dict[str, float]:
        matcher = model.matcher if isinstance(model, WrapsMatcher) else cast(Matcher, model)
        predictions = evaluate(matcher, dataset, pair_indices=indices, batch_size=batch_size, progress=False)
        pck = compute_metrics(predictions, proto)["pck"]["all"]
        return {f"pck@{alpha:.2f}": float(value) for alpha, value in zip(proto.alphas, pck, strict=True)}

    return validate
