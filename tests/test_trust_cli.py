"""Issue 17 items 6-9 through ``geocorr train``: seeded construction, run fingerprint, disk full,
deterministic adapter files."""
import errno
import os

import pytest
import torch

import geocorr.files
from geocorr.cli import main
from geocorr.methods.geco.adapter import LoraWeights, save_lora_file


@pytest.fixture
def base(pf_willow_root):
    return ["train", "--dataset", "pf-willow", "--root", str(pf_willow_root), "--image-size", "56",
            "--batch-size", "2", "--per-category", "2", "--checkpoint-every", "2", "--no-progress",
            "--backbone", "random:vits14"]


def test_seed_covers_construction_and_a_resumed_random_backbone(base, tmp_path, capsys):
    """Same seed -> byte-identical adapters; a run stopped at step 2 and resumed (same random
    backbone rebuilt) ends byte-identical to a straight run."""
    assert main(base + ["--out", str(tmp_path / "a"), "--max-steps", "4", "--seed", "3"]) == 0
    assert main(base + ["--out", str(tmp_path / "b"), "--max-steps", "4", "--seed", "3"]) == 0
    adapter = (tmp_path / "a" / "adapter.safetensors").read_bytes()
    assert (tmp_path / "b" / "adapter.safetensors").read_bytes() == adapter
    assert main(base + ["--out", str(tmp_path / "c"), "--max-steps", "2", "--seed", "3"]) == 0
    torch.manual_seed(123)  # whatever the global RNG holds, the rebuilt backbone is the run's
    assert main(base + ["--out", str(tmp_path / "c"), "--max-steps", "4", "--seed", "3", "--resume"]) == 0
    assert "extending the run from 2 to 4 steps" in capsys.readouterr().err
    assert (tmp_path / "c" / "adapter.safetensors").read_bytes() == adapter
    assert main(base + ["--out", str(tmp_path / "d"), "--max-steps", "4", "--seed", "4"]) == 0
    assert (tmp_path / "d" / "adapter.safetensors").read_bytes() != adapter


def test_resume_refuses_other_data_or_model_options(base, tmp_path, tiny_backbone_dir, capsys):
    out = ["--out", str(tmp_path), "--max-steps", "2", "--val-fraction", "0.2", "--val-pairs", "2"]
    assert main(base + out) == 0
    capsys.readouterr()
    changed = {"--backbone": str(tiny_backbone_dir), "--val-fraction": "0.3", "--split": "test"}
    for option, value in changed.items():
        args = base + out + ["--resume", option, value]
        assert main(args) == 2, option
        err = capsys.readouterr().err.strip().splitlines()[-1]  # (after transformers' loading bar)
        assert err.startswith("geocorr train: error: cannot resume from ")
        assert "belongs to a run with other options" in err and option.lstrip("-").replace("-", "_") in err
    assert main(base + out + ["--resume"]) == 0  # the same options still resume (a finished run: re-export)


def test_disk_full_on_export_is_one_line_and_exit_2(base, tmp_path, capsys, monkeypatch):
    write_all = geocorr.files._write_all

    def full_for_the_adapter(fd, data):
        if b"geocorr-lora" in data[:4096]:
            os.write(fd, data[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(fd, data)

    monkeypatch.setattr(geocorr.files, "_write_all", full_for_the_adapter)
    assert main(base + ["--out", str(tmp_path), "--max-steps", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    expected = (f"geocorr train: error: adapter: cannot write {tmp_path / 'adapter.safetensors'}: "
                "no space left on the device")
    assert err == [expected]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000002.safetensors", "log.jsonl"]
    monkeypatch.undo()
    assert main(base + ["--out", str(tmp_path), "--max-steps", "2", "--resume"]) == 0  # space again: export
    assert (tmp_path / "adapter.safetensors").is_file()


def test_adapter_files_are_byte_identical(tmp_path):
    g = torch.Generator().manual_seed(0)
    factors = {(i, p): (torch.randn(2, 8, generator=g), torch.randn(8, 2, generator=g))
               for i in range(2) for p in ("q", "v")}
    weights = LoraWeights(rank=2, alpha=2.0, width=8, num_blocks=2, factors=factors)
    for i in range(6):
        save_lora_file(weights, tmp_path / f"{i}.safetensors")
    contents = {(tmp_path / f"{i}.safetensors").read_bytes() for i in range(6)}
    assert len(contents) == 1
