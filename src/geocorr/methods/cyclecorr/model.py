"""The cycle-consistency matcher behind ``geocorr.load("cyclecorr")``: keypoints through predicted flow.

Each image is cropped to its object box (the whole image by default) and resized to 128×128, the
network predicts ``F_{0,1}`` and ``M_{0,1}`` on the crops, and a query point moves by the flow
bilinearly read at its position; its score is the matchability there.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from ...images import ImageLike, load_image
from ..base import Matches, PairContext, check_points
from .crop import Crop
from .flow import sample_at
from .network import CycleCorrNet, NetworkConfig

__all__ = ["CycleCorr", "read_weights"]


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], dict | None]:
    """Read a checkpoint -> (state dict, network configuration or None).

    ``.safetensors`` files written by training carry the network configuration in their
    metadata; torch ``.pt``/``.pth`` files hold a plain state dict of the network.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(path, "pt") as handle:
                metadata = handle.metadata() or {}
                state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
            network = json.loads(metadata["network"]) if "network" in metadata else None
        except Exception as err:  # safetensors / json raise several types for a corrupt file
            raise ValueError(f"{path}: not a readable cyclecorr weights file ({type(err).__name__})") from None
        return state, network
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds (UnpicklingError with a long text) for other files
        raise ValueError(f"{path}: not a cyclecorr weights file (holds pickled objects other than tensors, or is "
                         f"corrupt; it is not unpickled) ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state, None


class CycleCorr(nn.Module):
    """Flow + matchability network wrapped as a point matcher.

    default_conf:
        weights: checkpoint of the network (None = random initialisation, for training).
        network: :class:`NetworkConfig` or a dict of its fields (the paper's layers, 128×128 input);
            when not given, the configuration stored in a ``.safetensors`` checkpoint is used.
    """

    default_conf: ClassVar[dict] = {"weights": None, "network": NetworkConfig()}

    def __init__(self, **conf):
        super().__init__()
        unknown = set(conf) - set(self.default_conf)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(self.default_conf)}")
        self.conf = {**self.default_conf, **conf}
        state, stored = read_weights(self.conf["weights"]) if self.conf["weights"] is not None else (None, None)
        network = conf.get("network", stored if stored is not None else self.default_conf["network"])
        if isinstance(network, dict):
            network = NetworkConfig(image_size=network["image_size"], encoder=tuple(map(tuple, network["encoder"])),
                                    decoder=tuple(map(tuple, network["decoder"])))
        self.conf["network"] = network
        self.net = CycleCorrNet(network)
        if state is not None:
            missing = sorted(set(self.net.state_dict()) - set(state))
            unexpected = sorted(set(state) - set(self.net.state_dict()))
            if missing or unexpected:
                raise ValueError(f"{self.conf['weights']}: not weights of this cyclecorr network ({len(missing)} "
                                 f"tensors missing, {len(unexpected)} unexpected, e.g. {(missing + unexpected)[0]!r})")
            try:
                self.net.load_state_dict(state, strict=True)
            except RuntimeError as err:  # shape mismatch: another network configuration
                raise ValueError(f"{self.conf['weights']}: tensor shapes differ from this cyclecorr network "
                                 f"(another network configuration?): {str(err).splitlines()[-1].strip()}") from None

    @property
    def image_size(self) -> int:
        return self.net.config.image_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def crop(self, image: Tensor, box=None) -> tuple[Tensor, Crop]:
        """Cut ``box`` (x0, y0, x1, y1; None = whole image) of a 3×H×W image -> (3×S×S, Crop)."""
        crop = Crop.from_box(box, (image.shape[-2], image.shape[-1]), self.image_size)
        return crop.apply(image), crop

    @torch.inference_mode()
    def predict(self, crop0: Tensor, crop1: Tensor) -> tuple[Tensor, Tensor]:
        """Flow and matchability from crop0 to crop1 (each 3×S×S) -> (2×S×S, 1×S×S)."""
        flow, matchability = self.net(crop0[None].to(self.device), crop1[None].to(self.device))
        return flow[0], matchability[0]

    def transfer(self, crop0: Tensor, crop1: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """Move crop0's points (N, 2, crop pixels) into crop1 -> (points (N, 2) clamped into crop1, scores (N,))."""
        flow, matchability = self.predict(crop0, crop1)
        where = points.to(flow.device).T.reshape(1, 2, -1, 1)
        moved = points.to(flow.device) + sample_at(flow[None], where)[0, :, :, 0].T
        scores = sample_at(matchability[None], where)[0, 0, :, 0]
        return moved.clamp(-0.5, self.image_size - 0.5).cpu(), scores.cpu()

    def match(self, img0: ImageLike, img1: ImageLike, points, context: PairContext | None = None) -> Matches:
        """Where do ``points`` (N, 2) of img0, in (x, y) pixels, go in img1? -> Matches.

        context.boxes: the object boxes (x0, y0, x1, y1) of img0 and img1 to crop, as the paper
        evaluates; without them each whole image is used.
        scores are the predicted matchability at each query point.
        """
        box0, box1 = context.boxes if context is not None and context.boxes is not None else (None, None)
        image0, image1 = load_image(img0, "img0"), load_image(img1, "img1")
        pts = check_points(points, (image0.shape[-2], image0.shape[-1]))
        pixels0, crop0 = self.crop(image0, box0)
        pixels1, crop1 = self.crop(image1, box1)
        moved, scores = self.transfer(pixels0, pixels1, crop0.to_crop(pts))
        return Matches(crop1.from_crop(moved), scores)
