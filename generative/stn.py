"""Spatial transformer (Jaderberg et al. 2015) for DooD's layout module and the AIR baselines.

DooD (Liang et al. 2022, sec. 2.1, Eqs. 2, 7) places each stroke with an affine transform built
from scale, translation and rotation; the same transform crops a "glimpse" of an image (Eq. 2:
``x̃_<t = STN(l_t, x_<t)``; Eq. 7: ``Δ̃x_t = STN(l_t, Δx_t)``) and maps canonical Bézier control
points onto the canvas (``s̃_t = l_t ⊙ s_t``, sec. 2.1 "Rendering Module").

Conventions
-----------
A layout is a tensor ``(..., 5)`` ordered ``(s_x, s_y, t_x, t_y, θ)``:
scales ``s = (s_x, s_y)``, translation ``t = (t_x, t_y)`` and rotation ``θ`` (radians). Points
are normalised image coordinates ``(x, y) ∈ [-1, 1]²`` exactly as in :mod:`generative.bezier`
(``x`` right, ``y`` down, ``(-1, -1)`` the centre of the top-left pixel, torch's
``align_corners=True``). The layout maps **canonical (glimpse) coordinates u to canvas
coordinates p**::

    p = A u + t,    A = R(θ) · diag(s_x, s_y),    R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]

(scale first, then rotate, then translate). With ``s_x = s_y = s`` this is the glyph data's
``p_img = t + s · R(θ) · p_can`` (:func:`tasks.data.glyphs.canonical_to_image`). Since ``y``
points down, a positive ``θ`` turns ``+x`` towards ``+y``, i.e. *clockwise on screen*.

* :func:`affine_matrix` gives the ``(..., 2, 3)`` matrix ``[A | t]``.
* :func:`glimpse` samples an image at ``p = A u + t`` for a ``size × size`` grid of canonical
  points ``u`` spanning ``[-1, 1]²``: the glimpse shows the canvas window that canonical space
  maps onto (a window of half-width ``s`` around ``t``, rotated by ``θ``). Pixels outside the
  image read as zero.
* :func:`place` is the inverse transform: it writes a glimpse-frame image back onto the canvas
  (``canvas(p) = image(A⁻¹ (p − t))``), as AIR's decoder does.
* :func:`transform_points` / :func:`inverse_transform_points` map point sets (control points).

Consequently a stroke rendered on the canvas at ``transform_points(s, l)`` appears in
``glimpse(canvas, l, ·)`` at the canonical points ``s`` (up to resampling), and
``glimpse(place(g, l, H, W), l, G) ≈ g`` wherever the window lies inside the canvas.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LAYOUT_SIZE",
    "MIN_ABS_SCALE",
    "affine_matrix",
    "glimpse",
    "invert_affine",
    "inverse_transform_points",
    "place",
    "transform_points",
]

LAYOUT_SIZE = 5  # (s_x, s_y, t_x, t_y, θ)
# |scale| is clamped below at this value (keeping its sign) before inverting A, so a sampled
# layout whose scale is (numerically) zero gives a large but finite inverse instead of inf/NaN.
MIN_ABS_SCALE = 1e-3


def _check_layout(layout: Tensor, name: str = "layout") -> None:
    if layout.dim() < 1 or layout.shape[-1] != LAYOUT_SIZE:
        raise ValueError(
            f"{name}: expected shape (..., {LAYOUT_SIZE}) = (s_x, s_y, t_x, t_y, θ), "
            f"found {tuple(layout.shape)}"
        )
    if not layout.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, found {layout.dtype}")


def _check_images(images: Tensor, name: str = "images") -> None:
    if images.dim() != 4:
        raise ValueError(f"{name}: expected shape (B, C, H, W), found {tuple(images.shape)}")


def _safe_scale(scale: Tensor) -> Tensor:
    sign = torch.where(scale < 0, -torch.ones_like(scale), torch.ones_like(scale))
    return sign * scale.abs().clamp_min(MIN_ABS_SCALE)


def _linear_part(scale: Tensor, theta: Tensor) -> Tensor:
    """``A = R(θ) diag(s)`` as ``(..., 2, 2)``."""
    cos, sin = torch.cos(theta), torch.sin(theta)
    sx, sy = scale.unbind(-1)
    row0 = torch.stack([cos * sx, -sin * sy], -1)
    row1 = torch.stack([sin * sx, cos * sy], -1)
    return torch.stack([row0, row1], -2)


def affine_matrix(layout: Tensor) -> Tensor:
    """The ``(..., 2, 3)`` matrix ``[A | t]`` with ``A = R(θ) diag(s_x, s_y)`` (canonical → canvas).

    ``layout`` is ``(..., 5)`` = ``(s_x, s_y, t_x, t_y, θ)`` (module docstring).
    """
    _check_layout(layout)
    linear = _linear_part(layout[..., 0:2], layout[..., 4])
    return torch.cat([linear, layout[..., 2:4].unsqueeze(-1)], -1)


def invert_affine(layout: Tensor) -> Tensor:
    """The ``(..., 2, 3)`` matrix ``[A⁻¹ | −A⁻¹ t]`` of the inverse map (canvas → canonical).

    ``A⁻¹ = diag(1/s) R(−θ)``; ``|s|`` is clamped below at :data:`MIN_ABS_SCALE` (sign kept).
    """
    _check_layout(layout)
    inv_scale = 1.0 / _safe_scale(layout[..., 0:2])
    theta = layout[..., 4]
    cos, sin = torch.cos(theta), torch.sin(theta)
    isx, isy = inv_scale.unbind(-1)
    row0 = torch.stack([cos * isx, sin * isx], -1)
    row1 = torch.stack([-sin * isy, cos * isy], -1)
    linear = torch.stack([row0, row1], -2)  # diag(1/s) R(-θ)
    shift = -torch.matmul(linear, layout[..., 2:4].unsqueeze(-1))
    return torch.cat([linear, shift], -1)


def _apply(matrix: Tensor, points: Tensor) -> Tensor:
    """``points (..., P, 2) ↦ M[:, :2] p + M[:, 2]`` with ``matrix (..., 2, 3)``."""
    return torch.matmul(points, matrix[..., :2].transpose(-1, -2)) + matrix[..., 2].unsqueeze(-2)


def transform_points(points: Tensor, layout: Tensor) -> Tensor:
    """``s̃ = l ⊙ s`` (DooD sec. 2.1): canonical points ``(..., P, 2)`` → canvas, ``A s + t``.

    ``layout`` ``(..., 5)`` broadcasts against ``points.shape[:-2]``.
    """
    _check_layout(layout)
    if points.dim() < 2 or points.shape[-1] != 2:
        raise ValueError(f"points: expected shape (..., P, 2), found {tuple(points.shape)}")
    return _apply(affine_matrix(layout), points)


def inverse_transform_points(points: Tensor, layout: Tensor) -> Tensor:
    """Inverse of :func:`transform_points`: canvas points → canonical, ``A⁻¹ (p − t)``."""
    _check_layout(layout)
    if points.dim() < 2 or points.shape[-1] != 2:
        raise ValueError(f"points: expected shape (..., P, 2), found {tuple(points.shape)}")
    return _apply(invert_affine(layout), points)


def _check_pair(images: Tensor, layout: Tensor) -> tuple[Tensor, Tensor]:
    _check_images(images)
    _check_layout(layout)
    if layout.dim() != 2 or layout.shape[0] != images.shape[0]:
        raise ValueError(
            f"layout: expected shape ({images.shape[0]}, {LAYOUT_SIZE}) (one per image), "
            f"found {tuple(layout.shape)}"
        )
    return images, layout


def _resample(images: Tensor, matrix: Tensor, height: int, width: int) -> Tensor:
    """Bilinear samples of ``images`` (B, C, ·, ·) on the ``height × width`` grid of canonical
    points mapped by the affine ``matrix`` (B, 2, 3); zeros outside the image."""
    b, c = images.shape[:2]
    grid = F.affine_grid(matrix.to(images.dtype), [b, c, height, width], align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def glimpse(images: Tensor, layout: Tensor, size: int | tuple[int, int]) -> Tensor:
    """STN crop (Eq. 2 ``x̃ = STN(l, x)``; Eq. 7 ``Δ̃x = STN(l, Δx)``) of ``images`` (B, C, H, W).

    Returns ``(B, C, G_h, G_w)`` with ``size = G`` or ``(G_h, G_w)``: glimpse pixel at canonical
    point ``u`` is the bilinear sample of the image at ``A u + t`` (zeros outside the image).
    Differentiable in both ``images`` and ``layout``.
    """
    images, layout = _check_pair(images, layout)
    g_h, g_w = (size, size) if isinstance(size, int) else size
    if g_h < 1 or g_w < 1:
        raise ValueError(f"glimpse: size must be >= 1, found {(g_h, g_w)}")
    return _resample(images, affine_matrix(layout), g_h, g_w)


def place(images: Tensor, layout: Tensor, height: int, width: int) -> Tensor:
    """Inverse STN: write glimpse-frame ``images`` (B, C, G_h, G_w) onto a ``height × width``
    canvas at ``layout``: ``canvas(p) = image(A⁻¹ (p − t))`` (zeros outside the window)."""
    images, layout = _check_pair(images, layout)
    if height < 1 or width < 1:
        raise ValueError(f"place: canvas size must be >= 1, found {(height, width)}")
    return _resample(images, invert_affine(layout), height, width)
