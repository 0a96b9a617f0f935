"""Pictures of correspondences: matplotlib figures for reports and raster overlays for the demo/video.

All coordinates are (x, y) image pixels, pixel-centre convention (see :mod:`geocorr.grid`):
``(0, 0)`` is the centre of the top-left pixel. Points that are NaN (invisible keypoints) are
skipped. Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot global
state), so they are safe to build in a server thread; save them with ``fig.savefig(path)``.

Large images are drawn down-scaled (longest side at most :data:`DRAW_MAX_SIDE` pixels, antialiased)
while every coordinate stays in the original image's pixels, so a 10000² input costs a few MB
to draw. Heat maps are sharpened by default: ``softmax(similarity / T)`` over the target tokens
with ``T =`` :data:`HEATMAP_TEMPERATURE`, so the peak stands out instead of the whole object
being warm (the raw cosine range is flat over an object).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from .grid import TokenGrid
from .images import ImageLike, load_image

__all__ = [
    "CORRECT_COLOR",
    "DRAW_MAX_SIDE",
    "HEATMAP_TEMPERATURE",
    "WRONG_COLOR",
    "draw_points",
    "figure_to_array",
    "heatmap_overlay",
    "pck_title",
    "plot_keypoints",
    "plot_match_summary",
    "plot_matches",
    "plot_pck_curves",
    "plot_similarity",
    "point_colors",
    "sharpen",
]

PointsLike = torch.Tensor | np.ndarray | Sequence[Sequence[float]]

CORRECT_COLOR = (0.0, 0.75, 0.0)  # green: prediction within the PCK threshold
WRONG_COLOR = (0.9, 0.0, 0.0)  # red: prediction outside it
DRAW_MAX_SIDE = 1024  # images are drawn with at most this many pixels on their longest side
# softmax temperature of the sharpened heat maps: GeoAware's soft-argmax temperature (0.02 over
# cosine similarities, Junyi42/GeoAware-SC, see docs/published-settings.md) and geocorr's
# matching.soft_argmax default; argmax methods have none of their own.
HEATMAP_TEMPERATURE = 0.02
THRESHOLDS = {"image": "α·max(H, W) of the target image", "bbox": "α·max(h, w) of the target object box"}


def _image_array(img: ImageLike, name: str, max_side: int | None = DRAW_MAX_SIDE) -> tuple[np.ndarray, tuple[int, int]]:
    """Any image input -> ((h, w, 3) float32 array in [0, 1] for imshow, original (H, W)).

    The array is down-scaled (antialiased) so that its longest side is at most ``max_side``;
    draw it with :func:`_show_image` at the original size's extent.
    """
    x = load_image(img, name)
    hw = (int(x.shape[1]), int(x.shape[2]))
    if max_side is not None and max(hw) > max_side:
        scale = max_side / max(hw)
        size = (max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale)))
        y = x[None]
        k = int(1 / scale)
        if k >= 2:  # box-filter by an integer factor first: 10x faster than antialiasing 10000² directly
            y = F.avg_pool2d(y, k, ceil_mode=True)
        x = F.interpolate(y, size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
    return x.permute(1, 2, 0).cpu().numpy(), hw


def _points_array(points: PointsLike, name: str) -> np.ndarray:
    """(N, 2) points as a float64 array; raises ValueError on any other shape."""
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().double().numpy()
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 2:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: expected points of shape (N, 2) as (x, y), got shape {arr.shape}")
    return arr


def _heatmap_array(heatmap: torch.Tensor | np.ndarray, name: str = "heatmap") -> np.ndarray:
    if isinstance(heatmap, torch.Tensor):
        heatmap = heatmap.detach().cpu().double().numpy()
    arr = np.asarray(heatmap, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty (h, w) map, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


def point_colors(n: int, cmap: str = "hsv") -> np.ndarray:
    """n distinct RGB colours (n, 3) in [0, 1], evenly spaced along a cyclic colour map."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return colormaps[cmap](np.arange(n) / max(n, 1))[:, :3]


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        root = ax.get_figure(root=True)
        if not isinstance(root, Figure):
            raise ValueError("ax: the axes belong to no figure")
        return root, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _show_image(ax: Axes, img: np.ndarray, hw: tuple[int, int] | None = None, x0: float = 0.0,
                scale: float = 1.0, limits: bool = True) -> None:
    """imshow ``img`` covering the pixels of an (H, W) image (``hw``, default its own size).

    Pixel (x, y) of that image lands at (x0 + scale·x, scale·y) in the axes.
    """
    h, w = hw if hw is not None else img.shape[:2]
    ax.imshow(img, extent=(x0 - 0.5 * scale, x0 + (w - 0.5) * scale, (h - 0.5) * scale, -0.5 * scale),
              interpolation="bilinear")
    if limits:
        ax.set_xlim(x0 - 0.5 * scale, x0 + (w - 0.5) * scale)
        ax.set_ylim((h - 0.5) * scale, -0.5 * scale)
    ax.set_axis_off()


