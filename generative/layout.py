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
from collections.abc import Callable, Sequence
from typing import NamedTuple

import pyro.distributions as dist
import torch
from torch import Tensor

__all__ = [
    "FREE_LAYOUT",
    "GUIDE_STD_BOUNDS",
    "LIKELIHOOD_SCALE_BOUNDS",
    "OFFICIAL_LAYOUT",
    "ROTATION_BOUND",
    "SCALE_BOUNDS",
    "TRANSLATION_BOUND",
    "LayoutRanges",
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


class LayoutRanges(NamedTuple):
    """Ranges of the layout means: scales in ``scale``, translations in ``(−shift, shift)``,
    rotation in ``(−rotation, rotation)`` (radians)."""

    scale: tuple[float, float] = SCALE_BOUNDS
    shift: float = TRANSLATION_BOUND
    rotation: float = ROTATION_BOUND

    @classmethod
    def of(cls, scale: Sequence[float], shift: float, rotation: float) -> LayoutRanges:
        low, high = (float(v) for v in scale)
        if not 0 < low < high:
            raise ValueError(f"layout scale bounds must be 0 < low < high, found {tuple(scale)}")
        if not shift > 0 or not rotation > 0:
            raise ValueError(f"layout shift/rotation bounds must be > 0, found {shift}, {rotation}")
        return cls((low, high), float(shift), float(rotation))


# Our first, free ranges (the paper gives none) and the official code's (`util.py`,
# ``constrain_z_where`` of "4_rotate": shift ±0.8, scale [0.25, 1], rotation ±π/4).
FREE_LAYOUT = LayoutRanges()
OFFICIAL_LAYOUT = LayoutRanges((0.25, 1.0), 0.8, math.pi / 4)


def bounded(raw: Tensor, low: float, high: float) -> Tensor:
    """``low + (high − low) · sigmoid(raw)``: maps an unconstrained output into ``(low, high)``."""
    return low + (high - low) * torch.sigmoid(raw)


def bounded_inverse(value: float, low: float, high: float) -> float:
    """The raw value that :func:`bounded` maps to ``value`` (``low < value < high``)."""
    if not low < value < high:
        raise ValueError(f"bounded_inverse: value {value} is not inside ({low}, {high})")
    u = (value - low) / (high - low)
    return math.log(u / (1.0 - u))


def layout_means(raw: Tensor, ranges: LayoutRanges = FREE_LAYOUT) -> Tensor:
    """Constrained layout means (Eq. 2 / Eq. 7) from raw outputs ``(..., 5)``: scales in
    ``ranges.scale``, translations in ``(−shift, shift)``, rotation in ``(−rotation, rotation)``
    (default :data:`FREE_LAYOUT`: ``(0.05, 1.2)``, ``(−1, 1)``, ``(−π, π)``)."""
    scale = bounded(raw[..., 0:2], *ranges.scale)
    shift = ranges.shift * torch.tanh(raw[..., 2:4])
    theta = ranges.rotation * torch.tanh(raw[..., 4:5])
    return torch.cat([scale, shift, theta], -1)


def identity_layout_raw(ranges: LayoutRanges = FREE_LAYOUT) -> list[float]:
    """Raw outputs for which :func:`layout_means` is the identity transform (appendix C); when
    scale 1 is not strictly inside ``ranges.scale`` (the official ``[0.25, 1]``), the scale
    starts 2% of the range below its upper bound."""
    low, high = ranges.scale
    scale = 1.0 if low < 1.0 < high else high - 0.02 * (high - low)
    s = bounded_inverse(scale, low, high)
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
