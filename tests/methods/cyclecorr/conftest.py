"""Fixtures of the cycle-consistency tests: a tiny network, one torch thread (many tiny ops)."""
import pytest
import torch

from geocorr.methods.cyclecorr import NetworkConfig

TINY_ENCODER = ((4, 2), (4, 1), (8, 2), (8, 1), (8, 2), (8, 1), (16, 2), (16, 1))
TINY_DECODER = ((16, 1), (8, 2), (8, 1), (8, 2), (8, 1), (4, 2), (4, 1), (4, 2))


@pytest.fixture(autouse=True)
def one_thread():
    """The renderer issues many small torch ops; extra threads only contend on a loaded CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_network():
    def make(image_size: int = 32) -> NetworkConfig:
        return NetworkConfig(image_size=image_size, encoder=TINY_ENCODER, decoder=TINY_DECODER)

    return make


class ConstantFlow(torch.nn.Module):
    """Stands in for the network: flow (dx, dy) and ``matchability`` at every pixel."""

    def __init__(self, config: NetworkConfig, dx: float = 0.0, dy: float = 0.0, matchability: float = 1.0):
        super().__init__()
        self.config, self.dx, self.dy, self.matchability = config, dx, dy, matchability
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, a, b):
        flow = torch.empty(a.shape[0], 2, *a.shape[-2:])
        flow[:, 0], flow[:, 1] = self.dx, self.dy
        return flow, torch.full((a.shape[0], 1, *a.shape[-2:]), self.matchability)
