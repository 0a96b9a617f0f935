"""Registry of the methods ``geocorr.load`` knows: one :class:`MethodEntry` per method.

An entry holds what the faces need to know about a method without building it (like timm's
pretrained configs): its options (a dataclass with one help line per option, whose defaults are
the method's published setting), whether it is *dense* (reusable ``features`` +
``match_features``, see :mod:`geocorr.methods.base`), which :class:`PairContext` fields it reads
(``needs``) and whether its feature network can be exported to ONNX. ``--option``, ``--help`` and
option validation of every command come from here.

Names: ``weights`` is the one word for a method's trained part in every method (GECO: the LoRA
adapter, GeoAware: the post-processor, cyclecorr: the flow network, SemAlign3D: the class
representation file or folder); the factories' own parameter names are mapped here.

This module imports neither torch nor a method: the factory is imported when a model is built.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from importlib import import_module
from typing import Any

__all__ = ["METHODS", "MethodEntry", "load", "option_help"]


def option(default: Any, help: str) -> Any:
    """A dataclass field with a help line (mutable defaults are copied per instance)."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def required(help: str) -> Any:
    """A dataclass field the user must give."""
    return field(metadata={"help": help})


# ---------------------------------------------------------------- options of each method
# Defaults equal the factories' defaults (tests/methods/test_registry.py checks it).

@dataclass
class DenseOptions:
    """Options of every :class:`~geocorr.methods.base.DenseMatcher` (``DenseMatcher.default_conf``)."""

    device: str = option("cpu", "torch device")
    upsample: str = option("features", "features: argmax over bilinearly up-sampled features (published); "
                                       "none: over tokens (faster, video)")
    batch_size: int = option(8, "images per backbone forward")
    compile: str | None = option(None, "torch.compile of the feature network: a mode (reduce-overhead = inductor + "
                                       "CUDA graphs, the fast path on a GPU; max-autotune) or a backend (inductor, "
                                       "aot_eager); null: eager")
    query: str = option("bilinear", "bilinear: the query feature is sampled bilinearly at the point; token: the "
                                    "feature of the cell containing it (official codes)")
    prediction: str = option("centre", "centre: a match is the best cell's centre; corner: its top-left corner "
                                       "floored onto the pixel grid (GECO)")


@dataclass
class BackboneOptions(DenseOptions):
    backbone: str = option("facebook/dinov2-base", "backbone: hub id (DINOv2 facebook/dinov2-*, DINOv3 "
                           "facebook/dinov3-*-pretrain-lvd1689m), short name (vitb14, vitb16, ... see geocorr "
                           "weights), "
                           "local transformers folder, or random:<short name>")
    image_size: int = option(518, "backbone input side in pixels")
    resize: str = option("stretch", "stretch | pad | keep_aspect: how an image becomes the backbone input")
    dtype: str = option("float32", "compute dtype: float32 | bfloat16 | float16")
    debias_components: int = option(0, "INSID3 positional de-biasing: remove this many positional directions from "
                                       "the features (0: off; see geocorr.backbones.debias)")


@dataclass
class Dinov2Options(BackboneOptions):
    """Zero-shot DINOv2 (GECO's resolution and layer)."""


@dataclass
class GecoOptions(BackboneOptions):
    weights: str | None = option("geco", "LoRA adapter: a released name (geco), a .pth/.safetensors file, "
                                         "or null for a fresh LoRA")
    merge: bool = option(True, "fold the LoRA into the weights (inference); false to train")
    rank: int = option(10, "LoRA rank")
    alpha: float | None = option(None, "LoRA scale numerator (null: the rank, i.e. scale 1)")


