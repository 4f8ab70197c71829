"""sketch-rnn's checkpoint commands: ``pyro-draw reconstruct|interpolate|complete|sample``.

Each command reads the checkpoint once (:mod:`tasks.cli`), rebuilds the model with its
weights and writes its figures as PNG + SVG into ``--out`` (default: ``pictures/`` next to the
checkpoint). The commands that read data take the split ``--split`` of ``--dataset`` (default:
the dataset the checkpoint was trained on) in the model's units, and either ``--sketch-indices``
or a random choice by ``--seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inference.checkpoint import Checkpoint
from tasks.data.core import DataError
from tasks.data.strokes import StrokeData
from tasks.family import ModelSpec
from tasks.options import CheckpointOptions, SplitOptions, non_negative, option, positive
from tasks.sketch_rnn.data import checkpoint_data
from tasks.sketch_rnn.figures import save_sketch_grid
from tasks.sketch_rnn.latent import analogy
from tasks.sketch_rnn.pictures import (
    completion_figure,
    data_units,
    interpolation_figure,
    interpolation_grid_figure,
    pick,
    reconstruction_figure,
    samples_figure,
    save_both,
)
from tasks.sketch_rnn.sampling import (
    COMPLETION_TEMPERATURE,
    INTERPOLATION_TEMPERATURE,
    RECONSTRUCTION_TEMPERATURES,
    SAMPLE_TEMPERATURES,
    Z_MODES,
)

__all__ = [
    "CompleteOptions",
    "InterpolateOptions",
    "ReconstructOptions",
    "SketchSampleOptions",
    "complete_command",
    "interpolate_command",
    "reconstruct_command",
    "sample_command",
]


def at_least_two(value: Any) -> None:
    """An integer >= 2."""
    if value is not None and value < 2:
        raise ValueError(f"expected a number >= 2, found {value!r}")


def _temperature(default: Sequence[float], text: str) -> Any:
    return option(list(default), f"sampling temperature(s) τ: {text}", check=non_negative)


@dataclass
class SketchDataOptions(SplitOptions):
    """The data of a sketch-rnn checkpoint command."""

    dataset: str | None = option(
        None, "stroke dataset name", default_text="the dataset it was trained on"
    )
    sketch_indices: list[int] | None = option(
        None,
        "use these sketches of the split",
        check=non_negative,
        metavar="I",
        default_text="a random choice by --seed",
    )


@dataclass
class ReconstructOptions(SketchDataOptions):
    """Options of ``pyro-draw reconstruct`` for sketch-rnn checkpoints."""

    num_examples: int = option(8, "sketches to reconstruct", check=positive)
    temperature: list[float] = _temperature(
        RECONSTRUCTION_TEMPERATURES, "one column each (the paper's range, sec. 4.1)"
    )


@dataclass
class InterpolateOptions(SketchDataOptions):
    """Options of ``pyro-draw interpolate`` for sketch-rnn checkpoints."""

    num_examples: int = option(3, "pairs of sketches to interpolate between", check=positive)
    temperature: list[float] = _temperature(
        (INTERPOLATION_TEMPERATURE,), "one set of figures each (appendix sec. 5)"
    )
    interp_steps: int = option(8, "points per slerp row", check=at_least_two)
    interp_grid_size: int = option(5, "side of the four-way grid", check=at_least_two)
    analogy_indices: list[int] | None = option(
        None,
        "also draw the analogy z_C + z_B - z_A (A : B :: C : ?)",
        check=non_negative,
        nargs=3,
        metavar=("A", "B", "C"),
    )
    num_samples: int = option(4, "decodings of the analogy", check=positive)


@dataclass
class CompleteOptions(SketchDataOptions):
    """Options of ``pyro-draw complete`` for sketch-rnn checkpoints."""

    num_examples: int = option(4, "incomplete sketches", check=positive)
    num_samples: int = option(5, "endings per incomplete sketch", check=positive)
    temperature: list[float] = _temperature((COMPLETION_TEMPERATURE,), "one figure each (sec. 4.4)")
    prefix_points: int | None = option(
        None,
        "given points of each sketch (cut back to a stroke end)",
        check=positive,
        default_text="half",
    )
    completion_z: str = option(
        "posterior",
        "z for the endings (conditional model): posterior given the partial sketch "
        "(importance resampling), encoder mean of the partial sketch, or prior",
        choices=Z_MODES,
    )


@dataclass
class SketchSampleOptions(CheckpointOptions):
    """Options of ``pyro-draw sample`` for sketch-rnn checkpoints (no data needed)."""

    num_samples: int = option(10, "unconditional sketches per temperature", check=positive)
    temperature: list[float] = _temperature(SAMPLE_TEMPERATURES, "one row each (sec. 3.3, Fig. 3)")


def _out_dir(checkpoint: Checkpoint, options: CheckpointOptions) -> Path:
    return options.out_dir(checkpoint.path, "pictures")


def _load(
    spec: ModelSpec, checkpoint: Checkpoint, options: SketchDataOptions
) -> tuple[nn.Module, nn.Module, StrokeData]:
    model, guide = spec.restore(checkpoint, options.device)
    data = checkpoint_data(
        checkpoint, model.config, options, dataset=options.dataset, split=options.split
    )
    return model, guide, data


def _indices(options: SketchDataOptions, data: StrokeData, num: int, tag: str) -> list[int]:
    chosen = options.sketch_indices
    if chosen:
        for i in chosen:
            if not 0 <= i < len(data):
                raise ValueError(
                    f"--sketch-indices: {i} is out of range for {data.name}/{data.split} with "
                    f"{len(data)} sketches"
                )
        return list(chosen)
    return pick(data, num, options.seed, tag)


def _report(paths: Sequence[Path]) -> None:
    for p in paths:
        print(f"wrote {p}")


def reconstruct_command(
    spec: ModelSpec, checkpoint: Checkpoint, options: ReconstructOptions
) -> None:
    """``pyro-draw reconstruct CHECKPOINT``: inputs and reconstructions at each ``--temperature``
    (default 0.01 0.25 0.5 0.75 1.0, the paper's range, sec. 4.1)."""
    model, guide, data = _load(spec, checkpoint, options)
    generator = torch.Generator().manual_seed(options.seed)
    idx = _indices(options, data, options.num_examples, "reconstructions")
    stem = _out_dir(checkpoint, options) / "reconstructions"
    _report(
        reconstruction_figure(
            model, guide, data, idx, options.temperature, stem, generator=generator
        )
    )


def _pairs_and_corners(
    options: InterpolateOptions, data: StrokeData
) -> tuple[list[tuple[int, int]], list[int]]:
    if len(data) < 2:
        raise DataError(f"{data.name}/{data.split}: interpolation needs at least 2 sketches")
    idx = _indices(options, data, 2 * options.num_examples, "interpolation")
    if len(idx) % 2:
        idx = idx + idx[:1]
    pairs = [(idx[k], idx[k + 1]) for k in range(0, len(idx), 2)]
    corners = idx[:4] if len(idx) >= 4 else pick(data, 4, options.seed, "interpolation_grid")
    return pairs, [corners[k % len(corners)] for k in range(4)]


def _analogy_figure(
    model: nn.Module,
    guide: nn.Module,
    data: StrokeData,
    options: InterpolateOptions,
    tau: float,
    stem: Path,
    generator: torch.Generator,
) -> list[Path]:
    """``a``, ``b``, ``c`` and ``--num-samples`` decodings of ``z_c + z_b − z_a`` (sec. 4.3)."""
    trio = options.analogy_indices
    for i in trio:
        if not 0 <= i < len(data):
            raise ValueError(f"--analogy-indices: {i} out of range (0 … {len(data) - 1})")
    a, b, c = (data.sequences[i] for i in trio)
    results = analogy(
        model,
        guide,
        a,
        b,
        c,
        num_samples=options.num_samples,
        temperature=tau,
        generator=generator,
    )
    row = [*(data_units(data, i) for i in trio), *results]
    labels = ["a", "b", "c", *(f"c+b−a ({k + 1})" for k in range(len(results)))]
    return save_both(
        save_sketch_grid,
        stem,
        [row],
        col_labels=labels,
        title=f"analogy #{trio[0]} : #{trio[1]} :: #{trio[2]} : ?, τ={tau:g}",
    )


def interpolate_command(
    spec: ModelSpec, checkpoint: Checkpoint, options: InterpolateOptions
) -> None:
    """``pyro-draw interpolate CHECKPOINT``: slerp rows between pairs of sketches, a four-way
    grid and, with ``--analogy-indices A B C``, the analogy ``z_C + z_B − z_A`` (sec. 4.2–4.3).
    One set of figures per ``--temperature`` (default 0.1, appendix sec. 5)."""
    model, guide, data = _load(spec, checkpoint, options)
    generator = torch.Generator().manual_seed(options.seed)
    pairs, corners = _pairs_and_corners(options, data)
    out = _out_dir(checkpoint, options)
    paths: list[Path] = []
    for tau in options.temperature:
        tag = f"_tau{tau:g}"
        figure = dict(temperature=tau, generator=generator)
        paths += interpolation_figure(
            model, guide, data, pairs, options.interp_steps, out / f"interpolation{tag}", **figure
        )
        paths += interpolation_grid_figure(
            model,
            guide,
            data,
            corners,
            options.interp_grid_size,
            out / f"interpolation_grid{tag}",
            **figure,
        )
        if options.analogy_indices:
            stem = out / f"analogy{tag}"
            paths += _analogy_figure(model, guide, data, options, tau, stem, generator)
    _report(paths)


def complete_command(spec: ModelSpec, checkpoint: Checkpoint, options: CompleteOptions) -> None:
    """``pyro-draw complete CHECKPOINT``: incomplete sketches (the first ``--prefix-points``
    points, default half, cut at a stroke end) and ``--num-samples`` endings each, per
    ``--temperature`` (default 0.8, sec. 4.4)."""
    model, guide, data = _load(spec, checkpoint, options)
    generator = torch.Generator().manual_seed(options.seed)
    idx = _indices(options, data, options.num_examples, "completions")
    paths: list[Path] = []
    for tau in options.temperature:
        paths += completion_figure(
            model,
            guide,
            data,
            idx,
            options.num_samples,
            _out_dir(checkpoint, options) / f"completions_tau{tau:g}",
            prefix_points=options.prefix_points,
            temperature=tau,
            z_mode=options.completion_z,
            generator=generator,
        )
    _report(paths)


def sample_command(spec: ModelSpec, checkpoint: Checkpoint, options: SketchSampleOptions) -> None:
    """``pyro-draw sample CHECKPOINT``: ``--num-samples`` unconditional sketches per
    ``--temperature`` row (default 0.2 0.5 0.9; sec. 3.3, Fig. 3). Needs no data."""
    model, _ = spec.restore(checkpoint, options.device)
    generator = torch.Generator().manual_seed(options.seed)
    stem = _out_dir(checkpoint, options) / "samples"
    _report(
        samples_figure(model, options.num_samples, options.temperature, stem, generator=generator)
    )
