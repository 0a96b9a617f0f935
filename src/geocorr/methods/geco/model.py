"""GECO: frozen DINOv2 + LoRA adapter; inference is cosine similarity + argmax on adapted features."""
from __future__ import annotations

from pathlib import Path

from peft import PeftModel

from ... import weights
from ...backbones import DinoV2Backbone
from ..base import DenseMatcher
from .adapter import add_lora, assign_lora, extract_lora, read_lora_file, save_lora_file


def adapter_cache() -> Path:
    """Where named adapters are cached: ``$GEOCORR_HOME/adapters`` (see :mod:`geocorr.weights`)."""
    return weights.geocorr_home() / "adapters"


def resolve_adapter(adapter: str | Path) -> Path:
    """A released adapter's name (``"geco"``, see :data:`geocorr.weights.WEIGHTS`) or a file path -> a file.

    A name is fetched through the weights registry (cache, then the authors' URLs; sha256 checked);
    a path is used as given (your own adapters have no registered hash).
    """
    name = str(adapter)
    if name in weights.WEIGHTS:
        return weights.fetch(name)
    path = Path(adapter).expanduser()
    if not path.is_file():
        known = ", ".join(weights.WEIGHTS)
        raise FileNotFoundError(f"adapter: no such file: {path} (known names: {known})")
    return path


class Geco(DenseMatcher):
    """DINOv2 with GECO's LoRA on the query and value projections of every block.

    Training uses the unmerged adapter (:meth:`trainable_parameters`); for inference :meth:`merge`
    folds ``W + B A`` into the weights, so the adapter costs nothing.
    """

    def __init__(self, backbone: DinoV2Backbone, rank: int = 10, alpha: float | None = None, **conf):
        super().__init__(backbone, **conf)
        with weights.quiet_loading():  # peft's wrapping warns about a transformers deprecation
            self.backbone.model = add_lora(backbone.model, rank=rank, alpha=alpha)
        self.merged = False

    def trainable_parameters(self) -> list:
        """The LoRA factors (everything else is frozen)."""
        self._check_unmerged("train")
        return [p for p in self.parameters() if p.requires_grad]

    def load_adapter(self, path: str | Path) -> Geco:
        """Load LoRA factors from the released GECO ``.pth`` or a geocorr ``.safetensors``."""
        model = self._lora_model("load an adapter into")
        path = resolve_adapter(path)
        assign_lora(model, read_lora_file(path), source=f"adapter {path}")
        return self

    def save_adapter(self, path: str | Path) -> None:
        """Save the LoRA factors as ``.safetensors``."""
        save_lora_file(extract_lora(self._lora_model("save the adapter of")), path)

    def merge(self) -> Geco:
        """Fold the LoRA into the backbone weights (inference; irreversible)."""
        if not self.merged:
            self.backbone.model = self._lora_model("merge").merge_and_unload()
            self.merged = True
        return self

    def _check_unmerged(self, action: str) -> None:
        if self.merged:
            raise RuntimeError(f"cannot {action} a GECO model whose LoRA was merged; load it with merge=False")

    def _lora_model(self, action: str) -> PeftModel:
        """The backbone's peft-wrapped model (before :meth:`merge`)."""
        self._check_unmerged(action)
        model = self.backbone.model
        if not isinstance(model, PeftModel):  # only if someone replaced backbone.model by hand
            raise RuntimeError(f"cannot {action}: the backbone model is not the LoRA-wrapped one")
        return model
