"""The pictures of DooD Fig. 4: a heat-map of the transfer table (one panel per model, sources ×
targets, ``mean ± sd`` in every cell, the official DooD number below it where there is one) and
the reconstructions of a few images of every target by every source model (rows: the originals,
then one row per source; columns: the images, grouped by target)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from tasks.figures import MIN_CELL_PX, prepare_path
from tasks.grid import GridLayout

__all__ = ["save_transfer_heatmap", "save_transfer_reconstructions"]

_LABEL_PX = 230  # output pixels of the row-label column
_TEXT_PX = 18
_GAP_GREY = 0.35
_CMAP = matplotlib.colormaps["viridis"].with_extremes(bad="0.8")  # grey: no value


def _cell_text(row: dict[str, Any]) -> str:
    text = f"{row['mean']:.0f}" + ("" if row["sd"] is None else f"\n± {row['sd']:.0f}")
    official = row.get("official")
    if official:
        text += f"\n(official {official['mean']:.0f} ± {official['sd']:.0f})"
    return text


def save_transfer_heatmap(
    table: Sequence[dict[str, Any]], targets: Sequence[str], path: str | Path
) -> Path:
    """Heat-map of :func:`tasks.transfer.table.summarise_cells` rows: one panel per model, rows
    = its sources, columns = ``targets``; colour per panel (missing cells grey)."""
    if not table:
        raise ValueError("transfer heat-map: the table is empty")
    models = list(dict.fromkeys(row["model"] for row in table))
    panels = []
    for model in models:
        rows = [row for row in table if row["model"] == model]
        sources = list(dict.fromkeys(row["source"] for row in rows))
        values = np.full((len(sources), len(targets)), np.nan)
        texts: dict[tuple[int, int], str] = {}
        for row in rows:
            i, j = sources.index(row["source"]), list(targets).index(row["target"])
            values[i, j] = row["mean"]
            texts[i, j] = _cell_text(row)
        panels.append((model, sources, values, texts))
    height = sum(0.9 + 0.75 * len(p[1]) for p in panels)
    fig = Figure(figsize=(3.0 + 1.6 * len(targets), height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (model, sources, values, texts) in zip(axes, panels, strict=True):
        masked = np.ma.masked_invalid(values)
        image = ax.imshow(masked, cmap=_CMAP, aspect="auto")
        finite = values[np.isfinite(values)]
        middle = float(finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (i, j), text in texts.items():
            colour = "black" if values[i, j] > middle else "white"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(len(targets)), [f"→ {t}" for t in targets], fontsize=8)
        ax.set_yticks(range(len(sources)), sources, fontsize=8)
        ax.set_title(f"{model}: IWAE log p(x), nats (source rows, target columns)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    out = prepare_path(path)
    fig.savefig(out, dpi=100)
    return out


def _resized(images: Tensor, size: int) -> np.ndarray:
    if images.shape[-1] != size:
        images = F.interpolate(images.float(), size=(size, size), mode="bilinear")
    return images.detach().cpu().clamp(0, 1).double().numpy()


def save_transfer_reconstructions(
    originals: dict[str, Tensor],
    reconstructions: Sequence[tuple[str, dict[str, Tensor]]],
    path: str | Path,
) -> Path:
    """Fig. 4's pictures: ``originals`` (target → ``(k, 1, H, W)``) on the top row, then one row
    per ``(source label, target → its reconstructions (k, 1, h, w))``; every image is shown at
    the largest side given (bilinear), the targets' columns separated by a wider gap."""
    if not originals or not reconstructions:
        raise ValueError("transfer reconstructions: nothing to show")
    targets = list(originals)
    counts = [len(originals[t]) for t in targets]
    sizes = [img.shape[-1] for img in originals.values()]
    sizes += [img.shape[-1] for _, recs in reconstructions for img in recs.values()]
    side = max(sizes)
    scale = max(1, math.ceil(MIN_CELL_PX / side))
    starts = np.cumsum([0, *counts[:-1]]).tolist()
    band = math.ceil(_TEXT_PX / scale)
    layout = GridLayout(
        1 + len(reconstructions),
        sum(counts),
        side,
        side,
        1,
        header=band,
        left=math.ceil(_LABEL_PX / scale),
        col_extra_gap={start: 3 for start in starts[1:]},
    )
    left = math.ceil(_LABEL_PX / scale)
    pixels = np.full((int(layout.height), int(layout.width), 3), _GAP_GREY)
    pixels[:band] = pixels[:, :left] = 0.0  # text on black
    rows = [("originals", originals), *reconstructions]
    for r, (_, images) in enumerate(rows):
        for target, start in zip(targets, starts, strict=True):
            if target not in images:
                continue
            arrays = _resized(images[target], side)
            for k, image in enumerate(arrays):
                x, y = (int(v) for v in layout.origin(r, start + k))
                pixels[y : y + side, x : x + side] = np.repeat(image, 3, 0).transpose(1, 2, 0)
    fig = Figure(figsize=(layout.width * scale / 100, layout.height * scale / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.imshow(pixels, interpolation="nearest", aspect="auto")
    ax.set_xlim(-0.5, layout.width - 0.5)
    ax.set_ylim(layout.height - 0.5, -0.5)
    for target, start, count in zip(targets, starts, counts, strict=True):
        x = (layout.origin(0, start)[0] + layout.origin(0, start + count - 1)[0] + side) / 2
        ax.text(x, band / 2, target, color="white", ha="center", va="center", fontsize=8)
    for r, (label, _) in enumerate(rows):
        y = layout.origin(r, 0)[1] + side / 2
        ax.text(2, y, label, color="white", ha="left", va="center", fontsize=7)
    out = prepare_path(path)
    fig.savefig(out, dpi=100, facecolor="black")
    return out
