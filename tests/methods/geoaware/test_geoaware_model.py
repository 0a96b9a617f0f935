import pytest
import torch

import geocorr
from geocorr.backbones import tiny_config
from geocorr.methods.geoaware import GeoAware, load_post_processor, save_post_processor
from geocorr.methods.geoaware.data import PairSample

TINY_HEAD = {"bottleneck_channels": 16, "out_channels": 32, "num_groups": 8}


def tiny(**kwargs):
    return geocorr.load("geoaware", backbone=tiny_config(), image_size=112, **kwargs)


def texture(h=112, w=112, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, h // 8, w // 8, generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2)


def test_zero_shot_is_the_default_without_weights():
    model = tiny()
    assert isinstance(model, GeoAware) and model.post_processor is None
    assert model.conf["window"] == 11 and model.conf["inference"] == "window_soft_argmax"
    feats = model.features(texture())
    assert feats.dense.shape == (1, 32, 8, 8)
    torch.testing.assert_close(feats.dense.norm(dim=1), torch.ones(1, 8, 8))  # one normalised source
    with pytest.raises(ValueError, match="nothing to train"):
        model.trainable_parameters()


def test_supervised_model_has_a_fresh_post_processor_and_the_published_window():
    model = tiny(zero_shot=False, post_processor=TINY_HEAD)
    assert model.conf["window"] == 15
    assert model.features(texture()).dense.shape == (1, 32, 8, 8)
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in model.post_processor.parameters()}
    assert not any(p.requires_grad for p in model.backbone.parameters())


@pytest.mark.parametrize("inference", ["window_soft_argmax", "soft_argmax", "argmax"])
def test_identical_images_match_each_point_to_itself(inference):
    model = tiny(inference=inference, temperature=0.005, window=3)
    img = texture()
    points = torch.tensor([[20.5, 34.5], [48.5, 90.5], [90.5, 20.5]])  # token centres, off the border
    out = model.match(img, img, points)
    assert out.points.shape == (3, 2) and out.scores.shape == (3,)
    torch.testing.assert_close(out.scores, torch.ones(3), atol=5e-3, rtol=0)  # argmax: up-sampled features
    assert (out.points - points).norm(dim=1).max() < 3.0  # within a fraction of a 14-px token


def test_window_limits_the_soft_argmax():
    model = tiny(temperature=10.0, window=1)  # a 1-token window: the argmax token's centre
    img = texture()
    points = torch.tensor([[34.5, 62.5]])
    torch.testing.assert_close(model.match(img, img, points).points, points)
    soft = tiny(temperature=10.0, inference="soft_argmax")  # near-uniform softmax: the image centre
    torch.testing.assert_close(soft.match(img, img, points).points, torch.tensor([[55.5, 55.5]]), atol=1.0, rtol=0)


def test_training_step_backpropagates_only_into_the_post_processor():
    model = tiny(zero_shot=False, post_processor=TINY_HEAD).train()
    kps = torch.tensor([[10.0, 20.0], [80.0, 30.0], [float("nan"), float("nan")]])
    sample = PairSample(texture(seed=1), texture(90, 120, seed=2), kps, kps * 0.8,
                        torch.tensor([True, True, False]), torch.tensor([True, False, True]), 70.0, 56.0,
                        flip=torch.tensor([1, 0, 2]))  # the pose-variant losses (published weights) need it
    out = model.training_step([sample, sample])
    assert set(out) == {"loss", "loss_dense", "loss_sparse"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.trainable_parameters())
    assert all(p.grad is None for p in model.backbone.parameters())
    assert not model.backbone.training and model.post_processor.training


def test_export_and_load_round_trip(tmp_path):
    torch.manual_seed(1)  # the same random backbone for both models
    model = tiny(zero_shot=False, post_processor=TINY_HEAD)
    with torch.no_grad():
        model.post_processor.mixing_logits.fill_(0.3)
    path = model.save_weights(tmp_path)
    torch.manual_seed(1)
    loaded = tiny(weights=path)
    assert loaded.post_processor is not None and loaded.conf["window"] == 15
    img = texture()
    torch.testing.assert_close(loaded.features(img).dense, model.features(img).dense)


def test_bad_options_and_files(tmp_path):
    with pytest.raises(ValueError, match="inference"):
        tiny(inference="nearest")
    with pytest.raises(ValueError, match="window"):
        tiny(window=4)
    with pytest.raises(ValueError, match="unknown option"):
        tiny(windw=5)
    with pytest.raises(ValueError, match="unknown post_processor option"):
        tiny(zero_shot=False, post_processor={"width": 3})
    with pytest.raises(ValueError, match="zero_shot=True"):
        tiny(zero_shot=True, post_processor=TINY_HEAD)
    with pytest.raises(FileNotFoundError, match="no such file"):
        tiny(weights=tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a tensor file")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_post_processor(bad)
    other = tiny(zero_shot=False, post_processor={"bottleneck_channels": 16, "out_channels": 16, "num_groups": 8})
    save_post_processor(other.post_processor, tmp_path / "pp.safetensors")
    wrong_backbone = tiny_config(hidden_size=48, num_attention_heads=2)
    with pytest.raises(ValueError, match="post-processor expects sources"):
        geocorr.load("geoaware", backbone=wrong_backbone, image_size=112, weights=tmp_path / "pp.safetensors")
