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

__all__ = ["PlainNVILStatistics", "dense_render_strokes", "plain_forced_loss", "plain_nvil_loss"]


class PlainNVILStatistics:
    """NVIL's running mean and variance of the learning signal ``ℓ_t`` itself per step (the
    update rule of :class:`NVILObjective`, single process), kept as plain tensors, together with
    the objective's settings that :func:`plain_nvil_loss` reads (``beta``, ``beta_mode``,
    ``baseline_weight``, ``warmup_steps``)."""

    def __init__(self, objective: NVILObjective):
        self.mean = objective.signal_mean.clone()
        self.var = objective.signal_var.clone()
        self.updates = objective.updates.clone()
        self.decay = objective.decay
        self.beta, self.beta_mode = objective.beta, objective.beta_mode
        self.baseline_weight = objective.baseline_weight
        self.warmup_steps = objective.warmup_steps

    @torch.no_grad()
    def update(self, signal: Tensor, alive: Tensor, initialise: bool = False) -> None:
        """Moving mean/variance of ``signal`` per step over live examples; a step's first batch
        sets them; ``initialise`` only sets never-updated steps and does not count as an
        update."""
        for t in range(signal.shape[0]):
            count = alive[t].sum()
            if count < 1 or (initialise and self.updates[t] > 0):
                continue
            mean = (signal[t] * alive[t]).sum() / count
            var = ((signal[t] - mean).square() * alive[t]).sum() / count
            if self.updates[t] == 0:
                self.mean[t], self.var[t] = mean, var
            else:
                a = self.decay
                self.mean[t] = a * self.mean[t] + (1 - a) * mean
                self.var[t] = a * self.var[t] + (1 - a) * var
            if not initialise:
                self.updates[t] += 1


def _step_context(model: DooD, guide: DooDGuide, x: Tensor, state):
    """A step's layout stage, the guide's input images and its context ``[CNN(·), h^l_t]``."""
    stage_l = model.layout_stage(state)
    inputs = guide.read_input(x, state.canvas)
    return stage_l, inputs, torch.cat([guide.image_cnn(inputs), stage_l.h_layout], -1)


def _stroke(model: DooD, guide: DooDGuide, state, stage_l, inputs: Tensor, context: Tensor):
    """``q(l_t)`` (Eq. 7) and ``q(s_t)`` (Eq. 8) sampled, the stroke rendered (Eqs. 10–13), and
    its log-weight ``log p(l, s) − log q(l, s)`` (Eqs. 3–4 against Eqs. 7–8)."""
    q_l = guide.layout_posterior(context)
    z_where = q_l.rsample()
    stage_s = model.stroke_stage(state, z_where)
    window = glimpse(inputs, z_where, model.config.glimpse_size)
    q_s = guide.stroke_posterior(torch.cat([guide.glimpse_cnn(window), stage_s.h_stroke], -1))
    z_what = q_s.rsample()
    render = model.render(stage_s, z_where, z_what)
    w = (
        model.layout_prior(stage_l).log_prob(z_where)
        - q_l.log_prob(z_where)
        + model.stroke_prior(stage_s, z_where).log_prob(z_what)
        - q_s.log_prob(z_what)
    )
    return stage_s, z_where, z_what, render, w


