"""DooD's differentiable renderer (appendix B.1, Eqs. 10–14): the official dense rasteriser, and
this project's renderer and its separable computation on the same inputs.

Reference ("dense"): the official implementation, ``Bezier._raster_base`` of
github.com/yichao-liang/DooD (``src/dood/splines/bezier.py``) followed by
``GenerativeModel.renders_imgs`` (``src/dood/models/ssp.py``) and ``util.normalize_pixel_values``:
the pixel grid is expanded to a ``(B·K, H, W, S)`` tensor, every pixel gets
``exp(-((x - c)² + (y - d)²) / σ²)`` for every one of the ``S`` curve points, the last axis is
summed, each stroke is divided by its **detached** maximum (``safe_div``), passed through
``tanh(·/ω0)``, summed over strokes and squashed by ``tanh(·/ω1)``. :func:`dense_render` does
exactly these operations on tensors of exactly these shapes; only the values of the grid and
the constant in the exponent follow this project (pixel centres ``linspace(-1, 1)``, ``x`` with
columns, ``σ²`` as in Eq. 11, where the official code uses ``h / res``, ``x`` with rows and
``2σ²``) so that the outputs can be compared element by element. The cost is the same.

:func:`ours_render` is :func:`generative.bezier.render_strokes` +
:func:`generative.bezier.compose_canvas` on the same inputs (separable Gaussian: ``Σ_n`` as an
``(H × S) @ (S × W)`` matmul per stroke, fused backward, Eqs. 12–13 as one scalar multiply);
:func:`separable_autograd_render` is the same separable computation through generic autograd ops
only. All three render the strokes of one :class:`Inputs`; :func:`make_inputs` draws random
strokes of DooD-like size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from generative.bezier import (
    EXP_CUTOFF,
    FACTOR_FLOOR,
    MAXNORM_EPS,
    bezier_points,
    compose_canvas,
    pixel_centres,
    render_strokes,
)

__all__ = [
    "Inputs",
    "dense_render",
    "make_inputs",
    "official_bezier_curve",
    "ours_render",
    "separable_autograd_render",
]


class Inputs(NamedTuple):
    """A batch of ``K`` strokes per image, what every renderer here draws."""

    control_points: Tensor  # (B, K, J, 2)
    sigma: Tensor  # (B, K)
    omega0: Tensor  # (B, K)
    omega1: Tensor  # (B,)


def official_bezier_curve(control_points: Tensor, num_points: int) -> Tensor:
    """Eq. 10 as the official ``Bezier.sample_curve``: binomials from ``lgamma``, an einsum.

    Returns ``(N, K, 2, S)``; identical to :func:`generative.bezier.bezier_points` (the
    official code sums ``t^(J-1-j) (1-t)^j p_j``, i.e. traverses the curve backwards; it is
    written here in Eq. 10's direction so both implementations sample the same ``b_n``).
    """
    order = torch.tensor(float(control_points.shape[-2] - 1), dtype=control_points.dtype)
    t = torch.linspace(0, 1, num_points, dtype=control_points.dtype)
    ks = torch.arange(control_points.shape[-2], dtype=control_points.dtype)
    comb = (torch.lgamma(order + 1) - torch.lgamma(ks + 1) - torch.lgamma(order - ks + 1)).exp()
    feat = comb[:, None] * (1 - t) ** (order - ks)[:, None] * t ** ks[:, None]  # (J, S)
    return torch.einsum("bcki,kt->bcit", control_points, feat)


def dense_render(
    inputs: Inputs, height: int, width: int, num_points: int = 100, *, detach_max: bool = True
) -> tuple[Tensor, Tensor]:
    """The official dense renderer (module docstring): ``(strokes (B, K, H, W), canvas (B, H, W))``.

    ``detach_max=True`` divides by the detached per-stroke max as the official ``safe_div``
    does; ``False`` lets the gradient flow through the max (Eq. 12 as written).
    """
    control_points, sigma, omega0, omega1 = inputs
    batch, strokes = control_points.shape[:2]
    curve = official_bezier_curve(control_points, num_points).reshape(-1, 2, num_points)
    n = curve.shape[0]
    # (N, 1, 1, S) curve coordinates against (N, H, W, S) expanded pixel grids (_raster_base).
    x = curve[:, 0].unsqueeze(1).unsqueeze(1)
    y = curve[:, 1].unsqueeze(1).unsqueeze(1)
    rows = pixel_centres(height, dtype=curve.dtype)
    cols = pixel_centres(width, dtype=curve.dtype)
    grid_r, grid_c = torch.meshgrid(rows, cols, indexing="ij")
    c = grid_c.expand(n, num_points, height, width).permute(0, 2, 3, 1)  # column coordinate
    d = grid_r.expand(n, num_points, height, width).permute(0, 2, 3, 1)  # row coordinate
    var = sigma.reshape(-1)[:, None, None, None] ** 2
    raster = torch.exp((-((x - c) ** 2) - (y - d) ** 2) / var).sum(dim=3)  # (N, H, W)
    peak = raster.reshape(n, -1).max(1)[0]
    if detach_max:
        peak = peak.detach()
    peak = torch.where(peak >= MAXNORM_EPS, peak, torch.ones_like(peak))  # official safe_div
    raster = raster / peak[:, None, None]  # Eq. 12
    images = raster.reshape(batch, strokes, height, width)
    images = torch.tanh(images / omega0[..., None, None])  # Eq. 13
    canvas = torch.tanh(images.sum(1) / omega1[:, None, None])  # Eq. 14
    return images, canvas


def ours_render(
    inputs: Inputs, height: int, width: int, num_points: int = 100
) -> tuple[Tensor, Tensor]:
    """This project's renderer on the same inputs as :func:`dense_render`."""
    control_points, sigma, omega0, omega1 = inputs
    images = render_strokes(control_points, sigma, omega0, height, width, num_points)
    return images, compose_canvas(images, omega1)


def separable_autograd_render(
    inputs: Inputs, height: int, width: int, num_points: int = 100
) -> tuple[Tensor, Tensor]:
    """The separable computation of ours written with generic autograd ops only."""
    control_points, sigma, omega0, omega1 = inputs
    curve = bezier_points(control_points, num_points)
    inv_var = sigma.pow(-2)[..., None, None]
    cols = pixel_centres(width, dtype=curve.dtype)
    rows = pixel_centres(height, dtype=curve.dtype)
    g_col = torch.exp(-((cols - curve[..., 0:1]).square() * inv_var).clamp_max(EXP_CUTOFF))
    g_row = torch.exp(-((rows - curve[..., 1:2]).square() * inv_var).clamp_max(EXP_CUTOFF))
    g_col, g_row = (torch.nn.functional.threshold(g, FACTOR_FLOOR, 0.0) for g in (g_col, g_row))
    raw = torch.matmul(g_row.transpose(-1, -2), g_col)
    peak = raw.amax(dim=(-2, -1), keepdim=True)
    peak = torch.where(peak >= MAXNORM_EPS, peak, torch.ones_like(peak))
    images = torch.tanh(raw / peak / omega0[..., None, None])
    return images, compose_canvas(images, omega1)


def make_inputs(
    batch: int, strokes: int, num_control: int, *, seed: int = 0, dtype=torch.float32
) -> Inputs:
    """Random strokes of DooD-like size: control points in ``[-0.8, 0.8]²``, ``σ`` of ~1 px."""
    gen = torch.Generator().manual_seed(seed)
    cp = torch.rand(batch, strokes, num_control, 2, generator=gen, dtype=dtype) * 1.6 - 0.8
    sigma = 0.03 + 0.04 * torch.rand(batch, strokes, generator=gen, dtype=dtype)
    omega0 = 0.2 + 0.5 * torch.rand(batch, strokes, generator=gen, dtype=dtype)
    omega1 = 0.2 + 0.5 * torch.rand(batch, generator=gen, dtype=dtype)
    return Inputs(cp, sigma, omega0, omega1)
