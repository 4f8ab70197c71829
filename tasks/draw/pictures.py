"""DRAW's pictures: generation sequences with write windows, samples, nearest training images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from generative.attention import AttentionParams
from inference.checkpoint import Checkpoint
from tasks.data import load_images
from tasks.family import ModelSpec
from tasks.figures import save_generation_sequences, save_image_grid, save_samples_with_nearest
from tasks.options import CheckpointOptions, option, positive

__all__ = ["SampleOptions", "sample_canvases", "sample_command", "write_boxes", "write_pictures"]


def write_boxes(windows: Tensor, write_size: int) -> tuple[Tensor, Tensor]:
    """Boxes ``(S, T, 4)`` in 0-based pixel coordinates and filter widths σ ``(S, T)`` from the
    recorded write windows ``(S, T, 5)`` = ``(g_X, g_Y, δ, σ², γ)``."""
    params = AttentionParams(*windows.unbind(-1))
    return params.box(write_size), params.sigma2.sqrt()


def sample_canvases(model: nn.Module, num_samples: int) -> Tensor:
    """``(S, C, H, W)`` final canvases ``σ(c_T)`` of ``num_samples`` prior samples (sec. 2.3; the
    means of ``p(x | z)``, as the paper shows them)."""
    return model.generate(num_samples)["canvases"][:, -1]


def write_pictures(
    model: nn.Module,
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
        samples = sample_canvases(model, num_samples)
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


@dataclass
class SampleOptions(CheckpointOptions):
    """Options of ``pyro-draw sample`` for DRAW checkpoints."""

    num_samples: int = option(50, "samples in the sample grid", check=positive)
    num_sequences: int = option(8, "generation sequences drawn step by step", check=positive)
    nearest: bool = option(
        True, "skip the nearest-training-image figure (it needs the training data)"
    )


def sample_command(spec: ModelSpec, checkpoint: Checkpoint, options: SampleOptions) -> None:
    """``pyro-draw sample CHECKPOINT``: the pictures of :func:`write_pictures`."""
    model, _ = spec.restore(checkpoint, options.device)
    reference = None
    if options.nearest:
        data = load_images(
            checkpoint.record.dataset,
            "train",
            data_dir=options.data_dir,
            download=options.download,
        )
        reference = data.images
    out = options.out_dir(checkpoint.path)
    for path in write_pictures(
        model,
        out,
        reference=reference,
        num_samples=options.num_samples,
        num_sequences=options.num_sequences,
        seed=options.seed,
    ):
        print(f"wrote {path}")
