"""Attention pictures: RAM's glimpse paths with the retina at every scale (Fig. 3), DRAM's read
windows (DRAW Fig. 5), and ``pyro-draw sample`` of RAM/DRAM checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from generative.glimpse import clip_locations, glimpse_centres
from generative.ram import DRAM, RAM
from inference.checkpoint import Checkpoint
from tasks.family import ModelSpec
from tasks.figures import save_generation_sequences
from tasks.options import SplitOptions, option, positive
from tasks.ram.data import checkpoint_split

__all__ = [
    "AttentionSampleOptions",
    "retina_composite",
    "sample_command",
    "save_glimpse_paths",
    "write_attention_figure",
]


def retina_composite(glimpses: Tensor) -> Tensor:
    """RAM Fig. 3's view of one glimpse: ``(scales, C, s, s)`` → ``(C, s·2^(k−1), s·2^(k−1))``.

    Each scale ``k`` is upsampled by ``2^k`` (nearest) back to its size in image pixels and pasted
    centred, coarsest first, so the centre shows the full-resolution patch and the surround the
    low-resolution ones.
    """
    if glimpses.dim() != 4 or glimpses.shape[-1] != glimpses.shape[-2]:
        raise ValueError(
            f"glimpses: expected (scales, C, size, size), found {tuple(glimpses.shape)}"
        )
    scales, channels, size, _ = glimpses.shape
    side = size * 2 ** (scales - 1)
    out = glimpses.new_zeros(channels, side, side)
    for k in reversed(range(scales)):
        width = size * 2**k
        start = (side - width) // 2
        up = glimpses[k].repeat_interleave(2**k, -1).repeat_interleave(2**k, -2)
        out[:, start : start + width, start : start + width] = up
    return out


def _imshow(ax: Any, image: np.ndarray) -> None:
    image = np.clip(image, 0.0, 1.0)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
    ax.set_axis_off()


def save_glimpse_paths(
    images: Tensor,
    locations: Tensor,
    glimpses: Tensor,
    path: str | Path,
    *,
    titles: list[str] | None = None,
    dpi: int = 100,
) -> Path:
    """RAM Fig. 3: per row, the input with the glimpse path in green (first location a filled
    circle, last an empty one, straight lines between) and then the glimpse of every step
    (:func:`retina_composite`).

    ``images`` ``(S, C, H, W)``, ``locations`` ``(S, T, 2)`` (as sensed, in ``[−1, 1]²``),
    ``glimpses`` ``(S, T, scales, C, size, size)``; writes ``path`` (PNG unless another suffix).
    """
    if images.dim() != 4:
        raise ValueError(f"images: expected (S, C, H, W), found {tuple(images.shape)}")
    s, _, height, width = images.shape
    if locations.dim() != 3 or locations.shape[0] != s or locations.shape[2] != 2:
        raise ValueError(f"locations: expected ({s}, T, 2), found {tuple(locations.shape)}")
    t = locations.shape[1]
    if glimpses.dim() != 6 or glimpses.shape[:2] != (s, t):
        raise ValueError(
            f"glimpses: expected ({s}, {t}, scales, C, size, size), found {tuple(glimpses.shape)}"
        )
    if titles is not None and len(titles) != s:
        raise ValueError(f"titles: expected {s} titles (one per row), found {len(titles)}")
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    cell = 1.2
    fig = Figure(figsize=(cell * (t + 1), cell * s * 1.15), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    axes = fig.subplots(s, t + 1, squeeze=False)
    for i in range(s):
        ax = axes[i, 0]
        _imshow(ax, images[i].detach().cpu().numpy())
        centres = glimpse_centres(locations[i].detach().cpu(), height, width).numpy()
        ax.plot(centres[:, 0], centres[:, 1], "-", color="lime", linewidth=1.0)
        ax.plot(*centres[0], "o", color="lime", markersize=4)
        ax.plot(*centres[-1], "o", markerfacecolor="none", markeredgecolor="lime", markersize=6)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        if titles is not None:
            ax.set_title(titles[i], color="white", fontsize=7)
        for j in range(t):
            composite = retina_composite(glimpses[i, j].detach().cpu())
            _imshow(axes[i, j + 1], composite.numpy())
            if i == 0:
                axes[i, j + 1].set_title(f"t={j + 1}", color="white", fontsize=7)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.3)
    fig.savefig(out, dpi=dpi, facecolor="black")
    return out


def write_attention_figure(
    model: nn.Module, images: Tensor, labels: Tensor, path: str | Path, *, seed: int = 0
) -> Path:
    """The glimpse-path figure of a RAM (Fig. 3; mean policy) or the attention windows of a DRAM
    (DRAW Fig. 5: the read window of every step in green, line width ∝ filter σ)."""
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(model, RAM):
                out = model.model(images, deterministic=True, record=True)
                preds = out.logits.argmax(-1)
                titles = [
                    f"label {int(y)}, predicted {int(p)}"
                    for y, p in zip(labels, preds, strict=True)
                ]
                return save_glimpse_paths(
                    images, clip_locations(out.locations), out.glimpses, path, titles=titles
                )
            if isinstance(model, DRAM):
                out = model.run(images, record=True)
                n = model.config.read_size
                boxes = torch.stack([w.box(n) for w in out.windows], 1)
                sigmas = torch.stack([w.sigma2.sqrt() for w in out.windows], 1)
                steps = boxes.shape[1]
                canvases = images.unsqueeze(1).expand(-1, steps, -1, -1, -1)
                return save_generation_sequences(
                    canvases,
                    path,
                    boxes=boxes,
                    box_widths=sigmas,
                    box_color="lime",
                    label_steps=True,
                )
    finally:
        model.train(was_training)
    raise ValueError(f"no attention figure for {type(model).__name__} (RAM and DRAM only)")


@dataclass
class AttentionSampleOptions(SplitOptions):
    """Options of ``pyro-draw sample`` for RAM and DRAM checkpoints: the attention figure of a
    few images of a split."""

    num_sequences: int = option(6, "images (rows) of the attention figure", check=positive)


def sample_command(
    spec: ModelSpec, checkpoint: Checkpoint, options: AttentionSampleOptions
) -> None:
    """``pyro-draw sample CHECKPOINT``: ``glimpses_<dataset>_<split>.png`` (RAM: glimpse paths
    along the policy mean; DRAM: its read windows)."""
    model, _ = spec.restore(checkpoint, options.device)
    data = checkpoint_split(checkpoint, options, options.num_sequences)
    out = options.out_dir(checkpoint.path)
    path = write_attention_figure(
        model,
        data.images.to(options.device),
        data.labels,
        out / f"glimpses_{data.name}_{options.split}.png",
        seed=options.seed,
    )
    print(f"wrote {path}")
