"""DooD's figure writers: image mosaics with stroke overlays (Bézier curves, control points,
layout windows), sample rows and completion rows, each drawn as one image on one axes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle
from torch import Tensor

from tasks.figures import MIN_CELL_PX, prepare_path
from tasks.grid import GridLayout

__all__ = ["save_completions", "save_sample_rows", "save_stroke_steps"]

_CURVE_COLOR = "orange"
_POINT_COLOR = "deepskyblue"
_WINDOW_COLOR = "lime"
_PARTIAL_TINT = (1.0, 0.55, 0.1)


def _np(x: Tensor | None) -> np.ndarray | None:
    return None if x is None else x.detach().cpu().double().numpy()


class _Mosaic:
    """A grid of equally sized image cells drawn as *one* image on one axes (fast: no axes per
    cell), separated by grey gaps, with text bands above the grid and/or above every row.

    Data coordinates are mosaic pixels (pixel centres at integers); :meth:`origin` gives the
    offset to add to a cell's pixel ``(column, row)`` coordinates for overlays. Each image pixel
    is drawn as an integer block of output pixels at ``dpi`` (as :mod:`tasks.figures` does).
    """

    GAP, GAP_VALUE, TEXT_PX = 1, 0.35, 18  # gap in image pixels, its grey, text band height

    def __init__(
        self, nrows: int, ncols: int, h: int, w: int, *, header: int = 0, row_titles: bool = False
    ):
        self.h, self.w = h, w
        self.scale = max(1, math.ceil(MIN_CELL_PX / max(h, w)))
        self.band = band = math.ceil(self.TEXT_PX / self.scale)
        self.header = header * band
        self.row_band = band if row_titles else 0
        self.layout = GridLayout(
            nrows, ncols, w, h, self.GAP, header=self.header, row_title=self.row_band
        )
        self.height, self.width = int(self.layout.height), int(self.layout.width)
        self.pixels = np.full((self.height, self.width, 3), self.GAP_VALUE)
        self.pixels[: self.header] = 0.0
        for r in range(nrows):
            y = self.origin(r, 0)[1]
            self.pixels[y - self.row_band : y] = 0.0
        self.fig = Figure(
            figsize=(self.width * self.scale / 100, self.height * self.scale / 100), dpi=100
        )
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0.0, 0.0, 1.0, 1.0))
        self.ax.set_axis_off()

    def origin(self, r: int, c: int) -> tuple[int, int]:
        """Mosaic ``(x, y)`` of the top-left pixel centre of cell ``(r, c)``."""
        x, y = self.layout.origin(r, c)
        return int(x), int(y)

    def put(self, r: int, c: int, image: np.ndarray, *, dim: bool = False) -> None:
        """Place a ``(1 | 3, H, W)`` image (values clipped to ``[0, 1]``) in cell ``(r, c)``."""
        x, y = self.origin(r, c)
        rgb = np.clip(np.nan_to_num(image), 0.0, 1.0)
        rgb = np.repeat(rgb, 3, 0) if rgb.shape[0] == 1 else rgb
        self.pixels[y : y + self.h, x : x + self.w] = rgb.transpose(1, 2, 0) * (0.4 if dim else 1)

    def text(self, x: float, y: float, label: str) -> None:
        self.ax.text(x, y, label, color="white", ha="center", va="center", fontsize=7)

    def column_label(self, c: int, label: str, line: int = 0) -> None:
        """Text in header line ``line`` centred above column ``c``."""
        self.text(self.origin(0, c)[0] + (self.w - 1) / 2, (line + 0.5) * self.band - 0.5, label)

    def row_label(self, r: int, c: int, label: str) -> None:
        x, y = self.origin(r, c)
        self.text(x + (self.w - 1) / 2, y - self.row_band / 2 - 0.5, label)

    def save(self, path: str | Path) -> Path:
        out = prepare_path(path)
        self.ax.imshow(self.pixels, interpolation="nearest", aspect="auto")
        self.ax.set_xlim(-0.5, self.width - 0.5)
        self.ax.set_ylim(self.height - 0.5, -0.5)
        try:
            self.fig.savefig(out, dpi=100, facecolor="black")
        finally:
            self.fig.clear()
        return out


def _check_steps(
    canvases: Tensor, present: Tensor, targets: Tensor | None, overlays: dict[str, Tensor | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray | None]]:
    canv = _np(canvases)
    if canv is None or canv.ndim != 5 or canv.shape[2] != 1:
        raise ValueError(f"canvases: expected (N, T, 1, H, W), found {tuple(canvases.shape)}")
    n, t, _, h, w = canv.shape
    pres = _np(present)
    if pres.shape != (n, t):
        raise ValueError(f"present: expected shape {(n, t)}, found {pres.shape}")
    tgt = _np(targets)
    if tgt is not None and tgt.shape != (n, 1, h, w):
        raise ValueError(f"targets: expected shape {(n, 1, h, w)}, found {tgt.shape}")
    arrays = {name: _np(value) for name, value in overlays.items()}
    for name, arr in arrays.items():
        if arr is not None and (arr.ndim != 4 or arr.shape[:2] != (n, t) or arr.shape[-1] != 2):
            raise ValueError(f"{name}: expected shape ({n}, {t}, P, 2), found {arr.shape}")
    return canv, pres, tgt, arrays


def _draw_overlays(
    ax: Axes,
    origin: tuple[int, int],
    size: tuple[int, int],
    window: np.ndarray | None,
    points: np.ndarray | None,
    curve: np.ndarray | None,
) -> None:
    """One step's layout window, control points and curve, clipped to its cell."""
    x0, y0 = origin
    clip = Rectangle((x0 - 0.5, y0 - 0.5), size[1], size[0], transform=ax.transData)
    artists = []
    if window is not None:
        artists.append(
            ax.add_patch(Polygon(window + (x0, y0), fill=False, ec=_WINDOW_COLOR, lw=0.8))
        )
    if points is not None:
        xs, ys = points[:, 0] + x0, points[:, 1] + y0
        artists += ax.plot(xs, ys, "--", color=_POINT_COLOR, lw=0.6)
        artists += ax.plot(xs, ys, "o", color=_POINT_COLOR, ms=2.0)
    if curve is not None:
        artists += ax.plot(curve[:, 0] + x0, curve[:, 1] + y0, "-", color=_CURVE_COLOR, lw=1.2)
    for artist in artists:
        artist.set_clip_path(clip)


