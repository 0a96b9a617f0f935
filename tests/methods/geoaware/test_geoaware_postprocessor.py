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
    convs = cin * b + 9 * b * b + b * cout + cin * cout
    norms = 2 * (b + b + cout + cout)
    return convs + norms


def test_published_width_sd_dino_has_about_5_7m_parameters():
    model = PostProcessor(PostProcessorConfig(in_channels=(640, 1280, 1280, 768)))
    expected = sum(bottleneck_params(c) for c in (640, 1280, 1280, 768)) + 4  # + mixing weights
    assert num_params(model) == expected
    assert 5.6e6 < expected < 5.8e6


def test_dino_only_default_counts_one_block():
    assert num_params(PostProcessor()) == bottleneck_params(768) + 1


def test_output_shape_and_mixing_weights_start_equal():
    model = PostProcessor(PostProcessorConfig(in_channels=(8, 16), bottleneck_channels=4, out_channels=12,
                                              num_groups=2)).eval()
    feats = [torch.randn(2, 8, 5, 6), torch.randn(2, 16, 5, 6)]
    out = model(feats)
    assert out.shape == (2, 12, 5, 6)
    expected = 0.5 * model.blocks[0](feats[0]) + 0.5 * model.blocks[1](feats[1])
    torch.testing.assert_close(out, expected)


def test_bottleneck_is_relu_of_body_plus_projection():
    block = Bottleneck(8, 4, 8, 2)
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
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_channels=()), "in_channels"),
    (dict(bottleneck_channels=100), "bottleneck_channels"),
    (dict(out_channels=0), "out_channels"),
    (dict(dropout=1.0), "dropout"),
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
