"""sketch-rnn's pictures: the figures of its creative tasks as PNG + SVG, and the set written
after training (:func:`write_sketch_pictures`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import to_hex
from torch import nn

from tasks.data.core import derive_seed
from tasks.data.stroke_formats import pad_batch
from tasks.data.strokes import StrokeData
from tasks.sketch_rnn.completion import complete, incomplete_sketch, unconditional_samples
from tasks.sketch_rnn.figures import (
    save_four_way_interpolation,
    save_interpolation_figure,
    save_sketch_grid,
    save_temperature_figure,
)
from tasks.sketch_rnn.latent import interpolate, interpolate_grid, reconstruct
from tasks.sketch_rnn.sampling import (
    COMPLETION_TEMPERATURE,
    INTERPOLATION_TEMPERATURE,
    check_temperature,
    output_scale,
    to_data_units,
)

__all__ = [
    "check_data",
    "completion_figure",
    "data_units",
    "interpolation_figure",
    "interpolation_grid_figure",
    "pick",
    "reconstruction_figure",
    "samples_figure",
    "save_both",
    "write_sketch_pictures",
    "write_training_pictures",
]


def save_both(save: Callable[..., Path], stem: Path, *args: Any, **kwargs: Any) -> list[Path]:
    """Write a figure as ``<stem>.png`` and ``<stem>.svg``."""
    return [save(stem.with_name(stem.name + ext), *args, **kwargs) for ext in (".png", ".svg")]


def data_units(data: StrokeData, index: int) -> np.ndarray:
    return to_data_units(data.sequences[index], data.scale_factor)


def check_data(model: nn.Module, data: StrokeData) -> None:
    factor = model.config.scale_factor
    if factor is not None and not math.isclose(factor, data.scale_factor, rel_tol=1e-5):
        raise ValueError(
            f"data {data.name}/{data.split}: scale_factor {data.scale_factor} differs from the "
            f"model's config.scale_factor {factor}; load the data with "
            "scale_factor=model.config.scale_factor"
        )
    too_long = [i for i, s in enumerate(data.sequences) if len(s) > model.config.max_length]
    if too_long:
        raise ValueError(
            f"data {data.name}/{data.split}: sequence {too_long[0]} is longer than N_max = "
            f"{model.config.max_length}; load the data with max_length=model.config.max_length"
        )


def pick(data: StrokeData, num: int, seed: int, tag: str) -> list[int]:
    """``num`` distinct example indices (fewer if the split is smaller), fixed by the seed."""
    # "sketch_tasks": the module these picks came from, kept so a seed picks the same examples
    rng = np.random.default_rng(derive_seed("sketch_tasks", tag, seed))
    return [int(i) for i in rng.permutation(len(data))[:num]]


def _temperature_colors(taus: Sequence[float], cols: int) -> list[list[str]]:
    """Row colours from blue (lowest τ) to red (highest), as the paper's Fig. 3."""
    cmap = colormaps["coolwarm"]
    n = len(taus)
    return [[to_hex(cmap(0.05 + 0.9 * (k / (n - 1) if n > 1 else 0.0)))] * cols for k in range(n)]


def reconstruction_figure(
    model: nn.Module,
    guide: nn.Module,
    data: StrokeData,
    indices: Sequence[int],
    temperatures: Sequence[float],
    stem: Path,
    *,
    generator: torch.Generator | None = None,
) -> list[Path]:
    """Inputs and their reconstructions at each τ (sec. 4.1, Fig. 5) as PNG + SVG."""
    x5, lengths = pad_batch([data.sequences[i] for i in indices], model.config.max_length)
    recs = reconstruct(model, guide, x5, lengths, temperatures, generator=generator)
    inputs = [data_units(data, i) for i in indices]
    labels = [f"#{i}" for i in indices]
    return save_both(save_temperature_figure, stem, inputs, recs, row_labels=labels)


def interpolation_figure(
    model: nn.Module,
    guide: nn.Module,
    data: StrokeData,
    pairs: Sequence[tuple[int, int]],
    num_steps: int,
    stem: Path,
    *,
    temperature: float = INTERPOLATION_TEMPERATURE,
    generator: torch.Generator | None = None,
) -> list[Path]:
    """One row of interpolated decodings per pair of inputs (sec. 4.2, Fig. 6 left)."""
    rows = [
        interpolate(
            model,
            guide,
            data.sequences[a],
            data.sequences[b],
            num_steps,
            temperature=temperature,
            generator=generator,
        )
        for a, b in pairs
    ]
    inputs = [(data_units(data, a), data_units(data, b)) for a, b in pairs]
    ts = np.linspace(0.0, 1.0, num_steps).tolist()
    return save_both(
        save_interpolation_figure,
        stem,
        rows,
        t_values=ts,
        inputs=inputs,
        row_labels=[f"#{a}→#{b}" for a, b in pairs],
        title=f"slerp between encodings, τ={temperature:g}",
    )


def interpolation_grid_figure(
    model: nn.Module,
    guide: nn.Module,
    data: StrokeData,
    corners: Sequence[int],
    size: int,
    stem: Path,
    *,
    temperature: float = INTERPOLATION_TEMPERATURE,
    generator: torch.Generator | None = None,
) -> list[Path]:
    """The four-way interpolation grid (appendix Figs. 6–8) and, beside it, the corner inputs."""
    grid = interpolate_grid(
        model,
        guide,
        [data.sequences[i] for i in corners],
        size,
        size,
        temperature=temperature,
        generator=generator,
    )
    paths = save_both(save_four_way_interpolation, stem, grid)
    inputs = [[data_units(data, corners[0]), data_units(data, corners[1])]]
    inputs.append([data_units(data, corners[2]), data_units(data, corners[3])])
    paths += save_both(
        save_sketch_grid,
        stem.with_name(stem.name + "_inputs"),
        inputs,
        title="corner inputs",
    )
    return paths


