"""Recognition networks of the AIR baselines (Eslami et al. 2016; DooD sec. 3.1, appendix B.2).

For steps ``t = 0 … T−1``, with the image the guide reads ``u_t``::

    vanilla AIR:      u_t = x
    Difference-AIR:   u_t = Δx_t = x − x_<t      (x_<t: detached canvas of the steps so far)
    h_t = GRU([CNN(u_t), z_pres_{t−1}, z_where_{t−1}, z_what_{t−1}], h_{t−1})
    z_pres_t  ~ z_pres_{t−1} · Bernoulli(σ(MLP_pres(h_t)))             "z_pres_{t}"
    z_where_t ~ N(MLP_where(h_t))                                      "z_where_{t}"
    z_what_t  ~ N(MLP_what(CNN_g(STN(u_t, z_where_t))))               "z_what_{t}"

i.e. Eslami et al.'s recurrent inference network (one RNN proposes presence and location, the
appearance is inferred from the attended glimpse alone), built from DooD's shared components
(appendix B.2: the feature CNN, 2×256 tanh MLPs, a 256-unit GRU). Difference-AIR's "guided
execution" (DooD sec. 3.1 footnote 2; Eslami et al. sec. 3.2 "DAIR") feeds the residual between
the target and the canvas rendered so far; like the official code's ``--use_residual
--residual_no_target``, the target itself is not read, and canvas and residual are detached
(DooD appendix C). The canvas is rendered with the model's decoder (:meth:`Air.render`).

With ``AirConfig.stop_mode == "nvil"`` every ``"z_pres_{t}"`` site carries the NVIL baseline
``b(z_<t, x)`` (DooD appendix C.1) computed from detached ``[CNN(x), h_t]``, as
``infer={"baseline": {"baseline_value": b}}`` (read by :class:`inference.nvil.NVILObjective`
and by ``pyro.infer.TraceGraph_ELBO``).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

from generative.air import WHERE_SIZE, Air, AirConfig, AirState, collect_air_steps, where_to_layout
from generative.layout import guide_normal, identity_layout_raw, layout_means
from generative.networks import MLP, FeatureCNN, RecurrentCore, presence_mlp
from generative.stn import glimpse
from guides.steps import StepGuide, sample_presence

__all__ = ["AirGuide", "build_air", "where_means"]

_WHERE_FROM_LAYOUT = [0, 2, 3, 4]  # (s_x, s_y, t_x, t_y, θ) → (s, t_x, t_y, θ)


def where_means(raw: Tensor) -> Tensor:
    """Constrained ``z_where`` means ``(s, t_x, t_y, θ)`` from raw ``(..., 4)`` outputs, with
    DooD's bounds (:func:`generative.layout.layout_means`: scale in ``(0.05, 1.2)``, translation in
    ``(−1, 1)``, rotation in ``(−π, π)``)."""
    layout = layout_means(torch.cat([raw[..., 0:1], raw], -1))
    return layout[..., _WHERE_FROM_LAYOUT]


class AirGuide(StepGuide):
    """AIR / Difference-AIR inference network. The :class:`Air` model is held by reference (not
    a submodule), so the guide's parameters and ``state_dict`` are its own networks only;
    :meth:`reconstruct` gives the keys of :func:`generative.air.collect_air_steps`."""

    def __init__(self, air_model: Air):
        super().__init__(air_model, "air_guide", collect_air_steps)
        c = air_model.config
        mlp_hidden = (c.mlp_hidden, c.mlp_hidden)
        self.image_cnn = FeatureCNN(c.height, c.width, 1, c.feature_size)
        self.glimpse_cnn = FeatureCNN(c.glimpse_size, c.glimpse_size, 1, c.feature_size)
        self.rnn = RecurrentCore(c.feature_size + 1 + WHERE_SIZE + c.z_what_size, c.hidden_size)
        self.pres_net = presence_mlp(c.hidden_size, mlp_hidden, c.stop_bias_init)
        self.where_net = MLP(c.hidden_size, 2 * WHERE_SIZE, mlp_hidden)
        with torch.no_grad():  # DooD appendix C: the l MLPs start at the identity transform
            raw = identity_layout_raw()
            self.where_net.output.weight[:WHERE_SIZE] = 0.0
            self.where_net.output.bias[:WHERE_SIZE] = torch.tensor([raw[0], *raw[2:]])
        self.what_net = MLP(c.feature_size, 2 * c.z_what_size, mlp_hidden)
        self.baseline = (
            MLP(c.feature_size + c.hidden_size, 1, mlp_hidden) if c.stop_mode == "nvil" else None
        )

    def read_input(self, images: Tensor, state: AirState) -> Tensor:
        """``u_t``: ``x`` (vanilla AIR) or the residual ``x − x_<t`` (Difference-AIR)."""
        if self.config.difference:
            return images - state.canvas.detach()
        return images

    def where_posterior(self, h: Tensor) -> dist.Distribution:
        """``q(z_where_t | h_t)``: a diagonal Gaussian over ``(s, t_x, t_y, θ)``."""
        return guide_normal(self.where_net(h), where_means, (WHERE_SIZE,))

    def what_posterior(self, features: Tensor) -> dist.Distribution:
        """``q(z_what_t | glimpse)``: a diagonal Gaussian with ``tanh`` means (official WhatMLP)."""
        return guide_normal(self.what_net(features), torch.tanh, (self.config.z_what_size,))

    def guide(self, images: Tensor, **kwargs) -> None:
        """Pyro guide over the sites ``"z_pres_{t}"``, ``"z_where_{t}"``, ``"z_what_{t}"`` of
        :meth:`Air.model` (extra keyword arguments of the model, e.g. ``record``, are ignored)."""
        state = self.start(images)
        model, c = self.drawing_model, self.config
        batch_size = images.shape[0]
        h = self.rnn.initial(batch_size)
        target_features = self.image_cnn(images)  # CNN(x) = CNN(u_0) in both variants
        with pyro.plate("data", batch_size):
            for t in pyro.markov(range(c.max_steps)):
                inputs = self.read_input(images, state)
                if t == 0 or not c.difference:
                    features = target_features
                else:
                    features = self.image_cnn(inputs)
                rnn_in = torch.cat(
                    [features, state.z_pres.unsqueeze(-1), state.z_where, state.z_what], -1
                )
                h = self.rnn(rnn_in, h)
                baseline = None
                if self.baseline is not None:
                    context = torch.cat([target_features, h], -1).detach()
                    baseline = self.baseline(context).squeeze(-1)
                logits = self.pres_net(h).squeeze(-1)
                z_pres = sample_presence(t, logits, state.z_pres, baseline)
                present = z_pres > 0
                z_where = pyro.sample(f"z_where_{t}", self.where_posterior(h).mask(present))
                window = glimpse(inputs, where_to_layout(z_where), c.glimpse_size)
                z_what = pyro.sample(
                    f"z_what_{t}", self.what_posterior(self.glimpse_cnn(window)).mask(present)
                )
                if c.difference and t + 1 < c.max_steps:
                    with torch.no_grad():  # detached canvas (DooD appendix C)
                        stroke = model.render(z_what, z_where)
                else:
                    stroke = state.canvas.new_zeros(())  # the canvas is not read again
                state = model.advance(state, z_pres, z_where, z_what, stroke)


def build_air(config: dict) -> tuple[Air, AirGuide]:
    """A fresh ``(model, guide)`` pair from a config dict (:meth:`AirConfig.to_dict`)."""
    model = Air(AirConfig.from_dict(config))
    return model, AirGuide(model)
