"""Stable Diffusion decoder features for GeoAware's SD+DINOv2 fusion (optional: ``pip install geocorr[sd]``).

The original image is resized with LANCZOS (long side 960) and centred on a black 960² canvas
(:meth:`StableDiffusionFeatures.preprocess`), encoded by the VAE, noised to timestep 50 (seeded
noise) and passed through the UNet with a prompt embedding; the outputs of three decoder blocks
(before their up-sampling) are taken — for SD 1.5 at 960²: 640 ch at 60², 1280 at 30², 1280 at 15²
— and bilinearly resized to the DINOv2 grid. Published setting, read from Junyi42/GeoAware-SC @
99fd6b6 ``preprocess_map.py`` (``real_size`` 960 through ``utils/utils_correspondence.py`` ``resize``,
``num_timesteps=50``; ODISE's extractor, ``model_utils/extractor_sd.py``). One difference remains:
the released extractor conditions the UNet on ODISE's *implicit caption* (a learned map from CLIP
image features to prompt tokens, shipped only inside the ODISE checkpoint); geocorr conditions on
the text embedding of ``SDConfig.prompt`` (empty by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones.dinov2 import lanczos_resize

if TYPE_CHECKING:  # an optional dependency (the `sd` extra), imported when loading
    from diffusers import AutoencoderKL, UNet2DConditionModel

SD15_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class SDConfig:
    """How SD features are extracted; defaults are the published SD 1.5 setting."""

    image_size: int = 960  # square UNet input side in pixels (the VAE divides it by 8)
    levels: tuple[int, ...] = (2, 1, 0)  # decoder blocks taken, in post-processor order (s3, s4, s5)
    timestep: int = 50  # diffusion timestep of the noised latent (published: 50)
    seed: int = 0  # seed of the latent noise (features are deterministic)
    prompt: str = ""  # text condition (empty: unconditional)

    def __post_init__(self) -> None:
        if self.image_size < 8 or not self.levels or self.timestep < 0:
            raise ValueError(f"SDConfig: need image_size >= 8, at least one level and timestep >= 0, got {self}")


def _import_diffusers():
    try:
        import diffusers
    except ImportError:
        raise ImportError("Stable Diffusion features need diffusers: pip install 'geocorr[sd]'") from None
    return diffusers


class StableDiffusionFeatures(nn.Module):
    """Frozen SD feature extractor.

    vae: a diffusers ``AutoencoderKL``; unet: a ``UNet2DConditionModel``; scheduler: gives the
    noise schedule (``add_noise``); prompt_embedding: (1, L, D) text embedding (D = the UNet's
    cross-attention width).
    preprocess(image (3, H, W) in [0, 1]) -> its (3, S, S) canvas (S = ``config.image_size``);
    forward(canvases (B, 3, S, S) in [0, 1], grid_hw) -> list of (B, C_i, h, w), one per level.
    """

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    prompt_embedding: torch.Tensor  # buffer, (1, L, D)

    def __init__(self, vae: AutoencoderKL, unet: UNet2DConditionModel, scheduler, prompt_embedding: torch.Tensor,
                 config: SDConfig = SDConfig()):
        super().__init__()
        ups = [i for i, block in enumerate(unet.up_blocks) if block.upsamplers is not None]
        bad = [level for level in config.levels if level not in ups]
        if bad:
            raise ValueError(f"SD levels {bad} are not decoder blocks with an up-sampler; valid: {ups}")
        if prompt_embedding.ndim != 3 or prompt_embedding.shape[-1] != unet.config.cross_attention_dim:
            raise ValueError(f"prompt_embedding: expected (1, L, {unet.config.cross_attention_dim}), "
                             f"got {tuple(prompt_embedding.shape)}")
        self.vae, self.unet, self.scheduler, self.config = vae, unet, scheduler, config
        self.register_buffer("prompt_embedding", prompt_embedding, persistent=False)
        widths = list(reversed(unet.config.block_out_channels))
        self.channels = tuple(widths[level] for level in config.levels)
        self.requires_grad_(False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """The UNet input of one image: LANCZOS to a long side of ``image_size``, centred on black.

        image: (3, H, W) in [0, 1] -> (3, S, S) in [0, 1], on the extractor's device.
        """
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image: expected shape (3, H, W), got {tuple(image.shape)}")
        size, (h, w) = self.config.image_size, image.shape[1:]
        content = (max(1, round(h * size / max(h, w))), max(1, round(w * size / max(h, w))))
        resized = lanczos_resize(image, content).to(self.prompt_embedding.device)
        top, left = (size - content[0]) // 2, (size - content[1]) // 2
        return F.pad(resized, (left, size - content[1] - left, top, size - content[0] - top))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, grid_hw: tuple[int, int]) -> list[torch.Tensor]:
        size = self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise ValueError(f"SD input: expected (B, 3, {size}, {size}) canvases from preprocess(), "
                             f"got {tuple(x.shape)}")
        latents = self.vae.encode(x * 2 - 1).latent_dist.mean * self.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(self.config.seed))
        t = torch.full((len(x),), self.config.timestep, dtype=torch.long, device=x.device)
        noisy = self.scheduler.add_noise(latents, noise.to(latents), t)
        captured: dict[int, torch.Tensor] = {}
        hooks = [self.unet.up_blocks[level].upsamplers[0].register_forward_pre_hook(
            lambda module, args, level=level: captured.__setitem__(level, args[0]))
            for level in self.config.levels]
        try:
            self.unet(noisy, t, encoder_hidden_states=self.prompt_embedding.expand(len(x), -1, -1))
        finally:
            for hook in hooks:
                hook.remove()
        return [F.interpolate(captured[level].float(), size=tuple(grid_hw), mode="bilinear", align_corners=False)
                for level in self.config.levels]


def load_stable_diffusion(spec: str | Path = SD15_HUB_ID, config: SDConfig = SDConfig()) -> StableDiffusionFeatures:
    """SD feature extractor from a hub id or a local folder in diffusers layout (vae/, unet/,
    scheduler/, tokenizer/, text_encoder/)."""
    diffusers = _import_diffusers()
    from transformers import CLIPTextModel, CLIPTokenizer

    spec = str(spec)
    local = Path(spec).expanduser()
    if (local.exists() or spec.startswith((".", "/", "~"))) and not (local / "unet").is_dir():
        raise FileNotFoundError(f"sd: {local} is not a Stable Diffusion folder (expected unet/, vae/, ...)")
    try:
        vae = diffusers.AutoencoderKL.from_pretrained(spec, subfolder="vae")
        unet = diffusers.UNet2DConditionModel.from_pretrained(spec, subfolder="unet")
        scheduler = diffusers.DDPMScheduler.from_pretrained(spec, subfolder="scheduler")
        tokenizer = CLIPTokenizer.from_pretrained(spec, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(spec, subfolder="text_encoder")
    except OSError as err:
        raise FileNotFoundError(
            f"sd {spec!r}: not in the local HuggingFace cache and not downloadable ({type(err).__name__}); "
            f"download it (`hf download {spec} --local-dir DIR`) and pass sd='DIR'"
        ) from None
    tokens = tokenizer([config.prompt], padding="max_length", max_length=tokenizer.model_max_length,
                       return_tensors="pt")
    with torch.no_grad():
        prompt = text_encoder(tokens.input_ids).last_hidden_state
    return StableDiffusionFeatures(vae.eval(), unet.eval(), scheduler, prompt, config)
