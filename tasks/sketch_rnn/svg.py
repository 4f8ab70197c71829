"""Stroke-3 sketches as geometry and SVG text (sketch-rnn figures), and atomic file writes.

A sketch is a stroke-3 array ``(N, 3)`` of rows ``(Δx, Δy, pen_lifted)`` (numpy or torch), as in
:mod:`tasks.data.strokes`: the first row is the offset of the first point from the origin, and
``pen_lifted = 1`` on the *last* point of a stroke, so no line joins that point to the next one
(the move from the origin to the first point is not drawn either). Points are the cumulative sums
of the offsets (:func:`tasks.data.stroke_formats.stroke3_to_lines`). Coordinates are drawn as
screen coordinates, ``y`` pointing *down* — the convention of QuickDraw's pixel coordinates and of
the sketch-rnn reference code's SVG renderer. An empty sketch ``(0, 3)`` (a model sample that
ended at once) is allowed and draws nothing.

Styles: one ``color`` for the whole sketch; ``color_by_stroke`` colours stroke ``k`` of ``K`` by
``cmap(k / (K − 1))`` (the stroke-order colouring of the paper's appendix Fig. 2);
``prefix_points = P`` draws the lines between the first ``P`` points in ``prefix_color`` (the
given part of an incomplete sketch, paper Fig. 7 "the red lines") and the rest normally.

:func:`save_sketch_svg` writes hand-written SVG (one ``<polyline>`` per stroke, the ``viewBox``
fitted to the bounding box plus a margin, line widths in screen pixels via
``vector-effect="non-scaling-stroke"``); :func:`grid_svg` is the SVG of a grid of sketches (one
nested ``<svg>`` per cell) that :func:`tasks.sketch_rnn.figures.save_sketch_grid` writes for a
``.svg`` suffix. Missing parent folders are created and files are written to a temporary name in
the same folder and then renamed, so a reader never sees a half-written file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypedDict, Unpack
from xml.sax.saxutils import escape

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import to_hex

from tasks.data.stroke_formats import stroke3_to_lines
from tasks.figures import ArrayLike, PathLike

__all__ = [
    "CELL_PX",
    "DEFAULT_CMAP",
    "DEFAULT_MARGIN",
    "DPI",
    "FONT_PX",
    "Cell",
    "GridLayout",
    "LineStyle",
    "StyledLine",
    "check_cells",
    "check_labels",
    "check_stroke3",
    "grid_cells",
    "grid_svg",
    "save_sketch_svg",
    "sketch_bounds",
    "sketch_lines",
    "sketch_to_svg",
    "square_side",
    "styled_lines",
    "view_box",
    "write_atomic",
    "write_text",
]

StyledLine = tuple[np.ndarray, str]  # absolute points (n, 2) and a hex colour
Cell = ArrayLike | None


class LineStyle(TypedDict, total=False):
    """The style keywords of :func:`styled_lines`, taken by every function drawing one sketch
    (see the module doc; defaults: black, no stroke colouring, no prefix)."""

    color: str
    color_by_stroke: bool
    cmap: str
    prefix_points: int
    prefix_color: str


DEFAULT_MARGIN = 0.08  # fraction of the longer side of the bounding box added on each side
DEFAULT_CMAP = "viridis"
CELL_PX = 128  # grid cell side in pixels (at dpi = 100)
_GAP_PX = 4
_LABEL_PX = 18  # height of the column-label line
_ROW_LABEL_PX = 72  # width of the row-label column
FONT_PX = 11
DPI = 100


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


def check_cells(sketches: Sequence[Sequence[Cell]], name: str) -> list[list[np.ndarray | None]]:
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


def check_labels(labels: Sequence[str] | None, expected: int, name: str) -> list[str] | None:
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


def view_box(
    bounds: tuple[float, float, float, float], margin: float, side: float | None = None
) -> tuple[float, float, float, float]:
    """Square ``(x, y, side, side)`` centred on ``bounds``: the longer side plus ``margin`` of it
    on each side, or the given ``side`` (a common scale). Degenerate boxes get side 1."""
    x0, y0, x1, y1 = bounds
    if side is None:
        side = square_side(bounds, margin)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    return (cx - 0.5 * side, cy - 0.5 * side, side, side)


def square_side(bounds: tuple[float, float, float, float], margin: float) -> float:
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
    background: str | None = "white",
    **style: Unpack[LineStyle],
) -> str:
    """An SVG document (text) of one sketch, ``size`` × ``size`` pixels, drawn in ``style``.

    One ``<polyline>`` per stroke in absolute data coordinates (``y`` down); the ``viewBox`` is
    the square around the bounding box (:func:`sketch_bounds`) with ``margin`` × the longer side
    added on each side. ``stroke_width`` is in output pixels. ``background=None`` leaves it
    transparent.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, found {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, found {margin}")
    lines = styled_lines(seq3, **style)
    vx, vy, vw, vh = view_box(sketch_bounds(seq3), margin)
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


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
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


def write_text(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_sketch_svg(path: PathLike, seq3: ArrayLike, **style: object) -> Path:
    """Write :func:`sketch_to_svg` of ``seq3`` to ``path`` (style keywords passed on)."""
    text = sketch_to_svg(seq3, **style)  # type: ignore[arg-type]
    return write_text(Path(path), text)


# ----------------------------------------------------------------------------- grids


class GridLayout:
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


def grid_cells(
    rows: list[list[np.ndarray | None]],
    styles: list[list[dict | None]],
    layout: GridLayout,
    margin: float,
    side: float | None,
) -> Iterator[tuple[tuple[int, int], tuple[float, float, float, float], list[StyledLine]]]:
    """Every non-empty cell of a grid, row by row: its top-left pixel, the view box of its
    sketch (:func:`view_box`) and the sketch's lines in its style (``styles[r][c]``)."""
    for r, row in enumerate(rows):
        for c, s in enumerate(row):
            if s is None:
                continue
            box = view_box(sketch_bounds(s), margin, side)
            lines = styled_lines(s, name=f"sketches[{r}][{c}]", **styles[r][c])  # type: ignore[arg-type]
            yield layout.cell(r, c), box, lines


def grid_svg(
    rows: list[list[np.ndarray | None]],
    styles: list[list[dict | None]],
    layout: GridLayout,
    row_labels: list[str] | None,
    col_labels: list[str] | None,
    title: str | None,
    linewidth: float,
    margin: float,
    side: float | None,
) -> str:
    stroke_px = linewidth * DPI / 72  # matplotlib line widths are in points
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{layout.width}" '
        f'height="{layout.height}" viewBox="0 0 {layout.width} {layout.height}">',
        f'  <rect x="0" y="0" width="{layout.width}" height="{layout.height}" fill="#ffffff"/>',
    ]
    for (x, y), (vx, vy, vw, vh), lines in grid_cells(rows, styles, layout, margin, side):
        parts.append(
            f'  <svg x="{x}" y="{y}" width="{layout.cell_px}" height="{layout.cell_px}" '
            f'viewBox="{_fmt(vx)} {_fmt(vy)} {_fmt(vw)} {_fmt(vh)}">'
        )
        parts += _svg_polylines(lines, stroke_px, "    ")
        parts.append("  </svg>")
    anchors = {"center": "middle", "left": "start"}
    for text, x, y, ha in layout.labels(row_labels, col_labels, title):
        parts.append(
            f'  <text x="{_fmt(x)}" y="{_fmt(y)}" font-family="sans-serif" '
            f'font-size="{FONT_PX}" text-anchor="{anchors[ha]}" dominant-baseline="central">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
