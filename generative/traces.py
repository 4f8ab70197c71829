"""Stacking the per-step sites of a recorded trace into ``(B, T, ...)`` tensors.

The step-by-step models (DRAW, DooD and the AIR baselines) name their per-step sites
``"{name}_{t}"``; :func:`stack_sites` stacks them along a new step dimension, and
:func:`collect_drawing` gathers what DooD and AIR record at every step.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyro
import torch
from torch import Tensor

__all__ = ["collect_drawing", "stack_sites"]


def stack_sites(
    trace: pyro.poutine.Trace, num_steps: int, sites: Mapping[str, str]
) -> dict[str, Tensor]:
    """``{key: (B, T, ...)}`` for each ``key: name`` of ``sites``: the values of the sites
    ``"{name}_{t}"``, ``t < num_steps``, stacked along dim 1."""
    steps = range(num_steps)
    return {
        key: torch.stack([trace.nodes[f"{name}_{t}"]["value"] for t in steps], 1)
        for key, name in sites.items()
    }


def collect_drawing(
    trace: pyro.poutine.Trace, num_steps: int, parts: Mapping[str, str], count: str
) -> dict[str, Tensor]:
    """A recorded trace of a drawing model stacked over its ``num_steps`` steps: ``canvases``
    (B, T, 1, H, W), the per-step ``parts`` (``{key: site name}``), ``z_pres`` (B, T),
    ``z_where`` and ``z_what``; then ``images`` (B, 1, H, W: the final canvas) and ``count``
    (B,: the present steps)."""
    latents = {name: name for name in ("z_pres", "z_where", "z_what")}
    out = stack_sites(trace, num_steps, {"canvases": "canvas", **parts, **latents})
    out["images"] = out["canvases"][:, -1]
    out[count] = out["z_pres"].sum(1)
    return out
