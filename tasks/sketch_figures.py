"""Pictures of stroke-3 sketches: SVG text, PNG via matplotlib, grids (sketch-rnn figures).

A sketch is a stroke-3 array ``(N, 3)`` of rows ``(Δx, Δy, pen_lifted)`` (numpy or torch), as in
:mod:`tasks.data.strokes`: the first row is the offset of the first point from the origin, and
``pen_lifted = 1`` on the *last* point of a stroke, so no line joins that point to the next one
(the move from the origin to the first point is not drawn either). Points are the cumulative sums
of the offsets (:func:`tasks.data.strokes.stroke3_to_lines`). Coordinates are drawn as screen
coordinates, ``y`` pointing *down* — the convention of QuickDraw's pixel coordinates and of the
sketch-rnn reference code's SVG renderer. An empty sketch ``(0, 3)`` (a model sample that ended at
once) is allowed and draws nothing.

Styles: one ``color`` for the whole sketch; ``color_by_stroke`` colours stroke ``k`` of ``K`` by
``cmap(k / (K − 1))`` (the stroke-order colouring of the paper's appendix Fig. 2);
``prefix_points = P`` draws the lines between the first ``P`` points in ``prefix_color`` (the
given part of an incomplete sketch, paper Fig. 7 "the red lines") and the rest normally.

Files: :func:`save_sketch_svg` writes hand-written SVG (one ``<polyline>`` per stroke, the
``viewBox`` fitted to the bounding box plus a margin, line widths in screen pixels via
``vector-effect="non-scaling-stroke"``); :func:`save_sketch_png` and :func:`save_sketch_grid`
write PNG (or any matplotlib format) or, for a ``.svg`` suffix, hand-written SVG with one nested
``<svg>`` per cell. Missing parent folders are created and files are written to a temporary name
in the same folder and then renamed, so a reader never sees a half-written file.

Paper figures built on the grid: :func:`save_temperature_figure` (conditional reconstructions at
several temperatures τ, sec. 4.1 / Fig. 5), :func:`save_interpolation_figure` (latent
interpolation rows, sec. 4.2 / Fig. 6 left) and :func:`save_four_way_interpolation` (the 2-D grid
between four corner sketches, appendix sec. 5 / Figs. 6–8, optionally colouring each cell by the
bilinear interpolation of four corner colours as in appendix Fig. 7).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

from tasks.data.strokes import stroke3_to_lines
from tasks.figures import ArrayLike, PathLike, prepare_path

__all__ = [
    "StyledLine",
    "bilinear_colors",
    "check_stroke3",
    "draw_sketch",
    "grid_shape",
    "save_four_way_interpolation",
    "save_interpolation_figure",
    "save_sketch_grid",
    "save_sketch_png",
    "save_sketch_svg",
    "save_temperature_figure",
    "sketch_bounds",
    "sketch_lines",
    "sketch_to_svg",
    "styled_lines",
    "wrap",
]

StyledLine = tuple[np.ndarray, str]  # absolute points (n, 2) and a hex colour
Cell = ArrayLike | None

DEFAULT_MARGIN = 0.08  # fraction of the longer side of the bounding box added on each side
DEFAULT_CMAP = "viridis"
_CELL_PX = 128  # grid cell side in pixels (at dpi = 100)
_GAP_PX = 4
_LABEL_PX = 18  # height of the column-label line
_ROW_LABEL_PX = 72  # width of the row-label column
_FONT_PX = 11
_DPI = 100


# ----------------------------------------------------------------------------- validation


def check_stroke3(seq3: ArrayLike, name: str = "sketch") -> np.ndarray:
    """Validate one stroke-3 sketch and return it as float64 ``(N, 3)``.

    ``name`` is used in error messages (e.g. ``"sketches[1][2]"``). Raises ``ValueError`` when the
    array is not 2-d with 3 columns, holds NaN/inf, or has ``pen_lifted`` values other than 0/1;
    ``TypeError`` for non-array input. ``N = 0`` is allowed.
    """
    if isinstance(seq3, torch.Tensor):
        arr = seq3.detach().cpu().to(torch.float64).numpy()
    elif isinstance(seq3, np.ndarray):
        if seq3.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a numeric array, found dtype {seq3.dtype}")
        arr = seq3.astype(np.float64, copy=False)
    else:
        raise TypeError(
            f"{name}: expected a numpy.ndarray or torch.Tensor (N, 3), found {type(seq3).__name__}"
        )
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(
            f"{name}: expected shape (N, 3) (rows Δx, Δy, pen_lifted), found {arr.shape}"
        )
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name}: expected finite values, found {arr[row, col]} at row {row}, column {col}"
        )
    bad = (arr[:, 2] != 0) & (arr[:, 2] != 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: expected pen_lifted (column 2) in {{0, 1}}, found {arr[row, 2]} at row {row}"
        )
    return arr


def _check_cells(sketches: Sequence[Sequence[Cell]], name: str) -> list[list[np.ndarray | None]]:
    if isinstance(sketches, np.ndarray | torch.Tensor) or not isinstance(sketches, Sequence):
        raise TypeError(
            f"{name}: expected rows of sketches (a sequence of sequences), found "
            f"{type(sketches).__name__}"
        )
    rows = []
    for r, row in enumerate(sketches):
        if isinstance(row, np.ndarray | torch.Tensor) or not isinstance(row, Sequence):
            raise TypeError(
                f"{name}[{r}]: expected a sequence of sketches (or None), found "
                f"{type(row).__name__}"
            )
        rows.append(
            [
                None if s is None else check_stroke3(s, f"{name}[{r}][{c}]")
                for c, s in enumerate(row)
            ]
        )
    if not rows or max(len(row) for row in rows) == 0:
        raise ValueError(f"{name}: expected at least one row with at least one cell, found none")
    return rows


def _check_labels(labels: Sequence[str] | None, expected: int, name: str) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != expected:
        raise ValueError(f"{name}: expected {expected} labels, found {len(labels)}")
    return labels


# ----------------------------------------------------------------------------- geometry


def sketch_lines(seq3: ArrayLike) -> list[np.ndarray]:
    """Absolute polylines ``(n_k, 2)`` of a sketch, one per stroke (pen-up gaps split them)."""
    return stroke3_to_lines(check_stroke3(seq3))


def sketch_bounds(seq3: ArrayLike) -> tuple[float, float, float, float]:
    """``(x_min, y_min, x_max, y_max)`` of the sketch's points (absolute coordinates).

    The origin the first offset starts from is not a point of the sketch and is not included.
    An empty sketch gives ``(0, 0, 0, 0)``.
    """
    arr = check_stroke3(seq3)
    if arr.shape[0] == 0:
        return (0.0, 0.0, 0.0, 0.0)
    points = np.cumsum(arr[:, :2], axis=0)
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    return (float(x0), float(y0), float(x1), float(y1))


def _view_box(
    bounds: tuple[float, float, float, float], margin: float, side: float | None = None
) -> tuple[float, float, float, float]:
    """Square ``(x, y, side, side)`` centred on ``bounds``: the longer side plus ``margin`` of it
    on each side, or the given ``side`` (a common scale). Degenerate boxes get side 1."""
    x0, y0, x1, y1 = bounds
    if side is None:
        side = _square_side(bounds, margin)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return (cx - 0.5 * side, cy - 0.5 * side, side, side)


def _square_side(bounds: tuple[float, float, float, float], margin: float) -> float:
    x0, y0, x1, y1 = bounds
    extent = max(x1 - x0, y1 - y0)
    if extent <= 0:
        extent = 1.0
    return extent * (1.0 + 2.0 * margin)


def _stroke_colors(num_strokes: int, cmap: str) -> list[str]:
    colormap = colormaps[cmap]
    if num_strokes == 1:
        return [to_hex(colormap(0.0))]
    return [to_hex(colormap(k / (num_strokes - 1))) for k in range(num_strokes)]


def styled_lines(
    seq3: ArrayLike,
    *,
    color: str = "black",
    color_by_stroke: bool = False,
    cmap: str = DEFAULT_CMAP,
    prefix_points: int = 0,
    prefix_color: str = "red",
    name: str = "sketch",
) -> list[StyledLine]:
    """The polylines of a sketch with their colours (see the module doc for the styles).

    With ``prefix_points = P`` a stroke crossing the boundary is split at point ``P − 1``: the
    segments between the first ``P`` points get ``prefix_color`` and the segment from point
    ``P − 1`` onwards belongs to the continuation.
    """
    arr = check_stroke3(seq3, name)
    if prefix_points < 0:
        raise ValueError(f"{name}: prefix_points must be >= 0, found {prefix_points}")
    lines = stroke3_to_lines(arr)
    colors = _stroke_colors(len(lines), cmap) if color_by_stroke else [to_hex(color)] * len(lines)
    prefix_hex = to_hex(prefix_color)
    out: list[StyledLine] = []
    start = 0  # global index of the line's first point
    for line, col in zip(lines, colors, strict=True):
        n = len(line)
        split = prefix_points - start  # points of this line inside the prefix
        if split >= n:
            out.append((line, prefix_hex))
        elif split <= 0:
            out.append((line, col))
        else:
            out.append((line[:split], prefix_hex))
            out.append((line[split - 1 :], col))
        start += n
    return out


# ----------------------------------------------------------------------------- SVG


def _fmt(v: float) -> str:
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _svg_polylines(lines: Sequence[StyledLine], stroke_width: float, indent: str) -> list[str]:
    out = []
    for points, col in lines:
        if len(points) == 1:  # a dot: a zero-length segment, drawn by the round cap
            points = np.concatenate([points, points])
        coords = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)
        out.append(
            f'{indent}<polyline points="{coords}" fill="none" stroke="{col}" '
            f'stroke-width="{_fmt(stroke_width)}" stroke-linecap="round" '
            f'stroke-linejoin="round" vector-effect="non-scaling-stroke"/>'
        )
    return out


def sketch_to_svg(
    seq3: ArrayLike,
    *,
    size: int = 256,
    margin: float = DEFAULT_MARGIN,
    stroke_width: float = 2.0,
    color: str = "black",
    color_by_stroke: bool = False,
    cmap: str = DEFAULT_CMAP,
    prefix_points: int = 0,
    prefix_color: str = "red",
    background: str | None = "white",
) -> str:
    """An SVG document (text) of one sketch, ``size`` × ``size`` pixels.

    One ``<polyline>`` per stroke in absolute data coordinates (``y`` down); the ``viewBox`` is
    the square around the bounding box (:func:`sketch_bounds`) with ``margin`` × the longer side
    added on each side. ``stroke_width`` is in output pixels. ``background=None`` leaves it
    transparent.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, found {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, found {margin}")
    lines = styled_lines(
        seq3,
        color=color,
        color_by_stroke=color_by_stroke,
        cmap=cmap,
        prefix_points=prefix_points,
        prefix_color=prefix_color,
    )
    vx, vy, vw, vh = _view_box(sketch_bounds(seq3), margin)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{size}" '
        f'height="{size}" viewBox="{_fmt(vx)} {_fmt(vy)} {_fmt(vw)} {_fmt(vh)}">',
    ]
    if background is not None:
        parts.append(
            f'  <rect x="{_fmt(vx)}" y="{_fmt(vy)}" width="{_fmt(vw)}" height="{_fmt(vh)}" '
            f'fill="{to_hex(background)}"/>'
        )
    parts += _svg_polylines(lines, stroke_width, "  ")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary name next to ``path`` (same suffix, so matplotlib
    picks the format), then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_text(path: Path, text: str) -> Path:
    return _write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_sketch_svg(path: PathLike, seq3: ArrayLike, **style: object) -> Path:
    """Write :func:`sketch_to_svg` of ``seq3`` to ``path`` (style keywords passed on)."""
    text = sketch_to_svg(seq3, **style)  # type: ignore[arg-type]
    return _write_text(Path(path), text)


