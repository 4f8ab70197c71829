"""Figures for the DRAW paper (sample grids, generation sequences, nearest neighbours).

Images are ``torch.Tensor`` or ``numpy.ndarray`` shaped ``(C, H, W)`` with ``C = 1`` (grey,
drawn with a grey colormap) or ``C = 3`` (RGB), values in ``[0, 1]`` (clipped when drawn).
Attention boxes are ``(x_min, y_min, x_max, y_max)`` in pixel coordinates: ``x`` indexes
columns, ``y`` rows, and pixel centres sit at integer coordinates, so a box ``(0, 0, W-1, H-1)``
runs through the centres of the corner pixels.

Every ``save_*`` function writes one file (format from the path suffix: ``.png``, ``.svg``,
``.pdf``, ... ; a path without suffix gets ``.png``), creates missing parent directories and
returns the written path. Rendering uses ``matplotlib.figure.Figure`` with the Agg canvas, so
importing this module never touches the global pyplot backend. Layouts are exact (no
``bbox_inches="tight"``): each image pixel is drawn as an integer block of output pixels at
``dpi=100`` and cells are separated by thin black gaps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tasks.grid import GridLayout

__all__ = [
    "attention_linewidths",
    "nearest_neighbours",
    "save_attention_steps",
    "save_curve",
    "save_generation_sequences",
    "save_image_grid",
    "save_samples_with_nearest",
    "select_steps",
]

ArrayLike = torch.Tensor | np.ndarray
PathLike = str | os.PathLike[str]

_REF_DPI = 100.0  # layout sizes are chosen in pixels at this dpi
MIN_CELL_PX = 96  # small images are upscaled by an integer factor to at least this size
_GAP_IN = 2 / _REF_DPI  # black gap between cells
_TITLE_IN = 0.2  # height reserved for a line of text
_TITLE_FONTSIZE = 7.0
_MIN_LINEWIDTH = 0.5
_MAX_LINEWIDTH = 3.0
_DEFAULT_LINEWIDTH = 1.5


# ----------------------------------------------------------------------------- validation


def _as_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False)
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, found {type(x).__name__}")


def _shape_error(name: str, expected: str, found: Sequence[int]) -> ValueError:
    return ValueError(f"{name}: expected shape {expected}, found shape {tuple(found)}")


def _check_images(x: ArrayLike, name: str, lead: str = "N") -> np.ndarray:
    """Validate ``(*lead, C, H, W)`` images with ``C in {1, 3}`` and return float64 numpy."""
    arr = _as_numpy(x, name)
    n_lead = len(lead.split(", ")) if lead else 0
    expected = f"({lead + ', ' if lead else ''}C, H, W) with C in {{1, 3}}"
    if arr.ndim != n_lead + 3 or arr.shape[-3] not in (1, 3) or 0 in arr.shape:
        raise _shape_error(name, expected, arr.shape)
    return arr


def _check_boxes(x: ArrayLike, name: str, lead_shape: tuple[int, ...], lead: str) -> np.ndarray:
    arr = _as_numpy(x, name)
    if arr.shape != (*lead_shape, 4):
        expected = f"({lead}, 4) = {(*lead_shape, 4)}"
        raise _shape_error(name, expected, arr.shape)
    return arr


def _check_widths(x: ArrayLike, name: str, lead_shape: tuple[int, ...], lead: str) -> np.ndarray:
    arr = _as_numpy(x, name)
    if arr.shape != lead_shape:
        raise _shape_error(name, f"({lead}) = {lead_shape}", arr.shape)
    return arr


def prepare_path(path: PathLike) -> Path:
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".png")
    fmt = out.suffix[1:].lower()
    supported = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(
            f"unsupported figure format {out.suffix!r}; expected one of "
            f"{sorted('.' + k for k in supported)}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def labelled_file(text: str) -> tuple[str, Path]:
    """An argparse type for ``LABEL=PATH`` (a curve's label and an existing file)."""
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, found {text!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    return label, Path(path)


def metric_rows(metrics: PathLike, key: str) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` that hold ``key`` (e.g. ``valid_elbo``), one per
    step — the last record of a step wins, as after a resume — in step order."""
    path = Path(metrics)
    by_step: dict[int, dict] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}: line {number} is not JSON ({error})") from None
        if key in row:
            by_step[int(row["step"])] = row
    if not by_step:
        raise SystemExit(f"{path}: no records with {key!r}; was --validate-every 0?")
    return [by_step[step] for step in sorted(by_step)]


def save_curve(fig: Figure, path: PathLike, dpi: int = 110) -> Path:
    """Lay out and write a matplotlib figure (the examples' learning curves); prints and
    returns the written path (``.png`` if ``path`` has no suffix)."""
    fig.tight_layout()
    out = prepare_path(path)
    fig.savefig(out, dpi=dpi)
    print(f"wrote {out}")
    return out


# ----------------------------------------------------------------------------- helpers


def select_steps(num_steps: int, step_stride: int = 1) -> list[int]:
    """Time steps shown for ``num_steps`` steps: every ``step_stride``-th, ending at the last.

    The selection is aligned to the final step, e.g. ``select_steps(10, 4) == [1, 5, 9]``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, found {num_steps}")
    if step_stride < 1:
        raise ValueError(f"step_stride must be >= 1, found {step_stride}")
    return list(range((num_steps - 1) % step_stride, num_steps, step_stride))


def attention_linewidths(
    widths: ArrayLike | None,
    shape: tuple[int, ...] | None = None,
    *,
    lo: float = _MIN_LINEWIDTH,
    hi: float = _MAX_LINEWIDTH,
) -> np.ndarray:
    """Map filter widths (sigma in pixels) linearly onto line widths in ``[lo, hi]`` points.

    The smallest finite width of the array maps to ``lo`` and the largest to ``hi`` (so widths
    are comparable within one figure, not across figures). Constant widths, non-finite entries
    and ``widths=None`` (which needs ``shape``) give ``(lo + hi) / 2``.
    """
    mid = 0.5 * (lo + hi)
    if widths is None:
        if shape is None:
            raise ValueError("shape is required when widths is None")
        return np.full(shape, mid)
    w = _as_numpy(widths, "widths")
    out = np.full(w.shape, mid)
    finite = np.isfinite(w)
    if finite.any():
        w_min, w_max = w[finite].min(), w[finite].max()
        if w_max > w_min:
            out[finite] = lo + (w[finite] - w_min) / (w_max - w_min) * (hi - lo)
    return out


# ----------------------------------------------------------------------------- layout


class _Grid:
    """Matplotlib axes on a black figure at the cells of a :class:`GridLayout` (inches)."""

    def __init__(self, nrows: int, ncols: int, cell_w: float, cell_h: float, dpi: float, **kw):
        self.layout = GridLayout(nrows, ncols, cell_w, cell_h, _GAP_IN, **kw)
        self.dpi = dpi
        self.width, self.height = self.layout.width, self.layout.height
        self.fig = Figure(figsize=(self.width, self.height), dpi=dpi, facecolor="black")
        FigureCanvasAgg(self.fig)

    def axes(self, row: int, col: int) -> Axes:
        x, y = self.layout.origin(row, col)
        w, h = self.layout.cell_w, self.layout.cell_h
        rect = (x / self.width, 1.0 - (y + h) / self.height, w / self.width, h / self.height)
        ax = self.fig.add_axes(rect)
        ax.set_axis_off()
        return ax

    def text_above(self, row: int, col: int, text: str, *, header: bool = False) -> None:
        """Write white text centred above cell ``(row, col)`` (or above the grid if header)."""
        x = self.layout.centre_x(col) / self.width
        if header:
            y = 1.0 - self.layout.header_line_y(0, self.layout.header) / self.height
        else:
            y = 1.0 - self.layout.row_title_y(row) / self.height
        self.fig.text(x, y, text, color="white", ha="center", va="center", fontsize=_TITLE_FONTSIZE)

    def save(self, path: PathLike) -> Path:
        out = prepare_path(path)
        try:
            self.fig.savefig(out, dpi=self.dpi, facecolor="black")
        finally:
            self.fig.clear()
        return out


def _cell_size(h: int, w: int) -> tuple[float, float]:
    scale = max(1, math.ceil(MIN_CELL_PX / max(h, w)))
    return w * scale / _REF_DPI, h * scale / _REF_DPI


def _show(ax: Axes, image: np.ndarray) -> None:
    """Draw one ``(C, H, W)`` image so that pixel centres sit at integer data coordinates."""
    _, h, w = image.shape
    image = np.clip(np.nan_to_num(image), 0.0, 1.0)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    else:
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest", aspect="auto")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def _draw_box(ax: Axes, box: np.ndarray, linewidth: float, color: str) -> None:
    if not np.all(np.isfinite(box)):
        return
    x0, y0, x1, y1 = (float(v) for v in box)
    ax.add_patch(
        Rectangle(
            (x0, y0),
            x1 - x0,
            y1 - y0,
            fill=False,
            edgecolor=color,
            linewidth=linewidth,
            clip_on=True,
        )
    )


# ----------------------------------------------------------------------------- figures


def save_image_grid(
    images: ArrayLike,
    path: PathLike,
    *,
    ncols: int = 10,
    titles: list[str] | None = None,
    dpi: int = 100,
) -> Path:
    """Save ``images`` (N, C, H, W) as a grid with ``ncols`` columns (optional per-image titles)."""
    imgs = _check_images(images, "images")
    n, _, h, w = imgs.shape
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, found {ncols}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles: expected {n} titles (one per image), found {len(titles)}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    cell_w, cell_h = _cell_size(h, w)
    grid = _Grid(
        nrows, ncols, cell_w, cell_h, dpi, row_title=_TITLE_IN if titles is not None else 0.0
    )
    for i in range(n):
        r, c = divmod(i, ncols)
        _show(grid.axes(r, c), imgs[i])
        if titles is not None:
            grid.text_above(r, c, str(titles[i]))
    return grid.save(path)


def save_generation_sequences(
    canvases: ArrayLike,
    path: PathLike,
    *,
    boxes: ArrayLike | None = None,
    box_widths: ArrayLike | None = None,
    step_stride: int = 1,
    dpi: int = 100,
    box_color: str = "red",
    label_steps: bool = False,
) -> Path:
    """Save canvases (S, T, C, H, W) as rows of samples and columns of time steps (DRAW Fig. 7).

    Columns are the steps ``select_steps(T, step_stride)`` (every ``step_stride``-th step,
    always including the last). ``boxes`` (S, T, 4) are write-attention windows drawn as
    rectangles whose line width follows ``box_widths`` (S, T) via :func:`attention_linewidths`.
    ``label_steps`` writes ``t=<step>`` (1-based) above the columns.
    """
    canv = _check_images(canvases, "canvases", lead="S, T")
    s, t, _, h, w = canv.shape
    box_arr = None if boxes is None else _check_boxes(boxes, "boxes", (s, t), "S, T")
    if box_widths is not None and boxes is None:
        raise ValueError("box_widths given without boxes")
    lw = attention_linewidths(
        None if box_widths is None else _check_widths(box_widths, "box_widths", (s, t), "S, T"),
        (s, t),
    )
    steps = select_steps(t, step_stride)
    cell_w, cell_h = _cell_size(h, w)
    grid = _Grid(s, len(steps), cell_w, cell_h, dpi, header=_TITLE_IN if label_steps else 0.0)
    for i in range(s):
        for j, step in enumerate(steps):
            ax = grid.axes(i, j)
            _show(ax, canv[i, step])
            if box_arr is not None:
                _draw_box(ax, box_arr[i, step], float(lw[i, step]), box_color)
    if label_steps:
        for j, step in enumerate(steps):
            grid.text_above(0, j, f"t={step + 1}", header=True)
    return grid.save(path)


def nearest_neighbours(
    samples: ArrayLike, reference: ArrayLike, *, chunk_size: int = 4096
) -> torch.Tensor:
    """Index (S,) int64 of the pixelwise-L2 nearest ``reference`` (N, ...) item per sample.

    Distances use the float64 expansion ``|s|^2 - 2 s.r + |r|^2`` over blocks of at most
    ``chunk_size`` samples x ``chunk_size`` references; ties go to the lowest index.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, found {chunk_size}")
    smp = torch.as_tensor(samples).detach().cpu().to(torch.float64)
    ref = torch.as_tensor(reference).detach().cpu().to(torch.float64)
    if smp.ndim < 1 or ref.ndim < 1 or smp.shape[1:] != ref.shape[1:]:
        raise ValueError(
            "samples and reference: expected shapes (S, *D) and (N, *D) with the same D, "
            f"found {tuple(smp.shape)} and {tuple(ref.shape)}"
        )
    if smp.shape[0] == 0 or ref.shape[0] == 0:
        raise ValueError(
            f"expected at least one sample and one reference item, found shapes "
            f"{tuple(smp.shape)} and {tuple(ref.shape)}"
        )
    smp = smp.reshape(smp.shape[0], -1)
    ref = ref.reshape(ref.shape[0], -1)
    out = torch.empty(smp.shape[0], dtype=torch.int64)
    for s0 in range(0, smp.shape[0], chunk_size):
        s_blk = smp[s0 : s0 + chunk_size]
        s_sq = (s_blk * s_blk).sum(1, keepdim=True)
        best_d = torch.full((s_blk.shape[0],), math.inf, dtype=torch.float64)
        best_i = torch.zeros(s_blk.shape[0], dtype=torch.int64)
        for r0 in range(0, ref.shape[0], chunk_size):
            r_blk = ref[r0 : r0 + chunk_size]
            d = s_sq - 2.0 * s_blk @ r_blk.T + (r_blk * r_blk).sum(1)
            d_min, i_min = d.min(dim=1)
            better = d_min < best_d
            best_d = torch.where(better, d_min, best_d)
            best_i = torch.where(better, i_min + r0, best_i)
        out[s0 : s0 + s_blk.shape[0]] = best_i
    return out


def save_samples_with_nearest(
    samples: ArrayLike,
    reference: ArrayLike,
    path: PathLike,
    *,
    ncols: int = 5,
    dpi: int = 100,
) -> Path:
    """Save samples (S, C, H, W) in ``ncols`` columns plus, in a separated extra rightmost
    column titled "nearest training image", the nearest ``reference`` image (N, C, H, W) of
    each last-column sample (DRAW Fig. 6)."""
    smp = _check_images(samples, "samples")
    ref = _check_images(reference, "reference")
    if smp.shape[1:] != ref.shape[1:]:
        raise ValueError(
            f"reference: expected shape (N, {', '.join(map(str, smp.shape[1:]))}) matching "
            f"samples, found shape {tuple(ref.shape)}"
        )
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, found {ncols}")
    s, _, h, w = smp.shape
    ncols = min(ncols, s)
    nrows = math.ceil(s / ncols)
    last_col = [r * ncols + ncols - 1 for r in range(nrows) if r * ncols + ncols - 1 < s]
    nn = nearest_neighbours(torch.from_numpy(smp[last_col]), torch.from_numpy(ref))
    cell_w, cell_h = _cell_size(h, w)
    grid = _Grid(
        nrows,
        ncols + 1,
        cell_w,
        cell_h,
        dpi,
        header=2 * _TITLE_IN,
        col_extra_gap={ncols: max(0.25 * cell_w, 4 * _GAP_IN)},
    )
    for i in range(s):
        r, c = divmod(i, ncols)
        _show(grid.axes(r, c), smp[i])
    for k, idx in enumerate(last_col):
        _show(grid.axes(idx // ncols, ncols), ref[int(nn[k])])
    grid.text_above(0, ncols, "nearest\ntraining image", header=True)
    return grid.save(path)


def save_attention_steps(
    image: ArrayLike,
    boxes: ArrayLike,
    path: PathLike,
    *,
    box_widths: ArrayLike | None = None,
    color: str = "lime",
    ncols: int = 10,
    dpi: int = 100,
    label_steps: bool = False,
) -> Path:
    """Save ``image`` (C, H, W) once per attention box (T, 4), one panel per step.

    Panels wrap after ``ncols``; line widths follow ``box_widths`` (T,) as in
    :func:`attention_linewidths`; ``label_steps`` writes ``t=<step>`` (1-based) above panels.
    """
    img = _check_images(image, "image", lead="")
    b = _as_numpy(boxes, "boxes")
    if b.ndim != 2 or b.shape[1] != 4 or b.shape[0] == 0:
        raise _shape_error("boxes", "(T, 4) with T >= 1", b.shape)
    t = b.shape[0]
    lw = attention_linewidths(
        None if box_widths is None else _check_widths(box_widths, "box_widths", (t,), "T"),
        (t,),
    )
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, found {ncols}")
    ncols = min(ncols, t)
    nrows = math.ceil(t / ncols)
    _, h, w = img.shape
    cell_w, cell_h = _cell_size(h, w)
    grid = _Grid(nrows, ncols, cell_w, cell_h, dpi, row_title=_TITLE_IN if label_steps else 0.0)
    for k in range(t):
        r, c = divmod(k, ncols)
        ax = grid.axes(r, c)
        _show(ax, img)
        _draw_box(ax, b[k], float(lw[k]), color)
        if label_steps:
            grid.text_above(r, c, f"t={k + 1}")
    return grid.save(path)
