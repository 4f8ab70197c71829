"""Bounds and layout helpers shared by DooD and the AIR baselines (Liang et al. 2022, Eqs. 2, 5, 7).

A layout ``l = (s_x, s_y, t_x, t_y, θ)`` is an affine transform (:mod:`generative.stn`). Networks
predict raw, unconstrained outputs; :func:`layout_means` maps them into the ranges below (the
paper constrains them without giving values), :func:`bounded` maps any raw output into an
interval, and :func:`identity_layout_raw` gives the raw outputs of the identity transform with
which the layout networks start (appendix C). :func:`guide_normal` is the posterior head of the
DooD and AIR guides: a diagonal Gaussian whose standard deviations lie in :data:`GUIDE_STD_BOUNDS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro.distributions as dist
import torch
from torch import Tensor

__all__ = [
    "GUIDE_STD_BOUNDS",
    "LIKELIHOOD_SCALE_BOUNDS",
    "ROTATION_BOUND",
    "SCALE_BOUNDS",
    "TRANSLATION_BOUND",
    "bounded",
    "bounded_inverse",
    "guide_normal",
    "identity_layout_raw",
    "layout_means",
]

SCALE_BOUNDS = (0.05, 1.2)  # layout scale means; 1 = the whole canvas (identity transform)
TRANSLATION_BOUND = 1.0  # layout translation means in (−1, 1)
ROTATION_BOUND = math.pi  # layout rotation means in (−π, π)
LIKELIHOOD_SCALE_BOUNDS = (0.01, 1.0)  # learned Laplace scale b (Eq. 5)
GUIDE_STD_BOUNDS = (0.002, 1.0)  # standard deviations of q_layout and q_stroke (Eqs. 7–8)


def bounded(raw: Tensor, low: float, high: float) -> Tensor:
    """``low + (high − low) · sigmoid(raw)``: maps an unconstrained output into ``(low, high)``."""
    return low + (high - low) * torch.sigmoid(raw)


def bounded_inverse(value: float, low: float, high: float) -> float:
    """The raw value that :func:`bounded` maps to ``value`` (``low < value < high``)."""
    if not low < value < high:
        raise ValueError(f"bounded_inverse: value {value} is not inside ({low}, {high})")
    u = (value - low) / (high - low)
    return math.log(u / (1.0 - u))


def layout_means(raw: Tensor) -> Tensor:
    """Constrained layout means (Eq. 2 / Eq. 7) from raw outputs ``(..., 5)``: scales in
    :data:`SCALE_BOUNDS`, translations in ``(−1, 1)``, rotation in ``(−π, π)``."""
    scale = bounded(raw[..., 0:2], *SCALE_BOUNDS)
    shift = TRANSLATION_BOUND * torch.tanh(raw[..., 2:4])
    theta = ROTATION_BOUND * torch.tanh(raw[..., 4:5])
    return torch.cat([scale, shift, theta], -1)


def identity_layout_raw() -> list[float]:
    """Raw outputs for which :func:`layout_means` is the identity transform (appendix C)."""
    s = bounded_inverse(1.0, *SCALE_BOUNDS)
    return [s, s, 0.0, 0.0, 0.0]


def guide_normal(
    out: Tensor, means: Callable[[Tensor], Tensor], event_shape: tuple[int, ...]
) -> dist.Distribution:
    """A guide's diagonal Gaussian over ``event_shape`` from a net's output ``(..., 2·n)``
    (``n`` the number of elements of ``event_shape``): the first ``n`` raw outputs give the means
    through ``means``, the last ``n`` the standard deviations in :data:`GUIDE_STD_BOUNDS`."""
    size = math.prod(event_shape)
    shape = (*out.shape[:-1], *event_shape)
    loc = means(out[..., :size].reshape(shape))
    scale = bounded(out[..., size:].reshape(shape), *GUIDE_STD_BOUNDS)
    return dist.Normal(loc, scale).to_event(len(event_shape))
