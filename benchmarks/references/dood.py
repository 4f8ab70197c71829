"""DooD's NVIL training loss (Liang et al. 2022, sec. 2.3 Eq. 9, appendix C.1) computed directly
from the modules of :class:`generative.dood.DooD` and :class:`guides.dood.DooDGuide`, with no
Pyro, and DooD's renderer computed by the official dense rasteriser.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmarks.references.renderer import Inputs, dense_render
from generative.distributions import AbsorbingBernoulli
from generative.dood import DooD
from generative.stn import glimpse
from guides.dood import DooDGuide
from inference.nvil import NVILObjective

__all__ = ["PlainNVILStatistics", "dense_render_strokes", "plain_nvil_loss"]


class PlainNVILStatistics:
    """NVIL's running mean and variance of the learning signal per step (Mnih & Gregor 2014,
    Alg. 1), kept as plain tensors with the update rule of :class:`NVILObjective`."""

    def __init__(self, objective: NVILObjective):
        self.mean = objective.signal_mean.clone()
        self.var = objective.signal_var.clone()
        self.updates = objective.updates.clone()
        self.decay = objective.decay

    @torch.no_grad()
    def update(self, residual: Tensor, alive: Tensor, initialise: bool = False) -> None:
        """Moving mean/variance of ``residual`` per step over live examples; ``initialise``
        only sets never-updated steps and does not count as an update."""
        for t in range(residual.shape[0]):
            count = alive[t].sum()
            if count < 1 or (initialise and self.updates[t] > 0):
                continue
            mean = (residual[t] * alive[t]).sum() / count
            var = ((residual[t] - mean).square() * alive[t]).sum() / count
            if self.updates[t] == 0:
                self.mean[t], self.var[t] = mean, var
            else:
                a = self.decay
                self.mean[t] = a * self.mean[t] + (1 - a) * mean
                self.var[t] = a * self.var[t] + (1 - a) * var
            if not initialise:
                self.updates[t] += 1


def plain_nvil_loss(
    model: DooD,
    guide: DooDGuide,
    x: Tensor,
    stats: PlainNVILStatistics,
    beta: float,
    baseline_weight: float = 1.0,
) -> Tensor:
    """The NVIL surrogate loss of DooD per example, computed directly from the modules.

    For each step: the guide's ``q(o_t)`` (Eq. 6, with the baseline ``b(z_<t, x)`` from detached
    inputs), ``q(l_t)`` (Eq. 7), ``q(s_t)`` (Eq. 8) on the residual; the model's priors (Eqs. 2–4)
    on the shared RNN states; the stroke rendered (Eqs. 10–13) and composited (Eq. 14); finally
    the Laplace likelihood (Eq. 5). Then Eq. 9 with β on the stop terms, local learning signals,
    centred and normalised advantages and the baseline's squared error (appendix C.1), as
    :class:`inference.nvil.NVILObjective` computes them: the baseline predicts the standardised
    signal ``(ℓ_t − c_t) / max(1, √v_t)``, with statistics of earlier batches.
    """
    c = model.config
    batch = x.shape[0]
    state = model.initial_state(batch)
    strokes, stops, log_qs, alive, baselines = [], [], [], [], []
    for _ in range(c.max_strokes):
        stage_l = model.layout_stage(state)
        inputs = guide.read_input(x, state.canvas)
        context = torch.cat([guide.image_cnn(inputs), stage_l.h_layout], -1)
        baselines.append(guide.baseline(context.detach()).squeeze(-1))
        q_o = AbsorbingBernoulli(guide.pres_net(context).squeeze(-1), state.z_pres)
        z_pres = q_o.sample()
        present = z_pres > 0
        q_l = guide.layout_posterior(context)
        z_where = q_l.rsample()
        stage_s = model.stroke_stage(state, z_where)
        window = glimpse(inputs, z_where, c.glimpse_size)
        q_s = guide.stroke_posterior(torch.cat([guide.glimpse_cnn(window), stage_s.h_stroke], -1))
        z_what = q_s.rsample()
        render = model.render(stage_s, z_where, z_what)
        p_o = model.stop_prior(state, stage_l)
        w = (
            model.layout_prior(stage_l).log_prob(z_where)
            - q_l.log_prob(z_where)
            + model.stroke_prior(stage_s, z_where).log_prob(z_what)
            - q_s.log_prob(z_what)
        )
        strokes.append(torch.where(present, w, torch.zeros_like(w)))
        log_q = q_o.log_prob(z_pres)
        stops.append(p_o.log_prob(z_pres) - log_q)
        log_qs.append(log_q)
        alive.append(state.z_pres.expand(batch))
        state = model.advance(state, stage_l, stage_s, z_pres, z_where, z_what, render)
    log_lik = model.likelihood(model.canvas_of(state.strokes, state.masks)).log_prob(x)
    stroke_t, stop_t = torch.stack(strokes), torch.stack(stops)
    log_q_t, alive_t, base_t = torch.stack(log_qs), torch.stack(alive), torch.stack(baselines)
    per_step = stroke_t + beta * stop_t
    elbo_beta = log_lik + per_step.sum(0)
    signal = (log_lik + per_step.flip(0).cumsum(0).flip(0)).detach()
    stats.update(signal - base_t.detach(), alive_t, initialise=True)
    steps = c.max_strokes
    mean = stats.mean[:steps, None].clone()
    norm = stats.var[:steps, None].sqrt().clamp_min(1.0)
    standardised = (signal - mean) / norm  # the baseline's target
    advantage = (standardised - base_t.detach()) * alive_t
    loss = -(elbo_beta + (advantage * log_q_t).sum(0)).mean()
    stats.update(signal - norm * base_t.detach(), alive_t)
    error = (standardised - base_t) * alive_t
    return loss + baseline_weight * 0.5 * error.square().sum(0).mean()


def dense_render_strokes(
    control_points: Tensor,
    sigma: Tensor | float,
    omega0: Tensor | float,
    height: int,
    width: int,
    num_points: int = 100,
) -> Tensor:
    """:func:`generative.bezier.render_strokes` computed by the official dense rasteriser
    (:func:`benchmarks.references.renderer.dense_render`, max of Eq. 12 not detached, as ours)."""
    lead = control_points.shape[:-2]
    flat = control_points.reshape(-1, 1, *control_points.shape[-2:])
    n = flat.shape[0]
    sig = torch.as_tensor(sigma, dtype=flat.dtype).expand(lead).reshape(n, 1)
    om0 = torch.as_tensor(omega0, dtype=flat.dtype).expand(lead).reshape(n, 1)
    inputs = Inputs(flat, sig, om0, flat.new_ones(n))
    images, _ = dense_render(inputs, height, width, num_points, detach_max=False)
    return images.reshape(*lead, height, width)
