"""Fixtures of the demo/video tests: synthetic videos and a matcher with known (colour) features."""
import numpy as np
import pytest
import torch.nn.functional as F

from geocorr.backbones import build_backbone, tiny_config
from geocorr.demo.video import VideoWriter
from geocorr.methods.base import DenseMatcher

RED, GREY = (255, 0, 0), (128, 128, 128)


class ColourMatcher(DenseMatcher):
    """A DenseMatcher whose feature of a token is its mean normalised colour: tracking has a known answer."""

    def _dense(self, x):
        return F.avg_pool2d(x, self.backbone.patch)


@pytest.fixture(scope="session")
def colour_matcher():
    """Frames are stretched to 56×84 px = 4×6 tokens of 14 px: a 56×84 frame maps 1:1."""
    backbone = build_backbone(tiny_config(hidden_size=16, num_hidden_layers=1), image_size=(56, 84))
    return ColourMatcher(backbone, upsample="none").eval()


def _square_frames() -> list[np.ndarray]:
    """Six 56×84 frames: a red 14×14 square on grey, in token row 1, moving one token (14 px) right."""
    frames = []
    for j in range(6):
        frame = np.full((56, 84, 3), GREY, dtype=np.uint8)
        frame[14:28, 14 * j : 14 * j + 14] = RED
        frames.append(frame)
    return frames


@pytest.fixture
def square_frames() -> list[np.ndarray]:
    return _square_frames()


@pytest.fixture
def square_video(tmp_path):
    path = tmp_path / "square.mp4"
    with VideoWriter(path, fps=10, crf=10) as writer:
        for frame in _square_frames():
            writer.write(frame)
    return path
