"""The state types of DooD's steps, shared by the model (:mod:`generative.dood`) and the guide
(:mod:`guides.dood`), and the stacking of a recorded model trace into per-step tensors.
"""

from __future__ import annotations

from typing import NamedTuple

import pyro
from torch import Tensor

from generative.dood_config import DooDConfig
from generative.traces import collect_drawing, stack_sites

__all__ = ["DooDState", "GuideStep", "LayoutStage", "Render", "StrokeStage", "collect_steps"]


class DooDState(NamedTuple):
    """Everything the next step depends on (shared by model and guide)."""

    h_layout: Tensor  # h^l_{t−1}, (B, hidden)
    h_stroke: Tensor  # h^s_{t−1}, (B, hidden)
    z_pres: Tensor  # o_{t−1}, (B,) 0/1
    z_where: Tensor  # l_{t−1}, (B, 5)
    z_what: Tensor  # s_{t−1}, (B, J, 2)
    strokes: tuple[Tensor, ...]  # rendered x_t' for t' < t, each (B, H, W), not detached
    masks: tuple[Tensor, ...]  # o_t' for t' < t, each (B,)
    canvas: Tensor  # detached canvas-so-far x_<t, (B, 1, H, W) (appendix C)


class LayoutStage(NamedTuple):
    """Step ``t`` before ``o_t``, ``l_t``: layout RNN state and canvas features."""

    h_layout: Tensor  # h^l_t
    canvas_features: Tensor | None  # CNN(x_<t) (None without execution guidance)


class StrokeStage(NamedTuple):
    """Step ``t`` after ``l_t``: stroke RNN state and glimpse features."""

    h_stroke: Tensor  # h^s_t
    glimpse_features: Tensor | None  # CNN(STN(l_t, x_<t)) (None without execution guidance)


class Render(NamedTuple):
    """The rendered stroke ``x_t`` and, for δR, its canvas control points and parameters."""

    image: Tensor  # (B, H, W) in [0, 1]
    control_points: Tensor | None  # s̃_t = l_t ⊙ s_t, (B, J, 2)
    sigma: Tensor | None  # (B,)
    omega0: Tensor | None  # (B,)


class GuideStep(NamedTuple):
    """What the guide computed at one step, left in the model's :class:`generative.memo.ReplayMemo`
    (keyed by the step's samples ``(o_t, l_t, s_t)``) for the replayed model."""

    layout: LayoutStage
    stroke: StrokeStage
    render: Render
    state: DooDState  # the state after the step


def collect_steps(trace: pyro.poutine.Trace, config: DooDConfig) -> dict[str, Tensor]:
    """Stack a recorded model trace into ``images`` (B, 1, H, W: the final canvas), ``canvases``
    (B, T, 1, H, W), ``strokes`` (B, T, H, W), ``z_pres`` (B, T), ``num_strokes`` (B,),
    ``z_where`` (B, T, 5), ``z_what`` (B, T, J, 2) and for δR ``control_points`` (B, T, J, 2),
    ``sigma``/``omega0`` (B, T)."""
    T = config.max_strokes
    out = collect_drawing(trace, T, {"strokes": "stroke"}, "num_strokes")
    if f"control_points_{T - 1}" in trace.nodes:
        names = ("control_points", "sigma", "omega0")
        out.update(stack_sites(trace, T, {name: name for name in names}))
    return out