def plain_nvil_loss(
    model: DooD,
    guide: DooDGuide,
    x: Tensor,
    stats: PlainNVILStatistics,
    beta: float | None = None,
    baseline_weight: float | None = None,
    *,
    beta_mode: str | None = None,
    step: int = 0,
) -> Tensor:
    """The loss of :class:`inference.nvil.NVILObjective` for DooD, computed directly from the
    modules (``beta``, ``baseline_weight``, ``beta_mode`` default to the objective's, read from
    ``stats``; ``step < stats.warmup_steps`` gives the warm-up loss, :func:`plain_forced_loss`).

    For each step: the guide's ``q(o_t)`` (Eq. 6; with ``config.stop_ink_ratio`` its inputs end
    with the residual-ink ratio ``Σ(x − x_<t)⁺ / Σx``) and the baseline ``b(z_<t, x)`` from the
    detached context, ``q(l_t)`` (Eq. 7), ``q(s_t)`` (Eq. 8) on the residual; the model's priors
    (Eqs. 2–4) on the shared RNN states; the stroke rendered (Eqs. 10–13) and composited
    (Eq. 14); finally the Laplace likelihood (Eq. 5). Then Eq. 9 with local learning signals
    (appendix C.1): with ``beta_mode="kl"`` (the paper) the objective is ``L_β`` (β on the stop
    terms) and ``ℓ_t = log p(x | z) + Σ_{t' ≥ t} (stroke + β stop terms)``; with ``"signal"``
    (the official code) the objective is the ELBO and ``ℓ_t = log p(x | z) / β + Σ_{t' ≥ t}
    (stroke + stop terms)``. The advantage is ``(ℓ_t − c_t) / max(1, √v_t) − b_t`` with the
    running mean/variance ``c, v`` of ``ℓ_t`` from earlier batches (a never-updated step is set
    from this batch first), and the baseline fits the standardised signal by squared error.
    Statistics are updated, as the objective's, only in training mode with gradients enabled.
    """
    beta = stats.beta if beta is None else beta
    baseline_weight = stats.baseline_weight if baseline_weight is None else baseline_weight
    beta_mode = stats.beta_mode if beta_mode is None else beta_mode
    if beta_mode not in ("signal", "kl"):
        raise ValueError(f"plain_nvil_loss: unknown beta_mode {beta_mode!r}")
    if step < stats.warmup_steps:
        return plain_forced_loss(model, guide, x)
    c = model.config
    batch = x.shape[0]
    state = model.initial_state(batch)
    strokes, stops, log_qs, alive, baselines = [], [], [], [], []
    for _ in range(c.max_strokes):
        stage_l, inputs, context = _step_context(model, guide, x, state)
        baselines.append(guide.baseline(context.detach()).squeeze(-1))
        stop_inputs = context
        if c.stop_ink_ratio:  # guides.dood.DooDGuide.stop_inputs
            ink = x.flatten(1).sum(1)
            left = (x - state.canvas).clamp_min(0.0).flatten(1).sum(1)
            ratio = torch.where(ink > 1e-4, left / ink.clamp_min(1e-4), torch.zeros_like(ink))
            stop_inputs = torch.cat([context, ratio.unsqueeze(-1)], -1)
        q_o = AbsorbingBernoulli(guide.pres_net(stop_inputs).squeeze(-1), state.z_pres)
        z_pres = q_o.sample()
        present = z_pres > 0
        stage_s, z_where, z_what, render, w = _stroke(model, guide, state, stage_l, inputs, context)
        p_o = model.stop_prior(state, stage_l)
        strokes.append(torch.where(present, w, torch.zeros_like(w)))
        log_q = q_o.log_prob(z_pres)
        stops.append(p_o.log_prob(z_pres) - log_q)
        log_qs.append(log_q)
        alive.append(state.z_pres.expand(batch))
        state = model.advance(state, stage_l, stage_s, z_pres, z_where, z_what, render)
    log_lik = model.likelihood(model.canvas_of(state.strokes, state.masks)).log_prob(x)
    stroke_t, stop_t = torch.stack(strokes), torch.stack(stops)
    log_q_t, alive_t, base_t = torch.stack(log_qs), torch.stack(alive), torch.stack(baselines)
    if beta_mode == "kl":  # L_β; ℓ_t = log p(x | z) + Σ_{t' ≥ t} (stroke + β stop terms)
        per_step = stroke_t + beta * stop_t
        objective = log_lik + per_step.sum(0)
        likelihood = log_lik
    else:  # the ELBO; ℓ_t = log p(x | z) / β + Σ_{t' ≥ t} (stroke + stop terms)
        per_step = stroke_t + stop_t
        objective = log_lik + per_step.sum(0)
        likelihood = log_lik / beta if beta > 0 else log_lik
    signal = (likelihood + per_step.flip(0).cumsum(0).flip(0)).detach()
    update = model.training and torch.is_grad_enabled()
    if update:
        stats.update(signal, alive_t, initialise=True)
    steps = c.max_strokes
    mean = stats.mean[:steps, None].clone()
    norm = stats.var[:steps, None].sqrt().clamp_min(1.0)
    standardised = (signal - mean) / norm  # the baseline's target
    advantage = (standardised - base_t.detach()) * alive_t
    loss = -(objective + (advantage * log_q_t).sum(0)).mean()
    if update:
        stats.update(signal, alive_t)
    error = (standardised - base_t) * alive_t
    return loss + baseline_weight * 0.5 * error.square().sum(0).mean()


def plain_forced_loss(model: DooD, guide: DooDGuide, x: Tensor) -> Tensor:
    """The stroke warm-up loss (:func:`inference.nvil.forced_strokes_loss`): minus the ELBO given
    every ``o_t = 1``, ``log p(x | z) + Σ_t (log p − log q)`` of layouts and strokes; the stop
    networks and the baseline do not enter (nor the random numbers: no ``o_t`` is drawn)."""
    c = model.config
    state = model.initial_state(x.shape[0])
    ones = x.new_ones(x.shape[0])
    elbo = x.new_zeros(x.shape[0])
    for _ in range(c.max_strokes):
        stage_l, inputs, context = _step_context(model, guide, x, state)
        stage_s, z_where, z_what, render, w = _stroke(model, guide, state, stage_l, inputs, context)
        elbo = elbo + w
        state = model.advance(state, stage_l, stage_s, ones, z_where, z_what, render)
    log_lik = model.likelihood(model.canvas_of(state.strokes, state.masks)).log_prob(x)
    return -(log_lik + elbo).mean()


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
