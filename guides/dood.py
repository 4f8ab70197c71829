"""DooD's recognition model as a Pyro guide (Liang et al. 2022, sec. 2.2, Eqs. 6–8, appendix C.1).

For steps ``t = 0 … T−1``, with the residual ``Δx_t = x − x_<t`` (``x_<t`` the detached
canvas-so-far of the strokes sampled so far, appendix C)::

    o_t ~ q_on(o_t | Δx_t) = o_{t−1} · Bernoulli(σ(MLP([CNN(Δx_t, x_<t), h^l_t])))   (Eq. 6)
    l_t ~ q_layout(l_t | Δx_t, h^l_t) = N_sc · N_tr · N_r                           (Eq. 7)
    Δ̃x_t = STN(l_t, Δx_t)                                                          (Eq. 7)
    s_t ~ q_stroke(s_t | Δ̃x_t, h^s_t) = Π_d N_d(s_dt)                               (Eq. 8)

The layout/stroke distributions are single diagonal Gaussians (one component of the model's
GMMs, sec. 2.2), their means constrained like the model's. They start at the identity layout
(appendix C) with standard deviations :data:`GUIDE_STD_INIT` (layout) and
``config.guide_stroke_std_init`` (strokes). With ``config.stop_ink_ratio`` (official
`models/ssp.py`, ``residual_pixel_count``) the stop network also reads the share of the target's
ink not yet drawn, ``Σ(x − x_<t)⁺ / Σx``.
``h^l_t``/``h^s_t`` are the model's shared RNNs (Fig. 2), run through
:meth:`DooD.layout_stage` / :meth:`DooD.stroke_stage`; the rendered strokes come from
:meth:`DooD.render`, and the per-step results are left in the model's memo so the replayed
model does not recompute them. The CNNs read two channels
``(Δx_t, x_<t)`` (residual and canvas-so-far, appendix B.2); without execution guidance
(DooD-EG) they read the target ``x`` itself.

With ``stop_mode="nvil"`` every ``"z_pres_{t}"`` site carries a neural baseline
``b(z_<t, x)`` (appendix C.1) computed from *detached* inputs ``[CNN features, h^l_t]``, in
Pyro's convention ``infer={"baseline": {"baseline_value": b}}`` (used by
:class:`inference.nvil.NVILObjective`, which reads it in standardised units, and by
``pyro.infer.TraceGraph_ELBO``, which reads it in nats).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

from generative.dood import DooD
from generative.dood_config import CONTROL_BOUND
from generative.dood_state import GuideStep, collect_steps
from generative.layout import (
    GUIDE_STD_BOUNDS,
    bounded_inverse,
    guide_normal,
    identity_layout_raw,
    layout_means,
)
from generative.networks import MLP, FeatureCNN, presence_mlp
from generative.stn import LAYOUT_SIZE, glimpse
from guides.steps import StepGuide, sample_presence

__all__ = ["DooDGuide"]

GUIDE_STD_INIT = 0.05  # initial standard deviations (small: near-deterministic strokes at first)


def _control_means(raw: Tensor) -> Tensor:
    """Control-point means in ``(−CONTROL_BOUND, CONTROL_BOUND)``, like the model's (Eq. 3)."""
    return CONTROL_BOUND * torch.tanh(raw)


