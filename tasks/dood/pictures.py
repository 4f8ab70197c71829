"""DooD's and AIR's pictures: step-by-step reconstructions (Fig. 1 / Fig. 3: the target, then
the canvas after each stroke with the stroke's Bézier curve, control points and layout window
drawn over it), unconditional samples at several temperatures (Fig. 6 / Fig. 15, appendix
D.2.1) and, for DooD, completions of partial drawings (Fig. 8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro
import torch
from torch import Tensor, nn

from generative.air import where_to_layout
from generative.bezier import bezier_points, to_pixel
from generative.dood import DooD
from generative.stn import transform_points
from guides.air import AirGuide
from guides.dood import DooDGuide
from tasks.data.core import ImageData
from tasks.dood.completion import complete_drawings
from tasks.dood.data import partial_images
from tasks.dood.mosaic import save_completions, save_sample_rows, save_stroke_steps

__all__ = [
    "DEFAULT_TEMPERATURES",
    "generate_samples",
    "reconstruction_steps",
    "write_completions",
    "write_dood_pictures",
    "write_reconstructions",
    "write_samples",
]

DEFAULT_TEMPERATURES: tuple[float, ...] = (1.0, 0.5)
_CORNERS = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
_CURVE_POINTS = 64


def _overlays(layout: Tensor, control_points: Tensor | None, h: int, w: int) -> dict[str, Tensor]:
    """Pixel ``(column, row)`` overlays: ``windows`` (the canonical square ``[−1, 1]²`` mapped
    by Eq. 2's affine transform) and, for the spline renderer, ``control_points`` and
    ``curves`` (Eq. 10)."""
    corners = _CORNERS.to(layout).expand(*layout.shape[:2], 4, 2)
    extra = {"windows": to_pixel(transform_points(corners, layout), h, w)}
    if control_points is not None:
        extra["control_points"] = to_pixel(control_points, h, w)
        extra["curves"] = to_pixel(bezier_points(control_points, _CURVE_POINTS), h, w)
    return extra


def reconstruction_steps(guide: nn.Module, images: Tensor) -> dict[str, Tensor]:
    """Step-by-step reconstructions (Fig. 1 / Fig. 3) of a DooD or AIR guide, with overlays in
    pixel ``(column, row)`` coordinates: ``canvases`` (N, T, 1, H, W), ``present`` (N, T),
    ``windows`` (N, T, 4, 2: the layout's glimpse window, the canonical square ``[−1, 1]²``
    mapped by Eq. 2's affine transform) and, for the spline renderer, ``control_points``
    (N, T, J, 2: ``s̃_t = l_t ⊙ s_t``) and ``curves`` (N, T, 64, 2: Eq. 10)."""
    with torch.no_grad(), pyro.validation_enabled(False):
        out = guide.reconstruct(images)
        h, w = images.shape[-2:]
        layout = out["z_where"]
        if isinstance(guide, AirGuide):
            layout = where_to_layout(layout)
        steps = {"canvases": out["canvases"], "present": out["z_pres"]}
        steps.update(_overlays(layout, out.get("control_points"), h, w))
    return steps


def generate_samples(model: nn.Module, num: int, temperature: float = 1.0) -> dict[str, Tensor]:
    """``num`` unconditional samples of a DooD (at ``temperature``, appendix D.2.1) or AIR (its
    fixed prior: ``temperature`` must be 1) model, every step recorded (``images``: the final
    canvases, ``canvases``, ``z_pres``, ``z_where``, …)."""
    with pyro.validation_enabled(False):
        if isinstance(model, DooD):
            return model.generate(num, temperature=temperature)
        if temperature != 1.0:
            raise ValueError(
                "AIR has a fixed prior (sec. 3.2: no sequential prior), so it has no sampling "
                f"temperature; found temperature {temperature}"
            )
        return model.generate(num)


def _generation_overlays(model: nn.Module, out: dict[str, Tensor]) -> dict[str, Tensor]:
    h, w = out["canvases"].shape[-2:]
    layout = out["z_where"] if isinstance(model, DooD) else where_to_layout(out["z_where"])
    return _overlays(layout, out.get("control_points"), h, w)


def write_samples(
    model: nn.Module,
    out_dir: str | Path,
    *,
    num_samples: int = 20,
    num_sequences: int = 6,
    temperatures: Sequence[float] | None = None,
    seed: int = 0,
    prefix: str = "",
) -> list[Path]:
    """``samples.png`` (rows of unconditional samples per temperature; AIR: its fixed prior)
    and ``generation.png`` (step by step, at the lowest temperature)."""
    out_dir = Path(out_dir)
    if temperatures is None:
        temperatures = DEFAULT_TEMPERATURES if isinstance(model, DooD) else (1.0,)
    if not temperatures:
        raise ValueError("no sampling temperature given")
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            groups = [
                (f"τ = {tau:g}", generate_samples(model, num_samples, tau)["images"])
                for tau in temperatures
            ]
            tau = min(temperatures)
            seq = generate_samples(model, num_sequences, tau)
    finally:
        model.train(was)
    if not isinstance(model, DooD):
        groups = [("prior", groups[0][1])]
    paths = [save_sample_rows(groups, out_dir / f"{prefix}samples.png")]
    paths.append(
        save_stroke_steps(
            seq["canvases"],
            seq["z_pres"],
            out_dir / f"{prefix}generation.png",
            title=f"samples, τ = {tau:g}" if isinstance(model, DooD) else "prior samples",
            **_generation_overlays(model, seq),
        )
    )
    return paths


def write_reconstructions(
    guide: nn.Module, images: Tensor, path: str | Path, *, seed: int = 0, title: str | None = None
) -> Path:
    """Fig. 1 / Fig. 3: step-by-step reconstructions of ``images`` (one guide sample each)."""
    was = guide.training
    guide.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            steps = reconstruction_steps(guide, images)
    finally:
        guide.train(was)
    return save_stroke_steps(
        steps.pop("canvases"), steps.pop("present"), path, targets=images, title=title, **steps
    )


def write_completions(
    model: DooD,
    guide: DooDGuide,
    data: ImageData,
    path: str | Path,
    *,
    region: str | None = None,
    num_examples: int = 6,
    num_samples: int = 6,
    temperature: float = 1.0,
    seed: int = 0,
) -> tuple[Path, dict[str, Any]]:
    """Fig. 8 for ``num_examples`` partial drawings of ``data`` (:func:`partial_images`);
    returns the figure path and a summary (region, strokes given and added)."""
    partial, region = partial_images(data, region, num_examples)
    device = next(model.parameters()).device
    was = model.training, guide.training
    model.eval()
    guide.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            out = complete_drawings(
                model, guide, partial.to(device), num_samples, temperature=temperature
            )
    finally:
        model.train(was[0])
        guide.train(was[1])
    figure = save_completions(partial, out["inferred"], out["added"], path)
    summary = {
        "region": region,
        "temperature": temperature,
        "strokes_inferred_from_partial": out["num_given"].tolist(),
        "mean_strokes_added": float(out["num_added"].double().mean()),
    }
    return figure, summary


def write_dood_pictures(
    model: nn.Module,
    guide: nn.Module,
    data: ImageData,
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_examples: int = 8,
) -> list[Path]:
    """All pictures of a trained model: ``reconstruction.png`` (first ``num_examples`` images of
    ``data``), ``samples.png``, ``generation.png`` and, for DooD, ``completion.png``."""
    out_dir = Path(out_dir)
    device = next(model.parameters()).device
    images = data.images[:num_examples].to(device)
    paths = [write_reconstructions(guide, images, out_dir / "reconstruction.png", seed=seed)]
    paths += write_samples(model, out_dir, seed=seed)
    if isinstance(model, DooD):
        num = min(6, len(data))
        path, _ = write_completions(
            model, guide, data, out_dir / "completion.png", num_examples=num, seed=seed
        )
        paths.append(path)
    return paths
