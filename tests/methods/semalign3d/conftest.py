"""The synthetic 3D world shared by the SemAlign3D tests: one class, training views, a representation."""
import pytest
import torch

from geocorr.methods.semalign3d.dense import DenseConfig, TrainingView
from geocorr.methods.semalign3d.focal import FocalConfig
from geocorr.methods.semalign3d.representation import BuildConfig, build_representation
from geocorr.methods.semalign3d.sparse import SparseConfig

from .world import SyntheticWorld

# Small but complete settings: the published ones take minutes per class.
FAST_BUILD = BuildConfig(focal=FocalConfig(steps=200), sparse=SparseConfig(steps=300, lr=1e-2),
                         dense=DenseConfig(points_per_image=300, clusters=150, feature_neighbours=16))


def tiny_depth_config(hidden: int = 32):
    """A tiny random Depth Anything config (4 blocks, one per neck stage)."""
    from transformers import DepthAnythingConfig

    backbone = {"model_type": "dinov2", "hidden_size": hidden, "num_hidden_layers": 4, "num_attention_heads": 2,
                "intermediate_size": 2 * hidden, "patch_size": 14, "image_size": 56,
                "out_indices": [1, 2, 3, 4], "reshape_hidden_states": False}
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=hidden,
                               neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16, head_hidden_size=8)


def random_views(world: SyntheticWorld, count: int, generator: torch.Generator):
    """Views of fresh instances from random azimuths, elevations 5-40° and focal lengths 0.6-2
    (normalised by the longer side: half fields of view 14-40°)."""
    views = []
    for _ in range(count):
        points, scale = world.instance(generator)
        azimuth = torch.rand(1, generator=generator).item() * 360
        elevation = 5 + torch.rand(1, generator=generator).item() * 35
        focal = 0.6 + torch.rand(1, generator=generator).item() * 1.4
        views.append(world.render(points, scale, azimuth, elevation, focal))
    return views


def training_view(view, exact_depth: bool = True) -> TrainingView:
    return TrainingView(view.features, view.grid, view.depth, view.mask, view.keypoints, view.visible,
                        keypoint_depth=view.world[:, 2] if exact_depth else None)


@pytest.fixture(autouse=True, scope="package")
def _single_thread():
    """Thousands of tiny optimisation steps: threads only add overhead (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def world() -> SyntheticWorld:
    return SyntheticWorld(seed=0)


@pytest.fixture(scope="package")
def train_views(world):
    return random_views(world, 12, torch.Generator().manual_seed(1))


@pytest.fixture(scope="package")
def representation(train_views, _single_thread):
    return build_representation([training_view(v) for v in train_views], "synthetic",
                                keypoint_names=[f"kp{i}" for i in range(8)], conf=FAST_BUILD)
