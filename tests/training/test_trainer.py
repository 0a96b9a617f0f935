import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from geocorr.training import (
    ResumableSampler,
    TrainConfig,
    Trainer,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)

from .toy_regression import Noisy, Plain, Regression


def _conf(**kw):
    return TrainConfig(**{"lr": 0.05, "batch_size": 4, "max_steps": 12, "checkpoint_every": 3,
                          "log_every": 1, "scheduler": "onecycle", **kw})


def test_loss_falls(tmp_path):
    model = Regression()
    trainer = Trainer(model, Noisy(), _conf(max_steps=40, lr=0.3), tmp_path, progress=False)
    trainer.fit()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    first, last = sum(r["loss"] for r in log[:5]) / 5, sum(r["loss"] for r in log[-5:]) / 5
    assert len(log) == 40 and first > 3 * last
    assert {"lr", "samples_per_s", "mean_x"} <= set(log[0])


def test_resume_is_bit_exact(tmp_path):
    straight = Regression()
    Trainer(straight, Noisy(), _conf(), tmp_path / "a", progress=False).fit()

    killed = Regression(fail_at=8)  # checkpoint at step 6, killed during step 8
    with pytest.raises(KeyboardInterrupt):
        Trainer(killed, Noisy(), _conf(), tmp_path / "b", progress=False).fit()
    assert [step for step, _ in list_checkpoints(tmp_path / "b")] == [6, 3]
    assert load_checkpoint(tmp_path / "b" / "checkpoint-00000006.safetensors")["step"] == 6
    resumed = Regression()
    trainer = Trainer(resumed, Noisy(), _conf(), tmp_path / "b", progress=False)
    trainer.fit(resume=True)
    assert resumed.calls == 6
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # the killed run's step 7 was dropped from the log
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(straight.linear.weight, Regression().linear.weight)  # it did train


def test_nan_loss_names_the_step(tmp_path):
    model = Regression(nan_at=5)
    with pytest.raises(FloatingPointError, match="step 5"):
        Trainer(model, Noisy(), _conf(), tmp_path, progress=False).fit()


def test_nan_gradient_names_the_step(tmp_path):
    class NanGrad(Regression):
        def training_step(self, batch):
            out = super().training_step(batch)
            if self.calls == 3:  # sqrt at 0: finite loss, infinite gradient
                out["loss"] = out["loss"] + (self.linear.weight - self.linear.weight.detach()).sum().sqrt()
            return out

    model = NanGrad()
    with pytest.raises(FloatingPointError, match="step 3: non-finite gradient of linear"):
        Trainer(model, Noisy(), _conf(), tmp_path, progress=False).fit()
    assert torch.isfinite(model.linear.weight).all()


def test_resume_refuses_another_config(tmp_path):
    Trainer(Regression(), Noisy(), _conf(max_steps=3), tmp_path, progress=False).fit()
    with pytest.raises(ValueError, match=r"another config.*lr"):
        Trainer(Regression(), Noisy(), _conf(max_steps=3, lr=0.1), tmp_path, progress=False).fit(resume=True)
    with pytest.raises(FileExistsError, match="resume it"):
        Trainer(Regression(), Noisy(), _conf(max_steps=3), tmp_path, progress=False).fit()
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        Trainer(Regression(), Noisy(), _conf(), tmp_path / "none", progress=False).fit(resume=True)


def test_validation_runs_periodically_in_eval_mode(tmp_path):
    modes = []

    def validate(model):
        modes.append(model.training)
        return {"error": (model.linear.weight - torch.tensor([[1.0, -2.0, 0.5, 3.0]])).abs().sum().item()}

    result = Trainer(Regression(), Noisy(), _conf(val_every=5), tmp_path, validate=validate, progress=False).fit()
    assert modes == [False, False, False]  # steps 5, 10 and the last (12)
    assert result["step"] == 12 and "val_error" in result


