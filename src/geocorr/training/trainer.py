"""The training loop shared by every trainable method (see :mod:`geocorr.training`)."""
from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device, set_seed
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from ..files import os_error, tensor_digest, write_atomic
from .checkpoint import (
    LEGACY_NAME,
    CheckpointError,
    checkpoint_name,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import TrainConfig
from .sampler import ResumableSampler

LOG = "log.jsonl"
# config fields that do not change what is trained: a resume may change them
_BOOKKEEPING = ("keep_checkpoints",)
# config fields that only say where to stop: a resume may change them to extend (or finish) a run
_LENGTH = ("max_steps", "epochs")


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


class IndexedData(Protocol):
    """A training set served as ``dataset[index]`` (no randomness of its own)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


@runtime_checkable
class SampledData(Protocol):
    """A training set that draws its own random augmentations (or per-epoch subset) from the
    generator the trainer hands over, seeded per (config seed, epoch, position)."""

    def __len__(self) -> int: ...

    def sample(self, index: int, generator: torch.Generator, epoch: int) -> Any: ...


TrainingData = IndexedData | SampledData


class _Keyed(Dataset):
    """Serves the sampler's ``(index, seed, epoch)`` keys: ``dataset.sample(index, generator, epoch)``
    for a :class:`SampledData`, else ``dataset[index]``."""

    def __init__(self, dataset: TrainingData) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int, int]) -> Any:
        index, seed, epoch = key
        if isinstance(self.dataset, SampledData):
            return self.dataset.sample(index, torch.Generator().manual_seed(seed), epoch)
        return self.dataset[index]


class Trainer:
    """Trains ``model.trainable_parameters()`` on ``model.training_step(batch)["loss"]``.

    model: an ``nn.Module`` following :class:`Trainable`; it may also define ``save_weights(out_dir)``,
        called once at the end to write the trained weights in the method's own format.
    dataset: a sized training set: :class:`IndexedData`, or :class:`SampledData` whose
        ``sample(index, generator, epoch)`` is called instead of ``dataset[index]`` with a generator
        seeded per (epoch, position) and the 0-based epoch, so random augmentations (and per-epoch
        subsets) are reproducible and resume exactly.
    conf: the run's :class:`TrainConfig` (a method's subclass).
    out_dir: where the checkpoints (``checkpoint-<step>.safetensors``), ``log.jsonl`` and the
        trained weights go.
    collate_fn: samples -> batch (default: torch's ``default_collate``).
    validate: model -> {metric: float}, run on the main process every ``conf.val_every`` steps
        and at the end, the model in eval mode.
    optimizer_factory(params, conf), scheduler_factory(optimizer, conf, total_steps): defaults
        AdamW and :func:`default_scheduler`.
    accelerator: an ``accelerate.Accelerator`` (default: one made from the config); launch with
        ``accelerate launch`` / ``torchrun`` for several GPUs or nodes, same code.
    progress: show a tqdm bar (main process only).
    run: JSON-able description of what the run is built from outside the config (backbone,
        adapter, datasets, roots, splits, masks …; ``geocorr train`` fills it from its options).
        It is stored in every checkpoint and a resume under another one is refused. The attribute
        ``run`` may also be set after construction, before :meth:`fit`.

    Model construction must be seeded by the caller (``geocorr train`` seeds with ``conf.seed``
    before building): the checkpoint stores a SHA-256 of every parameter and buffer of the model
    as built, and a resume refuses a model built differently (another backbone, another starting
    adapter, another random initialisation).
    """

    def __init__(self, model: torch.nn.Module, dataset: TrainingData, conf: TrainConfig, out_dir: str | Path, *,
                 collate_fn: Callable | None = None,
                 validate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
                 optimizer_factory: Callable = default_optimizer,
                 scheduler_factory: Callable = default_scheduler,
                 accelerator: Accelerator | None = None, progress: bool = True,
                 run: dict[str, Any] | None = None) -> None:
        for attr in ("trainable_parameters", "training_step"):
            if not callable(getattr(model, attr, None)):
                raise TypeError(f"model {type(model).__name__} has no {attr}() method; see geocorr.training")
        self.model, self.dataset, self.conf = model, dataset, conf
        self.out_dir = Path(out_dir)
        self.collate_fn = collate_fn or default_collate
        self.validate = validate
        self.run: dict[str, Any] = dict(run or {})
        self.accelerator = accelerator or Accelerator(mixed_precision=conf.mixed_precision)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world != self.accelerator.num_processes:
            raise RuntimeError(
                f"launched as {world} processes (WORLD_SIZE) but accelerate runs {self.accelerator.num_processes}; "
                f"without GPUs set ACCELERATE_USE_CPU=true (or use `accelerate launch --cpu`)"
            )
        self.progress = progress
        self.params = list(cast(Trainable, model).trainable_parameters())
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
        self.model_digest = ""

    @property
    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint file in ``out_dir`` (None if there is none)."""
        found = list_checkpoints(self.out_dir)
        return found[0][1] if found else None

    def fit(self, resume: bool = False) -> dict[str, float]:
        """Train to ``total_steps`` (continuing from the newest intact checkpoint in ``out_dir`` if
        ``resume``).

        Returns the last step's loss and the last validation metrics. Raises FloatingPointError,
        naming the step, as soon as a loss or a gradient is NaN or infinite (before the update),
        and OSError naming the file when a checkpoint, the log or the weights cannot be written
        (e.g. disk full; the last good checkpoint is kept, no temporary file is left).
        """
        acc, conf = self.accelerator, self.conf
        self.model_digest = tensor_digest(self.model.state_dict())  # the model as built, before any update
        self.model.to(acc.device)
        if resume:
            self._resume()
        else:
            if self.last_checkpoint is not None or (self.out_dir / LEGACY_NAME).exists():
                raise FileExistsError(f"{self.out_dir} already holds a checkpoint: resume it (--resume) "
                                      f"or train into another folder")
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
                outputs = cast(Trainable, self.model).training_step(batch)
            loss = outputs["loss"]
            mean_loss = acc.reduce(loss.detach().float(), reduction="mean")
            if not torch.isfinite(mean_loss):
                bar.close()
                raise FloatingPointError(
                    f"training stopped at step {self.step + 1}: the loss is {mean_loss.item()} "
                    f"(last good checkpoint: {self.last_checkpoint or 'none'})"
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
                self._save()
                tic, window = time.perf_counter(), 0
        bar.close()
        save_weights = getattr(self.model, "save_weights", None)  # optional part of the Trainable interface
        if acc.is_main_process and callable(save_weights):
            save_weights(self.out_dir)
        acc.wait_for_everyone()
        return result

    def _sync_gradients(self) -> None:
        """Average the gradients over processes (a no-op on one process)."""
        if self.accelerator.num_processes == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
        for p, g in zip(self.params, flat.split([q.numel() for q in self.params]), strict=True):
            p.grad = g.view_as(p).to(p.dtype)

    def _validate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.accelerator.is_main_process and self.validate is not None:
            self.model.eval()
            metrics = {f"val_{k}": float(v) for k, v in self.validate(self.model).items()}
            self.model.train()
            self._log({"step": self.step, **metrics})
        self.accelerator.wait_for_everyone()
        return metrics

    def _notice(self, message: str) -> None:
        if self.accelerator.is_main_process:
            tqdm.write(f"geocorr train: {message}", file=sys.stderr)

    # ---- log.jsonl ------------------------------------------------------------------------------

    def _read_log(self, path: Path) -> list[dict]:
        """The records of ``path``; a torn or empty last line (a writer killed mid-line) is dropped."""
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        except OSError as err:
            raise os_error(err.errno, f"training log: cannot read {path}: {err.strerror}") from None
        while lines and not lines[-1].strip():
            lines.pop()
        records = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                if number == len(lines):
                    self._notice(f"{path}: dropped the torn last line {number} (a run killed while writing it)")
                    break
                raise ValueError(f"training log {path}: line {number} is not a geocorr log record (JSON with an "
                                 f"integer 'step'); repair or delete that line")
            records.append(record)
        return records

    def _trim_log(self) -> None:
        """Drop log lines of steps after the one we start from (a killed run's last steps) and a
        torn last line; the log is re-written atomically."""
        path = self.out_dir / LOG
        if self.accelerator.is_main_process and path.exists():
            original = path.read_bytes()
            kept = "".join(json.dumps(r) + "\n" for r in self._read_log(path) if r["step"] <= self.step).encode()
            if kept != original:
                write_atomic(path, kept, "training log")

    def _log(self, record: dict) -> None:
        if self.accelerator.is_main_process:
            path = self.out_dir / LOG
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as err:
                reason = "no space left on the device" if err.errno == errno.ENOSPC else err.strerror
                raise os_error(err.errno, f"training log: cannot append to {path}: {reason} "
                                          f"(last good checkpoint: {self.last_checkpoint or 'none'})") from None

    # ---- checkpoints ----------------------------------------------------------------------------

    def _state(self) -> dict:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "config": self.conf.to_dict(),
            "run": {**self.run, "train_samples": len(self.dataset)},
            "model_digest": self.model_digest,
            "model": {name: p.detach().cpu().clone() for name, p in self.param_names.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng_state(),
            "world_size": self.accelerator.num_processes,
        }

    def _save(self) -> None:
        """Write this step's checkpoint, then delete all but the newest ``conf.keep_checkpoints``."""
        if self.accelerator.is_main_process:
            path = self.out_dir / checkpoint_name(self.step)
            previous = self.last_checkpoint
            try:
                save_checkpoint(self._state(), path)
            except OSError as err:
                raise os_error(err.errno, f"{err}; training stopped at step {self.step}, "
                                          f"last good checkpoint: {previous or 'none'}") from None
            found = list_checkpoints(self.out_dir)
            skipped = [p for step, p in found if step > self.step]  # damaged files a resume passed over
            older = [p for step, p in found if step <= self.step][self.conf.keep_checkpoints:]
            killed = list(self.out_dir.glob(".checkpoint-*.tmp"))  # left by runs killed while writing
            for old in skipped + older + killed:
                old.unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()

    def _resume(self) -> None:
        """Load the newest intact checkpoint; damaged ones are named and skipped."""
        found = list_checkpoints(self.out_dir)
        if not found:
            legacy = self.out_dir / LEGACY_NAME
            if legacy.exists():
                raise CheckpointError(f"cannot resume from {legacy}: it is a pickled checkpoint of an older geocorr, "
                                      f"which is never read (unpickling a file can run any code in it); "
                                      f"start the run again in a new folder")
            raise FileNotFoundError(f"checkpoint: no checkpoint-*.safetensors in {self.out_dir} to resume from")
        failures = []
        for index, (_, path) in enumerate(found):
            try:
                state = load_checkpoint(path)
            except CheckpointError as err:
                failures.append(str(err))
                fallback = f"falling back to {found[index + 1][1].name}" if index + 1 < len(found) else "none left"
                self._notice(f"warning: {err}; {fallback}")
                continue
            self._load(state, path)
            return
        raise CheckpointError(f"cannot resume: no intact checkpoint in {self.out_dir} ({'; '.join(failures)})")

    def _load(self, state: dict, path: Path) -> None:
        ours, theirs = self.conf.to_dict(), state["config"]
        diff = sorted(k for k in set(ours) | set(theirs)
                      if k not in _BOOKKEEPING + _LENGTH and ours.get(k) != theirs.get(k))
        if diff:
            details = ", ".join(f"{k}: {theirs.get(k)!r} -> {ours.get(k)!r}" for k in diff)
            raise ValueError(f"cannot resume from {path}: it was written with another config ({details})")
        run = {**self.run, "train_samples": len(self.dataset)}
        if state.get("run") != run:
            saved = state.get("run") or {}
            diff = sorted(k for k in set(run) | set(saved) if run.get(k) != saved.get(k))
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {run.get(k)!r}" for k in diff)
            raise ValueError(f"cannot resume from {path}: it belongs to a run with other options ({details})")
        if state.get("model_digest") != self.model_digest:
            raise ValueError(f"cannot resume from {path}: the model built now is not the run's (its frozen weights "
                             f"or its starting trainable weights differ: another backbone or starting adapter, or "
                             f"model construction not seeded with seed {self.conf.seed})")
        if state["world_size"] != self.accelerator.num_processes:
            raise ValueError(f"cannot resume from {path}: it was written by {state['world_size']} processes, "
                             f"this run has {self.accelerator.num_processes}")
        saved, names = state["model"], set(self.param_names)
        if set(saved) != names:
            missing, extra = sorted(names - set(saved)), sorted(set(saved) - names)
            raise ValueError(f"cannot resume from {path}: its parameters do not match the model "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
        if state["total_steps"] != self.total_steps:
            self._extend(state, path)
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

    def _extend(self, state: dict, path: Path) -> None:
        """A resume with another length (--max-steps / --epochs): allowed unless the learning-rate
        schedule was laid out for the old length; said on stderr and in the log."""
        old, new, step = state["total_steps"], self.total_steps, state["step"]
        schedule = state["scheduler"] or {}
        if "total_steps" in schedule:
            raise ValueError(f"cannot resume from {path} with {new} steps in all instead of {old}: its learning-rate "
                             f"schedule ({self.conf.scheduler}) was laid out for {old} steps")
        if step > new:
            raise ValueError(f"cannot resume from {path}: it is at step {step}, beyond the {new} steps asked for")
        verb = "extending" if new > old else "shortening"
        self._notice(f"{verb} the run from {old} to {new} steps, resuming at step {step} ({path.name})")
