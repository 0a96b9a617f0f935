"""The training loop shared by every trainable method (see :mod:`geocorr.training`)."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device, set_seed
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from .config import TrainConfig
from .sampler import ResumableSampler

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


class Trainable(Protocol):
    """What the trainer needs from a model (an ``nn.Module``)."""

    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]: ...


def default_optimizer(params: list[torch.nn.Parameter], conf: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the config's learning rate and weight decay."""
    return torch.optim.AdamW(params, lr=conf.lr, weight_decay=conf.weight_decay)


def default_scheduler(optimizer: torch.optim.Optimizer, conf: TrainConfig, total_steps: int):
    """None (constant rate) or a one-cycle schedule over ``total_steps`` with ``conf.warmup`` warm-up."""
    if conf.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=conf.lr, total_steps=total_steps,
                                                   pct_start=conf.warmup)
    return None


class _Keyed(Dataset):
    """Serves the sampler's ``(index, seed)`` keys: ``dataset.sample(index, generator)`` if the
    dataset draws random augmentations, else ``dataset[index]``."""

    def __init__(self, dataset: Sequence) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        if callable(getattr(self.dataset, "sample", None)):
            return self.dataset.sample(index, torch.Generator().manual_seed(seed))
        return self.dataset[index]


class Trainer:
    """Trains ``model.trainable_parameters()`` on ``model.training_step(batch)["loss"]``.

    model: an ``nn.Module`` following :class:`Trainable`; it may also define ``export(out_dir)``,
        called once at the end to write the trained weights in the method's own format.
    dataset: a sized, indexable training set; if it has ``sample(index, generator)`` that is
        called instead of ``dataset[index]`` with a generator seeded per (epoch, position), so
        random augmentations are reproducible and resume exactly.
    conf: the run's :class:`TrainConfig` (a method's subclass).
    out_dir: where ``checkpoint.pt``, ``log.jsonl`` and the export go.
    collate_fn: samples -> batch (default: torch's ``default_collate``).
    validate: model -> {metric: float}, run on the main process every ``conf.val_every`` steps
        and at the end, the model in eval mode.
    optimizer_factory(params, conf), scheduler_factory(optimizer, conf, total_steps): defaults
        AdamW and :func:`default_scheduler`.
    accelerator: an ``accelerate.Accelerator`` (default: one made from the config); launch with
        ``accelerate launch`` / ``torchrun`` for several GPUs or nodes, same code.
    progress: show a tqdm bar (main process only).
    """

    def __init__(self, model: torch.nn.Module, dataset: Sequence, conf: TrainConfig, out_dir: str | Path, *,
                 collate_fn: Callable | None = None,
                 validate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
                 optimizer_factory: Callable = default_optimizer,
                 scheduler_factory: Callable = default_scheduler,
                 accelerator: Accelerator | None = None, progress: bool = True) -> None:
        for attr in ("trainable_parameters", "training_step"):
            if not callable(getattr(model, attr, None)):
                raise TypeError(f"model {type(model).__name__} has no {attr}() method; see geocorr.training")
        self.model, self.dataset, self.conf = model, dataset, conf
        self.out_dir = Path(out_dir)
        self.collate_fn = collate_fn or default_collate
        self.validate = validate
        self.accelerator = accelerator or Accelerator(mixed_precision=conf.mixed_precision)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world != self.accelerator.num_processes:
            raise RuntimeError(
                f"launched as {world} processes (WORLD_SIZE) but accelerate runs {self.accelerator.num_processes}; "
                f"without GPUs set ACCELERATE_USE_CPU=true (or use `accelerate launch --cpu`)"
            )
        self.progress = progress
        self.params = list(model.trainable_parameters())
        if not self.params:
            raise ValueError(f"model {type(model).__name__} has no trainable parameters")
        ids = {id(p) for p in self.params}
        self.param_names = {name: p for name, p in model.named_parameters() if id(p) in ids}
        if len(self.param_names) != len(self.params):
            raise ValueError("trainable_parameters() must return parameters registered in the model")
        self.optimizer = optimizer_factory(self.params, conf)
        acc = self.accelerator
        self.sampler = ResumableSampler(len(dataset), conf.batch_size, conf.seed, acc.process_index, acc.num_processes)
        self.total_steps = conf.max_steps or conf.epochs * self.sampler.steps_per_epoch
        self.scheduler = scheduler_factory(self.optimizer, conf, self.total_steps)
        self.step = 0

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def fit(self, resume: bool = False) -> dict[str, float]:
        """Train to ``total_steps`` (continuing from ``out_dir/checkpoint.pt`` if ``resume``).

        Returns the last step's loss and the last validation metrics. Raises FloatingPointError,
        naming the step, as soon as a loss or a gradient is NaN or infinite (before the update).
        """
        acc, conf = self.accelerator, self.conf
        self.model.to(acc.device)
        if resume:
            self._load(self.checkpoint_path)
        else:
            if self.checkpoint_path.exists():
                raise FileExistsError(f"{self.checkpoint_path} exists: resume it or train into another folder")
            set_seed(conf.seed)
        self._trim_log()
        self.sampler.start_step = self.step
        loader = DataLoader(_Keyed(self.dataset), batch_size=conf.batch_size, sampler=self.sampler,
                            collate_fn=self.collate_fn, num_workers=conf.num_workers,
                            generator=torch.Generator().manual_seed(conf.seed))
        if acc.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not (self.progress and acc.is_main_process),
                   desc="train", unit="step", dynamic_ncols=True)
        result: dict[str, float] = {}
        batches = iter(loader)
        tic, window = time.perf_counter(), 0
        self.model.train()
        while self.step < self.total_steps:
            batch = send_to_device(next(batches), acc.device)
            with acc.autocast():
                outputs = self.model.training_step(batch)
            loss = outputs["loss"]
            mean_loss = acc.reduce(loss.detach().float(), reduction="mean")
            if not torch.isfinite(mean_loss):
                bar.close()
                raise FloatingPointError(
                    f"training stopped at step {self.step + 1}: the loss is {mean_loss.item()} "
                    f"(last good checkpoint: {self.checkpoint_path if self.checkpoint_path.exists() else 'none'})"
                )
            self.optimizer.zero_grad(set_to_none=True)
            acc.backward(loss)
            self._sync_gradients()
            bad = [name for name, p in self.param_names.items() if p.grad is not None and not p.grad.isfinite().all()]
            if bad:
                bar.close()
                raise FloatingPointError(f"training stopped at step {self.step + 1}: non-finite gradient of "
                                         f"{bad[0]} (and {len(bad) - 1} more); the weights were not updated")
            if conf.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.params, conf.grad_clip)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step += 1
            window += conf.batch_size * acc.num_processes
            result = {"step": self.step, "loss": mean_loss.item()}
            bar.update(1)
            if self.step % conf.log_every == 0 or self.step == self.total_steps:
                elapsed = time.perf_counter() - tic
                record = {**result, "lr": self.optimizer.param_groups[0]["lr"], "samples_per_s": window / elapsed,
                          **{k: v.item() for k, v in outputs.items() if k != "loss" and v.numel() == 1}}
                bar.set_postfix(loss=f"{record['loss']:.4f}", samples_per_s=f"{record['samples_per_s']:.2f}")
                self._log(record)
                tic, window = time.perf_counter(), 0
            last = self.step == self.total_steps
            if self.validate is not None and ((conf.val_every and self.step % conf.val_every == 0) or last):
                result.update(self._validate())
                tic, window = time.perf_counter(), 0  # throughput counts training time only
            if (conf.checkpoint_every and self.step % conf.checkpoint_every == 0) or last:
                self._save(self.checkpoint_path)
                tic, window = time.perf_counter(), 0
        bar.close()
        if acc.is_main_process and callable(getattr(self.model, "export", None)):
            self.model.export(self.out_dir)
        acc.wait_for_everyone()
        return result

    def _sync_gradients(self) -> None:
        """Average the gradients over processes (a no-op on one process)."""
        if self.accelerator.num_processes == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
        for p, g in zip(self.params, flat.split([q.numel() for q in self.params])):
            p.grad = g.view_as(p).to(p.dtype)

    def _validate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.accelerator.is_main_process:
            self.model.eval()
            metrics = {f"val_{k}": float(v) for k, v in self.validate(self.model).items()}
            self.model.train()
            self._log({"step": self.step, **metrics})
        self.accelerator.wait_for_everyone()
        return metrics

    def _trim_log(self) -> None:
        """Drop log lines of steps after the one we start from (a killed run's last steps)."""
        path = self.out_dir / LOG
        if self.accelerator.is_main_process and path.exists():
            lines = path.read_text().splitlines()
            path.write_text("".join(f"{line}\n" for line in lines if json.loads(line)["step"] <= self.step))

    def _log(self, record: dict) -> None:
        if self.accelerator.is_main_process:
            with open(self.out_dir / LOG, "a") as f:
                f.write(json.dumps(record) + "\n")

    def _save(self, path: Path) -> None:
        if self.accelerator.is_main_process:
            save_atomic({
                "step": self.step,
                "config": self.conf.to_dict(),
                "model": {name: p.detach().cpu().clone() for name, p in self.param_names.items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "rng": rng_state(),
                "world_size": self.accelerator.num_processes,
            }, path)
        self.accelerator.wait_for_everyone()

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        ours = self.conf.to_dict()
        if state["config"] != ours:
            diff = sorted(k for k in set(ours) | set(state["config"]) if ours.get(k) != state["config"].get(k))
            details = ", ".join(f"{k}: {state['config'].get(k)!r} -> {ours.get(k)!r}" for k in diff)
            raise ValueError(f"cannot resume from {path}: it was written with another config ({details})")
        if state["world_size"] != self.accelerator.num_processes:
            raise ValueError(f"cannot resume from {path}: it was written by {state['world_size']} processes, "
                             f"this run has {self.accelerator.num_processes}")
        saved, names = state["model"], set(self.param_names)
        if set(saved) != names:
            missing, extra = sorted(names - set(saved)), sorted(set(saved) - names)
            raise ValueError(f"cannot resume from {path}: its parameters do not match the model "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
        with torch.no_grad():
            for name, p in self.param_names.items():
                if saved[name].shape != p.shape:
                    raise ValueError(f"cannot resume from {path}: {name} has shape {tuple(saved[name].shape)}, "
                                     f"the model {tuple(p.shape)}")
                p.copy_(saved[name])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step = state["step"]
