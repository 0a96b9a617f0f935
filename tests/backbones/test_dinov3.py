"""DINOv3 ViT/16 backbones: patch 16, 4 registers + class token dropped, RoPE, de-biasing, GECO LoRA."""
import math

import pytest
import torch
from transformers import DINOv3ConvNextConfig

from geocorr.backbones import BackboneNotFoundError, build_backbone
from geocorr.backbones import dinov2 as backbone_module
from geocorr.backbones.debias import positional_basis, project_out
from geocorr.backbones.dinov3 import ARCHITECTURES, HUB_IDS, architecture_config, tiny_config
from geocorr.methods.geco import Geco
from geocorr.methods.geco.adapter import extract_lora, read_lora_file, save_lora_file


@pytest.mark.parametrize("resize,size,image_hw,input_hw,grid_hw", [
    ("stretch", 518, (90, 200), (512, 512), (32, 32)),  # 518 is rounded down to 32 tokens of 16
    ("stretch", 40, (90, 200), (32, 32), (2, 2)),
    ("keep_aspect", 100, (90, 200), (48, 96), (3, 6)),  # long side 96, short 43.2 -> 48
    ("pad", 100, (90, 200), (96, 96), (6, 6)),
])
def test_patch_16_geometry_on_non_square_images(resize, size, image_hw, input_hw, grid_hw):
    bb = build_backbone(tiny_config(), image_size=size, resize=resize)
    x, grid = bb.preprocess(torch.rand(3, *image_hw))
    assert bb.patch == 16 and grid.patch == 16
    assert tuple(x.shape[1:]) == input_hw == grid.input_hw and grid.grid_hw == grid_hw
    assert bb(x[None]).shape == (1, 32, *grid_hw)
    # token (j, i) is centred at input pixel 16 j + 7.5: the grid follows the patch, not 14
    centre = grid.grid_to_image(torch.tensor([[0.0, 0.0]]))
    expected = (torch.tensor([7.5, 7.5]) + 0.5) * torch.tensor(
        [image_hw[1] / grid.content_hw[1], image_hw[0] / grid.content_hw[0]]) - 0.5
    assert torch.allclose(centre[0], expected)


def test_class_and_register_tokens_are_dropped():
    bb = build_backbone(tiny_config(), image_size=64).eval()
    assert bb.num_prefix_tokens == 1 + 4
    x = torch.rand(1, 3, 48, 64)
    tokens = bb.model(pixel_values=x).last_hidden_state
    assert tokens.shape[1] == 5 + 3 * 4
    expected = tokens[:, 5:].transpose(1, 2).reshape(1, 32, 3, 4)
    assert torch.equal(bb(x), expected)


def test_intermediate_layer_and_final_norm_use_dinov3_names():
    bb = build_backbone(tiny_config(), image_size=64, layer=1, final_norm=True).eval()
    x = torch.rand(1, 3, 32, 32)
    hidden = bb.model(pixel_values=x, output_hidden_states=True).hidden_states[1]
    expected = bb.model.norm(hidden)[:, 5:].transpose(1, 2).reshape(1, 32, 2, 2)
    assert torch.allclose(bb(x), expected)


def test_rope_positions_stay_deterministic_in_train_mode():
    # transformers' DINOv3 rescales RoPE coordinates at random in train mode (pos_embed_rescale=2);
    # geocorr trains adapters on fixed positions.
    bb = build_backbone(tiny_config(), image_size=64).train()
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(bb(x), bb(x))


def test_released_architectures_and_hub_ids():
    config = architecture_config("vitb16")
    assert (config.hidden_size, config.num_hidden_layers, config.patch_size, config.num_register_tokens) == (
        768, 12, 16, 4)
    assert HUB_IDS["vitl16"] == "facebook/dinov3-vitl16-pretrain-lvd1689m"
    assert ARCHITECTURES["vith16plus"]["use_gated_mlp"] and not ARCHITECTURES["vitb16"].get("use_gated_mlp")
    assert backbone_module._random_config("dinov3-vits16").model_type == "dinov3_vit"
    with pytest.raises(ValueError, match="unknown DINOv3 architecture 'vitq16'"):
        build_backbone("random:dinov3-vitq16")


def test_convnext_and_other_models_are_refused():
    with pytest.raises(ValueError, match="ConvNeXt; geocorr matches ViT patch tokens"):
        build_backbone(DINOv3ConvNextConfig())


def test_gated_repository_says_how_to_get_access(monkeypatch):
    class GatedRepoError(OSError):
        pass

    def gated(*args, **kwargs):
        try:
            raise GatedRepoError("401 Client Error. Cannot access gated repo")
        except GatedRepoError as err:
            raise OSError("You are trying to access a gated repo.") from err

    monkeypatch.setattr(backbone_module.AutoConfig, "from_pretrained", gated)
    with pytest.raises(BackboneNotFoundError) as info:
        build_backbone("vitb16")
    message = str(info.value)
    assert "facebook/dinov3-vitb16-pretrain-lvd1689m" in message and "gated" in message
    assert "request access" in message and "DINOv3 License" in message