# ----------------------------------------------------------------------------- matplotlib


def _draw_lines(ax: Axes, lines: list[tuple[np.ndarray, str]], linewidth: float) -> None:
    """Polylines (≥ 2 points) as one round-capped ``LineCollection``; single points (a pen
    touching down and lifting) as dots of the same width."""
    segments = [(pts, col) for pts, col in lines if len(pts) > 1]
    if segments:
        ax.add_collection(
            LineCollection(
                [pts for pts, _ in segments],
                colors=[col for _, col in segments],
                linewidths=linewidth,
                capstyle="round",
                joinstyle="round",
            )
        )
    dots = [(pts[0], col) for pts, col in lines if len(pts) == 1]
    if dots:
        xy = np.array([pt for pt, _ in dots])
        ax.scatter(xy[:, 0], xy[:, 1], s=linewidth**2, c=[col for _, col in dots], linewidths=0)


def draw_sketch(
    ax: Axes,
    seq3: ArrayLike,
    *,
    linewidth: float = 1.5,
    color: str = "black",
    color_by_stroke: bool = False,
    cmap: str = DEFAULT_CMAP,
    prefix_points: int = 0,
    prefix_color: str = "red",
    margin: float = DEFAULT_MARGIN,
    side: float | None = None,
) -> None:
    """Draw a sketch on ``ax``: one line collection (pen-up gaps respected), equal scales,
    ``y`` down, limits the square view box of :func:`sketch_to_svg` (or of side ``side``)."""
    lines = styled_lines(
        seq3,
        color=color,
        color_by_stroke=color_by_stroke,
        cmap=cmap,
        prefix_points=prefix_points,
        prefix_color=prefix_color,
    )
    _draw_lines(ax, lines, linewidth)
    vx, vy, vw, vh = _view_box(sketch_bounds(seq3), margin, side)
    ax.set_xlim(vx, vx + vw)
    ax.set_ylim(vy + vh, vy)  # y down
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()


