"""Objectives for sequential models with a discrete "stop drawing" variable (DooD, AIR).

Both follow the trainer interface ``objective(model, guide, args, step) -> (loss, metrics)``
(:mod:`inference.trainer`) and optimise the β-weighted ELBO of DooD (sec. 2.3, Eq. 9)::

    L_β = E_q[ log p(x | z) + Σ_t (log p(l_t, s_t | ·) − log q(l_t, s_t | ·))
                            + β Σ_t (log p(o_t | ·) − log q(o_t | ·)) ]

(β = 1 is the ELBO, reported as the ``"elbo"`` metric). That is the paper's reading of β
(``beta_mode="kl"``). The official code (`losses.py`: ``reinforce_ll = log_likelihood / beta``)
optimises the plain ELBO and uses β only inside the stop variables' learning signal, where it
divides the log-likelihood: ``ℓ_t = log p(x | z) / β + Σ_{t' ≥ t} (stroke + stop terms)``
(``beta_mode="signal"``; for the enumerated count the same signal drives the gradient of
``q(N)``). With ``warmup_steps`` both objectives first optimise the ELBO given ``N = T`` (every
stroke forced on; the stop networks get no gradient) for that many training steps; the step
comes from the trainer, so a resumed run continues the schedule.

They differ in how the stop variables ``o_t`` are handled:

* :class:`NVILObjective` (appendix C.1): ``o_t`` is sampled; its gradient is REINFORCE with
  *local learning signals* ``ℓ_t = log p(x | z) + Σ_{t' ≥ t} [stroke terms + β stop terms]``
  (only terms that depend on ``o_t``), a *neural baseline* ``b_t = b(z_<t, x)`` read from the
  guide site's ``infer["baseline"]["baseline_value"]`` (Pyro's ``TraceGraph_ELBO``
  convention), and centring and variance normalisation in the spirit of NVIL (Mnih & Gregor
  2014, Alg. 1): ``A_t = (ℓ_t − c_t) / s_t − b_t`` with ``s_t = max(1, √v_t)``, where ``c_t``
  and ``v_t`` are running mean and variance *of the signal ℓ_t itself* per step (from earlier
  batches). The baseline network predicts in these standardised units (its learning is then
  independent of the signal's scale of hundreds of nats) and minimises ``½ A_t²`` (the
  appendix's squared error up to the factor ``s_t²``). NVIL proper takes ``c, v`` of
  ``ℓ − b̃`` with ``b̃ = s · b`` in nats; with a standardised baseline that is a feedback loop
  (``s`` scales ``b̃``, which feeds ``v``, which sets ``s``) that diverged to NaN in an AIR run
  (the running sd of one step went 28.6 → 2.0e17 within ~200 updates); statistics of ``ℓ``
  alone cannot grow unless the signal does. Pyro's
  ``TraceGraph_ELBO`` has the same Rao-Blackwellised signals and baseline hook but neither β
  weighting of one site type nor centring/normalisation, hence this module.
* :class:`EnumeratedObjective`: the number of strokes ``N = Σ_t o_t ∈ {0 … T}`` is summed out
  exactly. Because a stopped model stays stopped (Eq. 4), ``o_{1:T}`` is determined by ``N``,
  and every stroke's densities depend only on earlier strokes. So one pass of guide and model
  with all ``o_t = 1`` yields every quantity needed: per-step stroke terms ``w_t``, stop
  probabilities ``p_t``/``q_t`` and the prefix canvases ``x_≤n`` (``T + 1`` likelihoods, not
  ``2^T`` renders)::

      q(N = n) = Π_{t<n} q_t · (1 − q_n)   (no (1 − q_T) factor for n = T), likewise p(N = n)
      L_β = Σ_n q(N = n) [ log p(x | x_≤n) + Σ_{t<n} w_t + β (log p(N = n) − log q(N = n)) ]

  exact in ``N``, reparameterised Monte Carlo in the continuous latents; no score function.

Model/guide conventions (checked, violations raise ``ValueError``): sites inside
``pyro.plate("data", B)`` with ``(B,)`` log-probs; per-step latent sites named
``"<name>_<t>"``; the stop sites ``"<stop_site>_<t>"`` are sampled first within their step and
all other latent sites are reparameterisable; sites without a step suffix (the observation
``"x"``) are global. For the stop distributions an ``alive`` attribute (0/1, the previous
``o``), as on :class:`generative.distributions.AbsorbingBernoulli`, marks where ``o_t`` is
random; the baseline is fitted and the running statistics are collected only there. The enumerated
objective also needs ``model.model(x, record=True)`` to record ``"canvas_<t>"`` (canvas after
step t, differentiable), ``model.initial_canvas(B)`` and ``model.likelihood(canvas)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import pyro.poutine as poutine
import torch
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites
from torch import Tensor, nn

from inference.distributed import global_sum

__all__ = [
    "BETA_MODES",
    "EnumeratedObjective",
    "NVILObjective",
    "StepTerms",
    "all_strokes_traces",
    "forced_strokes_loss",
    "make_stop_objective",
    "step_terms",
]

_STEP = re.compile(r"^(?P<name>.+)_(?P<t>\d+)$")
BETA_MODES = ("signal", "kl")


class StepTerms(NamedTuple):
    """Per-example log-density terms of one (guide trace, replayed model trace) pair."""

    global_terms: Tensor  # (B,): log p − log q of sites without a step (log p(x | z))
    stroke_terms: Tensor  # (T, B): w_t, log p − log q of the step's non-stop latents
    stop_terms: Tensor  # (T, B): d_t = log p(o_t) − log q(o_t)
    stop_log_q: Tensor  # (T, B): log q(o_t), differentiable (the score-function factor)
    stop_values: Tensor  # (T, B): o_t
    alive: Tensor  # (T, B): 1 where o_t is random (the previous o was 1)
    baselines: Tensor | None  # (T, B): b_t from the guide sites, None if none has one


def _sites(trace: Trace) -> dict[str, dict]:
    trace = prune_subsample_sites(trace)
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["infer"].get("_deterministic", False)
    }


def _log_prob(name: str, site: dict, batch: int, role: str) -> Tensor:
    log_p = site["log_prob"]
    if not isinstance(log_p, Tensor):
        log_p = torch.full((batch,), float(log_p))
    if tuple(log_p.shape) != (batch,):
        raise ValueError(
            f"{role} site '{name}' has log_prob shape {tuple(log_p.shape)}, expected ({batch},): "
            'every site must be inside pyro.plate("data", B) with its event dims folded'
        )
    return log_p


def _step_of(name: str) -> tuple[str, int | None]:
    match = _STEP.match(name)
    if match is None:
        return name, None
    return match["name"], int(match["t"])


def step_terms(model_trace: Trace, guide_trace: Trace, batch: int, stop_site: str) -> StepTerms:
    """Split a guide trace and its replayed model trace into per-step, per-example terms."""
    guide_sites, model_sites = _sites(guide_trace), _sites(model_trace)
    for name in guide_sites:
        if name not in model_sites:
            raise ValueError(f"guide site '{name}' does not appear in the model")
    for name, site in model_sites.items():
        if not site["is_observed"] and name not in guide_sites:
            raise ValueError(f"model latent site '{name}' is not proposed by the guide")
    model_trace.compute_log_prob(lambda name, site: name in model_sites)
    guide_trace.compute_log_prob(lambda name, site: name in guide_sites)
    steps = sorted({t for name in model_sites if (t := _step_of(name)[1]) is not None})
    num_steps = steps[-1] + 1 if steps else 0
    ref = _log_prob(*next(iter(model_sites.items())), batch, "model")
    zeros = ref.new_zeros(num_steps, batch)
    glob, strokes, stops = ref.new_zeros(batch), zeros.clone(), zeros.clone()
    stop_log_q, values, alive = zeros.clone(), zeros.clone(), torch.ones_like(zeros)
    baselines, have_baseline = zeros.clone(), False
    found_stop = [False] * num_steps
    for name, site in model_sites.items():
        base, t = _step_of(name)
        log_p = _log_prob(name, site, batch, "model")
        guide_site = guide_sites.get(name)
        log_q = _log_prob(name, guide_site, batch, "guide") if guide_site is not None else 0.0
        if t is None:
            glob = glob + log_p - log_q
        elif base == stop_site:
            found_stop[t] = True
            stops[t] = log_p - log_q
            stop_log_q[t] = log_q
            values[t] = guide_site["value"].to(ref.dtype)
            if hasattr(guide_site["fn"], "alive"):
                alive[t] = guide_site["fn"].alive.to(ref.dtype).expand(batch)
            value = guide_site["infer"].get("baseline", {}).get("baseline_value")
            if value is not None:
                baselines[t] = value.expand(batch)
                have_baseline = True
        else:
            if guide_site is not None and not guide_site["fn"].has_rsample:
                raise ValueError(
                    f"guide site '{name}' is not reparameterisable; only the stop sites "
                    f"'{stop_site}_<t>' may be discrete"
                )
            strokes[t] = strokes[t] + log_p - log_q
    missing = [t for t, ok in enumerate(found_stop) if not ok]
    if missing:
        raise ValueError(f"no stop site '{stop_site}_<t>' for steps {missing}")
    return StepTerms(
        glob, strokes, stops, stop_log_q, values, alive, baselines if have_baseline else None
    )


class NVILObjective(nn.Module):
    """β-weighted ELBO with NVIL for the stop variables (appendix C.1; module docstring).

    Owns the running mean/variance of the learning signal per step (buffers, checkpointed with
    the objective). Statistics are updated only in training mode with gradients enabled.
    """

    def __init__(
        self,
        beta: float = 4.0,
        *,
        max_steps: int = 6,
        decay: float = 0.9,
        stop_site: str = "z_pres",
        baseline_weight: float = 1.0,
        beta_mode: str = "kl",
        warmup_steps: int = 0,
    ):
        super().__init__()
        _check_schedule("NVILObjective", beta, beta_mode, warmup_steps)
        self.beta_mode, self.warmup_steps = beta_mode, warmup_steps
        if not 0 <= decay < 1:
            raise ValueError(f"NVILObjective: decay must be in [0, 1), found {decay}")
        if max_steps < 1:
            raise ValueError(f"NVILObjective: max_steps must be >= 1, found {max_steps}")
        self.beta, self.decay, self.stop_site = beta, decay, stop_site
        self.baseline_weight = baseline_weight
        self.register_buffer("signal_mean", torch.zeros(max_steps))
        self.register_buffer("signal_var", torch.ones(max_steps))
        self.register_buffer("updates", torch.zeros(max_steps, dtype=torch.long))

    def traces(self, model: nn.Module, guide: nn.Module, args: tuple) -> tuple[Trace, Trace]:
        guide_trace = poutine.trace(guide.guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(*args)
        return model_trace, guide_trace

    @torch.no_grad()
    def _update_statistics(self, residual: Tensor, alive: Tensor, initialise: bool = False) -> None:
        """Exponential moving mean/variance of the signal ``ℓ_t`` per step over the live examples
        (of all ranks' batches: :func:`inference.distributed.global_sum`). A step's first batch
        sets them; ``initialise=True`` only sets never-updated steps, without counting as an
        update."""
        steps = range(residual.shape[0])
        counts_sums = torch.stack(
            [torch.stack([alive[t].sum(), (residual[t] * alive[t]).sum()]) for t in steps]
        )
        counts_sums = global_sum(counts_sums)
        counts = counts_sums[:, 0]
        means = counts_sums[:, 1] / counts.clamp_min(1.0)
        squares = torch.stack([((residual[t] - means[t]).square() * alive[t]).sum() for t in steps])
        variances = global_sum(squares) / counts.clamp_min(1.0)
        for t in steps:
            if counts[t] < 1 or (initialise and self.updates[t] > 0):
                continue
            mean, var = means[t], variances[t]
            if self.updates[t] == 0:
                self.signal_mean[t], self.signal_var[t] = mean, var
            else:
                a = self.decay
                self.signal_mean[t] = a * self.signal_mean[t] + (1 - a) * mean
                self.signal_var[t] = a * self.signal_var[t] + (1 - a) * var
            if not initialise:
                self.updates[t] += 1

    def forward(
        self, model: nn.Module, guide: nn.Module, args: tuple[Tensor, ...], step: int = 0
    ) -> tuple[Tensor, dict[str, float]]:
        if step < self.warmup_steps:
            return forced_strokes_loss(model, guide, args, self.stop_site, len(self.updates))
        batch = args[0].shape[0]
        model_trace, guide_trace = self.traces(model, guide, args)
        terms = step_terms(model_trace, guide_trace, batch, self.stop_site)
        num_steps = terms.stop_terms.shape[0]
        if num_steps > self.signal_mean.shape[0]:
            raise ValueError(
                f"NVILObjective: the model has {num_steps} steps but max_steps is "
                f"{self.signal_mean.shape[0]}"
            )
        beta = self.beta
        elbo = terms.global_terms + (terms.stroke_terms + terms.stop_terms).sum(0)
        if self.beta_mode == "kl":
            # ℓ_t = log p(x|z) + Σ_{t' ≥ t} (stroke + β stop terms); objective L_β
            per_step = terms.stroke_terms + beta * terms.stop_terms  # (T, B)
            objective = terms.global_terms + per_step.sum(0)
            likelihood = terms.global_terms
        else:  # "signal": ℓ_t = log p(x|z) / β + Σ_{t' ≥ t} (stroke + stop terms); the ELBO
            per_step = terms.stroke_terms + terms.stop_terms
            objective = elbo
            likelihood = terms.global_terms / beta if beta > 0 else terms.global_terms
        tail = per_step.flip(0).cumsum(0).flip(0)
        signal = (likelihood + tail).detach()
        raw = terms.baselines if terms.baselines is not None else torch.zeros_like(signal)
        update = self.training and torch.is_grad_enabled()
        if update:
            self._update_statistics(signal, terms.alive, initialise=True)
        # statistics of earlier batches only: the control variate stays independent of the
        # current sample (unbiased), apart from the initialising batch
        mean = self.signal_mean[:num_steps, None].clone()
        norm = self.signal_var[:num_steps, None].sqrt().clamp_min(1.0)
        standardised = (signal - mean) / norm  # target of the baseline network
        advantage = (standardised - raw.detach()) * terms.alive  # (ℓ − c − b̃) / max(1, √v)
        score = (advantage * terms.stop_log_q).sum(0)
        surrogate = objective + score
        loss = -surrogate.mean()
        if update:
            self._update_statistics(signal, terms.alive)
        alive = terms.alive.sum().clamp_min(1.0)
        metrics = {
            "elbo": elbo.mean().item(),
            "elbo_beta": objective.mean().item(),
            "num_strokes": terms.stop_values.sum(0).mean().item(),
            "stop_kl": -terms.stop_terms.sum(0).mean().item(),
            "advantage_rms": math.sqrt((advantage.square().sum() / alive).item()),
        }
        if terms.baselines is not None:
            error = (standardised - terms.baselines) * terms.alive
            loss = loss + self.baseline_weight * 0.5 * error.square().sum(0).mean()
            rmse = ((error.detach() * norm).square().sum() / alive).sqrt()
            metrics["baseline_rmse"] = rmse.item()
        return loss, metrics


class EnumeratedObjective:
    """β-weighted ELBO with the number of strokes summed out exactly (module docstring)."""

    def __init__(
        self,
        beta: float = 4.0,
        *,
        max_steps: int = 6,
        stop_site: str = "z_pres",
        beta_mode: str = "kl",
        warmup_steps: int = 0,
    ):
        _check_schedule("EnumeratedObjective", beta, beta_mode, warmup_steps)
        if max_steps < 1:
            raise ValueError(f"EnumeratedObjective: max_steps must be >= 1, found {max_steps}")
        self.beta, self.max_steps, self.stop_site = beta, max_steps, stop_site
        self.beta_mode, self.warmup_steps = beta_mode, warmup_steps

    def traces(self, model: nn.Module, guide: nn.Module, args: tuple) -> tuple[Trace, Trace]:
        """Guide and replayed model with every stop site conditioned on 1 (all strokes on)."""
        return all_strokes_traces(model, guide, args, self.stop_site, self.max_steps, record=True)

    def __call__(
        self, model: nn.Module, guide: nn.Module, args: tuple[Tensor, ...], step: int = 0
    ) -> tuple[Tensor, dict[str, float]]:
        if step < self.warmup_steps:
            return forced_strokes_loss(model, guide, args, self.stop_site, self.max_steps)
        loss, metrics, _ = self.evaluate(model, guide, args)
        return loss, metrics

    def evaluate(
        self, model: nn.Module, guide: nn.Module, args: tuple[Tensor, ...]
    ) -> tuple[Tensor, dict[str, float], dict[str, Tensor]]:
        """Loss, metrics and per-example tensors ``elbo`` (B,), ``elbo_beta`` (B,) and
        ``stroke_count_probs`` ``q(N = n)`` (B, T + 1)."""
        images = args[0]
        batch, T = images.shape[0], self.max_steps
        model_trace, guide_trace = self.traces(model, guide, args)
        if f"{self.stop_site}_{T}" in model_trace.nodes:
            raise ValueError(f"EnumeratedObjective: the model has more than max_steps={T} steps")
        model_sites, guide_sites = _sites(model_trace), _sites(guide_trace)
        model_trace.compute_log_prob(lambda name, site: name in model_sites)
        guide_trace.compute_log_prob(lambda name, site: name in guide_sites)
        ref = images.new_zeros(batch)
        strokes = images.new_zeros(T, batch)
        log_p_on, log_p_off = images.new_zeros(T, batch), images.new_zeros(T, batch)
        log_q_on, log_q_off = images.new_zeros(T, batch), images.new_zeros(T, batch)
        for name, site in model_sites.items():
            base, t = _step_of(name)
            if t is None:
                if not site["is_observed"]:
                    raise ValueError(f"EnumeratedObjective: global latent site '{name}'")
                continue
            if t >= T:
                raise ValueError(f"EnumeratedObjective: site '{name}' beyond max_steps={T}")
            if base == self.stop_site:
                p, q = site["fn"], guide_sites[name]["fn"]
                one, zero = ref + 1, ref
                log_p_on[t], log_p_off[t] = p.log_prob(one), p.log_prob(zero)
                log_q_on[t], log_q_off[t] = q.log_prob(one), q.log_prob(zero)
                continue
            if name not in guide_sites:
                raise ValueError(f"model latent site '{name}' is not proposed by the guide")
            strokes[t] = strokes[t] + (
                _log_prob(name, site, batch, "model")
                - _log_prob(name, guide_sites[name], batch, "guide")
            )
        canvases = [model.initial_canvas(batch)]
        for t in range(T):
            if f"canvas_{t}" not in model_trace.nodes:
                raise ValueError(f"EnumeratedObjective: the model recorded no 'canvas_{t}' site")
            canvases.append(model_trace.nodes[f"canvas_{t}"]["value"])
        log_lik = torch.stack([model.likelihood(c).log_prob(images) for c in canvases], 1)
        log_q_n = _count_log_probs(log_q_on, log_q_off)  # (B, T + 1)
        log_p_n = _count_log_probs(log_p_on, log_p_off)
        stroke_sums = torch.cat([ref[None], strokes.cumsum(0)], 0).T  # (B, T + 1): Σ_{t<n} w_t
        q_n = log_q_n.exp()
        stop = log_p_n - log_q_n
        base = log_lik + stroke_sums
        elbo = (q_n * (base + stop)).sum(1)
        if self.beta_mode == "kl":
            elbo_beta = (q_n * (base + self.beta * stop)).sum(1)
            loss = -elbo_beta.mean()
        else:  # "signal": the ELBO, with q(N)'s gradient from log p(x | x_≤n) / β
            elbo_beta = elbo
            scale = 1.0 / self.beta if self.beta > 0 else 1.0
            signal = (scale * log_lik + stroke_sums + stop).detach()
            pathwise = (q_n.detach() * (base + stop)).sum(1)
            # the count's term: its value is 0, its gradient Σ_n ∇q(N = n) · signal_n
            count = (q_n * signal).sum(1) - (q_n * signal).sum(1).detach()
            loss = -(pathwise + count).mean()
        counts = torch.arange(T + 1, dtype=q_n.dtype, device=q_n.device)
        metrics = {
            "elbo": elbo.mean().item(),
            "elbo_beta": elbo_beta.mean().item(),
            "num_strokes": (q_n * counts).sum(1).mean().item(),
            "stop_kl": -(q_n * stop).sum(1).mean().item(),
        }
        tensors = {"elbo": elbo, "elbo_beta": elbo_beta, "stroke_count_probs": q_n}
        return loss, metrics, tensors


def _check_schedule(name: str, beta: float, beta_mode: str, warmup_steps: int) -> None:
    if beta < 0:
        raise ValueError(f"{name}: beta must be >= 0, found {beta}")
    if beta_mode not in BETA_MODES:
        raise ValueError(f"{name}: beta_mode must be one of {BETA_MODES}, found {beta_mode!r}")
    if warmup_steps < 0:
        raise ValueError(f"{name}: warmup_steps must be >= 0, found {warmup_steps}")


def all_strokes_traces(
    model: nn.Module,
    guide: nn.Module,
    args: tuple,
    stop_site: str,
    max_steps: int,
    *,
    record: bool = False,
) -> tuple[Trace, Trace]:
    """Model and guide traces with every stop site ``"<stop_site>_<t>"`` conditioned on 1."""
    images = args[0]
    ones = images.new_ones(images.shape[0])
    data = {f"{stop_site}_{t}": ones for t in range(max_steps)}
    guide_trace = poutine.trace(poutine.condition(guide.guide, data=data)).get_trace(*args)
    conditioned = poutine.condition(model.model, data=data)
    replayed = poutine.replay(conditioned, trace=guide_trace)
    kwargs = {"record": True} if record else {}
    return poutine.trace(replayed).get_trace(*args, **kwargs), guide_trace


def forced_strokes_loss(
    model: nn.Module, guide: nn.Module, args: tuple[Tensor, ...], stop_site: str, max_steps: int
) -> tuple[Tensor, dict[str, float]]:
    """The warm-up objective: minus the ELBO given ``N = T`` (every stroke on), ``log p(x | z) +
    Σ_t (log p − log q)`` of the continuous latents; the stop sites do not enter."""
    batch = args[0].shape[0]
    model_trace, guide_trace = all_strokes_traces(model, guide, args, stop_site, max_steps)
    terms = step_terms(model_trace, guide_trace, batch, stop_site)
    elbo = terms.global_terms + terms.stroke_terms.sum(0)
    metrics = {"elbo_all_strokes": elbo.mean().item(), "num_strokes": float(max_steps)}
    return -elbo.mean(), metrics


def _count_log_probs(log_on: Tensor, log_off: Tensor) -> Tensor:
    """``log P(N = n)``, ``n = 0 … T``, from per-step ``log P(o_t = 1)``/``log P(o_t = 0)``
    (all previous on): ``Σ_{t<n} log P(o_t = 1) + [n < T] log P(o_n = 0)``, shape (B, T + 1)."""
    T, batch = log_on.shape
    prefix = torch.cat([log_on.new_zeros(1, batch), log_on.cumsum(0)], 0)  # (T + 1, B)
    off = torch.cat([log_off, log_off.new_zeros(1, batch)], 0)
    return (prefix + off).T


def make_stop_objective(
    stop_mode: str, beta: float, max_steps: int, **kwargs: Any
) -> Callable[..., tuple[Tensor, dict[str, float]]]:
    """The objective for a ``stop_mode`` (``"nvil"`` → :class:`NVILObjective`, an ``nn.Module``;
    ``"enum"`` → :class:`EnumeratedObjective`)."""
    if stop_mode == "nvil":
        return NVILObjective(beta, max_steps=max_steps, **kwargs)
    if stop_mode == "enum":
        return EnumeratedObjective(beta, max_steps=max_steps, **kwargs)
    raise ValueError(f"unknown stop_mode {stop_mode!r}; choose 'nvil' or 'enum'")