@dataclass
class GeoAwareOptions(BackboneOptions):
    image_size: int = option(840, "backbone input side in pixels (published 840: a 60×60 grid)")
    resize: str = option("pad", "stretch | pad | keep_aspect: how an image becomes the backbone input")
    weights: str | None = option(None, "trained post-processor (.safetensors); null: zero-shot")
    zero_shot: bool | None = option(None, "no post-processor (null: true without weights)")
    post_processor: dict | None = option(None, "widths of a fresh post-processor (PostProcessorConfig fields)")
    sd: str | None = option(None, "add Stable Diffusion features: hub id or diffusers folder (needs geocorr[sd])")
    sd_image_size: int = option(960, "Stable Diffusion input side (published 960)")
    layer: int = option(-1, "backbone block whose tokens are the features (-1: last; published: block 11 of ViT-B/14)")
    final_norm: bool = option(False, "apply the backbone's final LayerNorm (published: no)")
    resample: str = option("lanczos", "bilinear | lanczos: image resize filter (published: PIL LANCZOS)")
    pad_position: str = option("centre", "corner | centre: where the image sits on the square canvas "
                                         "(published: centre)")
    pad_colour: str = option("black", "mean | black: canvas colour (published: black)")
    inference: str = option("window_soft_argmax", "window_soft_argmax | soft_argmax | argmax")
    window: int | None = option(None, "soft-argmax window side in tokens (null: 15 supervised, 11 zero-shot)")
    temperature: float = option(0.02, "softmax temperature over cosine similarities")
    noise: float = option(0.05, "training: ground-truth noise, a fraction of the PCK length")
    dense_weight: float = option(1.0, "training: weight of L_dense")
    sparse_weight: float = option(1.0, "training: weight of L_sparse")
    single_flip: float = option(0.0, "training: loss weight of the single-flip pose variant (released: off)")
    double_flip: float = option(1.0, "training: loss weight of the double-flip pose variant")
    self_flip: float = option(0.25, "training: loss weight of the self-flip pose variant")
    pose_align: bool = option(False, "adaptive pose alignment (the paper's † rows): needs the pair's category, "
                                     "keypoint ids, target visibility (+ masks) and flips")
    flips: dict | None = option(None, "pose_align: category -> left/right keypoint permutation "
                                      "(geocorr eval fills it from the dataset)")
    imd_size: int = option(64, "pose_align: IMD grid side (published 64)")


@dataclass
class SemAlign3DOptions:
    weights: str = required("class representation: a file written by `geocorr semalign3d build`, or a "
                            "folder of them (one per category)")
    features: str = option("geoaware", "the geocorr method whose features built the representation")
    backbone: str | None = option(None, "backbone of the feature method (null: its default)")
    image_size: int | None = option(None, "input side of the feature method (null: its default)")
    dtype: str | None = option(None, "compute dtype of the feature method (null: its default)")
    features_conf: dict | None = option(None, "other options of the feature method, e.g. {\"weights\": FILE}")
    depth: str | None = option("depth-anything/Depth-Anything-V2-Large-hf",
                               "Depth Anything V2 hub id or folder, or null: no z-order check")
    depth_dir: str | None = option(None, "folder of depth maps <image stem>.npy/.png used instead of the depth "
                                         "model (images given as files)")
    mask_dir: str | None = option(None, "folder of object masks <image stem>.png (default: context.masks, "
                                        "else the attention mask)")
    device: str = option("cpu", "torch device")
    category: str | None = option(None, "hyper-parameter preset (null: the representation's category)")
    align: dict = option({}, "alignment overrides (AlignConfig fields), e.g. {\"steps\": 200}")
    mask_threshold: float = option(0.5, "attention mask: best class-point semantic likelihood above this")
    seed: int = option(0, "seed of the initial guesses and pixel samples")
    cache_size: int = option(64, "alignments kept per image content")
    batch_size: int = option(4, "images aligned together (one optimisation)")
    progress: bool | None = option(None, "progress bars (null: only on a terminal)")


@dataclass
class CycleCorrOptions:
    weights: str | None = option(None, "trained network (.safetensors/.pt); null: random, for training")
    network: dict | None = option(None, "NetworkConfig fields (null: stored in the weights, else the paper's)")
    device: str = option("cpu", "torch device")


# ---------------------------------------------------------------- factories (import lazily)