def save_stroke_steps(
    canvases: Tensor,
    present: Tensor,
    path: str | Path,
    *,
    targets: Tensor | None = None,
    curves: Tensor | None = None,
    control_points: Tensor | None = None,
    windows: Tensor | None = None,
    title: str | None = None,
) -> Path:
    """One row per drawing: the target (if given), then the canvas after each step ``t`` with
    step ``t``'s curve (orange), control points (blue) and layout window (green) drawn over it.
    Steps after the drawing stopped (``present = 0``) are dimmed. Overlays are pixel
    ``(column, row)`` coordinates: ``curves`` (N, T, S, 2), ``control_points`` (N, T, J, 2),
    ``windows`` (N, T, 4, 2)."""
    overlays = {"windows": windows, "control_points": control_points, "curves": curves}
    canv, pres, tgt, arrays = _check_steps(canvases, present, targets, overlays)
    win, cps, cur = arrays["windows"], arrays["control_points"], arrays["curves"]
    n, t, _, h, w = canv.shape
    offset = 0 if tgt is None else 1
    grid = _Mosaic(n, t + offset, h, w, header=2 if title else 1)
    for i in range(n):
        if tgt is not None:
            grid.put(i, 0, tgt[i])
        for k in range(t):
            present_k = pres[i, k] > 0
            grid.put(i, k + offset, canv[i, k], dim=not present_k)
            if present_k:
                _draw_overlays(
                    grid.ax,
                    grid.origin(i, k + offset),
                    (h, w),
                    None if win is None else win[i, k],
                    None if cps is None else cps[i, k],
                    None if cur is None else cur[i, k],
                )
    labels = (["target"] if tgt is not None else []) + [f"step {k + 1}" for k in range(t)]
    for j, label in enumerate(labels):
        grid.column_label(j, label, line=1 if title else 0)
    if title:
        grid.text((grid.width - 1) / 2, grid.band / 2 - 0.5, title)
    return grid.save(path)


def save_sample_rows(
    groups: Sequence[tuple[str, Tensor]], path: str | Path, *, ncols: int = 10
) -> Path:
    """Groups of images ``(label, (n, C, H, W))`` (e.g. one per temperature), each wrapped into
    rows of ``ncols`` with the label above its first row."""
    if not groups:
        raise ValueError("save_sample_rows: no image groups")
    arrays = [(label, _np(images)) for label, images in groups]
    _, c, h, w = arrays[0][1].shape
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, found {ncols}")
    ncols = min(ncols, max(len(a) for _, a in arrays))
    placed: list[tuple[str, np.ndarray]] = []
    for label, arr in arrays:
        if arr.ndim != 4 or arr.shape[1:] != (c, h, w):
            raise ValueError(f"group {label!r}: expected (n, {c}, {h}, {w}), found {arr.shape}")
        for start in range(0, len(arr), ncols):
            placed.append((label if start == 0 else "", arr[start : start + ncols]))
    grid = _Mosaic(len(placed), ncols, h, w, row_titles=True)
    for r, (label, row) in enumerate(placed):
        for k, image in enumerate(row):
            grid.put(r, k, image)
        if label:
            grid.row_label(r, 0, label)
    return grid.save(path)


def save_completions(partial: Tensor, inferred: Tensor, added: Tensor, path: str | Path) -> Path:
    """Fig. 8: per row the partial drawing, the guide's reconstruction of it, then the
    completions — the partial drawing in orange and the strokes the model added in white.
    ``partial``/``inferred`` (N, 1, H, W), ``added`` (N, S, 1, H, W) (ink of the new strokes)."""
    part, inf, add = _np(partial), _np(inferred), _np(added)
    if part.ndim != 4 or inf.shape != part.shape or add.ndim != 5 or add.shape[0] != len(part):
        raise ValueError(
            f"expected partial/inferred (N, 1, H, W) and added (N, S, 1, H, W), found "
            f"{part.shape}, {inf.shape}, {add.shape}"
        )
    n, s = add.shape[:2]
    h, w = part.shape[-2:]
    tint = np.asarray(_PARTIAL_TINT)[:, None, None]
    grid = _Mosaic(n, s + 2, h, w, header=1)
    for i in range(n):
        grid.put(i, 0, part[i])
        grid.put(i, 1, inf[i])
        for k in range(s):
            grid.put(i, k + 2, np.maximum(part[i] * tint, add[i, k]))  # (3, H, W)
    for j, label in enumerate(["partial", "inferred"] + ["completions"] * min(1, s)):
        grid.column_label(j, label)
    return grid.save(path)