def test_interrupted_write_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import os

    import geocorr.files

    path = tmp_path / "checkpoint-00000001.safetensors"
    save_checkpoint({"step": 1, "config": {}}, path)

    def broken_write(fd, data):
        os.write(fd, data[:10])
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(geocorr.files, "_write_all", broken_write)
    with pytest.raises(OSError, match="checkpoint: cannot write"):
        save_checkpoint({"step": 2, "config": {}}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_corrupt_checkpoint_is_reported(tmp_path):
    (tmp_path / "checkpoint-00000001.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        load_checkpoint(tmp_path / "checkpoint-00000001.safetensors")


def test_sampler_shards_and_resumes():
    full = ResumableSampler(10, 2, seed=3, world_size=1)
    keys = [k for _, k in zip(range(20), iter(full), strict=False)]
    assert sorted(i for i, _, _ in keys[:10]) == list(range(10))  # one epoch = a permutation
    late = ResumableSampler(10, 2, seed=3)
    late.start_step = 3
    assert [k for _, k in zip(range(14), iter(late), strict=False)] == keys[6:20]
    ranks = [ResumableSampler(10, 2, seed=3, rank=r, world_size=2) for r in (0, 1)]
    shards = [[k for _, k in zip(range(4), iter(s), strict=False)] for s in ranks]
    assert shards[0] + shards[1] == [keys[0], keys[1], keys[4], keys[5], keys[2], keys[3], keys[6], keys[7]]
    with pytest.raises(ValueError, match="fewer than one step"):
        ResumableSampler(3, 2, seed=0, world_size=2)


def test_config_validation_and_model_protocol(tmp_path):
    with pytest.raises(ValueError, match="scheduler"):
        TrainConfig(scheduler="cosine")
    with pytest.raises(TypeError, match="trainable_parameters"):
        Trainer(nn.Linear(2, 2), Noisy(), _conf(), tmp_path)


def test_subclass_config_round_trips():
    @dataclass
    class Sub(TrainConfig):
        crop: tuple[float, float] = (0.5, 0.98)

    assert Sub().to_dict()["crop"] == [0.5, 0.98] and Sub().to_dict()["class"] == "Sub"


@pytest.mark.slow
def test_two_processes_equal_one_with_the_global_batch(tmp_path):
    """torchrun with 2 CPU processes (gloo) × batch 2 trains exactly like 1 process × batch 4."""
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import sys, torch\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from toy_regression import Plain, Regression\n"
        "from geocorr.training import TrainConfig, Trainer\n"
        "bs, out = int(sys.argv[1]), sys.argv[2]\n"
        "model = Regression(noise=0.0)\n"
        "t = Trainer(model, Plain(), TrainConfig(lr=0.05, batch_size=bs, max_steps=6), out, progress=False)\n"
        "t.fit()\n"
        "if t.accelerator.is_main_process:\n"
        "    torch.save(model.linear.state_dict(), out + '/final.pt')\n"
    )
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    one = Regression(noise=0.0)
    Trainer(one, Plain(), TrainConfig(lr=0.05, batch_size=4, max_steps=6), tmp_path / "one", progress=False).fit()
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), "2",
                    str(tmp_path / "two")], env=env, check=True, capture_output=True, timeout=300)
    two = torch.load(tmp_path / "two" / "final.pt")
    torch.testing.assert_close(two["weight"], one.linear.weight.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(two["bias"], one.linear.bias.detach(), rtol=0, atol=1e-6)


def test_sample_gets_the_epoch_of_its_step(tmp_path):
    """64 samples / batch 4 = 16 steps per epoch: steps 1-16 draw epoch 0, steps 17-20 epoch 1."""

    class Epochs(Noisy):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def sample(self, index, generator, epoch):
            self.epochs.append(epoch)
            return super().sample(index, generator)

    data = Epochs()
    Trainer(Regression(), data, _conf(max_steps=20, scheduler="none"), tmp_path, progress=False).fit()
    assert data.epochs == [0] * 16 * 4 + [1] * 4 * 4
    keys = [key for _, key in zip(range(40), iter(ResumableSampler(10, 2, seed=3)), strict=False)]
    assert [epoch for _, _, epoch in keys] == [step // 5 for step in range(20) for _ in range(2)]