# --- positional de-biasing (INSID3) -------------------------------------------------------------

def test_positional_basis_and_projection_known_answer():
    # blank tokens (cos t, sin t, 0) with t = ±0.1: after centring they vary only along e1
    theta = torch.tensor([-0.1, 0.1, -0.1, 0.1])
    blank = torch.stack([theta.cos(), theta.sin(), torch.zeros(4)]).reshape(3, 2, 2)
    basis = positional_basis(blank, 1)
    assert torch.allclose(basis.abs()[:, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    f = torch.ones(1, 3, 1, 1)  # (1, 1, 1)/√3 after normalisation -> (1, 0, 1)/√2
    out = project_out(f, basis)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 0.0, 1.0]) / math.sqrt(2), atol=1e-6)


def test_positional_basis_refuses_removing_everything():
    with pytest.raises(ValueError, match=r"debias_components must lie in \[1, 2\]"):
        positional_basis(torch.rand(3, 2, 2), 3)


def test_debiased_backbone_removes_the_position_signal_of_a_blank_image():
    torch.manual_seed(0)
    plain = build_backbone(tiny_config(), image_size=64).eval()
    debiased = build_backbone(tiny_config(), image_size=64, debias_components=8).eval()
    debiased.model.load_state_dict(plain.model.state_dict())
    blank = ((torch.zeros(3, 1, 1) - plain.mean) / plain.std).expand(3, 64, 64)[None]

    def spread(features):  # mean distance of unit tokens from their mean: how much they vary by position
        unit = torch.nn.functional.normalize(features[0].flatten(1), dim=0)
        return (unit - unit.mean(1, keepdim=True)).norm(dim=0).mean().item()

    before, after = spread(plain(blank)), spread(debiased(blank))
    assert after < 0.5 * before
    out = debiased(torch.rand(2, 3, 64, 48))
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 4, 3), atol=1e-5)  # unit features
    basis = debiased._positional_bases[(4, 3, out.device)]  # the basis of this input size (4 × 3 tokens)
    assert torch.einsum("ck,bchw->bkhw", basis, out).abs().max() < 1e-5  # orthogonal to the basis


# --- GECO's LoRA on DINOv3 ----------------------------------------------------------------------

def test_geco_lora_targets_dinov3_query_and_value_only():
    bb = build_backbone(tiny_config(), image_size=32)
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    model = Geco(bb, rank=4)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.normal_()
    x = torch.rand(1, 3, 32, 32)
    model.eval()
    unmerged = model.backbone(x)
    model.merge()
    assert torch.allclose(model.backbone(x), unmerged, atol=1e-4)
    after = model.backbone.model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == [f"model.layer.{i}.attention.{p}.weight" for i in range(2) for p in ("q_proj", "v_proj")]


def test_released_geco_lora_is_refused_on_dinov3(shared_data):
    # same width and depth as DINOv2-B (768, 12 blocks): only the family tells them apart
    bb = build_backbone(tiny_config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                    intermediate_size=64), image_size=32)
    with pytest.raises(ValueError, match="LoRA for a DINOV2 backbone, but the backbone is DINOV3") as info:
        Geco(bb).load_adapter(shared_data / "geco-official" / "last_lora_weights.pth")
    assert "belongs to DINOv2-B/14" in str(info.value)


def test_dinov3_adapter_round_trip_and_refused_on_dinov2(tmp_path):
    from geocorr.backbones import tiny_config as dinov2_tiny

    model = Geco(build_backbone(tiny_config(), image_size=32), rank=4)
    path = tmp_path / "v3.safetensors"
    save_lora_file(extract_lora(model.backbone.model), path)
    assert read_lora_file(path).architecture == "dinov3"
    Geco(build_backbone(tiny_config(), image_size=32), rank=4).load_adapter(path)  # same family: fine
    with pytest.raises(ValueError, match="LoRA for a DINOV3 backbone, but the backbone is DINOV2"):
        Geco(build_backbone(dinov2_tiny(), image_size=28), rank=4).load_adapter(path)


def test_random_backbones_are_the_same_model_in_every_run():
    torch.manual_seed(1)
    first = build_backbone("random:dinov3-vits16").model.state_dict()
    torch.manual_seed(2)
    second = build_backbone("random:dinov3-vits16").model.state_dict()
    after_build = torch.rand(3)
    assert all(torch.equal(first[k], second[k]) for k in first)
    torch.manual_seed(2)
    assert torch.equal(after_build, torch.rand(3))  # the caller's random stream is left alone
