"""ONNX export of a matcher's dense feature network, and a matcher that runs it in onnxruntime.

The graph maps the normalised backbone input ``image`` (B, 3, Hi, Wi) to ``features`` (B, C, h, w)
(float32, LoRA merged). Resizing and normalisation stay outside the graph; the file's metadata carries
them (``geocorr.preprocess``: the backbone config as JSON) so :class:`OnnxMatcher` prepares images
exactly like the PyTorch model. Needs ``pip install geocorr[export]``.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from ..backbones import BackboneConfig, DinoV2Backbone
from ..methods.base import DenseMatcher

OPSET = 18
MAX_TOKENS = 256  # largest token-grid side of a dynamic-size export (3584 pixels)
_MAX_SINGLE_FILE = 1_800_000_000  # bytes of weights kept inside the .onnx file (protobuf limit 2 GB)


def require(*modules: str) -> None:
    """ImportError naming the extra to install if one of ``modules`` is missing."""
    for name in modules:
        try:
            import_module(name)
        except ImportError:
            raise ImportError(f"ONNX export needs the {name!r} package: pip install 'geocorr[export]'") from None


class _FeatureNetwork(nn.Module):
    """The part of a matcher that is exported: backbone input -> dense features."""

    def __init__(self, matcher: DenseMatcher):
        super().__init__()
        self.matcher = matcher

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.matcher._dense(image).float()


def export_onnx(model: DenseMatcher, path: str | Path, dynamic: bool = False, method: str = "") -> Path:
    """Write ``model``'s dense feature network to an ONNX file.

    model: a float32 DenseMatcher (GECO with its LoRA merged, DINOv2, …).
    dynamic: False: input height and width fixed to the backbone input size (``resize`` "stretch" or
        "pad"), batch free; True: any height and width that are multiples of the patch (not with
        ``debias_components``: its per-size SVD is computed once, at the fixed size, and stored).
    method: the method name, stored in the metadata.
    Returns the path written (weights above 1.8 GB go to ``<path>.data`` next to it).
    """
    require("onnx", "onnxscript", "onnxruntime")
    if not isinstance(model, DenseMatcher):
        raise TypeError(f"model: only dense-feature matchers can be exported, got {type(model).__name__}")
    if getattr(model, "merged", True) is False:
        raise ValueError("model: merge the LoRA into the weights before export (geocorr.load(..., merge=True))")
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(f"model: ONNX export is float32, the model is {sorted(map(str, dtypes))}; "
                         f"load it with dtype='float32' (half precision belongs to the runtime, e.g. TensorRT)")
    backbone = model.backbone
    if not dynamic and backbone.config.resize == "keep_aspect":
        raise ValueError("resize='keep_aspect' gives inputs of varying size: export with dynamic=True (--dynamic)")
    _, (height, width) = backbone.input_size((1, 1))  # the example's size: any image's for stretch / pad
    example = torch.zeros(2, 3, height, width, device=model.device)
    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes = {0: batch}
    if dynamic:
        shapes |= {2: backbone.patch * torch.export.Dim("tokens_h", min=1, max=MAX_TOKENS),
                   3: backbone.patch * torch.export.Dim("tokens_w", min=1, max=MAX_TOKENS)}
    if backbone.config.debias_components and dynamic:
        raise ValueError("debias_components: the positional basis is an SVD of each input size's blank-image "
                         "features, which ONNX cannot compute: export with a fixed input size (no --dynamic)")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    network = _FeatureNetwork(model).eval()
    with torch.no_grad():
        if backbone.config.debias_components:  # cache the basis of the fixed size: a constant of the graph
            network(example[:1])
        program = torch.onnx.export(network, (example,), input_names=["image"],
                                    output_names=["features"], dynamic_shapes={"image": shapes},
                                    opset_version=OPSET, dynamo=True, verbose=False)
    if program is None:  # only the legacy (dynamo=False) exporter returns nothing
        raise RuntimeError("torch.onnx.export returned no program")
    program.model.metadata_props.update({
        "geocorr.method": method,
        "geocorr.preprocess": json.dumps(asdict(backbone.config)),
        "geocorr.patch": str(backbone.patch),
        "geocorr.dim": str(backbone.dim),
        "geocorr.dynamic": str(bool(dynamic)),
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=size > _MAX_SINGLE_FILE)
    return path


class _Header(nn.Module):
    """Stands in for the transformers model: only its ``config`` (patch, width) is read."""

    def __init__(self, config: SimpleNamespace):
        super().__init__()
        self.config = config


class OnnxBackbone(DinoV2Backbone):
    """A DinoV2Backbone whose forward runs an exported feature network in onnxruntime.

    Preprocessing (``preprocess``, ``input_size``) is the PyTorch backbone's, configured from the file.
    """

    fixed_hw: tuple[int, int] | None

    def __init__(self, session, config: BackboneConfig, patch: int, dim: int):
        super().__init__(_Header(SimpleNamespace(patch_size=patch, hidden_size=dim, num_hidden_layers=0,
                                                 num_register_tokens=0)), config)
        self.session = session
        height, width = session.get_inputs()[0].shape[2:]
        self.fixed_hw = (height, width) if isinstance(height, int) and isinstance(width, int) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, Hi, Wi) normalised input -> (B, C, Hi/p, Wi/p) float32 features (on the CPU)."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % self.patch or x.shape[3] % self.patch:
            raise ValueError(f"backbone input: expected (B, 3, H, W) with H, W multiples of {self.patch}, "
                             f"got {tuple(x.shape)}")
        if self.fixed_hw is not None and tuple(x.shape[2:]) != self.fixed_hw:
            raise ValueError(f"this ONNX model takes {self.fixed_hw[0]}×{self.fixed_hw[1]} inputs only (exported "
                             f"with a fixed size), got {x.shape[2]}×{x.shape[3]}; export with --dynamic")
        image = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(["features"], {"image": image})[0])


class OnnxMatcher(DenseMatcher):
    """DenseMatcher on an exported ONNX feature network: same ``features``, ``match``, ``match_features``.

    path: a file written by :func:`export_onnx`.
    providers: onnxruntime execution providers, in order of preference.
    threads: onnxruntime's intra-op threads (None: its default, one per core).
    conf: options of :attr:`DenseMatcher.default_conf` (``compile`` does not apply).
    """

    backbone: OnnxBackbone

    def __init__(self, path: str | Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 threads: int | None = None, **conf):
        require("onnxruntime")
        import onnxruntime
        from onnxruntime.capi.onnxruntime_pybind11_state import (
            Fail,
            InvalidGraph,
            InvalidProtobuf,
        )

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model: no such file: {path}")
        if conf.get("compile") is not None:
            raise ValueError("compile: an ONNX model runs in onnxruntime; torch.compile does not apply")
        try:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads or 0
            session = onnxruntime.InferenceSession(str(path), options, providers=list(providers))
        except (Fail, InvalidGraph, InvalidProtobuf) as err:
            raise ValueError(f"ONNX model {path}: onnxruntime cannot load it ({str(err).splitlines()[0]})") from None
        meta = session.get_modelmeta().custom_metadata_map
        if "geocorr.preprocess" not in meta:
            raise ValueError(f"ONNX model {path}: no geocorr metadata; was it written by geocorr export?")
        preprocess = json.loads(meta["geocorr.preprocess"])
        preprocess = {k: tuple(v) if isinstance(v, list) else v for k, v in preprocess.items()}
        backbone = OnnxBackbone(session, BackboneConfig(**preprocess), int(meta["geocorr.patch"]),
                                int(meta["geocorr.dim"]))
        super().__init__(backbone, **conf)
        self.method = meta.get("geocorr.method", "")

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")
