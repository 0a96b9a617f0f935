"""Point tracking in a video by feature matching (GECO's video demo).

The query points' features are taken from the first frame; in every later frame each query is
matched to the most similar token (cosine similarity, argmax, optionally refined by a window
soft-argmax). With ``momentum > 0`` the query feature follows the object over time:
``q_t = normalise((1 - m) q_{t-1} + m f_t(p_t))``.
"""
from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..matching import argmax_match, sample_features, window_soft_argmax
from ..methods.base import DenseMatcherProtocol, Matcher, PairContext, check_points, is_dense, match_pair
from ..viz import draw_points, point_colors
from .video import VideoWriter, frame_count, frame_rate, read_frames

__all__ = ["PointTracker", "TrackingSummary", "track_video"]


class PointTracker:
    """Follow N points of a first frame through later frames.

    model: a geocorr model. A dense method's frames are processed in batches against the first
        frame's query features; any other method matches each frame with its own
        ``match(first, frame, points, context)`` (SemAlign3D aligns every frame).
    first_frame: (H, W, 3) uint8 frame the points are given in; points: (N, 2) (x, y) pixels.
    momentum: weight of the newest feature in the running query (0 = always the first frame's).
    refine: "argmax" (token centres, GECO) or "soft" (window soft-argmax, sub-token positions).
    window, temperature: of the soft-argmax (GeoAware's zero-shot 11×11 cells, 0.02).
    context: what a non-dense method needs about the (first frame, frame) pairs, e.g. the category.
    """

    def __init__(self, model: Matcher, first_frame: np.ndarray, points, momentum: float = 0.0,
                 refine: str = "argmax", window: int = 11, temperature: float = 0.02,
                 context: PairContext | None = None):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        if refine not in ("argmax", "soft"):
            raise ValueError(f"refine must be 'argmax' or 'soft', got {refine!r}")
        self.model = model
        self.first_frame = first_frame
        self.points = check_points(points, first_frame.shape[:2], name="points (of the first frame)")
        self.momentum, self.refine = momentum, refine
        self.window, self.temperature = window, temperature
        self.context = context
        self.dense_model = model if is_dense(model) else None  # the dense capability, declared by the model
        self.dense = self.dense_model is not None
        if not self.dense and momentum > 0:
            raise ValueError(f"momentum needs a model with dense features; {type(model).__name__} has none")
        self.query = self._query() if self.dense else None

    @torch.inference_mode()
    def _query(self) -> torch.Tensor:
        assert self.dense_model is not None
        feats = self.dense_model.features([self.first_frame])
        grid = feats.grids[0]
        h, w = grid.grid_hw
        cells = grid.image_to_grid(self.points.to(feats.dense.device))[None]
        return F.normalize(sample_features(feats.dense[..., :h, :w], cells)[0], dim=-1)  # (N, C)

    def __call__(self, frames: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Track in a batch of consecutive frames: -> points (T, N, 2) in pixels, scores (T, N).

        A method without the dense capability runs its own ``match`` (with autograd available:
        SemAlign3D optimises an alignment per frame).
        """
        if self.dense_model is None:
            out = [match_pair(self.model, self.first_frame, f, self.points, self.context) for f in frames]
            points = torch.stack([m.points.float().cpu() for m in out])
            return points, torch.stack([m.scores.float().cpu() for m in out])
        return self._track_dense(self.dense_model, frames)

    @torch.inference_mode()
    def _track_dense(self, model: DenseMatcherProtocol,
                     frames: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.query is not None
        feats = model.features(list(frames))
        points, scores = [], []
        for dense, grid in zip(feats.dense, feats.grids, strict=True):
            h, w = grid.grid_hw
            r0, r1, c0, c1 = grid.content_tokens
            target = F.normalize(dense[:, r0:r1, c0:c1], dim=0)  # padding tokens never match
            sim = torch.einsum("nc,chw->nhw", self.query, target)[None]  # (1, N, ch, cw)
            cells, best = argmax_match(sim)
            if self.refine == "soft":
                cells = window_soft_argmax(sim, self.window, self.temperature)
            cells = cells + cells.new_tensor([c0, r0])  # content block -> token grid
            if self.momentum > 0:
                new = F.normalize(sample_features(dense[None, :, :h, :w], cells)[0], dim=-1)
                self.query = F.normalize((1 - self.momentum) * self.query + self.momentum * new, dim=-1)
            points.append(grid.grid_to_image(cells[0]))
            scores.append(best[0])
        return torch.stack(points).cpu(), torch.stack(scores).cpu()  # one copy to the host per batch


@dataclass
class TrackingSummary:
    """What :func:`track_video` did: frames processed, seconds spent, frames per second."""

    frames: int
    seconds: float
    model_seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds > 0 else float("inf")


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def track_video(model, video: str | Path, points, out: str | Path | None = None,
                csv_path: str | Path | None = None, batch_size: int = 8, max_frames: int | None = None,
                trail: int = 15, progress: bool = True, **tracker_conf) -> TrackingSummary:
    """Track ``points`` (N, 2) of the first frame of ``video`` through it, streaming.

    out: annotated video (points in their colours with a trail of the last ``trail`` positions).
    csv_path: the tracks, one row per frame and point: frame, time_s, point, x, y, score (frame 0:
        the given points, score 1).
    batch_size: frames per ``model.features`` call. tracker_conf: options of :class:`PointTracker`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    fps = frame_rate(video)
    writer = VideoWriter(out, fps) if out is not None else None  # checks the file name before any work
    with ExitStack() as stack:
        frames = read_frames(video)
        stack.callback(frames.close)
        first = next(frames, None)
        if first is None:
            raise ValueError(f"video: {video} contains no frames")

        def stream() -> Iterator[np.ndarray]:
            yield first
            for i, frame in enumerate(frames, start=1):
                if max_frames is not None and i >= max_frames:
                    return
                yield frame

        start = time.perf_counter()
        tracker = PointTracker(model, first, points, **tracker_conf)
        colors = point_colors(len(tracker.points))
        if writer is not None:
            stack.enter_context(writer)
        rows = None
        if csv_path is not None:
            rows = csv.writer(stack.enter_context(open(csv_path, "w", newline="")))
            rows.writerow(["frame", "time_s", "point", "x", "y", "score"])
        total = frame_count(video)
        if max_frames is not None:
            total = max_frames if total is None else min(total, max_frames)
        bar = stack.enter_context(tqdm(total=total, unit="frame", desc="tracking", disable=not progress))
        history: list[np.ndarray] = []
        count, model_seconds = 0, 0.0
        for batch in _batches(stream(), batch_size):
            t0 = time.perf_counter()
            pts, scores = tracker(batch)
            model_seconds += time.perf_counter() - t0
            for frame, p, s in zip(batch, pts.numpy(), scores.numpy(), strict=True):
                if count == 0:  # the first frame: the given points themselves
                    p, s = tracker.points.numpy(), np.ones(len(p), dtype=np.float32)
                if rows is not None:
                    for k, ((x, y), score) in enumerate(zip(p, s, strict=True)):
                        rows.writerow([count, f"{count / float(fps):.4f}", k, f"{x:.2f}", f"{y:.2f}", f"{score:.4f}"])
                if writer is not None:
                    history = (history + [p])[-trail:] if trail > 0 else []
                    trails = list(np.stack(history, axis=1)) if history else None
                    writer.write(draw_points(frame, p, colors, radius=max(3, frame.shape[0] // 80), trails=trails))
                count += 1
            bar.update(len(batch))
    return TrackingSummary(count, time.perf_counter() - start, model_seconds)
