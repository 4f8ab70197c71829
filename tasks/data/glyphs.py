"""Embedded synthetic glyphs: 1–6 random cubic Bézier pen strokes, rendered with DooD's renderer.

No files are needed: every split is generated deterministically from ``(seed, split, size,
num_examples)`` (different splits use different derived seeds) and is bit-identical across calls
on the same machine and torch build.

Generative process per image (all coordinates in the project convention of
:mod:`generative.bezier`: normalised ``(x, y)`` in ``[-1, 1]²``, ``x`` right, ``y`` down):

* ``K ~ Uniform{1, …, 6}`` strokes;
* per stroke, canonical control points ``p_can`` (4×2) of a pen stroke running from
  ``(-1, a₀)`` to ``(1, a₃)`` with inner points near ``x = ∓1/3``, random vertical offsets
  (arcs, hooks and S-curves);
* a layout ``(s, t_x, t_y, θ)`` with scale ``s ∈ [0.25, 0.55]``, rotation ``θ ∈ [-π, π)`` and a
  translation chosen so the whole control polygon (hence the curve) lies in ``[-0.8, 0.8]²``;
  image control points ``p_img = t + s · R(θ) · p_can``;
* per-stroke blur ``σ ∈ [0.045, 0.065]`` (normalised units, ≈ 0.6–0.9 px at 28×28), ``ω₀ = 0.5``,
  canvas ``ω₁ = 0.5`` (Eqs. 11–14 of DooD).

``extras`` holds the ground truth: ``num_strokes`` (N,) int64, ``stroke_mask`` (N, 6) bool,
``control_points`` / ``canonical_points`` (N, 6, 4, 2), ``layout`` (N, 6, 4) = ``(s, t_x, t_y, θ)``
and the renderer parameters ``sigma`` (N, 6), ``omega0`` (N, 6), ``omega1`` (N,). Geometry of
absent strokes (``control_points``, ``canonical_points``, ``layout``) is zero; their renderer
parameters are valid values, so ``compose_canvas(render_strokes(control_points, sigma, omega0,
H, W), omega1, stroke_mask)`` reproduces the grey images exactly (up to float rounding).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from generative.bezier import bezier_points, compose_canvas, render_strokes

from .core import ImageData, ImageDataset, check_split, derive_seed, split_binarization
from .paths import DataDir

__all__ = [
    "DATASETS",
    "DEFAULT_NUM_EXAMPLES",
    "DEFAULT_SIZE",
    "MAX_STROKES",
    "NUM_CONTROL_POINTS",
    "canonical_to_image",
    "generate_glyphs",
    "glyph_strokes",
    "load_glyphs",
    "render_glyphs",
]

MAX_STROKES = 6
NUM_CONTROL_POINTS = 4
DEFAULT_SIZE = 28
DEFAULT_NUM_EXAMPLES = {"train": 10_000, "valid": 1_000, "test": 1_000}
NUM_CURVE_SAMPLES = 100  # S of DooD Eq. 10

SCALE_RANGE = (0.25, 0.55)
SIGMA_RANGE = (0.045, 0.065)
OMEGA0 = 0.5
OMEGA1 = 0.5
FRAME = 0.8  # every control polygon lies in [-FRAME, FRAME]^2
_RENDER_CHUNK = 512  # images rendered per batch (bounds memory)


def canonical_to_image(canonical: Tensor, layout: Tensor) -> Tensor:
    """``p_img = t + s · R(θ) · p_can`` for ``canonical`` (..., P, 2) and ``layout`` (..., 4)."""
    scale, tx, ty, theta = layout.unbind(-1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    rotated = torch.matmul(canonical, rot.transpose(-1, -2))  # row-vector form of R p
    return scale[..., None, None] * rotated + torch.stack([tx, ty], -1).unsqueeze(-2)


def _uniform(u: Tensor, low: float, high: float) -> Tensor:
    return low + (high - low) * u


def generate_glyphs(num_examples: int, seed: int) -> dict[str, Tensor]:
    """Sample the ground truth of ``num_examples`` glyphs (no rendering), as in the module doc."""
    generator = torch.Generator().manual_seed(seed)
    n, k = num_examples, MAX_STROKES
    num_strokes = torch.randint(1, k + 1, (n,), generator=generator)
    u = torch.rand((n, k, 12), generator=generator, dtype=torch.float64)
    # Canonical pen stroke: endpoints at x = -1 and x = 1, inner points near x = -1/3, 1/3.
    x = torch.stack(
        [
            torch.full_like(u[..., 0], -1.0),
            _uniform(u[..., 0], -0.6, 0.0),
            _uniform(u[..., 1], 0.0, 0.6),
            torch.ones_like(u[..., 0]),
        ],
        -1,
    )
    y = torch.stack(
        [
            _uniform(u[..., 2], -0.5, 0.5),
            _uniform(u[..., 3], -1.2, 1.2),
            _uniform(u[..., 4], -1.2, 1.2),
            _uniform(u[..., 5], -0.5, 0.5),
        ],
        -1,
    )
    canonical = torch.stack([x, y], -1)  # (n, k, 4, 2)
    scale = _uniform(u[..., 6], *SCALE_RANGE)
    theta = _uniform(u[..., 7], -math.pi, math.pi)
    zero_t = torch.zeros_like(scale)
    centred = canonical_to_image(canonical, torch.stack([scale, zero_t, zero_t, theta], -1))
    low = -FRAME - centred.amin(-2)  # (n, k, 2): translation keeping the polygon in the frame
    high = FRAME - centred.amax(-2)
    trans = low + (high - low).clamp_min(0.0) * u[..., 8:10]
    layout = torch.stack([scale, trans[..., 0], trans[..., 1], theta], -1)
    points = canonical_to_image(canonical, layout)
    mask = torch.arange(k) < num_strokes.unsqueeze(-1)
    sigma = _uniform(u[..., 10], *SIGMA_RANGE)
    fmask = mask.to(torch.float64)
    return {
        "num_strokes": num_strokes.to(torch.int64),
        "stroke_mask": mask,
        "control_points": (points * fmask[..., None, None]).float(),
        "canonical_points": (canonical * fmask[..., None, None]).float(),
        "layout": (layout * fmask[..., None]).float(),
        "sigma": sigma.float(),
        "omega0": torch.full_like(sigma, OMEGA0).float(),
        "omega1": torch.full((n,), OMEGA1, dtype=torch.float32),
    }


def render_glyphs(truth: dict[str, Tensor], size: int) -> Tensor:
    """Render ground truth from :func:`generate_glyphs` to ``(N, 1, size, size)`` grey images.

    Works on chunks of ``_RENDER_CHUNK`` images (bounded memory); only present strokes are
    rendered (Eqs. 10–13), then composed with Eq. 14.
    """
    mask = truth["stroke_mask"]
    n, k = mask.shape
    out = torch.empty(n, 1, size, size)
    for start in range(0, n, _RENDER_CHUNK):
        rows = slice(start, start + _RENDER_CHUNK)
        chunk_mask = mask[rows]
        present = chunk_mask.reshape(-1).nonzero().squeeze(-1)
        strokes = torch.zeros(chunk_mask.numel(), size, size)
        strokes[present] = render_strokes(
            truth["control_points"][rows].reshape(-1, NUM_CONTROL_POINTS, 2)[present],
            truth["sigma"][rows].reshape(-1)[present],
            truth["omega0"][rows].reshape(-1)[present],
            size,
            size,
            NUM_CURVE_SAMPLES,
        )
        strokes = strokes.reshape(*chunk_mask.shape, size, size)
        out[rows, 0] = compose_canvas(strokes, truth["omega1"][rows], chunk_mask)
    return out


def load_glyphs(
    split: str, *, num_examples: int | None = None, size: int | None = None, seed: int = 0
) -> ImageData:
    """Generate the ``split`` glyph set (``dynamic`` binarisation for train, else ``seeded``)."""
    check_split("glyphs", split)
    n = DEFAULT_NUM_EXAMPLES[split] if num_examples is None else num_examples
    side = DEFAULT_SIZE if size is None else size
    gen_seed = derive_seed("glyphs", seed, split)
    truth = generate_glyphs(n, gen_seed)
    with torch.no_grad():
        images = render_glyphs(truth, side)
    info = {
        "dataset": "glyphs",
        "split": split,
        "files": [],
        "seed": seed,
        "generation_seed": gen_seed,
        "num_examples": n,
        "size": side,
        "renderer": {
            "num_points": NUM_CURVE_SAMPLES,
            "sigma_range": list(SIGMA_RANGE),
            "omega0": OMEGA0,
            "omega1": OMEGA1,
            "scale_range": list(SCALE_RANGE),
            "frame": FRAME,
        },
    }
    bin_seed = derive_seed("glyphs", seed, split, "binarize")
    images, binarization = split_binarization(images, split, bin_seed, info)
    return ImageData("glyphs", split, images, None, binarization, info, extras=truth)


def _load_registered(
    split: str,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    num_examples: int | None = None,
    size: int | None = None,
    seed: int = 0,
) -> ImageData:
    """:func:`load_glyphs` with the registry's signature (no files: ``data_dir`` and
    ``download`` are ignored)."""
    del data_dir, download
    return load_glyphs(split, num_examples=num_examples, size=size, seed=seed)


DATASETS: tuple[ImageDataset, ...] = (ImageDataset("glyphs", _load_registered),)


def glyph_strokes(data: ImageData, num_points: int = 16) -> list[list[np.ndarray]]:
    """Each image's strokes as polylines: a list (per image) of ``(num_points, 2)`` float32 arrays.

    Points are sampled uniformly in the Bézier parameter (Eq. 10) and given in normalised image
    coordinates ``(x, y)`` (``x`` right, ``y`` down; see :func:`generative.bezier.to_pixel`).
    """
    if "control_points" not in data.extras or "stroke_mask" not in data.extras:
        raise ValueError(
            f"glyph_strokes: {data.name}/{data.split} has no 'control_points'/'stroke_mask' "
            f"extras (found keys {sorted(data.extras)}); expected a 'glyphs' dataset"
        )
    polylines = bezier_points(data.extras["control_points"], num_points).numpy()
    mask = data.extras["stroke_mask"].numpy()
    return [[polylines[i, j] for j in np.flatnonzero(mask[i])] for i in range(mask.shape[0])]
