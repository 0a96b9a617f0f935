"""SD+DINOv2 fusion with a tiny random Stable Diffusion (VAE + UNet) — the optional ``sd`` extra."""
import numpy as np
import pytest
import torch

import geocorr
from geocorr.backbones import tiny_config
from geocorr.methods.geoaware import (
    SDConfig,
    StableDiffusionFeatures,
    load_stable_diffusion,
)
from geocorr.methods.geoaware.data import PairSample

diffusers = pytest.importorskip("diffusers")  # the optional extra: geocorr[sd]


@pytest.fixture(scope="module")
def tiny_sd():
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 32, 64, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, norm_num_groups=8, attention_head_dim=4)
    vae = diffusers.AutoencoderKL(block_out_channels=(16, 16), latent_channels=4, norm_num_groups=8,
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2)
    return StableDiffusionFeatures(vae.eval(), unet.eval(), diffusers.DDPMScheduler(), torch.zeros(1, 4, 16),
                                   SDConfig(image_size=64))


def test_published_sd_settings():
    assert (SDConfig().timestep, SDConfig().image_size) == (50, 960)  # preprocess_map.py: num_timesteps=50, 960


def test_sd_input_is_the_original_image_lanczos_centred_on_black(tiny_sd):
    from PIL import Image

    pixels = torch.randint(0, 256, (3, 30, 60), dtype=torch.uint8)
    canvas = tiny_sd.preprocess(pixels.float() / 255)
    # straight from the original to 64 px: 64 × round(64 · 30 / 60) = 32 rows, (64 − 32) // 2 = 16 on top
    expected = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize((64, 32), Image.Resampling.LANCZOS)
    torch.testing.assert_close(canvas[:, 16:48], torch.from_numpy(np.asarray(expected).copy()).permute(2, 0, 1) / 255)
    assert canvas[:, :16].abs().sum() == 0 and canvas[:, 48:].abs().sum() == 0
    with pytest.raises(ValueError, match="SD input"):
        tiny_sd(torch.rand(1, 3, 50, 70), (4, 4))


def test_sd_levels_channels_and_shapes(tiny_sd):
    assert tiny_sd.channels == (32, 64, 64)  # decoder blocks 2, 1, 0 = s3, s4, s5
    image = torch.rand(2, 3, 64, 64)
    feats = tiny_sd(image, (6, 7))
    assert [tuple(f.shape) for f in feats] == [(2, 32, 6, 7), (2, 64, 6, 7), (2, 64, 6, 7)]
    again = tiny_sd(image, (6, 7))
    assert all(torch.equal(a, b) for a, b in zip(feats, again, strict=True))  # seeded noise: deterministic
    other = tiny_sd(image.flip(-1), (6, 7))
    assert not torch.allclose(feats[0], other[0])


def test_sd_dino_fusion_zero_shot_and_supervised(tiny_sd):
    zero = geocorr.load("geoaware", backbone=tiny_config(), image_size=56, sd=tiny_sd)
    assert zero.source_channels == (32, 64, 64, 32)
    dense = zero.features(torch.rand(3, 40, 60)).dense
    assert dense.shape == (1, 192, 4, 4)
    torch.testing.assert_close(dense.square().sum(1), torch.ones(1, 4, 4))
    # the three SD levels are normalised jointly and weigh as much as DINOv2 (half each)
    torch.testing.assert_close(dense[:, :160].square().sum(1), torch.full((1, 4, 4), 0.5))
    torch.testing.assert_close(dense[:, 160:].square().sum(1), torch.full((1, 4, 4), 0.5))

    model = geocorr.load("geoaware", backbone=tiny_config(), image_size=56, sd=tiny_sd, zero_shot=False,
                         post_processor={"bottleneck_channels": 16, "out_channels": 32, "num_groups": 8}).train()
    assert model.post_processor.config.in_channels == (32, 64, 64, 32)
    kps = torch.tensor([[5.0, 6.0], [30.0, 20.0]])
    sample = PairSample(torch.rand(3, 40, 60), torch.rand(3, 40, 60), kps, kps, torch.ones(2, dtype=torch.bool),
                        torch.ones(2, dtype=torch.bool), 30.0, 30.0, flip=torch.tensor([1, 0]))
    model.training_step([sample])["loss"].backward()
    assert all(p.grad is not None for p in model.trainable_parameters())
    assert all(p.grad is None for p in tiny_sd.parameters())


def test_sd_errors(tiny_sd, tmp_path):
    with pytest.raises(ValueError, match="SD levels \\[3\\]"):
        StableDiffusionFeatures(tiny_sd.vae, tiny_sd.unet, tiny_sd.scheduler, torch.zeros(1, 4, 16),
                                SDConfig(levels=(3,)))
    with pytest.raises(ValueError, match="prompt_embedding"):
        StableDiffusionFeatures(tiny_sd.vae, tiny_sd.unet, tiny_sd.scheduler, torch.zeros(1, 4, 8))
    with pytest.raises(FileNotFoundError, match="not a Stable Diffusion folder"):
        load_stable_diffusion(tmp_path)
    with pytest.raises(ValueError, match="SDConfig"):
        SDConfig(levels=())
