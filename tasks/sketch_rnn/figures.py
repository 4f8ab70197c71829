"""Sketch pictures with matplotlib and grids of sketches (sketch-rnn figures).

The sketches, styles and SVG text are :mod:`tasks.sketch_rnn.svg`'s. :func:`save_sketch_png` and
:func:`save_sketch_grid` write PNG (or any matplotlib format) or, for a ``.svg`` suffix,
hand-written SVG with one nested ``<svg>`` per cell, atomically.

Paper figures built on the grid: :func:`save_temperature_figure` (conditional reconstructions at
several temperatures τ, sec. 4.1 / Fig. 5), :func:`save_interpolation_figure` (latent
interpolation rows, sec. 4.2 / Fig. 6 left) and :func:`save_four_way_interpolation` (the 2-D grid
between four corner sketches, appendix sec. 5 / Figs. 6–8, optionally colouring each cell by the
bilinear interpolation of four corner colours as in appendix Fig. 7).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Unpack

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

from tasks.figures import ArrayLike, PathLike, prepare_path
from tasks.sketch_rnn.svg import (
    CELL_PX,
    DEFAULT_CMAP,
    DEFAULT_MARGIN,
    DPI,
    FONT_PX,
    Cell,
    GridLayout,
    LineStyle,
    check_cells,
    check_labels,
    grid_cells,
    grid_svg,
    sketch_bounds,
    square_side,
    styled_lines,
    view_box,
    write_atomic,
    write_text,
)

__all__ = [
    "bilinear_colors",
    "draw_sketch",
    "grid_shape",
    "save_four_way_interpolation",
    "save_interpolation_figure",
    "save_sketch_grid",
    "save_sketch_png",
    "save_temperature_figure",
    "wrap",
]

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
    margin: float = DEFAULT_MARGIN,
    side: float | None = None,
    **style: Unpack[LineStyle],
) -> None:
    """Draw a sketch on ``ax`` in ``style``: one line collection (pen-up gaps respected), equal
    scales, ``y`` down, limits the square view box of :func:`sketch_to_svg` (or of side
    ``side``)."""
    _draw_lines(ax, styled_lines(seq3, **style), linewidth)
    vx, vy, vw, vh = view_box(sketch_bounds(seq3), margin, side)
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
    cell_px: int = CELL_PX,
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
    rows = check_cells(sketches, "sketches")
    shape = [len(row) for row in rows]
    nrows, ncols = len(rows), max(shape)
    row_labels = check_labels(row_labels, nrows, "row_labels")
    col_labels = check_labels(col_labels, ncols, "col_labels")
    styles = _cell_styles(
        rows,
        _broadcast(colors, shape, "colors"),
        _broadcast(prefix_points, shape, "prefix_points"),
        dict(color_by_stroke=color_by_stroke, cmap=cmap, prefix_color=prefix_color),
    )
    if cell_px < 8:
        raise ValueError(f"cell_px must be >= 8, found {cell_px}")
    side = None
    if common_scale:
        sides = [
            square_side(sketch_bounds(s), margin) for row in rows for s in row if s is not None
        ]
        side = max(sides) if sides else None
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".png")
    has_labels = row_labels is not None, col_labels is not None
    layout = GridLayout(nrows, ncols, cell_px, *has_labels, title)
    labels = (row_labels, col_labels, title)
    if out.suffix.lower() == ".svg":
        text = grid_svg(rows, styles, layout, *labels, linewidth, margin, side)
        return write_text(out, text)
    return _grid_png(prepare_path(out), rows, styles, layout, labels, linewidth, margin, side)


def _cell_styles(
    rows: list[list[np.ndarray | None]],
    colors: list[list],
    prefix_points: list[list],
    common: dict[str, Any],
) -> list[list[dict | None]]:
    """The :func:`styled_lines` keywords of every cell (``None`` for an empty cell)."""
    return [
        [
            None
            if s is None
            else dict(color=colors[r][c], prefix_points=int(prefix_points[r][c]), **common)
            for c, s in enumerate(row)
        ]
        for r, row in enumerate(rows)
    ]


def _grid_png(
    out: Path,
    rows: list[list[np.ndarray | None]],
    styles: list[list[dict | None]],
    layout: GridLayout,
    labels: tuple[list[str] | None, list[str] | None, str | None],
    linewidth: float,
    margin: float,
    side: float | None,
) -> Path:
    """The grid through matplotlib: one axes in pixel coordinates (y down) for the whole grid,
    each sketch mapped into its cell's square by the same view box as in the SVG (much faster
    than one axes per cell)."""
    fig = Figure(figsize=(layout.width / DPI, layout.height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, layout.width)
    ax.set_ylim(layout.height, 0)
    ax.set_axis_off()
    lines: list[tuple[np.ndarray, str]] = []
    for (x, y), (vx, vy, vw, _), cell_lines in grid_cells(rows, styles, layout, margin, side):
        scale = layout.cell_px / vw
        for pts, col in cell_lines:
            lines.append(((pts - (vx, vy)) * scale + (x, y), col))
    _draw_lines(ax, lines, linewidth)
    font = FONT_PX * 72 / DPI
    for text, x, y, ha in layout.labels(*labels):
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
        write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=DPI, facecolor="white"))
    finally:
        fig.clear()
    return out


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
