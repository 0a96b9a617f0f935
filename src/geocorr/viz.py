"""Pictures of correspondences: matplotlib figures for reports and raster overlays for the demo/video.

All coordinates are (x, y) image pixels, pixel-centre convention (see :mod:`geocorr.grid`):
``(0, 0)`` is the centre of the top-left pixel. Points that are NaN (invisible keypoints) are
skipped. Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot global
state), so they are safe to build in a server thread; save them with ``fig.savefig(path)``.
"""
from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from .grid import TokenGrid
from .images import ImageLike, load_image

__all__ = [
    "CORRECT_COLOR",
    "WRONG_COLOR",
    "draw_points",
    "figure_to_array",
    "heatmap_overlay",
    "plot_keypoints",
    "plot_matches",
    "plot_pck_curves",
    "plot_similarity",
    "point_colors",
]

PointsLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]

CORRECT_COLOR = (0.0, 0.75, 0.0)  # green: prediction within the PCK threshold
WRONG_COLOR = (0.9, 0.0, 0.0)  # red: prediction outside it


def _image_array(img: ImageLike, name: str) -> np.ndarray:
    """Any image input -> (H, W, 3) float array in [0, 1] for imshow."""
    if isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.floating):
            raise ValueError(f"{name}: expected a uint8 or float array, got {img.dtype}")
        img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    return load_image(img, name).permute(1, 2, 0).numpy()


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
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _show_image(ax: Axes, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    ax.imshow(img, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="bilinear")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()


def plot_matches(
    img0: ImageLike,
    img1: ImageLike,
    pts0: PointsLike,
    pts1: PointsLike,
    correct: PointsLike | Sequence[bool] | None = None,
    *,
    gap: int = 10,
    linewidth: float = 1.5,
    markersize: float = 5.0,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Source and target side by side, a line from each source point to its match.

    img0, img1: images (see :func:`geocorr.images.load_image`; float (H, W, 3) arrays also work).
    pts0: (N, 2) source points, pts1: (N, 2) matched target points, pixels of their own image.
    correct: optional (N,) bools (e.g. within the PCK threshold): lines are green where True and red
        where False. Without it every match gets its own colour.
    gap: white pixels between the two images.
    Returns the figure; the target image is drawn shifted right by ``W0 + gap``.
    """
    a, b = _image_array(img0, "img0"), _image_array(img1, "img1")
    p0, p1 = _points_array(pts0, "pts0"), _points_array(pts1, "pts1")
    if len(p0) != len(p1):
        raise ValueError(f"pts0 and pts1 must have the same length, got {len(p0)} and {len(p1)}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    if correct is None:
        colors = point_colors(len(p0))
    else:
        ok = np.asarray(correct.cpu() if isinstance(correct, torch.Tensor) else correct)
        if ok.shape != (len(p0),):
            raise ValueError(f"correct: expected shape ({len(p0)},), got {ok.shape}")
        colors = np.where(ok.astype(bool)[:, None], CORRECT_COLOR, WRONG_COLOR)

    height = max(a.shape[0], b.shape[0])
    canvas = np.ones((height, a.shape[1] + gap + b.shape[1], 3))
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] + gap :] = b
    offset = np.array([a.shape[1] + gap, 0.0])

    fig, ax = _new_axes(ax, (2 * 4.0, 4.0 * height / max(a.shape[1], b.shape[1])))
    _show_image(ax, canvas)
    for s, t, c in zip(p0, p1 + offset, colors):
        ax.plot([s[0], t[0]], [s[1], t[1]], "-o", color=c, linewidth=linewidth, markersize=markersize)
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


def plot_similarity(
    img: ImageLike,
    heatmap: torch.Tensor | np.ndarray,
    point: PointsLike | None = None,
    *,
    grid: TokenGrid | None = None,
    source: ImageLike | None = None,
    source_point: PointsLike | None = None,
    twin_point: PointsLike | None = None,
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
    """
    tgt = _image_array(img, "img")
    heat = _heatmap_array(heatmap)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    extent = _grid_extent(grid, heat.shape, tgt.shape[:2])

    fig = Figure(figsize=(8.0 if source is not None else 4.5, 4.0), layout="constrained")
    axes = fig.subplots(1, 2 if source is not None else 1, squeeze=False)[0]
    if source is not None:
        _show_image(axes[0], _image_array(source, "source"))
        if source_point is not None:
            q = _points_array(source_point, "source_point")
            axes[0].plot(q[:, 0], q[:, 1], "*", color="white", markeredgecolor="black", markersize=14)
        axes[0].set_title("source")
    ax = axes[-1]
    _show_image(ax, tgt)
    shown = ax.imshow(heat, extent=extent, cmap=cmap, alpha=alpha, interpolation="bilinear")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="similarity")
    if point is not None:
        p = _points_array(point, "point")
        ax.plot(p[:, 0], p[:, 1], "*", color="white", markeredgecolor="black", markersize=14)
    if twin_point is not None:
        t = _points_array(twin_point, "twin_point")
        ax.plot(t[:, 0], t[:, 1], "X", color="cyan", markeredgecolor="black", markersize=10)
    ax.set_xlim(-0.5, tgt.shape[1] - 0.5)
    ax.set_ylim(tgt.shape[0] - 0.5, -0.5)
    ax.set_title(title or "target")
    return fig


def plot_pck_curves(
    alphas: Sequence[float],
    pck: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """PCK (%) against the threshold factor α, one line per method.

    alphas: (A,) increasing thresholds, e.g. (0.01, 0.05, 0.10, 0.15).
    pck: method name -> (A,) PCK values in percent [0, 100].
    """
    a = np.asarray(alphas, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or (np.diff(a) <= 0).any():
        raise ValueError(f"alphas: expected a non-empty increasing 1-D sequence, got {alphas!r}")
    if not pck:
        raise ValueError("pck: no methods given")
    fig, ax = _new_axes(ax, (5.0, 3.5))
    for method, values in pck.items():
        v = np.asarray(values, dtype=np.float64)
        if v.shape != a.shape:
            raise ValueError(f"pck[{method!r}]: expected {a.size} values (one per alpha), got shape {v.shape}")
        if ((v < 0) | (v > 100)).any():
            raise ValueError(f"pck[{method!r}]: values must be percentages in [0, 100], got {v.tolist()}")
        ax.plot(a, v, "-o", label=method)
    ax.set_xlabel("α (threshold = α · size)")
    ax.set_ylabel("PCK (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
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
    arr = _image_array(img, "img")
    p = _points_array(points, "points")
    if names is not None and len(names) != len(p):
        raise ValueError(f"names: expected {len(p)} names (one per point), got {len(names)}")
    vis = np.isfinite(p).all(axis=1)
    if visible is not None:
        v = np.asarray(visible, dtype=bool)
        if v.shape != (len(p),):
            raise ValueError(f"visible: expected shape ({len(p)},), got {v.shape}")
        vis &= v
    fig, ax = _new_axes(ax, (4.5, 4.5 * arr.shape[0] / arr.shape[1]))
    _show_image(ax, arr)
    for k, (xy, c) in enumerate(zip(p, point_colors(len(p)))):
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
    alpha: float = 0.5,
    cmap: str = "jet",
) -> np.ndarray:
    """Blend a colour-mapped heat map into an image, at image resolution.

    img: (H, W) image; heatmap: (h, w), on ``grid`` (padding included) or spanning the image.
    The map is min-max normalised (over all its cells), bilinearly resampled at every pixel centre
    and blended with weight ``alpha``. Returns (H, W, 3) uint8.
    """
    base = _image_array(img, "img")
    heat = _heatmap_array(heatmap)
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
    rgb = [tuple(int(round(255 * c)) for c in col) for col in cols]
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