def completion_figure(
    model: nn.Module,
    guide: nn.Module | None,
    data: StrokeData,
    indices: Sequence[int],
    num_completions: int,
    stem: Path,
    *,
    prefix_points: int | None = None,
    temperature: float = COMPLETION_TEMPERATURE,
    z_mode: str = "posterior",
    generator: torch.Generator | None = None,
) -> list[Path]:
    """Incomplete sketches (red) and ``num_completions`` predicted endings each (sec. 4.4,
    Fig. 7): one row per sketch, first column the given part alone, then the full original."""
    grid, prefix_len = [], []
    for i in indices:
        prefix = incomplete_sketch(data.sequences[i], prefix_points)
        endings = complete(
            model, guide, prefix, num_completions, temperature, z_mode=z_mode, generator=generator
        )
        scale = output_scale(model)
        grid.append([to_data_units(prefix, scale), data_units(data, i), *endings])
        prefix_len.append([len(prefix), len(prefix), *[len(prefix)] * num_completions])
    labels = ["given", "original", *(f"ending {k + 1}" for k in range(num_completions))]
    z_text = f", z: {z_mode}" if model.config.conditional else ""
    return save_both(
        save_sketch_grid,
        stem,
        grid,
        col_labels=labels,
        row_labels=[f"#{i}" for i in indices],
        prefix_points=prefix_len,
        title=f"predicted endings (red: given), τ={temperature:g}{z_text}",
    )


def samples_figure(
    model: nn.Module,
    num_samples: int,
    temperatures: Sequence[float],
    stem: Path,
    *,
    generator: torch.Generator | None = None,
) -> list[Path]:
    """Unconditional samples, one row per τ coloured blue → red (sec. 3.3, Fig. 3)."""
    rows = [unconditional_samples(model, num_samples, t, generator=generator) for t in temperatures]
    source = "z ~ N(0, I)" if model.config.conditional else "decoder only"
    return save_both(
        save_sketch_grid,
        stem,
        rows,
        row_labels=[f"τ={t:g}" for t in temperatures],
        colors=_temperature_colors(temperatures, num_samples),
        title=f"unconditional samples ({source})",
    )


def write_sketch_pictures(
    model: nn.Module,
    guide: nn.Module | None,
    out_dir: str | Path,
    data: StrokeData,
    *,
    temperatures: Sequence[float] = (0.1, 0.5, 1.0),
    seed: int = 0,
    num_examples: int = 6,
    interp_steps: int = 8,
    grid_size: int = 5,
    num_samples: int = 8,
    num_completions: int = 4,
) -> list[Path]:
    """The standard sketch-rnn pictures after training, each as PNG and SVG in ``out_dir``:

    * ``reconstructions`` — ``num_examples`` inputs of ``data`` and their reconstructions at each
      of ``temperatures`` (sec. 4.1), conditional model only;
    * ``interpolation`` — 3 pairs, ``interp_steps`` slerp steps at τ = 0.1 (sec. 4.2), and
      ``interpolation_grid`` (+ ``_inputs``) — ``grid_size`` × ``grid_size`` between 4 inputs
      (appendix sec. 5), conditional model only;
    * ``completions`` — 4 incomplete sketches (first half, whole strokes) with
      ``num_completions`` endings at τ = 0.8 (sec. 4.4);
    * ``samples`` — ``num_samples`` unconditional samples per τ in ``temperatures`` (sec. 3.3).

    ``data`` must be normalised with the model's scale factor (model units) and hold sketches of
    at most ``N_max`` points. Examples are a fixed random choice given ``seed``.
    """
    check_data(model, data)
    out = Path(out_dir)
    generator = torch.Generator().manual_seed(seed)
    taus = [check_temperature(t, "temperatures") for t in temperatures]
    paths: list[Path] = []
    if model.config.conditional:
        if guide is None:
            raise ValueError("write_sketch_pictures: the conditional model needs its guide")
        idx = pick(data, num_examples, seed, "reconstructions")
        paths += reconstruction_figure(
            model, guide, data, idx, taus, out / "reconstructions", generator=generator
        )
        if len(data) >= 2:
            chosen = pick(data, 6, seed, "interpolation")
            pairs = [(chosen[k], chosen[(k + 1) % len(chosen)]) for k in range(0, len(chosen), 2)]
            pairs = pairs[: max(1, len(chosen) // 2)]
            paths += interpolation_figure(
                model, guide, data, pairs, interp_steps, out / "interpolation", generator=generator
            )
            corners = pick(data, 4, seed, "interpolation_grid")
            corners = [corners[k % len(corners)] for k in range(4)]
            paths += interpolation_grid_figure(
                model,
                guide,
                data,
                corners,
                grid_size,
                out / "interpolation_grid",
                generator=generator,
            )
    idx = pick(data, 4, seed, "completions")
    paths += completion_figure(
        model, guide, data, idx, num_completions, out / "completions", generator=generator
    )
    paths += samples_figure(model, num_samples, taus, out / "samples", generator=generator)
    return paths


def write_training_pictures(
    model: nn.Module, guide: nn.Module | None, data: StrokeData, out: str | Path, *, seed: int = 0
) -> list[Path]:
    """What the training plan writes after training: :func:`write_sketch_pictures` of
    the test split ``data`` into ``<out>/pictures``."""
    return write_sketch_pictures(model, guide, Path(out) / "pictures", data, seed=seed)
