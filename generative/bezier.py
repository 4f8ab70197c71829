"""Differentiable Bézier-curve renderer of DooD (Liang et al. 2022, appendix B.1, Eqs. 10–14).

Coordinate convention (used by the whole project)
-------------------------------------------------
Control points live in normalised image coordinates ``[-1, 1]²`` with the last axis ordered
``(x, y)``: ``x`` is horizontal (column index grows with ``x``) and ``y`` is vertical, pointing
**down** (row index grows with ``y``), so ``(-1, -1)`` is the top-left corner. The mapping to
0-based pixel indices is torch's ``align_corners=True`` one (pixel centres at
``linspace(-1, 1, W)``)::

    x = -1 + 2 * w / (W - 1)        w = (x + 1) * (W - 1) / 2     (column, 0 ≤ w ≤ W - 1)
    y = -1 + 2 * h / (H - 1)        h = (y + 1) * (H - 1) / 2     (row,    0 ≤ h ≤ H - 1)

i.e. ``(-1, -1)`` is the centre of the top-left pixel and ``(1, 1)`` the centre of the
bottom-right pixel (for a 1-pixel axis its single centre is at 0). For non-square images the two
axes are scaled independently. ``to_pixel`` / ``to_normalized`` implement this map.

``sigma`` (Eq. 11) is expressed in the same **normalised units**, so a given ``sigma`` gives the
same relative stroke width at every resolution (one pixel is ``2 / (W - 1)`` units, e.g. 0.074 at
28×28 and 0.041 at 50×50).

Memory: the Gaussian of Eq. 11 is separable, ``exp(-(Δh² + Δw²)/σ²) = exp(-Δh²/σ²)·exp(-Δw²/σ²)``,
so ``Σ_n`` is computed exactly as a batched matrix product of ``(S, H)`` and ``(S, W)`` factors:
peak memory is ``O(batch · S · (H + W) + batch · H · W)`` and never ``O(batch · S · H · W)``, so no
chunking is needed. Its backward is written by hand (:class:`SeparableGaussianRaster`) and Eqs.
12–13 are fused; ``benchmarks/renderer.py`` compares all this with the official dense renderer.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "EXP_CUTOFF",
    "MAXNORM_EPS",
    "SeparableGaussianRaster",
    "bernstein_basis",
    "bezier_points",
    "compose_canvas",
    "max_normalize",
    "normalize_stroke",
    "pixel_centres",
    "rasterize_curve",
    "render_strokes",
    "to_normalized",
    "to_pixel",
]

# Threshold of the max in Eq. 12, as the official ``util.safe_div``: a raster whose max is below
# it is not divided (it stays as faint as it is), so a curve far outside the image, or one lying
# between pixel centres, renders (nearly) empty instead of as a full-intensity line or 0/0 = NaN.
# (A floor of 1e-12 blew a faint stroke 5–7 px outside the canvas up to a 0.96 border line.)
MAXNORM_EPS = 1e-4
# Each 1-d Gaussian factor of Eq. 11 below FACTOR_FLOOR (distance ≈ 5.3σ) is exactly 0, and its
# exponent is clamped at −EXP_CUTOFF first. This changes intensities by < 1e-12 relative to an
# in-image peak and keeps any raster of tails alone at 0 (below MAXNORM_EPS). It is for speed on
# CPUs: exp() of arguments below ≈ −87 takes a slow path (≈ 5×), and factors whose products fall
# in float32's subnormal range (< 1.2e-38; with the earlier floor of 8.8e-27 every product of two
# tails did) made the renderer's matrix products and the tanh of Eq. 13 3–20× slower, 64% of a
# DooD IWAE pass (measured with subnormals flushed: 0.92 → 0.33 s per pass of 256 images).
FACTOR_FLOOR = 1e-12
EXP_CUTOFF = 30.0  # exp(−30) ≈ 9.4e-14 < FACTOR_FLOOR


def _check_positive(name: str, value: Tensor | float) -> None:
    bad = (value <= 0).any().item() if isinstance(value, Tensor) else not value > 0
    if bad:
        found = value.min().item() if isinstance(value, Tensor) else value
        raise ValueError(f"bezier: {name} must be > 0 everywhere, found minimum {found!r}")


def _as_tensor(value: Tensor | float, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


def pixel_centres(size: int, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Normalised coordinates of the ``size`` pixel centres along one axis (``align_corners``)."""
    if size < 1:
        raise ValueError(f"bezier: image size must be >= 1, found {size}")
    if size == 1:
        return torch.zeros(1, dtype=dtype, device=device)
    return torch.linspace(-1.0, 1.0, size, dtype=dtype, device=device)


