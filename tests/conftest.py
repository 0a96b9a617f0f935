"""Shared fixtures. Runs fully offline: the HuggingFace hub is never contacted from the tests."""
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path

import pytest
import torch

# tests/test_devices_paths.py runs every path on a fake second device (torch's PrivateUse1 backend).
# Autograd sizes its per-device worker queues at the first backward pass of the process, so the
# backend must exist before any test runs a backward pass: it is registered here, at start-up.
FAKE_DEVICE = "fakegpu"
if torch._C._get_privateuse1_backend_name() != FAKE_DEVICE:
    torch.utils.backend_registration._setup_privateuseone_for_python_backend(FAKE_DEVICE)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository (real PF-Willow, GECO weights, annotation samples)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder missing: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pf_willow_root(shared_data) -> Path:
    return shared_data / "PF-dataset-WILLOW"


@pytest.fixture(scope="session")
def copy_willow(pf_willow_root):
    """``copy_willow(root, *folders, images=3) -> root``: copies the first ``images`` real PF-Willow images
    of each folder, with their .mat annotations, into ``root`` (a small tree the test may change)."""

    def copy(root: Path, *folders: str, images: int = 3) -> Path:
        for name in folders:
            (root / name).mkdir(parents=True)
            for png in sorted((pf_willow_root / name).glob("*.png"))[:images]:
                shutil.copy(png, root / name / png.name)
                shutil.copy(png.with_suffix(".mat"), root / name / png.with_suffix(".mat").name)
        return root

    return copy


@pytest.fixture(scope="session")
def pretrained_vits14(shared_data) -> Path:
    """A real pretrained DINOv2 ViT-S/14 in transformers format (see its PROVENANCE.md)."""
    return shared_data / "dinov2-small-imgfocus"


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory) -> Path:
    """A tiny random DINOv2 (``tiny_config()``, seed 0) saved in transformers format: a user's
    ``--backbone DIR`` folder."""
    from transformers import AutoModel

    from geocorr.backbones import tiny_config

    folder = tmp_path_factory.mktemp("tiny-dinov2")
    torch.manual_seed(0)
    AutoModel.from_config(tiny_config()).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def count_features():
    """``count_features(dense) -> (wrapper, calls)``: a dense matcher that delegates to ``dense`` and
    appends the number of images of each ``features()`` call to ``calls``."""
    from geocorr.methods.base import DenseMatcherProtocol

    def wrap(dense):
        calls: list[int] = []

        class Counting(DenseMatcherProtocol):
            def features(self, images):
                calls.append(len(images))
                return dense.features(images)

            def match_features(self, *args):
                return dense.match_features(*args)

        return Counting(), calls

    return wrap


@pytest.fixture(scope="session")
def random_geco_lora():
    """``random_geco_lora(backbone, image_size, path) -> path``: writes a GECO LoRA for ``backbone`` with
    random non-zero factors (a fresh LoRA, B = 0, would not change the features)."""
    import geocorr

    def make(backbone, image_size: int, path: Path) -> Path:
        torch.manual_seed(1)
        model = geocorr.load("geco", backbone=backbone, weights=None, merge=False, image_size=image_size)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.3)
        model.save_adapter(path)
        return path

    return make


@pytest.fixture(scope="session")
def build_semalign3d_class(pf_willow_root):
    """``build_semalign3d_class(backbone_dir, folder, category, image_size) -> file``: a SemAlign3D class
    representation of a PF-Willow category, built by ``geocorr semalign3d build`` (4 images) from the
    backbone's features and a tiny random Depth Anything saved in ``folder``."""
    from geocorr.cli import main

    def build(backbone_dir, folder: Path, category: str, image_size: int) -> Path:
        from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

        backbone = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                    "intermediate_size": 64, "patch_size": 14, "image_size": 56, "out_indices": [1, 2, 3, 4],
                    "reshape_hidden_states": False}
        torch.manual_seed(0)
        DepthAnythingForDepthEstimation(DepthAnythingConfig(
            backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 8, 16, 16],
            fusion_hidden_size=16, head_hidden_size=8)).save_pretrained(folder / "depth")
        out = folder / "classes" / "car.safetensors"
        code = main(["semalign3d", "build", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--split",
                     "test", "--category", category, "--output", str(out), "--depth", str(folder / "depth"),
                     "--max-images", "4", "--sparse-steps", "20", "--clusters", "40", "--no-progress",
                     "--method", "dinov2", "--backbone", str(backbone_dir), "--image-size", str(image_size)])
        assert code == 0
        return out

    return build
