"""Bad device input ends in one clear line (CLI exit 2): unknown names, missing or absent GPUs, a dtype
the GPU cannot run, GPU memory exhausted. GPUs are simulated by patching ``torch.cuda``'s queries."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import geocorr
from geocorr.backbones import tiny_config
from geocorr.cli import main as cli
from geocorr.devices import DeviceMemoryError, resolve_device


def _gpus(monkeypatch, count: int, bf16: bool = True) -> None:
    """Pretend this machine has ``count`` CUDA GPUs (cuda:0 current), with or without native bfloat16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-16GB")


def test_resolve_device_accepts_what_the_machine_has(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    _gpus(monkeypatch, 2)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)


@pytest.mark.parametrize("name, gpus, message", [
    ("gpu", 1, "device 'gpu' is not a device name: use cpu, cuda, cuda:N"),
    ("cuda:7", 1, "device 'cuda:7': this machine has 1 CUDA GPU (cuda:0)"),
    ("cuda:2", 2, "device 'cuda:2': this machine has 2 CUDA GPUs (cuda:0, cuda:1)"),
    ("cuda", 0, "device 'cuda': no CUDA GPU is available on this machine"),
    ("cuda:0", 0, "device 'cuda:0': no CUDA GPU is available on this machine"),
    ("meta", 0, "device 'meta' holds no data"),
    ("xpu", 0, "device 'xpu': xpu is not available on this machine (available: cpu)"),
])
def test_resolve_device_refuses_in_one_line(monkeypatch, name, gpus, message):
    _gpus(monkeypatch, gpus)
    with pytest.raises(ValueError) as err:
        resolve_device(name)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.fixture
def pair(tmp_path) -> list[str]:
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(paths[-1])
    return paths


@pytest.mark.parametrize("device, gpus, message", [
    ("gpu", 1, "error: device 'gpu' is not a device name"),
    ("cuda:7", 1, "error: device 'cuda:7': this machine has 1 CUDA GPU (cuda:0)"),
    ("cuda", 0, "error: device 'cuda': no CUDA GPU is available on this machine"),
])
def test_cli_bad_device_is_one_line_and_exit_2(monkeypatch, capsys, pair, tiny_backbone_dir, device, gpus, message):
    _gpus(monkeypatch, gpus)
    rc = cli(["match", *pair, "--point", "3,3", "--method", "dinov2", "--backbone", str(tiny_backbone_dir),
              "--device", device])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_dtype_the_gpu_cannot_run(monkeypatch, capsys, pair, tiny_backbone_dir):
    _gpus(monkeypatch, 1, bf16=False)  # a V100: no native bfloat16
    rc = cli(["match", *pair, "--point", "3,3", "--method", "dinov2", "--backbone", str(tiny_backbone_dir),
              "--device", "cuda", "--dtype", "bfloat16"])
    err = capsys.readouterr().err
    assert rc == 2 and "bfloat16 is not supported natively by Tesla V100-SXM2-16GB" in err
    assert len(err.strip().splitlines()) == 1


def test_out_of_gpu_memory_is_one_line_and_exit_2(monkeypatch, capsys, pair, tiny_backbone_dir):
    from geocorr.backbones import DinoV2Backbone

    def exhausted(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 96.00 GiB (GPU 0; 79.10 GiB total "
                                     "capacity; 1.2 GiB already allocated)")

    monkeypatch.setattr(DinoV2Backbone, "forward", exhausted)
    rc = cli(["match", *pair, "--point", "3,3", "--method", "dinov2", "--backbone", str(tiny_backbone_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and ("\n" + err).count("\ngeocorr match: error:") == 1, err
    assert "out of memory on cpu computing features of 1 image(s) at 518×518 px" in err
    model = geocorr.load("dinov2", backbone=tiny_config(), image_size=56)
    with pytest.raises(DeviceMemoryError, match="use a smaller --image-size"):
        model.features(np.zeros((30, 30, 3), np.uint8))


@pytest.mark.parametrize("extra, message", [
    (["--device", "gpu"], "error: device 'gpu' is not a device name"),
    (["--device", "cuda:3"], "error: device 'cuda:3': this machine has 1 CUDA GPU (cuda:0)"),
    (["--dtype", "float16"], "error: --dtype float16: training runs in float32 or bfloat16"),
    (["--dtype", "bfloat16", "--mixed-precision", "no"], "error: --dtype bfloat16 contradicts --mixed-precision no"),
    (["--device", "cuda", "--dtype", "bfloat16"], "bfloat16 is not supported natively by Tesla V100"),
])
def test_cli_train_device_and_dtype_errors(monkeypatch, capsys, tmp_path, pf_willow_root, tiny_backbone_dir, extra,
                                           message):
    _gpus(monkeypatch, 1, bf16=False)
    monkeypatch.delenv("ACCELERATE_TORCH_DEVICE", raising=False)
    rc = cli(["train", "--method", "geco", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--backbone",
              str(tiny_backbone_dir), "--out", str(tmp_path / "run"), "--max-steps", "1", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
