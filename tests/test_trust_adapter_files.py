"""Issue 17/19: what is not a LoRA file is refused in one plain line naming the file, never unpickled."""
import pytest
import torch

from geocorr.methods.geco.adapter import read_lora_file
from geocorr.training import TrainConfig, Trainer


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def trainable_parameters(self):
        return list(self.parameters())

    def training_step(self, batch):
        return {"loss": self.linear(batch).pow(2).mean()}


def _files(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    Trainer(_Tiny(), torch.randn(4, 2), TrainConfig(max_steps=1), tmp_path / "run", progress=False).fit()
    files = {
        "training checkpoint": (next((tmp_path / "run").glob("checkpoint-*.safetensors")), "is a training checkpoint"),
        "legacy checkpoint": (tmp_path / "checkpoint.pt", "is a training checkpoint"),
        "pickle": (tmp_path / "lora.pth", "holds pickled objects other than tensors"),
        "empty pth": (tmp_path / "empty.pth", "is empty \\(0 bytes\\)"),
        "empty safetensors": (tmp_path / "empty.safetensors", "is empty \\(0 bytes\\)"),
        "short safetensors": (tmp_path / "short.safetensors", "is truncated \\(3 bytes\\)"),
        "text": (tmp_path / "notes.pth", "is not a torch file \\(starts with 'hello world'\\)"),
    }
    torch.save({"rng": Payload()}, files["legacy checkpoint"][0])
    torch.save({"w_a_000": Payload()}, files["pickle"][0])
    files["empty pth"][0].write_bytes(b"")
    files["empty safetensors"][0].write_bytes(b"")
    files["short safetensors"][0].write_bytes(b"abc")
    files["text"][0].write_text("hello world")
    return files, marker


def test_non_lora_files_are_one_plain_line(tmp_path):
    files, marker = _files(tmp_path)
    for name, (path, message) in files.items():
        with pytest.raises(ValueError, match=message) as info:
            read_lora_file(path)
        text = str(info.value)
        assert text.startswith(f"adapter: {path} "), name
        assert "\n" not in text and "\x1b" not in text, name
    assert not marker.exists()
