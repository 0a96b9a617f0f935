"""Issue 17: training under faults and hostile files (checkpoints, log, disk full, resume checks)."""
import errno
import json
import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

import geocorr.files
from geocorr.training import (
    CheckpointError,
    TrainConfig,
    Trainer,
    list_checkpoints,
    load_checkpoint,
)

from .training.toy_regression import Plain


class Regression(nn.Module):
    """y = w·x; the step draws noise from the global RNG (a resume must restore it)."""

    def __init__(self, init_seed: int = 0):
        super().__init__()
        torch.manual_seed(init_seed)
        self.linear = nn.Linear(4, 1)
        self.frozen = nn.Linear(4, 4).requires_grad_(False)

    def trainable_parameters(self):
        return list(self.linear.parameters())

    def training_step(self, batch):
        x = batch["x"] + 0.01 * torch.randn_like(batch["x"])
        return {"loss": ((self.linear(self.frozen(x) + x).squeeze(1) - batch["y"]) ** 2).mean()}


def _conf(**kw):
    return TrainConfig(**{"lr": 0.05, "batch_size": 4, "max_steps": 12, "checkpoint_every": 3, "log_every": 1, **kw})


def _train(out, resume=False, model=None, **kw):
    model = model or Regression()
    Trainer(model, Plain(), _conf(**kw), out, progress=False).fit(resume=resume)
    return model


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.linear.parameters()])


def _tensor_offset(path: Path, key: str) -> int:
    """Byte offset in ``path`` of the first element of the checkpoint's model tensor ``key``."""
    with safe_open(str(path), framework="pt") as f:
        state = json.loads(f.metadata()["state"])
    name = state["model"][key]["__tensor__"]
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + size])
    return 8 + size + header[name]["data_offsets"][0]


def _malicious_pickle(path: Path, marker: Path) -> None:
    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")  # unpickling creates the marker file

    torch.save({"step": 3, "config": {}, "x": Payload()}, path)


def test_keeps_the_newest_two_checkpoints(tmp_path):
    _train(tmp_path / "a")
    assert [s for s, _ in list_checkpoints(tmp_path / "a")] == [12, 9]
    _train(tmp_path / "b", keep_checkpoints=3)
    assert [s for s, _ in list_checkpoints(tmp_path / "b")] == [12, 9, 6]
    with pytest.raises(ValueError, match="keep_checkpoints"):
        _conf(keep_checkpoints=0)


def test_flipped_exponent_bit_is_detected_and_the_previous_checkpoint_used(tmp_path, capsys):
    straight = _train(tmp_path / "a")
    _train(tmp_path / "b", max_steps=6)  # checkpoints 6 and 3
    newest = tmp_path / "b" / "checkpoint-00000006.safetensors"
    raw = bytearray(newest.read_bytes())
    offset = _tensor_offset(newest, "linear.weight")
    value = struct.unpack("<f", raw[offset : offset + 4])[0]
    raw[offset + 2] ^= 0x80  # bit 23: the lowest exponent bit of a little-endian float32
    assert struct.unpack("<f", raw[offset : offset + 4])[0] in (2 * value, value / 2)
    newest.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"checkpoint-00000006\.safetensors is damaged"):
        load_checkpoint(newest)
    resumed = Regression()
    trainer = Trainer(resumed, Plain(), _conf(), tmp_path / "b", progress=False)
    trainer.fit(resume=True)
    err = capsys.readouterr().err
    assert "checkpoint-00000006.safetensors is damaged" in err and "falling back to checkpoint-00000003" in err
    assert torch.equal(_weights(resumed), _weights(straight))  # resumed at step 3, then bit-exact to 12
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_no_intact_checkpoint_is_a_clear_error(tmp_path):
    _train(tmp_path, max_steps=3)
    path = tmp_path / "checkpoint-00000003.safetensors"
    path.write_bytes(path.read_bytes()[:-7])  # truncated
    with pytest.raises(CheckpointError, match=r"no intact checkpoint.*checkpoint-00000003"):
        _train(tmp_path, resume=True)


def test_planted_pickles_are_never_unpickled(tmp_path):
    marker = tmp_path / "executed"
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    _malicious_pickle(legacy / "checkpoint.pt", marker)  # what geocorr < 0.2 wrote and read back
    with pytest.raises(CheckpointError, match="pickled checkpoint of an older geocorr, which is never read"):
        _train(legacy, resume=True)
    with pytest.raises(FileExistsError):
        _train(legacy)  # a fresh run does not overwrite it either
    planted = tmp_path / "planted"
    planted.mkdir()
    _malicious_pickle(planted / "checkpoint-00000003.safetensors", marker)
    with pytest.raises(CheckpointError, match=r"checkpoint-00000003\.safetensors is not a readable safetensors"):
        _train(planted, resume=True)
    assert not marker.exists()


