"""For LEAD (issue 19 items 1, 4, 5), once backbones/dinov2.py uses weights.hub_local_only / quiet_loading
and separates folder errors: goes to tests/backbones/ (LEAD) or tests/test_weights.py (NEWCOMER)."""
import os
import shutil
import subprocess
import sys

import pytest

from geocorr.cli import main


@pytest.fixture
def pair(pf_willow_root):
    folder = pf_willow_root / "car(G)"
    return [str(folder / "Cars_006a.png"), str(folder / "Cars_007a.png"), "--point", "50,50", "--method", "dinov2",
            "--image-size", "56"]


def test_corrupt_config_json_is_named(pair, pretrained_vits14, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "dinov2", ')
    assert main(["match", *pair, "--backbone", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "config.json cannot be read" in err and "HuggingFace cache" not in err and "hf download" not in err


def test_truncated_safetensors_is_one_line(pair, pretrained_vits14, tmp_path, capsys):
    folder = tmp_path / "trunc"
    folder.mkdir()
    shutil.copy(pretrained_vits14 / "config.json", folder)
    data = (pretrained_vits14 / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])
    assert main(["match", *pair, "--backbone", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "damaged or incomplete" in err


def test_no_network_without_hf_hub_offline_fails_fast():
    # No HF_HUB_OFFLINE: the hub must be probed once (1 s timeout), not retried for 23-34 s.
    code = ("import time, geocorr, geocorr.methods.dinov2\nt = time.perf_counter()\n"
            "try:\n    geocorr.load('dinov2', backbone='facebook/dinov2-giant-not-cached')\n"
            "except OSError as e:\n    print('ERR', time.perf_counter() - t)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "GEOCORR_OFFLINE")}
    env["HF_ENDPOINT"] = "https://geocorr-unreachable.invalid"  # no network, whatever the machine has
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env,
                         check=False)
    print(out.stdout)
    assert "ERR" in out.stdout, out.stderr[-2000:]
    assert float(out.stdout.split()[1]) < 5.0


def test_model_load_prints_no_progress_bar(pretrained_vits14, capfd):
    import geocorr

    geocorr.load("dinov2", backbone=str(pretrained_vits14), image_size=56)
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "is_gradient_checkpointing" not in err
