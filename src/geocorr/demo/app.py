"""Interactive browser demo (Gradio): click a point in the source, see its match in the target.

The page shows, for every clicked point, the predicted target point with its score, the
similarity heat map of the last point over the target, and optionally the *flipped twin*: where
the point's mirror image goes (the query taken from the horizontally flipped source). A method
that tells left from right puts the two at different places (left eye vs right eye); a method
that does not puts them on top of each other.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ..grid import TokenGrid
from ..images import ImageTooLargeError, open_image
from ..methods.base import DenseMatcher, Features, Matcher, Matches, PairContext, is_dense, match_pair
from ..viz import draw_points, heatmap_overlay, point_colors

__all__ = ["EXAMPLES_DIR", "DemoMatch", "PointMatcher", "build_app", "example_pairs", "render", "summary"]

EXAMPLES_DIR = Path(__file__).parent / "examples"
TWIN_NOTE = "rings: where each point's flipped twin goes"


def example_pairs() -> list[list[str]]:
    """The bundled PF-Willow pairs as [source, target] paths (``<name>_a.jpg``, ``<name>_b.jpg``)."""
    return [[str(a), str(a.with_name(a.name.replace("_a.", "_b.")))] for a in sorted(EXAMPLES_DIR.glob("*_a.jpg"))]


@dataclass
class DemoMatch:
    """What the page shows for N clicked points.

    points: (N, 2) predicted target points (x, y); scores: (N,).
    twins: (N, 2) target points of the flipped twins, or None.
    similarity: (h, w) similarity of the last point on ``grid`` (None for methods without one).
    """

    points: np.ndarray
    scores: np.ndarray
    twins: np.ndarray | None = None
    similarity: torch.Tensor | None = None
    grid: TokenGrid | None = None


class PointMatcher:
    """Match clicked points with any geocorr model (through :func:`match_pair`), keeping the
    features of the last few images for dense methods.

    context: what the method needs about the pair (e.g. the category of a per-class SemAlign3D).
    """

    def __init__(self, model: Matcher, cache_size: int = 6, context: PairContext | None = None):
        self.model = model
        self.dense_model = model if is_dense(model) else None  # the dense capability, declared by the model
        self.cache_size = cache_size
        self.context = context
        self._cache: OrderedDict[str, Features] = OrderedDict()

    def _features(self, image: np.ndarray) -> Features:
        assert self.dense_model is not None  # match_pair asks dense methods only
        key = hashlib.sha1(str(image.shape).encode() + image.tobytes()).hexdigest()
        if key not in self._cache:
            self._cache[key] = self.dense_model.features([image])
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]

    def _match(self, source: np.ndarray, target: np.ndarray, points) -> tuple[Matches, TokenGrid | None]:
        matches = match_pair(self.model, source, target, points, self.context, features_of=self._features)
        return matches, self._features(target).grids[0] if self.dense_model is not None else None

    def __call__(self, source: np.ndarray, target: np.ndarray, points, twin: bool = False) -> DemoMatch:
        """source, target: (H, W, 3) uint8; points: (N, 2) (x, y) in source pixels."""
        matches, grid = self._match(source, target, points)
        twins = None
        if twin:
            mirrored = np.asarray(points, dtype=np.float64) * [-1, 1] + [source.shape[1] - 1, 0]
            twins = self._match(np.ascontiguousarray(source[:, ::-1]), target, mirrored)[0].points.cpu().numpy()
        similarity = matches.similarity[-1].cpu() if matches.similarity is not None else None
        return DemoMatch(matches.points.cpu().numpy(), matches.scores.cpu().numpy(), twins, similarity, grid)


# The pictures the page draws are at most this many pixels on a side: drawing the heat map over a
# 7000² upload (under the upload cap) at full size peaked at 8.6 GB and took 24 s (issue 17 item 11).
# The report keeps the points in the uploaded image's pixels.
VIEW_MAX_SIDE = 1024


def _view(image: np.ndarray, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
    """(H, W, 3) uint8 -> the picture shown (box-filtered to at most ``max_side`` on its longest side)
    and (sx, sy): view pixels per image pixel."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, (1.0, 1.0)
    size = (max(1, round(w * max_side / max(h, w))), max(1, round(h * max_side / max(h, w))))
    view = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX, reducing_gap=2.0))
    return view, (size[0] / w, size[1] / h)


def _to_view(points, scale: tuple[float, float]) -> np.ndarray:
    """(N, 2) image pixel centres -> view pixel centres."""
    return (np.asarray(points, dtype=np.float64).reshape(-1, 2) + 0.5) * scale - 0.5


