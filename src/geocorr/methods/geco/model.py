"""GECO: frozen DINOv2 + LoRA adapter; inference is cosine similarity + argmax on adapted features."""
from __future__ import annotations

import os
from pathlib import Path

from ...backbones import DinoV2Backbone
from ..base import DenseMatcher
from .adapter import add_lora, assign_lora, extract_lora, read_lora_file, save_lora_file

RELEASED_ADAPTERS = {"geco": "geco/last_lora_weights.pth"}  # name -> path under the adapter cache


def adapter_cache() -> Path:
    """Where named adapters are looked up: ``$GEOCORR_HOME/adapters`` (default ``~/.cache/geocorr``)."""
    return Path(os.environ.get("GEOCORR_HOME", Path.home() / ".cache" / "geocorr")) / "adapters"


def resolve_adapter(adapter: str | Path) -> Path:
    """A released adapter's name (``"geco"``) or a file path -> an existing file."""
    if str(adapter) in RELEASED_ADAPTERS:
        path = adapter_cache() / RELEASED_ADAPTERS[str(adapter)]
        if not path.is_file():
            raise FileNotFoundError(
                f"adapter {adapter!r}: the released GECO LoRA weights are not at {path}. Download "
                f"last_lora_weights.pth from GECO's release (github.com/reginehartwig/geco) and put it "
                f"there (or set GEOCORR_HOME), or pass its path: --adapter FILE / adapter='FILE'."
            )
        return path
    path = Path(adapter).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"adapter: no such file: {path} (known names: {', '.join(RELEASED_ADAPTERS)})")
    return path


class Geco(DenseMatcher):
    """DINOv2 with GECO's LoRA on the query and value projections of every block.

    Training uses the unmerged adapter (:meth:`trainable_parameters`); for inference :meth:`merge`
    folds ``W + B A`` into the weights, so the adapter costs nothing.
    """

    def __init__(self, backbone: DinoV2Backbone, rank: int = 10, alpha: float | None = None, **conf):
        super().__init__(backbone, **conf)
        self.backbone.model = add_lora(backbone.model, rank=rank, alpha=alpha)
        self.merged = False

    def trainable_parameters(self) -> list:
        """The LoRA factors (everything else is frozen)."""
        self._check_unmerged("train")
        return [p for p in self.parameters() if p.requires_grad]

    def load_adapter(self, path: str | Path) -> "Geco":
        """Load LoRA factors from the released GECO ``.pth`` or a geocorr ``.safetensors``."""
        self._check_unmerged("load an adapter into")
        path = resolve_adapter(path)
        assign_lora(self.backbone.model, read_lora_file(path), source=f"adapter {path}")
        return self

    def save_adapter(self, path: str | Path) -> None:
        """Save the LoRA factors as ``.safetensors``."""
        self._check_unmerged("save the adapter of")
        save_lora_file(extract_lora(self.backbone.model), path)

    def merge(self) -> "Geco":
        """Fold the LoRA into the backbone weights (inference; irreversible)."""
        if not self.merged:
            self.backbone.model = self.backbone.model.merge_and_unload()
            self.merged = True
        return self

    def _check_unmerged(self, action: str) -> None:
        if self.merged:
            raise RuntimeError(f"cannot {action} a GECO model whose LoRA was merged; load it with merge=False")
