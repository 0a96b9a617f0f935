import pytest
import torch

from geocorr.methods.geoaware.postprocessor import (
    Bottleneck,
    PostProcessor,
    PostProcessorConfig,
)


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def bottleneck_params(cin: int, b: int = 192, cout: int = 768) -> int:
    """Parameters of one published block, by hand from the layer shapes (no biases: GroupNorm follows)."""
    conv1, norm1 = cin * b, 2 * b  # 1×1 conv cin -> b, GroupNorm(b) weight + bias
    conv2, norm2 = 3 * 3 * b * b, 2 * b  # 3×3 conv b -> b
    conv3, norm3 = b * cout, 2 * cout  # 1×1 conv b -> cout
    shortcut = cin * cout + 2 * cout if cin != cout else 0  # projection only where the widths differ
    return conv1 + norm1 + conv2 + norm2 + conv3 + norm3 + shortcut


# The released AggregationNetwork (Junyi42/GeoAware-SC @ 99fd6b6, model_utils/projection_network.py)
# prints these counts: the blocks, one mixing weight per source, logit_scale and self_logit_scale.
PUBLISHED_DINO = 628_995
PUBLISHED_SD_DINO = 5_150_214


def test_published_counts_by_hand():
    # 768 -> 768 block: 147,456 + 384 + 331,776 + 384 + 147,456 + 1,536 = 628,992, identity shortcut
    assert bottleneck_params(768) == 147_456 + 384 + 331_776 + 384 + 147_456 + 1_536 == 628_992
    assert bottleneck_params(768) + 1 + 2 == PUBLISHED_DINO
    sd = bottleneck_params(640) + 2 * bottleneck_params(1280)
    assert sd == (122_880 + 491_520 + 1_536 + 479_232 + 2_304) + 2 * (245_760 + 983_040 + 1_536 + 479_232 + 2_304)
    assert sd + bottleneck_params(768) + 4 + 2 == PUBLISHED_SD_DINO


def test_published_width_sd_dino_parameter_count():
    model = PostProcessor(PostProcessorConfig(in_channels=(640, 1280, 1280, 768)))
    # ours = the released count without its unused self_logit_scale
    assert num_params(model) == PUBLISHED_SD_DINO - 1 == 5_150_213
    assert isinstance(model.blocks[3].shortcut, torch.nn.Identity)
    assert all(isinstance(model.blocks[i].shortcut, torch.nn.Sequential) for i in range(3))


def test_dino_only_parameter_count():
    assert num_params(PostProcessor()) == PUBLISHED_DINO - 1 == 628_994


def test_logit_scale_starts_at_one_over_0_07():
    torch.testing.assert_close(PostProcessor().logit_scale.exp(), torch.tensor(1 / 0.07))


def test_identity_shortcut_when_widths_agree():
    block = Bottleneck(8, 4, 8, 2)
    for p in block.body[-1].parameters():  # last GroupNorm: weight 0, bias 0 -> body outputs 0
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 8, 3, 3)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_convolutions_start_from_msra_fan_out():
    torch.manual_seed(0)
    block = Bottleneck(64, 192, 768, 32)
    conv = block.body[2][0]  # 3×3, 192 -> 192: fan_out = 192 · 9, std = sqrt(2 / fan_out) = 0.034
    assert abs(conv.weight.std().item() - (2 / (192 * 9)) ** 0.5) < 0.002


def test_output_shape_and_mixing_weights_start_equal():
    model = PostProcessor(PostProcessorConfig(in_channels=(8, 16), bottleneck_channels=4, out_channels=12,
                                              num_groups=2)).eval()
    feats = [torch.randn(2, 8, 5, 6), torch.randn(2, 16, 5, 6)]
    out = model(feats)
    assert out.shape == (2, 12, 5, 6)
    expected = 0.5 * model.blocks[0](feats[0]) + 0.5 * model.blocks[1](feats[1])
    torch.testing.assert_close(out, expected)


def test_bottleneck_is_relu_of_body_plus_projection():
    block = Bottleneck(8, 4, 6, 2)
    for p in block.body[-1].parameters():  # last GroupNorm: weight 0, bias 0 -> body outputs 0
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 8, 3, 3)
    torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))
    assert (block(x) >= 0).all()


def test_dropout_only_in_training():
    model = PostProcessor(PostProcessorConfig(in_channels=(8,), bottleneck_channels=4, out_channels=8,
                                              num_groups=2, dropout=0.5))
    x = [torch.randn(1, 8, 4, 4)]
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    assert not torch.allclose(model(x), model(x))


def test_gradients_reach_every_parameter():
    model = PostProcessor(PostProcessorConfig(in_channels=(8, 4), bottleneck_channels=4, out_channels=8,
                                              num_groups=2, dropout=0.0))
    model([torch.randn(2, 8, 4, 4), torch.randn(2, 4, 4, 4)]).square().sum().backward()
    # every parameter but the sparse loss's logit scale, which forward does not use
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n != "logit_scale")


@pytest.mark.parametrize("kwargs, match", [
    ({"in_channels": ()}, "in_channels"),
    ({"bottleneck_channels": 100}, "bottleneck_channels"),
    ({"out_channels": 0}, "out_channels"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PostProcessorConfig(**kwargs)


def test_bad_inputs():
    model = PostProcessor(PostProcessorConfig(in_channels=(8, 4), bottleneck_channels=4, out_channels=8,
                                              num_groups=2))
    with pytest.raises(ValueError, match="expected 2 feature maps"):
        model([torch.randn(1, 8, 4, 4)])
    with pytest.raises(ValueError, match="feature map 1"):
        model([torch.randn(1, 8, 4, 4), torch.randn(1, 4, 3, 4)])
