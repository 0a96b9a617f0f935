"""Shared fixtures. Runs fully offline: the HuggingFace hub is never contacted from the tests."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path

import pytest
import torch

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