def save_sketch_png(path: PathLike, seq3: ArrayLike, **style: object) -> Path:
    """One sketch as a single-cell :func:`save_sketch_grid` (PNG unless the suffix says else)."""
    return save_sketch_grid(path, [[seq3]], **style)  # type: ignore[arg-type]


def _broadcast(value: object, shape: list[int], name: str) -> list[list]:
    """A per-cell value: a scalar for every cell or nested rows matching the grid."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(shape):
            raise ValueError(f"{name}: expected {len(shape)} rows, found {len(value)}")
        out = []
        for r, (row, n) in enumerate(zip(value, shape, strict=True)):
            if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != n:
                found = len(row) if isinstance(row, Sequence) else type(row).__name__
                raise ValueError(f"{name}[{r}]: expected {n} values (one per cell), found {found}")
            out.append(list(row))
        return out
    return [[value] * n for n in shape]


def save_sketch_grid(
    path: PathLike,
    sketches: Sequence[Sequence[Cell]],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    color_by_stroke: bool = False,
    cmap: str = DEFAULT_CMAP,
    colors: str | Sequence[Sequence[str]] = "black",
    prefix_points: int | Sequence[Sequence[int]] = 0,
    prefix_color: str = "red",
    common_scale: bool = False,
    cell_px: int = _CELL_PX,
    linewidth: float = 1.5,
    margin: float = DEFAULT_MARGIN,
) -> Path:
    """Save rows × columns of sketches; the format follows the suffix (``.svg`` → hand-written
    SVG, else matplotlib: ``.png`` (default for no suffix), ``.pdf``, ...).

    ``sketches[r][c]`` is a stroke-3 sketch or ``None`` (an empty cell); rows may differ in
    length (the grid has the longest row's number of columns). ``colors`` and ``prefix_points``
    are one value for all cells or nested rows with one value per cell. Each sketch is fitted to
    its square cell, or with ``common_scale`` all cells use the largest sketch's scale (so sizes
    can be compared, e.g. along an interpolation). ``row_labels`` are written left of the rows,
    ``col_labels`` above the columns, ``title`` above everything. Returns the written path.
    """
    rows = _check_cells(sketches, "sketches")
    shape = [len(row) for row in rows]
    nrows, ncols = len(rows), max(shape)
    row_labels = _check_labels(row_labels, nrows, "row_labels")
    col_labels = _check_labels(col_labels, ncols, "col_labels")
    cell_colors = _broadcast(colors, shape, "colors")
    cell_prefix = _broadcast(prefix_points, shape, "prefix_points")
    if cell_px < 8:
        raise ValueError(f"cell_px must be >= 8, found {cell_px}")
    side = None
    if common_scale:
        sides = [
            _square_side(sketch_bounds(s), margin) for row in rows for s in row if s is not None
        ]
        side = max(sides) if sides else None
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".png")
    styles = [
        [
            None
            if s is None
            else dict(
                color=cell_colors[r][c],
                color_by_stroke=color_by_stroke,
                cmap=cmap,
                prefix_points=int(cell_prefix[r][c]),
                prefix_color=prefix_color,
            )
            for c, s in enumerate(row)
        ]
        for r, row in enumerate(rows)
    ]
    layout = _Layout(nrows, ncols, cell_px, row_labels is not None, col_labels is not None, title)
    if out.suffix.lower() == ".svg":
        text = _grid_svg(
            rows, styles, layout, row_labels, col_labels, title, linewidth, margin, side
        )
        return _write_text(out, text)
    out = prepare_path(out)
    fig = Figure(figsize=(layout.width / _DPI, layout.height / _DPI), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    # one axes in pixel coordinates (y down) for the whole grid: each sketch is mapped into its
    # cell's square by the same view box as in the SVG (much faster than one axes per cell)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, layout.width)
    ax.set_ylim(layout.height, 0)
    ax.set_axis_off()
    lines: list[tuple[np.ndarray, str]] = []
    for r, row in enumerate(rows):
        for c, s in enumerate(row):
            if s is None:
                continue
            x, y = layout.cell(r, c)
            vx, vy, vw, _ = _view_box(sketch_bounds(s), margin, side)
            scale = cell_px / vw
            for pts, col in styled_lines(s, name=f"sketches[{r}][{c}]", **styles[r][c]):  # type: ignore[arg-type]
                lines.append(((pts - (vx, vy)) * scale + (x, y), col))
    _draw_lines(ax, lines, linewidth)
    font = _FONT_PX * 72 / _DPI
    for text, x, y, ha in layout.labels(row_labels, col_labels, title):
        fig.text(
            x / layout.width,
            1.0 - y / layout.height,
            text,
            ha=ha,
            va="center",
            fontsize=font,
            color="black",
        )
    try:
        _write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=_DPI, facecolor="white"))
    finally:
        fig.clear()
    return out


class _Layout:
    """Pixel layout of a grid: optional title line, column-label line, row-label column."""

    def __init__(
        self,
        nrows: int,
        ncols: int,
        cell_px: int,
        has_row_labels: bool,
        has_col_labels: bool,
        title: str | None,
    ) -> None:
        self.cell_px = cell_px
        self.left = _GAP_PX + (_ROW_LABEL_PX if has_row_labels else 0)
        self.top = _GAP_PX + (_LABEL_PX if title else 0) + (_LABEL_PX if has_col_labels else 0)
        self.width = self.left + ncols * (cell_px + _GAP_PX)
        self.height = self.top + nrows * (cell_px + _GAP_PX)
        self.nrows, self.ncols = nrows, ncols

    def cell(self, r: int, c: int) -> tuple[int, int]:
        """Top-left pixel of cell ``(r, c)``."""
        return self.left + c * (self.cell_px + _GAP_PX), self.top + r * (self.cell_px + _GAP_PX)

    def labels(
        self, row_labels: list[str] | None, col_labels: list[str] | None, title: str | None
    ) -> list[tuple[str, float, float, str]]:
        """``(text, x, y, horizontal alignment)`` of every label, ``y`` the line centre."""
        out = []
        if title:
            out.append((title, 0.5 * self.width, _GAP_PX + 0.5 * _LABEL_PX, "center"))
        if col_labels is not None:
            y = self.top - 0.5 * _LABEL_PX
            for c, text in enumerate(col_labels):
                out.append((text, self.cell(0, c)[0] + 0.5 * self.cell_px, y, "center"))
        if row_labels is not None:
            for r, text in enumerate(row_labels):
                out.append((text, _GAP_PX, self.cell(r, 0)[1] + 0.5 * self.cell_px, "left"))
        return out


def _grid_svg(
    rows: list[list[np.ndarray | None]],
    styles: list[list[dict | None]],
    layout: _Layout,
    row_labels: list[str] | None,
    col_labels: list[str] | None,
    title: str | None,
    linewidth: float,
    margin: float,
    side: float | None,
) -> str:
    stroke_px = linewidth * _DPI / 72  # matplotlib line widths are in points
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{layout.width}" '
        f'height="{layout.height}" viewBox="0 0 {layout.width} {layout.height}">',
        f'  <rect x="0" y="0" width="{layout.width}" height="{layout.height}" fill="#ffffff"/>',
    ]
    for r, row in enumerate(rows):
        for c, s in enumerate(row):
            if s is None:
                continue
            x, y = layout.cell(r, c)
            vx, vy, vw, vh = _view_box(sketch_bounds(s), margin, side)
            parts.append(
                f'  <svg x="{x}" y="{y}" width="{layout.cell_px}" height="{layout.cell_px}" '
                f'viewBox="{_fmt(vx)} {_fmt(vy)} {_fmt(vw)} {_fmt(vh)}">'
            )
            lines = styled_lines(s, name=f"sketches[{r}][{c}]", **styles[r][c])  # type: ignore[arg-type]
            parts += _svg_polylines(lines, stroke_px, "    ")
            parts.append("  </svg>")
    anchors = {"center": "middle", "left": "start"}
    for text, x, y, ha in layout.labels(row_labels, col_labels, title):
        parts.append(
            f'  <text x="{_fmt(x)}" y="{_fmt(y)}" font-family="sans-serif" '
            f'font-size="{_FONT_PX}" text-anchor="{anchors[ha]}" dominant-baseline="central">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- paper figures


def _format_tau(tau: float) -> str:
    return f"τ={tau:g}"


def save_temperature_figure(
    path: PathLike,
    inputs: Sequence[Cell],
    reconstructions: Mapping[float, Sequence[Cell]],
    *,
    row_labels: Sequence[str] | None = None,
    **style: object,
) -> Path:
    """Conditional reconstructions at several temperatures (sec. 4.1, Fig. 5): one row per input
    sketch, first column the input, then one column per τ (in the mapping's order, labelled
    ``τ=…``). ``reconstructions[τ][i]`` is the reconstruction of ``inputs[i]`` at τ."""
    inputs = list(inputs)
    for tau, recs in reconstructions.items():
        if len(recs) != len(inputs):
            raise ValueError(
                f"reconstructions[{tau}]: expected {len(inputs)} sketches (one per input), "
                f"found {len(recs)}"
            )
    taus = list(reconstructions)
    grid = [[inputs[i], *(reconstructions[t][i] for t in taus)] for i in range(len(inputs))]
    labels = ["input", *(_format_tau(t) for t in taus)]
    return save_sketch_grid(path, grid, col_labels=labels, row_labels=row_labels, **style)  # type: ignore[arg-type]


def save_interpolation_figure(
    path: PathLike,
    rows: Sequence[Sequence[Cell]],
    *,
    t_values: Sequence[float] | None = None,
    inputs: Sequence[tuple[Cell, Cell]] | None = None,
    row_labels: Sequence[str] | None = None,
    **style: object,
) -> Path:
    """Latent interpolation rows (sec. 4.2, Fig. 6 left): ``rows[i]`` are the decodings along
    one interpolation, columns labelled ``t=…`` when ``t_values`` are given. ``inputs[i] =
    (a, b)`` adds the two encoded sketches as first ("A") and last ("B") columns."""
    grid = [list(row) for row in rows]
    ncols = max((len(row) for row in grid), default=0)
    labels = None if t_values is None else [f"t={t:.2g}" for t in t_values]
    if labels is not None and len(labels) != ncols:
        raise ValueError(f"t_values: expected {ncols} values (one per column), found {len(labels)}")
    if inputs is not None:
        if len(inputs) != len(grid):
            raise ValueError(
                f"inputs: expected {len(grid)} pairs (one per row), found {len(inputs)}"
            )
        grid = [[a, *row, b] for (a, b), row in zip(inputs, grid, strict=True)]
        labels = None if labels is None else ["A", *labels, "B"]
    return save_sketch_grid(path, grid, col_labels=labels, row_labels=row_labels, **style)  # type: ignore[arg-type]


def bilinear_colors(corner_colors: Sequence[str], nrows: int, ncols: int) -> list[list[str]]:
    """Hex colours of an ``nrows × ncols`` grid interpolated bilinearly (in RGB) between four
    corner colours ``(top-left, top-right, bottom-left, bottom-right)`` (appendix Fig. 7)."""
    if len(corner_colors) != 4:
        raise ValueError(f"corner_colors: expected 4 colours, found {len(corner_colors)}")
    tl, tr, bl, br = (np.array(to_rgb(c)) for c in corner_colors)
    out = []
    for r in range(nrows):
        u = r / (nrows - 1) if nrows > 1 else 0.0
        row = []
        for c in range(ncols):
            v = c / (ncols - 1) if ncols > 1 else 0.0
            rgb = (1 - u) * ((1 - v) * tl + v * tr) + u * ((1 - v) * bl + v * br)
            row.append(to_hex(np.clip(rgb, 0.0, 1.0)))
        out.append(row)
    return out


def save_four_way_interpolation(
    path: PathLike,
    grid: Sequence[Sequence[Cell]],
    *,
    corner_colors: Sequence[str] | None = None,
    **style: object,
) -> Path:
    """The 2-D latent interpolation between four corner sketches (appendix sec. 5, Figs. 6–8):
    ``grid[r][c]`` decoded from the latent interpolated to row ``r``, column ``c``. With
    ``corner_colors`` each cell is coloured by :func:`bilinear_colors` (appendix Fig. 7)."""
    cells = [list(row) for row in grid]
    if cells and len({len(row) for row in cells}) != 1:
        raise ValueError(
            f"grid: expected equally long rows, found lengths {[len(row) for row in cells]}"
        )
    if corner_colors is not None:
        style = {**style, "colors": bilinear_colors(corner_colors, len(cells), len(cells[0]))}
    return save_sketch_grid(path, cells, **style)  # type: ignore[arg-type]


def grid_shape(num: int, ncols: int) -> tuple[int, int]:
    """``(rows, cols)`` holding ``num`` cells in at most ``ncols`` columns."""
    if num < 1 or ncols < 1:
        raise ValueError(f"grid_shape: expected num >= 1 and ncols >= 1, found {num}, {ncols}")
    ncols = min(ncols, num)
    return math.ceil(num / ncols), ncols


def wrap(sketches: Sequence[Cell], ncols: int) -> list[list[Cell]]:
    """Arrange a flat list of sketches in rows of ``ncols`` (the last row may be shorter)."""
    items = list(sketches)
    nrows, ncols = grid_shape(len(items), ncols)
    return [items[r * ncols : (r + 1) * ncols] for r in range(nrows)]
