"""GECO's training recipe (official: reginehartwig/geco @ 03c8314, scripts/train_pairs.py).

:mod:`.recipe` (config, trainable wrapper, :func:`build_trainer`), :mod:`.data` (samples, epoch
slices, masks), :mod:`.sources` (per-dataset settings: padded keypoint count, PF-Pascal's ``.mat``
keypoints). ``geocorr train --method geco`` uses ``CONFIG`` and :func:`build_trainer`.
"""
from .data import GecoPairs, attach_masks, collate, keypoint_hull_tokens
from .recipe import ADAPTER_FILE, GecoTrainConfig, GecoTraining, build_trainer
from .sources import GecoSource, geco_source, pf_pascal_training_pairs

CONFIG = GecoTrainConfig  # the config class ``geocorr train`` builds
JOINT_TRAINING = True  # ``geocorr train`` may pass several datasets (GECO trains on three jointly)

__all__ = [
    "ADAPTER_FILE",
    "CONFIG",
    "JOINT_TRAINING",
    "GecoPairs",
    "GecoSource",
    "GecoTrainConfig",
    "GecoTraining",
    "attach_masks",
    "build_trainer",
    "collate",
    "geco_source",
    "keypoint_hull_tokens",
    "pf_pascal_training_pairs",
]
