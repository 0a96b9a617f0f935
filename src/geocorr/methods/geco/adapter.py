"""GECO's LoRA adapter: rank-10 LoRA (through ``peft``) on the query and value projections of every
block of a DINOv2 (or DINOv3) ViT, scale 1 (``lora_alpha = r``), and the files that hold it.

Two file formats are read:

* the released GECO checkpoint ``last_lora_weights.pth``: tensors ``w_a_{k:03d}`` = A (r × C) and
  ``w_b_{k:03d}`` = B (C × r); k = 2·block → query, k = 2·block + 1 → value;
* geocorr's own ``.safetensors``: tensors ``block{i}.{q|v}.lora_A`` / ``.lora_B`` with metadata
  (rank, alpha, width, blocks, architecture).

A LoRA belongs to one backbone family: the released file to DINOv2-B/14 (GECO trains on
``dinov2_vitb14``); a file of ours records the family (``architecture``: ``dinov2`` or ``dinov3``;
files written before that field existed are DINOv2). Loading it into the other family is refused
even where the sizes agree (DINOv2-B and DINOv3-B both have 12 blocks of width 768).

An adapted projection computes ``W x + (alpha / r) · B (A x)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import PreTrainedModel

from ...backbones.dinov2 import transformer_blocks
from ...files import read_safetensors, safetensors_bytes, write_atomic

PROJECTIONS = ("q", "v")
_PROJECTION_NAMES = {"q": ("q_proj", "query"), "v": ("v_proj", "value")}
_OFFICIAL_KEY = re.compile(r"w_([ab])_(\d{3})")


@dataclass
class LoraWeights:
    """LoRA factors per (block, projection): A (r, C), B (C, r); output scale alpha / r."""

    rank: int
    alpha: float
    width: int
    num_blocks: int
    factors: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]
    architecture: str = "dinov2"  # backbone family the LoRA was trained on: dinov2 | dinov3


def architecture_family(model: PreTrainedModel) -> str:
    """``dinov2`` or ``dinov3``: the family of a transformers DINO ViT (registers or not)."""
    return "dinov3" if model.config.model_type.startswith("dinov3") else "dinov2"


def projection_names(model: nn.Module) -> dict[str, str]:
    """The attribute names of the query/value projections in this transformers DINOv2 version."""
    names = {name.rsplit(".", 1)[-1] for name, _ in transformer_blocks(model)[0].named_modules()}
    found = {}
    for proj, candidates in _PROJECTION_NAMES.items():
        match = [c for c in candidates if c in names]
        if not match:
            raise ValueError(f"cannot find the {proj} projection in the ViT block (looked for {candidates})")
        found[proj] = match[0]
    return found


def add_lora(model: nn.Module, rank: int = 10, alpha: float | None = None) -> PeftModel:
    """Wrap a transformers DINOv2 model with LoRA on every block's query and value projections.

    A is initialised kaiming-uniform(a=√5), B with zeros (peft's default), so the adapted model starts
    identical to the backbone. Only the LoRA factors are trainable.
    """
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    names = projection_names(model)
    # peft's annotation says int, but it scales by lora_alpha / r at run time: a float alpha is fine
    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank,  # type: ignore[arg-type]
                        lora_dropout=0.0, bias="none", target_modules=[names["q"], names["v"]])
    return get_peft_model(model, config)


def _base_model(peft_model: PeftModel) -> PreTrainedModel:
    return cast(PreTrainedModel, peft_model.get_base_model())


def lora_layers(peft_model: PeftModel) -> dict[tuple[int, str], LoraLayer]:
    """(block, "q"|"v") -> the peft LoRA layer of that projection."""
    base = _base_model(peft_model)
    names = projection_names(base)
    layers = {}
    for i, block in enumerate(transformer_blocks(base)):
        modules = dict(block.named_modules())
        for proj in PROJECTIONS:
            [layer] = [m for n, m in modules.items() if n.rsplit(".", 1)[-1] == names[proj]]
            if not isinstance(layer, LoraLayer):
                raise TypeError(f"block {i} {names[proj]} is a {type(layer).__name__}, not a peft LoRA layer: "
                                f"the model was not made by add_lora")
            layers[(i, proj)] = layer
    return layers


def _factor_maps(layer: LoraLayer) -> tuple[nn.Linear, nn.Linear]:
    """The A and B maps of a LoRA layer's (only) adapter."""
    return cast(nn.Linear, layer.lora_A["default"]), cast(nn.Linear, layer.lora_B["default"])


def read_lora_file(path: str | Path) -> LoraWeights:
    """Read a LoRA file (the released GECO ``.pth`` or geocorr's ``.safetensors``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter: no such file: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if path.suffix in (".pth", ".pt"):
        return _read_official(path)
    raise ValueError(f"adapter: {path} is neither a .safetensors nor a GECO .pth file")


_TRAINING_CHECKPOINT = ("is a training checkpoint, not an adapter: use adapter.safetensors from the run folder "
                        "(written at the end of training)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(err: Exception) -> str:
    """The first line of an error's text without terminal colour codes (torch's carry some)."""
    text = _ANSI.sub("", str(err)).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _check_not_empty(path: Path, minimum: int) -> int:
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"adapter: {path} is empty (0 bytes)")
    if size < minimum:
        raise ValueError(f"adapter: {path} is truncated ({size} bytes)")
    return size


def _read_official(path: Path) -> LoraWeights:
    _check_not_empty(path, 1)
    with open(path, "rb") as f:
        head = f.read(16)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # a torch file is a zip, or a legacy pickle
        raise ValueError(f"adapter: {path} is not a torch file (starts with {head.decode('latin-1')!r})")
    if path.name.startswith("checkpoint"):
        raise ValueError(f"adapter: {path} {_TRAINING_CHECKPOINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: nothing is executed
    except Exception as err:
        if "weights only load failed" in str(err).lower():
            raise ValueError(f"adapter: {path} holds pickled objects other than tensors (not a GECO LoRA file); "
                             f"it is not unpickled") from None
        raise ValueError(f"adapter: {path} is not a readable torch file ({_first_line(err)})") from None
    if not isinstance(state, dict) or not state or not all(_OFFICIAL_KEY.fullmatch(str(k)) for k in state):
        keys = list(state)[:5] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"adapter: {path} is not a GECO LoRA file (expected keys w_a_000, w_b_000, …; got {keys})")
    count = len(state) // 2
    expected = {f"w_{ab}_{k:03d}" for ab in "ab" for k in range(count)}
    if len(state) % 2 or count % 2 or set(state) != expected:
        raise ValueError(f"adapter: {path} has keys {sorted(set(state) ^ expected)[:6]} that break the "
                         f"w_a_/w_b_ pairs 000…{count - 1:03d}")
    a0 = state["w_a_000"]
    rank, width = a0.shape
    factors = {}
    for k in range(count):
        a, b = state[f"w_a_{k:03d}"].detach().float(), state[f"w_b_{k:03d}"].detach().float()
        if a.shape != (rank, width) or b.shape != (width, rank):
            raise ValueError(f"adapter: {path}: w_a_{k:03d} {tuple(a.shape)} / w_b_{k:03d} {tuple(b.shape)} "
                             f"do not match A ({rank}, {width}) / B ({width}, {rank})")
        factors[(k // 2, PROJECTIONS[k % 2])] = (a, b)
    # GECO's released LoRA has scale 1: output = W x + B (A x), i.e. alpha = rank.
    return LoraWeights(rank=rank, alpha=float(rank), width=width, num_blocks=count // 2, factors=factors)


def _read_safetensors(path: Path) -> LoraWeights:
    size = _check_not_empty(path, 8)
    try:
        tensors, meta = read_safetensors(path)
    except Exception as err:
        raise ValueError(f"adapter: {path} is not a readable safetensors file ({size} bytes; "
                         f"{_first_line(err)})") from None
    if meta.get("format") == "geocorr-checkpoint":
        raise ValueError(f"adapter: {path} {_TRAINING_CHECKPOINT}")
    if meta.get("format") != "geocorr-lora":
        raise ValueError(f"adapter: {path} is not a geocorr LoRA file (metadata format={meta.get('format')!r})")
    rank, width, blocks = int(meta["rank"]), int(meta["width"]), int(meta["num_blocks"])
    factors = {}
    for i in range(blocks):
        for proj in PROJECTIONS:
            key = f"block{i}.{proj}"
            if f"{key}.lora_A" not in tensors or f"{key}.lora_B" not in tensors:
                raise ValueError(f"adapter: {path} lacks {key}.lora_A/lora_B")
            factors[(i, proj)] = (tensors[f"{key}.lora_A"].float(), tensors[f"{key}.lora_B"].float())
    return LoraWeights(rank=rank, alpha=float(meta["alpha"]), width=width, num_blocks=blocks, factors=factors,
                       architecture=meta.get("architecture", "dinov2"))


def assign_lora(peft_model: PeftModel, weights: LoraWeights, source: str = "adapter") -> None:
    """Copy LoRA factors into a model made by :func:`add_lora`; checks sizes, rank and scale."""
    base = _base_model(peft_model)
    width, blocks = int(base.config.hidden_size), len(transformer_blocks(base))
    family = architecture_family(base)
    if weights.architecture != family:
        raise ValueError(
            f"{source} is a LoRA for a {weights.architecture.upper()} backbone, but the backbone is "
            f"{family.upper()} ({base.config.model_type}, patch {base.config.patch_size}): "
            + ("the released GECO LoRA belongs to DINOv2-B/14; train a LoRA for this backbone "
               "(geocorr train --method geco) or use --backbone facebook/dinov2-base"
               if weights.architecture == "dinov2" else "use a DINOv3 backbone of the same size")
        )
    if (weights.width, weights.num_blocks) != (width, blocks):
        raise ValueError(
            f"{source} holds LoRA for {weights.num_blocks} blocks of width {weights.width}, but the backbone "
            f"has {blocks} blocks of width {width}: it belongs to another model size"
        )
    for key, layer in lora_layers(peft_model).items():
        lora_a, lora_b = _factor_maps(layer)
        if lora_a.weight.shape[0] != weights.rank:
            raise ValueError(f"{source} has LoRA rank {weights.rank}, the model was built with rank "
                             f"{lora_a.weight.shape[0]}")
        if abs(layer.scaling["default"] - weights.alpha / weights.rank) > 1e-12:
            raise ValueError(f"{source} has LoRA scale {weights.alpha / weights.rank}, the model "
                             f"{layer.scaling['default']}")
        a, b = weights.factors[key]
        with torch.no_grad():
            lora_a.weight.copy_(a)
            lora_b.weight.copy_(b)


def extract_lora(peft_model: PeftModel) -> LoraWeights:
    """The current LoRA factors of a model made by :func:`add_lora`."""
    layers = lora_layers(peft_model)
    some = next(iter(layers.values()))
    rank = _factor_maps(some)[0].weight.shape[0]
    factors = {key: (_factor_maps(layer)[0].weight.detach().cpu().float().clone(),
                     _factor_maps(layer)[1].weight.detach().cpu().float().clone())
               for key, layer in layers.items()}
    base = _base_model(peft_model)
    return LoraWeights(rank=rank, alpha=float(some.scaling["default"] * rank),
                       width=int(base.config.hidden_size), num_blocks=len(transformer_blocks(base)), factors=factors,
                       architecture=architecture_family(base))


def save_lora_file(weights: LoraWeights, path: str | Path) -> None:
    """Write LoRA factors as geocorr ``.safetensors``: atomically (temp file, fsync, rename), byte-for-byte
    deterministic (a hash identifies the weights); disk full gives an ``OSError`` naming ``path``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"adapter files are saved as .safetensors, got {path}")
    tensors = {}
    for (i, proj), (a, b) in weights.factors.items():
        tensors[f"block{i}.{proj}.lora_A"] = a.contiguous()
        tensors[f"block{i}.{proj}.lora_B"] = b.contiguous()
    meta = {"format": "geocorr-lora", "rank": str(weights.rank), "alpha": str(weights.alpha),
            "width": str(weights.width), "num_blocks": str(weights.num_blocks),
            "architecture": weights.architecture}
    write_atomic(path, safetensors_bytes(tensors, meta), "adapter")  # same weights -> same bytes