def _pixel_scale(like: Tensor, height: int, width: int) -> Tensor:
    if height < 2 or width < 2:
        raise ValueError(
            f"bezier: pixel <-> normalised maps need height, width >= 2, found {height}x{width}"
        )
    return like.new_tensor([(width - 1) / 2, (height - 1) / 2])


def to_pixel(points: Tensor, height: int, width: int) -> Tensor:
    """Map normalised ``(x, y)`` points to 0-based pixel ``(column, row)`` coordinates."""
    return (points + 1.0) * _pixel_scale(points, height, width)


def to_normalized(pixels: Tensor, height: int, width: int) -> Tensor:
    """Inverse of :func:`to_pixel`: 0-based ``(column, row)`` to normalised ``(x, y)``."""
    return pixels / _pixel_scale(pixels, height, width) - 1.0


def bernstein_basis(
    num_control: int, num_points: int, *, dtype: torch.dtype = torch.float32, device=None
) -> Tensor:
    """``(S, J)`` matrix of Bernstein polynomials ``C(J-1, j) (1-t)^(J-1-j) t^j`` of Eq. 10.

    ``t`` takes ``S = num_points`` evenly spaced values in ``[0, 1]`` (both ends included), so the
    first/last rows are exactly ``e_0`` / ``e_{J-1}``.
    """
    if num_control < 1:
        raise ValueError(f"bezier: need >= 1 control point, found {num_control}")
    if num_points < 2:
        raise ValueError(f"bezier: num_points must be >= 2 (t spans [0, 1]), found {num_points}")
    degree = num_control - 1
    t = torch.linspace(0.0, 1.0, num_points, dtype=torch.float64, device=device).unsqueeze(-1)
    j = torch.arange(num_control, dtype=torch.float64, device=device)
    binom = torch.tensor(
        [math.comb(degree, k) for k in range(num_control)], dtype=torch.float64, device=device
    )
    # torch.pow(0, 0) == 1, so the endpoints are exact.
    basis = binom * (1.0 - t).pow(degree - j) * t.pow(j)
    return basis.to(dtype)


def bezier_points(control_points: Tensor, num_points: int = 100) -> Tensor:
    """Eq. 10: sample ``b_n = Σ_j C(J-1, j) (1-n)^(J-1-j) n^j p_j`` at ``S`` values of ``n``.

    ``control_points`` has shape ``(..., J, 2)``; returns ``(..., S, 2)`` with ``S = num_points``
    samples evenly spaced in ``[0, 1]``; ``b_0 = p_0`` and ``b_{S-1} = p_{J-1}``.
    """
    if control_points.dim() < 2 or control_points.shape[-1] != 2:
        raise ValueError(
            "bezier_points: control_points must have shape (..., J, 2), "
            f"found {tuple(control_points.shape)}"
        )
    basis = bernstein_basis(
        control_points.shape[-2],
        num_points,
        dtype=control_points.dtype,
        device=control_points.device,
    )
    return torch.matmul(basis, control_points)


def rasterize_curve(curve: Tensor, sigma: Tensor | float, height: int, width: int) -> Tensor:
    """Eq. 11 (exponential restored): ``x̃_hw = Σ_n exp(-((h - b_n,y)² + (w - b_n,x)²) / σ²)``.

    The extracted paper text reads ``Σ_n (h - b_x)²(w - b_y)² / σ²``; the exponential (a sum of
    isotropic Gaussian bumps centred on the sample points) was lost in extraction and is
    restored here. The paper pairs ``h`` with its first coordinate; in this project's convention
    the row ``h`` pairs with the vertical coordinate ``y`` and the column ``w`` with the
    horizontal ``x`` (pixel centres and ``σ`` in normalised units, see module docstring).

    ``curve`` is ``(..., S, 2)``, ``sigma`` broadcasts to ``curve.shape[:-2]``; returns
    ``(..., H, W)`` unnormalised intensities, computed exactly as a separable product (each
    1-d factor truncated at ``exp(-EXP_CUTOFF)``, see the constant) by
    :class:`SeparableGaussianRaster`, whose hand-written backward is exact too.
    """
    if curve.dim() < 2 or curve.shape[-1] != 2:
        raise ValueError(
            f"rasterize_curve: curve must have shape (..., S, 2), found {tuple(curve.shape)}"
        )
    _check_positive("sigma", sigma)
    sigma = _as_tensor(sigma, curve)
    lead, num_points = curve.shape[:-2], curve.shape[-2]
    inv_var = sigma.pow(-2).expand(lead).reshape(-1)  # (N,)
    flat = curve.reshape(-1, num_points, 2)
    cols = pixel_centres(width, dtype=curve.dtype, device=curve.device)
    rows = pixel_centres(height, dtype=curve.dtype, device=curve.device)
    raw = SeparableGaussianRaster.apply(flat[..., 0], flat[..., 1], inv_var, cols, rows)
    return raw.reshape(*lead, height, width)