def _label(ax: Axes, xy: np.ndarray, text: str, color) -> None:
    """A small number next to a point, on a box of the point's colour."""
    ax.annotate(text, (float(xy[0]), float(xy[1])), xytext=(4, -4), textcoords="offset points", fontsize=7,
                color="black", bbox={"boxstyle": "round,pad=0.15", "fc": color, "alpha": 0.85, "lw": 0})


def plot_matches(
    img0: ImageLike,
    img1: ImageLike,
    pts0: PointsLike,
    pts1: PointsLike,
    correct: PointsLike | Sequence[bool] | None = None,
    *,
    gap: float | None = None,
    linewidth: float = 1.5,
    markersize: float = 5.0,
    numbers: bool = True,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Source and target side by side; every match is a line from its source point to its target point.

    img0, img1: images (see :func:`geocorr.images.load_image`; float (H, W, 3) arrays in [0, 1] also work).
    pts0: (N, 2) source points, pts1: (N, 2) matched target points, pixels of their own image.
    correct: optional (N,) bools (e.g. within the PCK threshold): lines are green where True and red
        where False. Without it every match gets its own colour.
    numbers: label both ends of match k with k (1-based, the order of the points).
    gap: white space between the two images, in pixels of img0 (default 2% of its width). Large
        images are drawn down-scaled (module docstring).
    Returns the figure: one axes in the pixels of img0; the target is drawn at the source's height
    (scale ``s = H0 / H1``, as LightGlue's viz2d shows a pair), right of it: its pixel (x, y) is at
    ``(W0 + gap + s·x, s·y)``.
    """
    a, hw0 = _image_array(img0, "img0")
    b, hw1 = _image_array(img1, "img1")
    p0, p1 = _points_array(pts0, "pts0"), _points_array(pts1, "pts1")
    if len(p0) != len(p1):
        raise ValueError(f"pts0 and pts1 must have the same length, got {len(p0)} and {len(p1)}")
    gap = 0.02 * hw0[1] if gap is None else gap
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    if correct is None:
        colors = point_colors(len(p0))
    else:
        ok = np.asarray(correct.cpu() if isinstance(correct, torch.Tensor) else correct)
        if ok.shape != (len(p0),):
            raise ValueError(f"correct: expected shape ({len(p0)},), got {ok.shape}")
        colors = np.where(ok.astype(bool)[:, None], CORRECT_COLOR, WRONG_COLOR)

    scale = hw0[0] / hw1[0]
    height, width = hw0[0], hw0[1] + gap + hw1[1] * scale
    fig, ax = _new_axes(ax, (8.0, max(2.0, 8.0 * height / width)))
    x0 = hw0[1] + gap
    _show_image(ax, a, hw0, limits=False)
    _show_image(ax, b, hw1, x0=x0, scale=scale, limits=False)
    ax.set_xlim(-0.5, width - 0.5 * scale)
    ax.set_ylim(height - 0.5, -0.5)
    for k, (s, t, c) in enumerate(zip(p0, p1 * scale + [x0, 0.0], colors, strict=True)):
        ax.plot([s[0], t[0]], [s[1], t[1]], "-o", color=c, linewidth=linewidth, markersize=markersize,
                markeredgecolor="black", markeredgewidth=0.5)
        if numbers:
            _label(ax, s, str(k + 1), c)
            _label(ax, t, str(k + 1), c)
    if title:
        ax.set_title(title)
    return fig


def _check_grid(grid: TokenGrid, hw: tuple[int, ...]) -> None:
    if tuple(grid.grid_hw) != tuple(hw):
        raise ValueError(f"heatmap: shape {tuple(hw)} does not match the token grid {grid.grid_hw}")


def _grid_extent(grid: TokenGrid | None, hw: tuple[int, ...], image_hw: tuple[int, ...]) -> tuple:
    """imshow extent (left, right, bottom, top) in image pixels of an (h, w) map."""
    if grid is None:
        return (-0.5, image_hw[1] - 0.5, image_hw[0] - 0.5, -0.5)
    _check_grid(grid, hw)
    corners = grid.grid_to_image(torch.tensor([[-0.5, -0.5], [hw[1] - 0.5, hw[0] - 0.5]], dtype=torch.float64))
    (x0, y0), (x1, y1) = corners.tolist()
    return (x0, x1, y1, y0)


def sharpen(heatmap: torch.Tensor | np.ndarray, temperature: float | None = HEATMAP_TEMPERATURE) -> np.ndarray:
    """``softmax(heatmap / temperature)`` over all cells of an (h, w) map (None: the map unchanged).

    The cells sum to 1; padding tokens (similarity -2 in :class:`~geocorr.methods.base.DenseMatcher`)
    get ~0.
    """
    heat = _heatmap_array(heatmap)
    if temperature is None:
        return heat
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (or None: raw similarities), got {temperature}")
    z = heat / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def _draw_heatmap(ax: Axes, heat: np.ndarray, grid: TokenGrid | None, image_hw: tuple[int, int], *,
                  temperature: float | None, alpha: float, cmap: str):
    """Overlay an (h, w) map on the image already drawn in ``ax`` (sharpened unless temperature is None)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    extent = _grid_extent(grid, heat.shape, image_hw)
    shown = sharpen(heat, temperature)
    vmin, vmax = (0.0, float(shown.max())) if temperature is not None else (None, None)
    return ax.imshow(shown, extent=extent, cmap=cmap, alpha=alpha, interpolation="bilinear", vmin=vmin, vmax=vmax)


def _heat_label(temperature: float | None) -> str:
    return "similarity" if temperature is None else f"softmax(similarity / {temperature:g})"


def plot_similarity(
    img: ImageLike,
    heatmap: torch.Tensor | np.ndarray,
    point: PointsLike | None = None,
    *,
    grid: TokenGrid | None = None,
    source: ImageLike | None = None,
    source_point: PointsLike | None = None,
    twin_point: PointsLike | None = None,
    temperature: float | None = HEATMAP_TEMPERATURE,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str | None = None,
) -> Figure:
    """Similarity heat map over the target image, with the predicted point marked.

    img: target image. heatmap: (h, w) similarities; with ``grid`` it lies on that token grid
        (e.g. one map of ``Matches.similarity``), padding included; without it, it spans the image.
    point: optional (2,) or (1, 2) predicted target point (white star).
    source, source_point: optionally the source image and the query point, drawn in a left panel.
    twin_point: optional target point of the query's symmetric twin (cyan cross), to show whether the
        method tells left from right.
    temperature: the map drawn is ``softmax(heatmap / temperature)`` over the cells (see
        :func:`sharpen`), coloured from 0 to its peak; None draws the raw similarities.
    """
    tgt, tgt_hw = _image_array(img, "img")
    heat = _heatmap_array(heatmap)
    fig = Figure(figsize=(8.0 if source is not None else 4.5, 4.0), layout="constrained")
    axes = fig.subplots(1, 2 if source is not None else 1, squeeze=False)[0]
    if source is not None:
        _show_image(axes[0], *_image_array(source, "source"))
        if source_point is not None:
            q = _points_array(source_point, "source_point")
            axes[0].plot(q[:, 0], q[:, 1], "*", color="white", markeredgecolor="black", markersize=14)
        axes[0].set_title("source")
    ax = axes[-1]
    _show_image(ax, tgt, tgt_hw)
    shown = _draw_heatmap(ax, heat, grid, tgt_hw, temperature=temperature, alpha=alpha, cmap=cmap)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label=_heat_label(temperature))
    if point is not None:
        p = _points_array(point, "point")
        ax.plot(p[:, 0], p[:, 1], "*", color="white", markeredgecolor="black", markersize=14)
    if twin_point is not None:
        t = _points_array(twin_point, "twin_point")
        ax.plot(t[:, 0], t[:, 1], "X", color="cyan", markeredgecolor="black", markersize=10)
    ax.set_xlim(-0.5, tgt_hw[1] - 0.5)
    ax.set_ylim(tgt_hw[0] - 0.5, -0.5)
    ax.set_title(title or "target")
    return fig


def plot_match_summary(
    source: ImageLike,
    target: ImageLike,
    points: PointsLike,
    matches: PointsLike,
    *,
    scores: Sequence[float] | torch.Tensor | None = None,
    similarity: torch.Tensor | np.ndarray | None = None,
    grid: TokenGrid | None = None,
    temperature: float | None = HEATMAP_TEMPERATURE,
    max_heatmaps: int = 4,
    title: str | None = None,
) -> Figure:
    """The picture of one ``geocorr match``: every match, numbered, and per-query heat maps.

    Top: :func:`plot_matches` of all N points (numbered 1…N). Below, when ``similarity`` (N, h, w)
    on the target's token ``grid`` is given: the sharpened heat map (see :func:`sharpen`) of the
    first ``max_heatmaps`` queries over the target, each with its match (white star) and number.
    scores: (N,) match scores, shown in the heat-map titles.
    """
    p0, p1 = _points_array(points, "points"), _points_array(matches, "matches")
    if len(p0) != len(p1):
        raise ValueError(f"points and matches must have the same length, got {len(p0)} and {len(p1)}")
    if max_heatmaps < 0:
        raise ValueError(f"max_heatmaps must be >= 0, got {max_heatmaps}")
    sims = None
    if similarity is not None:
        sims = (similarity.detach().cpu().double().numpy() if isinstance(similarity, torch.Tensor)
                else np.asarray(similarity))
        if sims.ndim != 3 or len(sims) != len(p0):
            raise ValueError(f"similarity: expected ({len(p0)}, h, w), got shape {sims.shape}")
    score = None if scores is None else np.asarray(scores.cpu() if isinstance(scores, torch.Tensor) else scores, float)
    shown = 0 if sims is None else min(len(p0), max_heatmaps)
    src_hw = tuple(load_image(source, "source").shape[1:])
    tgt, tgt_hw = _image_array(target, "target", max_side=DRAW_MAX_SIDE // 2)
    width = 8.0  # inches; rows sized to the images' aspect so there is no empty band
    top = width / (src_hw[1] / src_hw[0] + tgt_hw[1] / tgt_hw[0]) + 0.4  # both drawn at the same height
    bottom = (width / max(shown, 1)) * tgt_hw[0] / tgt_hw[1] + 0.4 if shown else 0.0
    fig = Figure(figsize=(width, top + bottom + (0.3 if shown else 0.0)), layout="constrained")
    gs = fig.add_gridspec(2 if shown else 1, max(shown, 1), height_ratios=[top, bottom] if shown else [1.0])
    plot_matches(source, target, p0, p1, ax=fig.add_subplot(gs[0, :]), title=title)
    if sims is not None and shown:
        colors = point_colors(len(p0))
        for k in range(shown):
            ax = fig.add_subplot(gs[1, k])
            _show_image(ax, tgt, tgt_hw)
            _draw_heatmap(ax, sims[k], grid, tgt_hw, temperature=temperature, alpha=0.55, cmap="jet")
            ax.plot(p1[k, 0], p1[k, 1], "*", color="white", markeredgecolor="black", markersize=11)
            _label(ax, p1[k], str(k + 1), colors[k])
            ax.set_xlim(-0.5, tgt_hw[1] - 0.5)
            ax.set_ylim(tgt_hw[0] - 0.5, -0.5)
            ax.set_title(f"#{k + 1}" + (f" score {score[k]:.3f}" if score is not None else ""), fontsize=8)
        if shown < len(p0):
            fig.text(0.99, 0.01, f"heat maps of the first {shown} of {len(p0)} queries", ha="right", fontsize=7)
        fig.suptitle(f"heat maps: {_heat_label(temperature)} over target tokens", fontsize=8, y=0.0, va="bottom")
    return fig


def pck_title(method: str, dataset: str, protocol: str, threshold: str) -> str:
    """"<method> on <dataset> · protocol <protocol> · PCK@α, threshold <threshold>".

    threshold: a normalisation name (``image`` / ``bbox``, see :data:`THRESHOLDS`) or free text.
    """
    return f"{method} on {dataset} · protocol {protocol} · PCK@α, threshold {THRESHOLDS.get(threshold, threshold)}"


def plot_pck_curves(
    alphas: Sequence[float],
    pck: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    method: str | None = None,
    dataset: str | None = None,
    protocol: str | None = None,
    threshold: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """PCK (%) against the threshold factor α, one line per curve.

    alphas: (A,) increasing thresholds, e.g. (0.01, 0.05, 0.10, 0.15).
    pck: curve label -> (A,) PCK values in percent [0, 100].
    method, dataset, protocol, threshold: give all four for the title :func:`pck_title` (what was
        evaluated, on what, how, and what α multiplies); ``title`` replaces it.
    """
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or (np.diff(a) <= 0).any():
        raise ValueError(f"alphas: expected a non-empty increasing 1-D sequence, got {alphas!r}")
    if not pck:
        raise ValueError("pck: no methods given")
    described = (method, dataset, protocol, threshold)
    if title is None and any(v is not None for v in described):
        if any(v is None for v in described):
            raise ValueError("plot_pck_curves: give method, dataset, protocol and threshold together (or title)")
        title = pck_title(method, dataset, protocol, threshold)  # type: ignore[arg-type]
    fig, ax = _new_axes(ax, (6.0, 3.8))
    for label, values in pck.items():
        v = np.asarray(values, dtype=np.float64)
        if v.shape != a.shape:
            raise ValueError(f"pck[{label!r}]: expected {a.size} values (one per alpha), got shape {v.shape}")
        if ((v < 0) | (v > 100)).any():
            raise ValueError(f"pck[{label!r}]: values must be percentages in [0, 100], got {v.tolist()}")
        ax.plot(a, v, "-o", label=label)
    base = THRESHOLDS.get(threshold, threshold) if threshold is not None else "α · size"
    ax.set_xlabel(f"α (threshold = {base})")
    ax.set_ylabel("PCK (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9, wrap=True)
    return fig


def plot_keypoints(
    img: ImageLike,
    points: PointsLike,
    names: Sequence[str] | None = None,
    *,
    visible: Sequence[bool] | np.ndarray | None = None,
    markersize: float = 7.0,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Keypoints on an image, each in its own colour and labelled with its name.

    points: (K, 2); names: K names (labels) or None; visible: (K,) bools, invisible ones are skipped
    (as are NaN points).
    """
    arr, hw = _image_array(img, "img")
    p = _points_array(points, "points")
    if names is not None and len(names) != len(p):
        raise ValueError(f"names: expected {len(p)} names (one per point), got {len(names)}")
    vis = np.isfinite(p).all(axis=1)
    if visible is not None:
        v = np.asarray(visible, dtype=bool)
        if v.shape != (len(p),):
            raise ValueError(f"visible: expected shape ({len(p)},), got {v.shape}")
        vis &= v
    fig, ax = _new_axes(ax, (4.5, 4.5 * hw[0] / hw[1]))
    _show_image(ax, arr, hw)
    for k, (xy, c) in enumerate(zip(p, point_colors(len(p)), strict=True)):
        if not vis[k]:
            continue
        ax.plot(xy[0], xy[1], "o", color=c, markeredgecolor="black", markersize=markersize)
        if names is not None:
            ax.annotate(
                names[k], xy, xytext=(4, 4), textcoords="offset points", fontsize=8,
                color="black", bbox={"boxstyle": "round,pad=0.15", "fc": c, "alpha": 0.8, "lw": 0},
            )
    if title:
        ax.set_title(title)
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a figure to an (H, W, 3) uint8 array."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def heatmap_overlay(
    img: ImageLike,
    heatmap: torch.Tensor | np.ndarray,
    *,
    grid: TokenGrid | None = None,
    temperature: float | None = HEATMAP_TEMPERATURE,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> np.ndarray:
    """Blend a colour-mapped heat map into an image, at image resolution.

    img: (H, W) image; heatmap: (h, w), on ``grid`` (padding included) or spanning the image.
    The map is sharpened (``softmax(heatmap / temperature)``, see :func:`sharpen`; None: raw),
    min-max normalised (over all its cells), bilinearly resampled at every pixel centre and
    blended with weight ``alpha``. Returns (H, W, 3) uint8.
    """
    base, _ = _image_array(img, "img", max_side=None)
    heat = sharpen(heatmap, temperature)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    h, w = base.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    pix = torch.stack([xs, ys], dim=-1)
    if grid is None:
        cells = (pix + 0.5) * torch.tensor([heat.shape[1] / w, heat.shape[0] / h], dtype=torch.float64) - 0.5
    else:
        _check_grid(grid, heat.shape)
        cells = grid.image_to_grid(pix)
    norm = (cells + 0.5) / torch.tensor([heat.shape[1], heat.shape[0]], dtype=torch.float64) * 2 - 1
    t = torch.from_numpy(heat)[None, None]
    sampled = torch.nn.functional.grid_sample(t, norm[None], mode="bilinear", padding_mode="border",
                                              align_corners=False)
    span = heat.max() - heat.min()
    v = (sampled[0, 0].numpy() - heat.min()) / span if span > 0 else np.zeros((h, w))
    colored = colormaps[cmap](v)[..., :3]
    return np.round(255 * ((1 - alpha) * base + alpha * colored)).astype(np.uint8)


def draw_points(
    frame: np.ndarray,
    points: PointsLike,
    colors: np.ndarray | None = None,
    *,
    radius: int = 5,
    trails: Sequence[np.ndarray] | None = None,
    hollow: bool = False,
) -> np.ndarray:
    """Draw filled circles (black outline) at points on a copy of an (H, W, 3) uint8 frame.

    points: (N, 2), NaN ones skipped; colors: (N, 3) in [0, 1] (default :func:`point_colors`);
    trails: optional N arrays (T, 2) of past positions, drawn as polylines in the point's colour.
    hollow: draw rings in the point's colour instead (e.g. to mark a second kind of point).
    """
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame: expected an (H, W, 3) uint8 array, got {got}")
    p = _points_array(points, "points")
    cols = point_colors(len(p)) if colors is None else np.asarray(colors, dtype=np.float64)
    if cols.shape != (len(p), 3):
        raise ValueError(f"colors: expected shape ({len(p)}, 3), got {cols.shape}")
    if trails is not None and len(trails) != len(p):
        raise ValueError(f"trails: expected {len(p)} trails (one per point), got {len(trails)}")
    out = Image.fromarray(frame)
    draw = ImageDraw.Draw(out)
    rgb = [tuple(round(255 * float(c)) for c in col) for col in cols]
    for k in range(len(p)):
        if trails is not None:
            tr = _points_array(trails[k], f"trails[{k}]")
            tr = tr[np.isfinite(tr).all(axis=1)]
            if len(tr) > 1:
                draw.line([tuple(q) for q in tr.tolist()], fill=rgb[k], width=max(1, radius // 2))
    for k, (x, y) in enumerate(p):
        if np.isfinite(x) and np.isfinite(y):
            box = (x - radius, y - radius, x + radius, y + radius)
            if hollow:
                draw.ellipse(box, outline=rgb[k], width=max(2, radius // 2))
            else:
                draw.ellipse(box, fill=rgb[k], outline=(0, 0, 0), width=1)
    return np.asarray(out)


def save_pck_plot(path, metrics: Mapping, method: str, dataset: str):
    """Write the PCK-vs-α figure of one evaluation (``compute_metrics`` output) to ``path`` -> Path.

    One curve for the run, plus its geometry-aware subset where it is known.
    """
    from pathlib import Path

    curves = {method: metrics["pck"]["all"]}
    geo = metrics.get("geometry_aware", {}).get("geo")
    if geo is not None and not any(np.isnan(v) for v in geo):
        curves[f"{method} (geo-aware)"] = geo
    proto = metrics["protocol"]
    fig = plot_pck_curves(metrics["alphas"], curves, method=method, dataset=dataset, protocol=proto["name"],
                          threshold=proto["normalisation"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