class DooDGuide(StepGuide):
    """Recognition networks of DooD. The :class:`DooD` model is held by reference (not a
    submodule): the guide's ``state_dict`` and parameters are its own networks only;
    :meth:`reconstruct` gives the keys of :func:`generative.dood_state.collect_steps`."""

    def __init__(self, dood_model: DooD):
        super().__init__(dood_model, "dood_guide", collect_steps)
        c = dood_model.config
        channels = 2 if c.execution_guidance else 1
        mlp_hidden = (c.mlp_hidden, c.mlp_hidden)
        size, stride = c.feature_size, c.cnn_stride
        self.image_cnn = FeatureCNN(c.height, c.width, channels, size, stride=stride)
        self.glimpse_cnn = FeatureCNN(c.glimpse_size, c.glimpse_size, channels, size, stride=stride)
        context = c.feature_size + c.hidden_size
        stop_inputs = context + (1 if c.stop_ink_ratio else 0)
        self.pres_net = presence_mlp(stop_inputs, mlp_hidden, c.stop_bias_init)  # q_on, Eq. 6
        self.where_net = MLP(context, 2 * LAYOUT_SIZE, mlp_hidden)  # q_layout, Eq. 7
        self.what_net = MLP(context, 4 * c.control_points, mlp_hidden)  # q_stroke, Eq. 8
        with torch.no_grad():
            # appendix C: identity transforms initially
            self.where_net.output.weight[:LAYOUT_SIZE] = 0.0
            identity = identity_layout_raw(c.layout_ranges)
            self.where_net.output.bias[:LAYOUT_SIZE] = torch.tensor(identity)
            for net, first, std in (
                (self.where_net, LAYOUT_SIZE, GUIDE_STD_INIT),
                (self.what_net, 2 * c.control_points, c.guide_stroke_std_init),
            ):
                net.output.weight[first:] *= 0.1
                net.output.bias[first:] = bounded_inverse(std, *GUIDE_STD_BOUNDS)
        self.baseline = MLP(context, 1, mlp_hidden) if c.stop_mode == "nvil" else None

    def read_input(self, images: Tensor, canvas: Tensor) -> Tensor:
        """What the CNNs read: ``(Δx_t, x_<t)`` with ``Δx_t = x − x_<t`` (canvas detached), or
        ``x`` without execution guidance."""
        if self.config.execution_guidance:
            return torch.cat([images - canvas, canvas], 1)
        return images

    def layout_posterior(self, context: Tensor) -> dist.Distribution:
        """Eq. 7: ``N_sc · N_tr · N_r`` (one diagonal Gaussian over the 5 layout numbers)."""
        ranges = self.config.layout_ranges
        means = lambda raw: layout_means(raw, ranges)  # noqa: E731
        return guide_normal(self.where_net(context), means, (LAYOUT_SIZE,))

    def stop_inputs(self, context: Tensor, images: Tensor, canvas: Tensor) -> Tensor:
        """Inputs of ``q_on`` (Eq. 6): the context, and with ``config.stop_ink_ratio`` the share
        of the target's ink not drawn yet, ``Σ(x − x_<t)⁺ / Σx`` (0 for an empty image)."""
        if not self.config.stop_ink_ratio:
            return context
        ink = images.flatten(1).sum(1)
        left = (images - canvas).clamp_min(0.0).flatten(1).sum(1)
        ratio = torch.where(ink > 1e-4, left / ink.clamp_min(1e-4), torch.zeros_like(ink))
        return torch.cat([context, ratio.unsqueeze(-1)], -1)

    def stroke_posterior(self, context: Tensor) -> dist.Distribution:
        """Eq. 8: ``Π_d N_d(s_dt)``, a diagonal Gaussian per control point."""
        J = self.config.control_points
        return guide_normal(self.what_net(context), _control_means, (J, 2))

    def guide(self, images: Tensor, **kwargs) -> None:
        """Pyro guide over the sites ``"z_pres_{t}"``, ``"z_where_{t}"``, ``"z_what_{t}"`` of
        :meth:`DooD.model` (extra keyword arguments of the model, e.g. ``record``, are ignored)."""
        state = self.start(images)
        model, c = self.drawing_model, self.config
        batch_size = images.shape[0]
        model.memo.start(model.param_versions())
        with pyro.plate("data", batch_size):
            for t in pyro.markov(range(c.max_strokes)):
                stage_l = model.layout_stage(state)
                inputs = self.read_input(images, state.canvas)
                context = torch.cat([self.image_cnn(inputs), stage_l.h_layout], -1)
                baseline = None
                if self.baseline is not None:
                    baseline = self.baseline(context.detach()).squeeze(-1)
                logits = self.pres_net(self.stop_inputs(context, images, state.canvas)).squeeze(-1)
                z_pres = sample_presence(t, logits, state.z_pres, baseline)
                present = z_pres > 0
                z_where = pyro.sample(f"z_where_{t}", self.layout_posterior(context).mask(present))
                stage_s = model.stroke_stage(state, z_where)
                window = glimpse(inputs, z_where, c.glimpse_size)
                stroke_context = torch.cat([self.glimpse_cnn(window), stage_s.h_stroke], -1)
                z_what = pyro.sample(
                    f"z_what_{t}", self.stroke_posterior(stroke_context).mask(present)
                )
                render = model.render(stage_s, z_where, z_what)
                nxt = model.advance(state, stage_l, stage_s, z_pres, z_where, z_what, render)
                step = GuideStep(stage_l, stage_s, render, nxt)
                model.memo.record((z_pres, z_where, z_what), step)
                state = nxt