def _gaussian_factor(coord: Tensor, centres: Tensor, inv_var: Tensor) -> tuple[Tensor, Tensor]:
    """``(d, exp(-d² / σ²))`` with ``d = centre - coord``, factors below ``FACTOR_FLOOR`` set to 0:
    ``(N, S, P)`` each. ``coord`` is ``(N, S)``, ``centres`` ``(P,)``, ``inv_var`` ``(N,)``;
    computed in place.
    """
    diff = centres - coord.unsqueeze(-1)
    factor = diff.square().mul_(-inv_var[:, None, None]).clamp_min_(-EXP_CUTOFF).exp_()
    return diff, F.threshold_(factor, FACTOR_FLOOR, 0.0)


class SeparableGaussianRaster(torch.autograd.Function):
    """Eq. 11 as ``G_rowᵀ @ G_col`` with a fused, exact backward.

    Forward: ``G_col[n, s, w] = exp(-(c_w - x_ns)² / σ_n²)``, ``G_row[n, s, h] = exp(-(r_h -
    y_ns)² / σ_n²)`` and ``raw[n] = G_row[n]ᵀ G_col[n]`` (``(H, S) @ (S, W)``). Backward, with
    ``Ḡ_col = G_row @ raw̄`` and ``Ḡ_row = G_col @ raw̄ᵀ`` (two more batched matmuls)::

        ∂/∂x_ns   = 2/σ² Σ_w Ḡ_col G_col (c_w − x_ns)
        ∂/∂(1/σ²) = −Σ_sw Ḡ_col G_col (c_w − x_ns)² − Σ_sh Ḡ_row G_row (r_h − y_ns)²

    (and likewise for ``y``). Only ``(N, S, H + W)`` tensors are saved, never ``(N, S, H, W)``;
    autograd's generic version of the same computation needs about twice the time (measured in
    ``benchmarks/renderer.py``). Factors set to 0 below ``FACTOR_FLOOR`` have derivative 0 (the
    true one is < 1e-11 relative). Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, xs: Tensor, ys: Tensor, inv_var: Tensor, cols: Tensor, rows: Tensor):
        dx, g_col = _gaussian_factor(xs, cols, inv_var)  # (N, S, W)
        dy, g_row = _gaussian_factor(ys, rows, inv_var)  # (N, S, H)
        ctx.save_for_backward(dx, dy, g_col, g_row, inv_var)
        return torch.bmm(g_row.transpose(1, 2), g_col)  # (N, H, W)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_raw: Tensor):
        dx, dy, g_col, g_row, inv_var = ctx.saved_tensors
        grad_col = torch.bmm(g_row, grad_raw).mul_(g_col)  # Ḡ_col ⊙ G_col, (N, S, W)
        grad_row = torch.bmm(g_col, grad_raw.transpose(1, 2)).mul_(g_row)  # (N, S, H)
        tx, ty = grad_col.mul_(dx), grad_row.mul_(dy)  # ⊙ d
        two_iv = 2.0 * inv_var[:, None]
        grad_x = tx.sum(-1).mul_(two_iv) if ctx.needs_input_grad[0] else None
        grad_y = ty.sum(-1).mul_(two_iv) if ctx.needs_input_grad[1] else None
        grad_iv = None
        if ctx.needs_input_grad[2]:  # tx, ty are not needed afterwards: square in place
            grad_iv = -(tx.mul_(dx).sum((1, 2)) + ty.mul_(dy).sum((1, 2)))
        return grad_x, grad_y, grad_iv, None, None


def max_normalize(raw: Tensor) -> Tensor:
    """Eq. 12: ``x̃' = x̃ / max(x̃)`` per image (max over the last two dims).

    A raster whose max is below ``MAXNORM_EPS`` is left undivided (the official ``safe_div``): a
    curve far outside the image or between pixel centres stays (near) zero instead of being
    blown up to full intensity (or 0/0 = NaN).
    """
    return raw / _peak(raw)


def _peak(raw: Tensor) -> Tensor:
    """The divisor of Eq. 12: the max per image, or 1 where it is below ``MAXNORM_EPS``."""
    peak = raw.amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak >= MAXNORM_EPS, peak, torch.ones_like(peak))


def normalize_stroke(normalized: Tensor, omega0: Tensor | float) -> Tensor:
    """Eq. 13: ``x_hw = tanh(x̃'_hw / ω0)``; ``ω0 > 0`` broadcasts to the leading dims."""
    _check_positive("omega0", omega0)
    omega0 = _as_tensor(omega0, normalized)
    return torch.tanh(normalized / omega0.unsqueeze(-1).unsqueeze(-1))


def render_strokes(
    control_points: Tensor,
    sigma: Tensor | float,
    omega0: Tensor | float,
    height: int,
    width: int,
    num_points: int = 100,
) -> Tensor:
    """Render Bézier strokes: Eq. 10 → Eq. 11 (with ``exp``) → Eq. 12 → Eq. 13.

    Args:
        control_points: ``(..., J, 2)`` normalised ``(x, y)`` control points (module docstring).
        sigma: blur width in normalised units, broadcastable to ``control_points.shape[:-2]``.
        omega0: per-stroke tanh temperature (> 0), broadcastable likewise.
        height, width: output size in pixels.
        num_points: number ``S`` of curve samples (paper: 100).

    Returns:
        ``(..., H, W)`` stroke images with values in ``[0, tanh(1/ω0)] ⊂ [0, 1]``.

    Eqs. 12–13 are applied together as ``tanh(x̃ · 1/(max(x̃) · ω0))`` (one multiplication by a
    per-stroke scalar instead of two full-image divisions; equal to
    ``normalize_stroke(max_normalize(x̃), ω0)`` up to float rounding). The gradient flows through
    ``max(x̃)`` as Eq. 12 is written (the official code detaches it; see
    ``benchmarks/references/renderer.py``).
    """
    _check_positive("omega0", omega0)
    curve = bezier_points(control_points, num_points)
    raw = rasterize_curve(curve, sigma, height, width)
    peak = _peak(raw)  # Eq. 12
    omega0 = _as_tensor(omega0, raw).unsqueeze(-1).unsqueeze(-1)
    return torch.tanh(raw * (peak * omega0).reciprocal())  # Eq. 13


def compose_canvas(
    stroke_images: Tensor, omega1: Tensor | float, mask: Tensor | None = None
) -> Tensor:
    """Eq. 14: canvas ``x_hw = tanh(Σ_t x^t_hw / ω1)`` over the stroke axis ``K``.

    ``stroke_images`` is ``(..., K, H, W)`` with values in ``[0, 1]``; ``omega1`` (> 0)
    broadcasts to the leading dims ``...``; ``mask`` (``(..., K)``, bool or 0/1 float) drops
    absent strokes from the sum. Returns ``(..., H, W)`` in ``[0, 1]``.
    """
    if stroke_images.dim() < 3:
        raise ValueError(
            "compose_canvas: stroke_images must have shape (..., K, H, W), "
            f"found {tuple(stroke_images.shape)}"
        )
    _check_positive("omega1", omega1)
    if mask is not None:
        if mask.shape[-1] != stroke_images.shape[-3]:
            raise ValueError(
                f"compose_canvas: mask must have shape (..., K={stroke_images.shape[-3]}), "
                f"found {tuple(mask.shape)}"
            )
        stroke_images = stroke_images * mask.to(stroke_images.dtype).unsqueeze(-1).unsqueeze(-1)
    total = stroke_images.sum(dim=-3)
    omega1 = _as_tensor(omega1, total)
    return torch.tanh(total / omega1.unsqueeze(-1).unsqueeze(-1))