def test_torn_last_log_line_is_dropped_and_a_broken_line_named(tmp_path, capsys):
    straight = _train(tmp_path / "a")
    _train(tmp_path / "b", max_steps=6)
    log = tmp_path / "b" / "log.jsonl"
    log.write_text(log.read_text() + '{"step": 7, "lo')  # a writer killed mid-line
    resumed = _train(tmp_path / "b", resume=True)
    assert "dropped the torn last line 7" in capsys.readouterr().err
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, 13))
    assert torch.equal(_weights(resumed), _weights(straight))

    _train(tmp_path / "c", max_steps=6)
    log = tmp_path / "c" / "log.jsonl"
    log.write_text(log.read_text() + "\n\n")  # empty last lines
    _train(tmp_path / "c", resume=True)
    lines = log.read_text().splitlines()
    lines[2] = "garbage"
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"training log {log}: line 3 is not a geocorr log record"):
        _train(tmp_path / "c", resume=True, max_steps=12)


def test_log_rewrite_is_atomic(tmp_path, monkeypatch):
    _train(tmp_path, max_steps=6)
    (tmp_path / "checkpoint-00000006.safetensors").unlink()  # resume from step 3: steps 4..6 must go
    log = tmp_path / "log.jsonl"
    before = log.read_bytes()

    def killed(fd, data):
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.EIO, "killed")

    monkeypatch.setattr(geocorr.files, "_write_all", killed)
    with pytest.raises(OSError, match=f"training log: cannot write {log}"):
        _train(tmp_path, resume=True, max_steps=6)
    assert log.read_bytes() == before  # all 6 lines, not a half-written file
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_disk_full_during_a_save_stops_cleanly(tmp_path, monkeypatch):
    straight = _train(tmp_path / "a")
    writes, write_all = [], geocorr.files._write_all

    def full(fd, data):
        writes.append(len(data))
        if len(writes) == 3:  # the third checkpoint (step 9) runs out of space half-way
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(fd, data)

    monkeypatch.setattr(geocorr.files, "_write_all", full)
    out = tmp_path / "b"
    with pytest.raises(OSError) as info:
        _train(out)
    message = str(info.value)
    assert "checkpoint-00000009.safetensors: no space left on the device" in message
    assert "training stopped at step 9" in message and "checkpoint-00000006.safetensors" in message
    assert "\n" not in message
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-00000003.safetensors",
                                                     "checkpoint-00000006.safetensors", "log.jsonl"]
    assert load_checkpoint(out / "checkpoint-00000006.safetensors")["step"] == 6
    monkeypatch.undo()
    resumed = _train(out, resume=True)  # space freed: the run finishes as if nothing happened
    assert torch.equal(_weights(resumed), _weights(straight))


def test_resume_refuses_another_model_or_run(tmp_path):
    _train(tmp_path, max_steps=3)
    with pytest.raises(ValueError, match="the model built now is not the run's"):
        _train(tmp_path, resume=True, model=Regression(init_seed=1))  # other frozen weights
    trainer = Trainer(Regression(), Plain(), _conf(max_steps=3), tmp_path, progress=False)
    trainer.run = {"backbone": "random:vits14"}
    with pytest.raises(ValueError, match=r"other options .*backbone: None -> 'random:vits14'"):
        trainer.fit(resume=True)


def test_a_larger_max_steps_extends_a_finished_run(tmp_path, capsys):
    _train(tmp_path, max_steps=6)
    model = _train(tmp_path, resume=True, max_steps=9)
    assert "extending the run from 6 to 9 steps, resuming at step 6" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "checkpoint-00000009.safetensors")["step"] == 9
    assert not torch.equal(_weights(model), _weights(Regression()))
    with pytest.raises(ValueError, match="at step 9, beyond the 6 steps"):
        _train(tmp_path, resume=True, max_steps=6)
    _train(tmp_path / "cycle", max_steps=6, scheduler="onecycle")
    with pytest.raises(ValueError, match="schedule \\(onecycle\\) was laid out for 6 steps"):
        _train(tmp_path / "cycle", resume=True, max_steps=9, scheduler="onecycle")


def test_checkpoint_bytes_are_deterministic(tmp_path):
    _train(tmp_path / "a", max_steps=3)
    _train(tmp_path / "b", max_steps=3)
    name = "checkpoint-00000003.safetensors"
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    stale = tmp_path / ".adapter.safetensors.99999.tmp"  # what a SIGKILL inside a write leaves
    stale.write_bytes(b"half a file")
    other = tmp_path / ".other.safetensors.99999.tmp"
    other.write_bytes(b"not ours")
    geocorr.files.write_atomic(tmp_path / "adapter.safetensors", b"new", "adapter")
    assert (tmp_path / "adapter.safetensors").read_bytes() == b"new"
    assert not stale.exists() and other.exists()