def _kwargs(o: Any, rename: Mapping[str, str] | None = None, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options as the factory's keyword arguments (``rename``: option -> parameter name)."""
    rename = rename or {}
    return {rename.get(f.name, f.name): getattr(o, f.name) for f in fields(o) if f.name not in skip}


def _build_dinov2(o: Dinov2Options):
    return import_module("geocorr.methods.dinov2").load(**_kwargs(o))


def _build_geco(o: GecoOptions):
    return import_module("geocorr.methods.geco").load(**_kwargs(o, {"weights": "adapter"}))


def _build_geoaware(o: GeoAwareOptions):
    # window None: the method's default (15 supervised, 11 zero-shot)
    skip = () if o.window is not None else ("window",)
    return import_module("geocorr.methods.geoaware").load(**_kwargs(o, skip=skip))


def _build_semalign3d(o: SemAlign3DOptions):
    given = {"backbone": o.backbone, "image_size": o.image_size, "dtype": o.dtype}
    features_conf = {**{k: v for k, v in given.items() if v is not None}, **(o.features_conf or {})}
    return import_module("geocorr.methods.semalign3d").load(
        **_kwargs(o, {"weights": "representation"}, skip=("backbone", "image_size", "dtype", "features_conf")),
        features_conf=features_conf)


def _build_cyclecorr(o: CycleCorrOptions):
    skip = () if o.network is not None else ("network",)  # None: stored in the weights, else the paper's
    return import_module("geocorr.methods.cyclecorr").load(**_kwargs(o, skip=skip))


# ---------------------------------------------------------------- the registry

@dataclass(frozen=True)
class MethodEntry:
    """What the faces know about a method before building it.

    name: the registry key. summary: one line for ``--help``.
    options: dataclass of the method's options (one ``help`` line each; defaults = published setting).
    build: options instance -> model (imports the method's package only when called).
    dense: the model is a :class:`~geocorr.methods.base.DenseMatcher` (``features``/``match_features``).
    needs: :class:`~geocorr.methods.base.PairContext` fields the model reads.
    exportable: its dense feature network can be written as ONNX (``geocorr export``).
    aliases: older option names still accepted -> their option (``adapter`` -> ``weights``).
    """

    name: str
    summary: str
    options: type
    build: Any
    dense: bool
    needs: frozenset[str] = frozenset()
    exportable: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict)

    def parse_options(self, conf: Mapping[str, Any]) -> Any:
        """The options dataclass from ``conf``: ValueError naming unknown or missing options."""
        known = {f.name: f for f in fields(self.options)}
        for old, new in self.aliases.items():
            if old in conf:
                if new in conf:
                    raise ValueError(f"options {old!r} and {new!r} name the same thing; give {new!r} only")
                conf = {**{k: v for k, v in conf.items() if k != old}, new: conf[old]}
        unknown = sorted(set(conf) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for method {self.name}; valid: {', '.join(sorted(known))}")
        missing = [n for n, f in known.items() if f.default is MISSING and f.default_factory is MISSING
                   and n not in conf]
        if missing:
            raise ValueError(f"method {self.name} needs option(s) {missing}: {'; '.join(option_help(self, missing))}")
        return self.options(**conf)

    def load(self, **conf: Any):
        """Build the model with options ``conf`` (unset ones keep their defaults)."""
        from ..devices import resolve_device

        options = self.parse_options(conf)
        options.device = str(resolve_device(options.device))  # one clear error for a device that is not there
        return self.build(options)


METHODS: dict[str, MethodEntry] = {
    "dinov2": MethodEntry("dinov2", "zero-shot DINOv2 features, cosine similarity + argmax", Dinov2Options,
                          _build_dinov2, dense=True, exportable=True),
    "geco": MethodEntry("geco", "GECO: DINOv2 + LoRA (ICCV 2025)", GecoOptions, _build_geco, dense=True,
                        exportable=True, aliases={"adapter": "weights"}),
    "geoaware": MethodEntry("geoaware", "GeoAware, 'Telling Left from Right' (CVPR 2024)", GeoAwareOptions,
                            _build_geoaware, dense=True, exportable=True,
                            # read only with pose_align
                            needs=frozenset({"category", "keypoint_ids", "target_keypoints", "target_visible",
                                             "masks"})),
    "semalign3d": MethodEntry("semalign3d", "SemAlign3D: 3D class representations aligned to images (CVPR 2025)",
                              SemAlign3DOptions, _build_semalign3d, dense=False,
                              needs=frozenset({"category", "masks"}), aliases={"representation": "weights"}),
    "cyclecorr": MethodEntry("cyclecorr", "3D-guided cycle consistency: flow on object-box crops (CVPR 2016)",
                             CycleCorrOptions, _build_cyclecorr, dense=False, needs=frozenset({"boxes"})),
}


def get(name: str) -> MethodEntry:
    """The registry entry of ``name``; ValueError listing the methods otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def load(name: str, **conf: Any):
    """Build the method ``name`` (see :data:`METHODS`) with options ``conf`` (see its entry's ``options``)."""
    return get(name).load(**conf)


def option_help(entry: MethodEntry, names: list[str] | None = None) -> list[str]:
    """'name (default): help' for each of the options ``names`` (default all) of ``entry``."""
    lines = []
    for f in fields(entry.options):
        if names is None or f.name in names:
            if f.default is not MISSING:
                default = json.dumps(f.default)
            elif f.default_factory is not MISSING:
                default = json.dumps(f.default_factory())
            else:
                default = "required"
            lines.append(f"{f.name} ({default}): {f.metadata['help']}")
    return lines
