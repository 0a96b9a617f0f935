"""Which sample each process sees at each step: seeded, resumable, sharded over processes."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the augmentation of the sample at ``position`` of ``epoch``."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + position)
    return int(torch.randint(0, 2**62, (1,), generator=g))


class ResumableSampler(Sampler[tuple[int, int, int]]):
    """Yields ``(index, seed, epoch)`` keys: a seeded permutation per epoch, from any global step on.

    A global step consumes ``batch_size × world_size`` samples of the permutation; process ``rank``
    takes its ``batch_size`` share of each. Incomplete last batches are dropped. The order, the
    split over processes and every sample's seed depend only on (seed, epoch, position), so a run
    resumed at step s sees exactly what an uninterrupted run would.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if size < batch_size * world_size:
            raise ValueError(
                f"the training set has {size} samples, fewer than one step needs "
                f"(batch_size {batch_size} × {world_size} processes)"
            )
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.start_step = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.size // (self.batch_size * self.world_size)

    def __len__(self) -> int:
        return self.steps_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        """The keys from ``start_step`` on, without end (epochs follow each other)."""
        step = self.start_step
        while True:
            epoch, in_epoch = divmod(step, self.steps_per_epoch)
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
            for s in range(in_epoch, self.steps_per_epoch):
                first = (s * self.world_size + self.rank) * self.batch_size
                for position in range(first, first + self.batch_size):
                    yield order[position], sample_seed(self.seed, epoch, position), epoch
            step = (epoch + 1) * self.steps_per_epoch
