"""Training shared by every trainable geocorr method (GECO, GeoAware, cycle consistency).

Interface
---------
A trainable model is an ``nn.Module`` with

* ``trainable_parameters() -> list[nn.Parameter]`` — what the optimiser updates (registered in the
  module; only these go into checkpoints);
* ``training_step(batch) -> dict[str, Tensor]`` — must hold a scalar ``"loss"``; other scalar
  entries are logged (e.g. ``"loss_pos"``);
* optionally ``save_weights(out_dir)`` — called once at the end on the main process to write the trained
  weights in the method's own format (e.g. GECO's LoRA ``.safetensors``).

The training set is any sized, indexable collection. If it defines ``sample(index, generator, epoch)``
the trainer calls that (instead of ``dataset[index]``) with a ``torch.Generator`` seeded from
(config seed, epoch, position) and the 0-based epoch: draw every random augmentation from it (and
choose a per-epoch subset by the epoch) and resuming is exact.
``collate_fn`` turns a list of samples into a batch (default ``default_collate``); the batch is
moved to the device before ``training_step``.

Configuration: :class:`TrainConfig` holds what changes the result (lr, weight decay, epochs or
max_steps, batch size, scheduler none|onecycle with warm-up share, grad clip, mixed precision (bf16),
validation/checkpoint/log periods, workers, seed). A method subclasses it as a dataclass whose
defaults are its published setting, e.g. ``GecoTrainConfig(TrainConfig)`` in
:mod:`geocorr.training.recipes.geco`.

Running::

    trainer = Trainer(model, dataset, conf, out_dir, collate_fn=..., validate=fn)  # fn(model) -> {name: float}
    trainer.fit()             # or fit(resume=True) to continue from the newest intact checkpoint

* Progress bar (tqdm) with the loss and samples/s; ``out_dir/log.jsonl`` gets a line every
  ``log_every`` steps and after each validation (keys prefixed ``val_``). A resume drops the
  lines of steps after its checkpoint and a torn last line (a killed writer), re-writing the log
  atomically; any other damaged line is an error naming the file and the line.
* ``out_dir/checkpoint-<step>.safetensors`` every ``checkpoint_every`` steps and at the end
  (:mod:`.checkpoint`: pure data, never unpickled; SHA-256 verified on load; written atomically;
  the newest ``keep_checkpoints`` kept): trainable parameters by name, optimiser, scheduler, RNG
  states (python, numpy, torch, cuda), step (= data position: the sampler is a pure function of
  the seed and the step), the config, the run description (``Trainer.run``) and a SHA-256 of the
  model as built. ``fit(resume=True)`` continues bit-exactly from the newest intact checkpoint (a
  damaged one is named on stderr and the previous one used) and refuses one of another config,
  run, model, process count or parameters (ValueError); another ``max_steps``/``epochs`` extends
  the run (unless the LR schedule depends on the length). A fresh ``fit()`` refuses a folder that
  already holds a checkpoint (FileExistsError). A full disk stops training with one ``OSError``
  line naming the file; no temporary file is left and earlier checkpoints are untouched.
* A NaN/inf loss or gradient stops training with ``FloatingPointError`` naming the step (before
  the update, so neither the weights nor the checkpoint are spoiled).
* Multi-GPU / multi-node: ``accelerate launch -m geocorr.cli train ...`` (or torchrun); the
  trainer averages gradients over processes itself and shards the sample order, so one CPU
  process runs the very same code path (several CPU processes: ``ACCELERATE_USE_CPU=true``).

Helpers: :mod:`.augment` (random resized crop, flip with a keypoint permutation, colour jitter,
blur, solarize — keypoints and masks carried along, every draw from a generator),
:mod:`.splits` (``split_by_images``: image-disjoint train/validation split),
:mod:`.validation` (``pck_validator(dataset)``: a ``validate`` giving PCK with the evaluation
runner), :mod:`.sam_masks` (object masks from SAM prompted by keypoints).
"""
from .checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig
from .sampler import ResumableSampler, sample_seed
from .trainer import (
    IndexedData,
    SampledData,
    Trainable,
    Trainer,
    TrainingData,
    default_optimizer,
    default_scheduler,
)

__all__ = [
    "CheckpointError",
    "IndexedData",
    "ResumableSampler",
    "SampledData",
    "TrainConfig",
    "Trainable",
    "Trainer",
    "TrainingData",
    "default_optimizer",
    "default_scheduler",
    "list_checkpoints",
    "load_checkpoint",
    "sample_seed",
    "save_checkpoint",
]
