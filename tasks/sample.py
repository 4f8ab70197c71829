"""Sampling task: samples, generation sequences with write windows, nearest training images."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from generative.attention import AttentionParams
from tasks.figures import save_generation_sequences, save_image_grid, save_samples_with_nearest


def write_boxes(windows: Tensor, write_size: int) -> tuple[Tensor, Tensor]:
    """Boxes ``(S, T, 4)`` in 0-based pixel coordinates and filter widths σ ``(S, T)`` from the
    recorded write windows ``(S, T, 5)`` = ``(g_X, g_Y, δ, σ², γ)``."""
    params = AttentionParams(*windows.unbind(-1))
    return params.box(write_size), params.sigma2.sqrt()


def write_pictures(
    model,
    out_dir: str | Path,
    *,
    reference: Tensor | None = None,
    num_samples: int = 50,
    num_sequences: int = 8,
    seed: int = 0,
) -> list[Path]:
    """Generation sequences (paper Fig. 1/7), a sample grid, and samples beside their nearest
    training images (Fig. 6) when ``reference`` images are given."""
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        seq = model.generate(num_sequences)
        samples = model.generate(num_samples)["canvases"][:, -1]
    finally:
        model.train(was_training)
    boxes = widths = None
    if "windows" in seq:
        boxes, widths = write_boxes(seq["windows"], model.config.write_size)
    stride = max(1, model.config.steps // 16)
    paths = [
        save_generation_sequences(
            seq["canvases"],
            out_dir / "generation.png",
            boxes=boxes,
            box_widths=widths,
            step_stride=stride,
        ),
        save_image_grid(samples, out_dir / "samples.png", ncols=10),
    ]
    if reference is not None:
        paths.append(save_samples_with_nearest(samples[:25], reference, out_dir / "nearest.png"))
    return paths
