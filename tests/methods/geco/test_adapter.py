"""The released GECO LoRA lands on exactly the right block and projection."""
import pytest
import torch

import geocorr
from geocorr.backbones import build_backbone, tiny_config
from geocorr.methods.geco import Geco
from geocorr.methods.geco.adapter import projection_names, read_lora_file


def vitb_shaped_config(**kw):
    """DINOv2-B/14's width and depth (what the released LoRA fits), with a thin MLP for speed."""
    return tiny_config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, **kw)


@pytest.fixture(scope="module")
def official(shared_data):
    return shared_data / "geco-official" / "last_lora_weights.pth"


@pytest.fixture(scope="module")
def vitb_weights():
    return build_backbone(vitb_shaped_config(), image_size=28).model.state_dict()


def projection_weights(model, block):
    """Effective (merged) query and value weight matrices of one block of a plain DINOv2 model."""
    names = projection_names(model)
    attn = dict(model.encoder.layer[block].named_modules())

    def get(name):
        return next(m for k, m in attn.items() if k.rsplit(".", 1)[-1] == name).weight

    return get(names["q"]), get(names["v"])


def expected_weights(base_state, model, lora, block, mapping):
    """W + B@A for the query/value of ``block`` under an index mapping (block, proj) -> k."""
    names = projection_names(model)
    out = []
    for proj in ("q", "v"):
        key = next(k for k in base_state if f"layer.{block}." in k and k.endswith(f"{names[proj]}.weight"))
        k = mapping(block, proj)
        out.append(base_state[key] + lora[f"w_b_{k:03d}"] @ lora[f"w_a_{k:03d}"])
    return out


def published_mapping(block, proj):
    return 2 * block + (proj == "v")


def test_released_lora_lands_on_the_right_block_and_projection(official, vitb_weights):
    lora = {k: v.detach().float() for k, v in torch.load(official, weights_only=True).items()}
    assert len(lora) == 48
    bb = build_backbone(vitb_shaped_config(), image_size=28)
    bb.model.load_state_dict(vitb_weights)
    model = Geco(bb).load_adapter(official).merge()
    merged = model.backbone.model
    wrong_mappings = {
        "swapped q/v": lambda b, p: 2 * b + (p == "q"),
        "shifted block": lambda b, p: 2 * ((b + 1) % 12) + (p == "v"),
    }
    for block in range(12):
        q, v = projection_weights(merged, block)
        eq, ev = expected_weights(vitb_weights, merged, lora, block, published_mapping)
        assert torch.allclose(q, eq, atol=1e-6) and torch.allclose(v, ev, atol=1e-6), block
        for name, wrong in wrong_mappings.items():  # the check above would catch a wrong mapping
            wq, wv = expected_weights(vitb_weights, merged, lora, block, wrong)
            assert not (torch.allclose(q, wq, atol=1e-6) and torch.allclose(v, wv, atol=1e-6)), name
    # The key projection is untouched.
    for k, w in merged.state_dict().items():
        if "k_proj" in k or ".key." in k:
            assert torch.equal(w, vitb_weights[k])


def test_unmerged_adapter_equals_merged_and_scale_is_one(official, vitb_weights):
    bb = build_backbone(vitb_shaped_config(), image_size=28)
    bb.model.load_state_dict(vitb_weights)
    model = Geco(bb).load_adapter(official)
    x = torch.randn(1, 3, 28, 28)
    unmerged = model.backbone(x)
    merged = model.merge().backbone(x)
    assert torch.allclose(unmerged, merged, atol=1e-4)
    assert read_lora_file(official).alpha == read_lora_file(official).rank == 10


def test_fresh_lora_is_identity_and_only_lora_trains():
    bb = build_backbone(tiny_config(), image_size=28)
    x = torch.randn(1, 3, 28, 28)
    before = bb(x)
    model = Geco(bb, rank=4)
    assert torch.allclose(model.backbone(x), before)
    params = model.trainable_parameters()
    assert len(params) == 2 * 2 * 2  # 2 blocks × (q, v) × (A, B)
    assert all(p.ndim == 2 and 4 in p.shape for p in params)


def test_safetensors_round_trip(tmp_path):
    a = Geco(build_backbone(tiny_config(), image_size=28), rank=3)
    with torch.no_grad():
        for p in a.trainable_parameters():
            p.normal_()
    a.save_adapter(tmp_path / "lora.safetensors")
    b = Geco(build_backbone(tiny_config(), image_size=28), rank=3)
    b.backbone.model.get_base_model().load_state_dict(a.backbone.model.get_base_model().state_dict(), strict=False)
    b.load_adapter(tmp_path / "lora.safetensors")
    x = torch.randn(1, 3, 28, 28)
    assert torch.allclose(a.backbone(x), b.backbone(x))


def test_wrong_model_size_or_file_is_refused(official, tmp_path):
    small = Geco(build_backbone(tiny_config(hidden_size=48, num_hidden_layers=12), image_size=28))
    with pytest.raises(ValueError, match="another model size"):
        small.load_adapter(official)
    torch.save({"w_a_000": torch.zeros(10, 768)}, tmp_path / "half.pth")
    with pytest.raises(ValueError, match=r"half\.pth"):
        read_lora_file(tmp_path / "half.pth")
    torch.save({"w_a_000": torch.zeros(10, 768), "w_b_000": torch.zeros(768, 9),
                "w_a_001": torch.zeros(10, 768), "w_b_001": torch.zeros(768, 10)}, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"w_b_000 \(768, 9\)"):
        read_lora_file(tmp_path / "shape.pth")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a GECO LoRA file"):
        read_lora_file(tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_lora_file(tmp_path / "missing.pth")


def test_named_adapter_missing_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOCORR_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"last_lora_weights\.pth.*--adapter FILE"):
        geocorr.load("geco", backbone=tiny_config(), image_size=28)


def test_named_adapter_resolves_from_cache(tmp_path, monkeypatch, official):
    monkeypatch.setenv("GEOCORR_HOME", str(tmp_path))
    target = tmp_path / "adapters" / "geco" / "last_lora_weights.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(official.read_bytes())
    model = geocorr.load("geco", backbone=vitb_shaped_config(), image_size=28)
    assert model.merged
