"""Toy training problems for the trainer tests: a linear regression with RNG-dependent steps, and its data.

Imported by the tests (``from .toy_regression import ...``) and, by path, by the torchrun worker script of
test_trainer.py.
"""
import torch
from torch import nn


class Regression(nn.Module):
    """y = w·x + noise; the step also draws noise from the global RNG (must resume exactly)."""

    def __init__(self, fail_at: int | None = None, nan_at: int | None = None, noise: float = 0.01):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 1)
        self.frozen = nn.Linear(4, 4).requires_grad_(False)
        self.calls, self.fail_at, self.nan_at, self.noise = 0, fail_at, nan_at, noise

    def trainable_parameters(self):
        return list(self.linear.parameters())

    def training_step(self, batch):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("killed")
        x = batch["x"] + self.noise * torch.randn_like(batch["x"])
        loss = ((self.linear(x).squeeze(1) - batch["y"]) ** 2).mean()
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mean_x": x.mean()}


class Noisy:
    """64 samples; each sample's noise comes from the generator the trainer hands over."""

    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self):
        return 64

    def sample(self, index, generator, epoch=0):
        return {"x": self.x[index] + 0.05 * torch.randn(4, generator=generator), "y": self.y[index]}


class Plain(Noisy):
    """The same samples without random noise (their order still comes from the sampler)."""

    def __getitem__(self, index):
        return {"x": self.x[index], "y": self.y[index]}

    sample = None
