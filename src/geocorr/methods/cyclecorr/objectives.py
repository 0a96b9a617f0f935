"""The two training objectives: regressing a classical flow (initialisation) and 3D-guided cycles.

Initialisation: the paper regresses SIFT flow between image pairs sampled from the quartets. SIFT
flow has no maintained Python implementation, so the target here is TV-L1 optical flow
(``skimage.registration.optical_flow_tvl1``): also a dense, smoothness-regularised classical flow
between the two grey images, from a maintained library.

Cycle training: for a quartet ⟨s1, s2, r1, r2⟩ the network's flows compose along
s1 → r1 → r2 → s2 and are compared with the renderer's exact ``F̃_{s1,s2}`` (truncated Euclidean
loss over matchable pixels, T = 15 px); matchability composes the same way with
``M_{s1,r1} = M_{r2,s2} = 1`` fixed, so only ``M_{r1,r2}`` is learnt (per-pixel cross-entropy
against ``M̃_{s1,s2}``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .flow import compose_flow, compose_matchability, matchability_loss, truncated_flow_loss
from .network import CycleCorrNet
from .quartets import QuartetDataset

__all__ = ["CycleObjective", "FlowPairDataset", "InitializationObjective", "classical_flow"]


def classical_flow(image_a: Tensor, image_b: Tensor) -> Tensor:
    """TV-L1 optical flow ``F_{a,b}`` between two 3×H×W images in [0, 1] -> 2×H×W (x, y) pixels."""
    from skimage.registration import optical_flow_tvl1

    if image_a.shape != image_b.shape or image_a.ndim != 3 or image_a.shape[0] != 3:
        raise ValueError(f"images must both have shape 3×H×W, got {tuple(image_a.shape)} and {tuple(image_b.shape)}")
    weights = image_a.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    gray_a = (image_a * weights).sum(0).cpu().numpy()
    gray_b = (image_b * weights).sum(0).cpu().numpy()
    rows, cols = optical_flow_tvl1(gray_a, gray_b)
    return torch.from_numpy(np.stack([cols, rows]).astype(np.float32))


class FlowPairDataset(Dataset):
    """Image pairs sampled from the quartets with their classical flow, for the initialisation.

    Item ``i`` takes quartet ``i mod len`` and one of its three cycle pairs (s1→r1, r1→r2, r2→s2)
    chosen by a seeded generator: {"a", "b": 3×S×S, "flow": 2×S×S target F_{a,b}}.
    """

    PAIRS = (("s1", "r1"), ("r1", "r2"), ("r2", "s2"))

    def __init__(self, quartets: QuartetDataset, length: int | None = None, seed: int = 0):
        self.quartets = quartets
        self.length = 3 * len(quartets) if length is None else length
        if self.length <= 0:
            raise ValueError(f"length must be positive, got {self.length}")
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        first, second = self.PAIRS[int(torch.randint(3, (1,), generator=generator))]
        quartet = self.quartets[index % len(self.quartets)]
        a, b = quartet[first], quartet[second]
        return {"a": a, "b": b, "flow": classical_flow(a, b)}


@dataclass
class InitializationObjective:
    """Euclidean loss (squared distance, mean over pixels) between the predicted and the classical flow;
    also reports the end-point error ``flow_epe`` (mean distance in pixels)."""

    def __call__(self, net: CycleCorrNet, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        embedding_a, embedding_b = net.embed(torch.cat([batch["a"], batch["b"]])).chunk(2)
        squared = ((net.decode_flow(embedding_a, embedding_b) - batch["flow"]) ** 2).sum(1)
        return {"loss": squared.mean(), "flow_epe": squared.detach().sqrt().mean()}


@dataclass
class CycleObjective:
    """Cycle losses on a batch of quartets (see :class:`QuartetDataset` for the keys).

    threshold: truncation T of the flow loss in pixels; matchability_weight: weight of the
    cross-entropy term in the total.
    """

    threshold: float = 15.0
    matchability_weight: float = 1.0

    def __call__(self, net: CycleCorrNet, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        s1, r1, r2, s2 = (batch[key] for key in ("s1", "r1", "r2", "s2"))
        e_s1, e_r1, e_r2, e_s2 = net.embed(torch.cat([s1, r1, r2, s2])).chunk(4)
        flows = net.decode_flow(torch.cat([e_s1, e_r1, e_r2]), torch.cat([e_r1, e_r2, e_s2]))
        flow_s1r1, flow_r1r2, flow_r2s2 = flows.chunk(3)
        match_r1r2 = net.decode_matchability(e_r1, e_r2)
        cycle_flow = compose_flow(compose_flow(flow_s1r1, flow_r1r2), flow_r2s2)
        cycle_match = compose_matchability(torch.ones_like(match_r1r2), match_r1r2, flow_s1r1)
        flow_loss = truncated_flow_loss(batch["flow"], cycle_flow, batch["matchable"], self.threshold)
        match_loss = matchability_loss(batch["matchable"], cycle_match)
        return {
            "loss": flow_loss + self.matchability_weight * match_loss,
            "flow_loss": flow_loss.detach(),
            "matchability_loss": match_loss.detach(),
        }