def render(source: np.ndarray, target: np.ndarray, queries, result: DemoMatch,
           max_side: int = VIEW_MAX_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The two pictures of the page: source with the clicked points, target with heat map and matches,
    each down-scaled to at most ``max_side`` pixels on a side (points and heat map at their places)."""
    (left, src_scale), (right, tgt_scale) = _view(source, max_side), _view(target, max_side)
    colors = point_colors(len(queries))
    radius = max(4, max(right.shape[:2]) // 60)
    left = draw_points(left, _to_view(queries, src_scale), colors, radius=radius)
    if result.similarity is not None:
        grid = None if result.grid is None else replace(result.grid, image_hw=right.shape[:2])
        right = heatmap_overlay(right, result.similarity, grid=grid, alpha=0.45)
    if result.twins is not None:
        right = draw_points(right, _to_view(result.twins, tgt_scale), colors, radius=radius + 3, hollow=True)
    return left, draw_points(right, _to_view(result.points, tgt_scale), colors, radius=radius)


def summary(queries, result: DemoMatch) -> str:
    """One line per point: '#1 (x, y) -> (x', y')  score s  [twin -> (x'', y'')]'."""
    lines = []
    for k, ((qx, qy), (x, y), s) in enumerate(zip(queries, result.points, result.scores, strict=True), start=1):
        line = f"#{k} ({qx:.0f}, {qy:.0f}) -> ({x:.1f}, {y:.1f})  score {s:.3f}"
        if result.twins is not None:
            line += f"  twin -> ({result.twins[k - 1][0]:.1f}, {result.twins[k - 1][1]:.1f})"
        lines.append(line)
    return "\n".join(lines)


# Largest upload the demo decodes: 50 Mpx covers 48-Mpx phone photos; a 10000² upload (100 Mpx) peaked
# at 5 GB (issue 17 item 11). Users with larger images downscale them first (the message says so).
UPLOAD_MAX_PIXELS = 50_000_000


def read_upload(payload: dict | None, label: str, max_pixels: int = UPLOAD_MAX_PIXELS,
                min_side: int = 1) -> np.ndarray | None:
    """An uploaded image (Gradio's file payload) as (H, W, 3) uint8 RGB, or None when there is none.

    Read with :func:`geocorr.images.open_image` (grey, 16-bit, palette and alpha images converted to
    RGB, EXIF rotation applied); a file that is not an image, or has more than ``max_pixels``
    pixels, or a side under ``min_side`` (the model's patch), raises ``gr.Error`` naming the upload
    (shown in the page).
    """
    if payload is None:
        return None
    name = payload.get("orig_name") or Path(payload["path"]).name
    try:
        image = np.asarray(open_image(payload["path"], f"{label} '{name}'", max_pixels=max_pixels))
    except ImageTooLargeError as err:
        w, h = err.size
        raise gr.Error(f"{label}: '{name}' is {w}×{h} = {w * h:,} pixels; the demo takes images up to "
                       f"{max_pixels:,} pixels ({max_pixels / 1e6:g} Mpx): downscale it and upload again.") from None
    except (ValueError, OSError):
        raise gr.Error(f"{label}: '{name}' is not an image file that can be read; "
                       "upload a JPEG, PNG or WebP image.") from None
    if min(image.shape[:2]) < min_side:
        raise gr.Error(f"{label}: '{name}' is {image.shape[1]}×{image.shape[0]} pixels; the model needs at least "
                       f"{min_side} pixels on each side (one patch): upload a larger image.")
    return image


def build_app(model: Matcher, title: str = "geocorr: semantic correspondence", context: PairContext | None = None):
    """The Gradio page for ``model`` (anything :func:`geocorr.load` returns). Launch with ``.launch()``.

    context: what the method needs about every pair (e.g. the category of a per-class SemAlign3D).
    """
    matcher = PointMatcher(model, context=context)
    min_side = model.backbone.patch if isinstance(model, DenseMatcher) else 1

    def compute(source, target, points, twin):
        source = read_upload(source, "Source", min_side=min_side)
        target = read_upload(target, "Target", min_side=min_side)
        if source is None or target is None:
            raise gr.Error("Upload or pick both a source and a target image first.")
        try:
            result = matcher(source, target, points, twin)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        left, right = render(source, target, points, result)
        text = summary(points, result)
        return left, right, text + (f"\n({TWIN_NOTE})" if twin else "")

    def on_click(source, target, points, several, twin, evt: gr.SelectData):
        points = (points if several else []) + [(float(evt.index[0]), float(evt.index[1]))]
        return (points, *compute(source, target, points, twin))

    def on_twin(source, target, points, twin):
        if not points:
            return gr.update(), gr.update(), gr.update()
        return compute(source, target, points, twin)

    def clear():
        return [], None, None, ""

    def check_source(image):
        read_upload(image, "Source", min_side=min_side)

    def check_target(image):
        read_upload(image, "Target", min_side=min_side)

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"## {title}\nUpload or pick two images, then **click a point in the source**.")
        points = gr.State([])
        with gr.Row():
            source = gr.Image(label="Source (click a point)", sources=["upload"], elem_id="source")
            target = gr.Image(label="Target", sources=["upload"], elem_id="target")
        with gr.Row():
            several = gr.Checkbox(label="several points", value=False, elem_id="several")
            twin = gr.Checkbox(label="show flipped twin (left/right awareness)", value=True, elem_id="twin")
            reset = gr.Button("Clear points", elem_id="clear")
        with gr.Row():
            source_view = gr.Image(label="Clicked points", interactive=False, elem_id="source_view")
            target_view = gr.Image(label="Match and similarity", interactive=False, elem_id="target_view")
        report = gr.Textbox(label="Matches", lines=3, interactive=False, elem_id="report")
        gr.Examples(example_pairs(), inputs=[source, target], label="PF-Willow examples")

        # preprocess=False: the handlers read the uploads themselves (read_upload) to report bad files.
        outputs = [points, source_view, target_view, report]
        source.select(on_click, [source, target, points, several, twin], outputs, preprocess=False)
        twin.change(on_twin, [source, target, points, twin], outputs[1:], preprocess=False)
        source.upload(check_source, [source], None, preprocess=False)
        target.upload(check_target, [target], None, preprocess=False)
        for event in (source.change, target.change, reset.click):
            event(clear, None, outputs, queue=False)  # at once, before any click that follows
    return app
