"""The backbone catalog agrees with the architectures it names."""
import pytest
import torch
from transformers import AutoModel

from geocorr.backbones import dinov2, dinov3
from geocorr.backbones.catalog import BACKBONES


@pytest.mark.parametrize("name", ["vits14", "vitb14_reg", "vits16", "vits16plus", "vitb16"])
def test_parameter_counts_match_the_architecture(name):
    info = BACKBONES[name]
    config = (dinov3.architecture_config(name) if info.family == "DINOv3"
              else dinov2.architecture_config(name.removesuffix("_reg"), registers=name.endswith("_reg")))
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == info.params_m
    assert (config.patch_size, getattr(config, "num_register_tokens", 0)) == (info.patch, info.registers)


def test_every_family_and_licence_is_listed():
    families = {(b.family, b.patch) for b in BACKBONES.values()}
    assert families == {("DINOv2", 14), ("DINOv3", 16)}
    assert all("DINOv3 License" in b.licence for b in BACKBONES.values() if b.family == "DINOv3")
    assert BACKBONES["vitb16"].hub_id == "facebook/dinov3-vitb16-pretrain-lvd1689m"
