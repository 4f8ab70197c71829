"""sketch-rnn's output distribution over stroke-5 sequences (Ha & Eck 2017, sec. 3.2–3.4).

At decoder step ``i`` the network emits ``y_i ∈ R^{6M+3}`` (Eq. 4). Following Eq. 5 it is read as
``M`` groups ``(Π̂_j, μ_x,j, μ_y,j, σ̂_x,j, σ̂_y,j, ρ̂_xy,j)`` followed by the pen logits
``(q̂_1, q̂_2, q̂_3)``. Eqs. 6–7 turn these into a Gaussian mixture over ``(Δx_i, Δy_i)`` (Eq. 3)
and a categorical over the pen state ``(p_1, p_2, p_3)``; Eq. 8 tempers them for sampling.
(The reference TensorFlow code orders ``y`` differently: pen logits first, then one block of
``M`` per parameter. The layout of a learned linear output is arbitrary; we follow the paper.)

:class:`StrokeSequence` is the distribution of a whole padded target sequence ``S_1 … S_{N_max}``
(event shape ``(N_max, 5)``) given per-step outputs and the true lengths ``N_s``. Its ``log_prob``
is exactly ``−N_max · L_R`` of Eq. 9: the offset term over the first ``N_s`` steps and the pen term
over all ``N_max`` steps (the reference code's evaluation model sums the pen term over the ``N_s``
sketch rows only: ``reconstruction_loss(x, pen_rows="n_s")``, kept selectable so that its validation
and test numbers can be compared). Targets exclude the start token ``S_0 = (0, 0, 1, 0, 0)``
(:data:`START_TOKEN`), which is only a decoder input; steps after ``N_s`` are ``(0, 0, 0, 0, 1)``
(:data:`END_TOKEN`). See :mod:`tasks.data.strokes` for the data side of these conventions.

Everything is computed in log space: ``log Π`` and ``log q`` by ``log_softmax``, ``log σ = σ̂``
directly, ``log(1 − ρ²)`` from ``ρ̂`` without forming ``1 − tanh²``, and the mixture by
``logsumexp``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints

__all__ = [
    "END_TOKEN",
    "NUM_PEN_STATES",
    "PEN_ROWS",
    "START_TOKEN",
    "StrokeParams",
    "StrokeSequence",
    "apply_temperature",
    "bivariate_normal_log_prob",
    "log_one_minus_rho2",
    "mixture_params",
    "num_outputs",
    "offset_log_prob",
    "pen_log_prob",
    "sample_step",
    "split_outputs",
]

NUM_PEN_STATES = 3
#: rows the pen term of L_R sums over: Eq. 9's all N_max, or the reference evaluation's N_s
PEN_ROWS: tuple[str, ...] = ("n_max", "n_s")
START_TOKEN: tuple[float, ...] = (0.0, 0.0, 1.0, 0.0, 0.0)  # S_0 (sec. 3.2)
END_TOKEN: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 1.0)  # S_i for i > N_s (sec. 3.2)
_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


class StrokeParams(NamedTuple):
    """Per-step output distribution (Eqs. 3, 6, 7), leading shape ``(...)``, in log space.

    ``log_pi`` (..., M) and ``log_q`` (..., 3) are normalised log-probabilities; ``mu`` and
    ``log_sigma`` (..., M, 2) hold ``(μ_x, μ_y)`` and ``(log σ_x, log σ_y)``; ``rho_hat`` (..., M)
    is the pre-``tanh`` correlation ``ρ̂`` (Eq. 6). At temperature 0 (Eq. 8, limit τ → 0) the
    log-probabilities are one-hot (0 / −inf) and ``log_sigma`` is −inf: a point mass.
    """

    log_pi: Tensor
    mu: Tensor
    log_sigma: Tensor
    rho_hat: Tensor
    log_q: Tensor

    @property
    def pi(self) -> Tensor:
        """Mixture weights ``Π_j`` (..., M)."""
        return self.log_pi.exp()

    @property
    def sigma(self) -> Tensor:
        """Standard deviations ``(σ_x, σ_y)`` (..., M, 2)."""
        return self.log_sigma.exp()

    @property
    def rho(self) -> Tensor:
        """Correlations ``ρ_xy = tanh(ρ̂)`` (..., M)."""
        return torch.tanh(self.rho_hat)

    @property
    def q(self) -> Tensor:
        """Pen-state probabilities ``(q_1, q_2, q_3)`` (..., 3)."""
        return self.log_q.exp()

    @property
    def num_mixtures(self) -> int:
        return self.log_pi.shape[-1]

    @property
    def shape(self) -> torch.Size:
        """Leading shape (steps and batch dims), i.e. ``log_q.shape[:-1]``."""
        return self.log_q.shape[:-1]

    @classmethod
    def from_probs(
        cls, pi: Tensor, mu: Tensor, sigma: Tensor, rho: Tensor, q: Tensor
    ) -> StrokeParams:
        """Build from probabilities, standard deviations and correlations (e.g. hand-chosen).

        ``pi`` and ``q`` are renormalised; ``|ρ| < 1`` is required.
        """
        if not bool((rho.abs() < 1).all()):
            raise ValueError(f"StrokeParams.from_probs: expected |rho| < 1, found {rho}")
        return cls(
            torch.log(pi / pi.sum(-1, keepdim=True)),
            mu,
            torch.log(sigma),
            torch.atanh(rho),
            torch.log(q / q.sum(-1, keepdim=True)),
        )

    def expand(self, shape: tuple[int, ...] | torch.Size) -> StrokeParams:
        """Broadcast the leading shape to ``shape`` (views, no copies)."""
        shape = tuple(shape)
        m = self.num_mixtures
        return StrokeParams(
            self.log_pi.expand(*shape, m),
            self.mu.expand(*shape, m, 2),
            self.log_sigma.expand(*shape, m, 2),
            self.rho_hat.expand(*shape, m),
            self.log_q.expand(*shape, NUM_PEN_STATES),
        )


def num_outputs(num_mixtures: int) -> int:
    """Size ``6M + 3`` of the output vector ``y_i`` (Eq. 4)."""
    return 6 * num_mixtures + NUM_PEN_STATES


def split_outputs(y: Tensor, num_mixtures: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Eq. 5: split ``y`` (..., 6M+3) into ``Π̂`` (..., M), ``μ`` (..., M, 2), ``σ̂`` (..., M, 2),
    ``ρ̂`` (..., M) and ``q̂`` (..., 3), reading ``M`` groups ``(Π̂ μ_x μ_y σ̂_x σ̂_y ρ̂)`` then
    ``(q̂_1 q̂_2 q̂_3)``."""
    m = num_mixtures
    if m < 1 or y.shape[-1] != num_outputs(m):
        raise ValueError(
            f"split_outputs: expected last dim 6M+3 = {num_outputs(m)} for M = {m}, "
            f"found y of shape {tuple(y.shape)}"
        )
    groups = y[..., : 6 * m].unflatten(-1, (m, 6))
    return groups[..., 0], groups[..., 1:3], groups[..., 3:5], groups[..., 5], y[..., 6 * m :]


def mixture_params(y: Tensor, num_mixtures: int, temperature: float = 1.0) -> StrokeParams:
    """Eqs. 5–7 (and Eq. 8 if ``temperature != 1``): the step distribution from raw outputs.

    ``Π = softmax(Π̂)``, ``σ = exp(σ̂)``, ``ρ = tanh(ρ̂)``, ``q = softmax(q̂)``.
    """
    pi_hat, mu, sigma_hat, rho_hat, q_hat = split_outputs(y, num_mixtures)
    params = StrokeParams(
        F.log_softmax(pi_hat, -1), mu, sigma_hat, rho_hat, F.log_softmax(q_hat, -1)
    )
    return apply_temperature(params, temperature)


def apply_temperature(params: StrokeParams, temperature: float) -> StrokeParams:
    """Eq. 8: ``q̂_k → q̂_k/τ``, ``Π̂_k → Π̂_k/τ`` (before the softmax), ``σ² → σ² τ``.

    Dividing the normalised ``log Π`` by ``τ`` and renormalising equals dividing ``Π̂`` (the two
    differ by a constant per step). ``ρ`` is unchanged. ``τ = 0`` is the deterministic limit,
    handled explicitly: one-hot ``Π`` and ``q`` on their argmax and ``σ = 0``, so that
    :func:`sample_step` returns the most likely component's mean and the most likely pen state.
    """
    tau = float(temperature)
    if not math.isfinite(tau) or tau < 0:
        raise ValueError(f"apply_temperature: expected a finite temperature >= 0, found {tau}")
    if tau == 1.0:
        return params
    if tau == 0.0:
        return StrokeParams(
            _one_hot_log(params.log_pi),
            params.mu,
            torch.full_like(params.log_sigma, -math.inf),
            params.rho_hat,
            _one_hot_log(params.log_q),
        )
    return StrokeParams(
        F.log_softmax(params.log_pi / tau, -1),
        params.mu,
        params.log_sigma + 0.5 * math.log(tau),
        params.rho_hat,
        F.log_softmax(params.log_q / tau, -1),
    )


def _one_hot_log(log_p: Tensor) -> Tensor:
    """``log`` of the one-hot vector on ``argmax`` (first maximum on ties): 0 there, −inf else."""
    hot = F.one_hot(log_p.argmax(-1), log_p.shape[-1]).bool()
    return torch.where(hot, 0.0, -math.inf).to(log_p.dtype)


def log_one_minus_rho2(rho_hat: Tensor) -> Tensor:
    """``log(1 − ρ²)`` for ``ρ = tanh(ρ̂)`` (Eq. 6), finite for every finite ``ρ̂``.

    ``1 − tanh²(a) = sech²(a)``, so ``log(1 − ρ²) = 2 (log 2 − |a| − log(1 + e^{−2|a|}))``.
    """
    a = rho_hat.abs()
    return 2.0 * (_LOG_2 - a - F.softplus(-2.0 * a))


def bivariate_normal_log_prob(
    offsets: Tensor, mu: Tensor, log_sigma: Tensor, rho_hat: Tensor
) -> Tensor:
    """``log N(Δx, Δy | μ_x, μ_y, σ_x, σ_y, ρ_xy)`` of Eq. 3, per component.

    ``offsets`` (..., 2) broadcasts against ``mu``/``log_sigma`` (..., M, 2), ``rho_hat`` (..., M);
    returns (..., M). With ``u, v`` the standardised offsets the quadratic form is
    ``(u² + v² − 2ρuv)/(1 − ρ²) = u² + (v − ρu)²/(1 − ρ²)`` (the second form is used).
    """
    z = (offsets.unsqueeze(-2) - mu) * torch.exp(-log_sigma)
    u, v = z.unbind(-1)
    rho = torch.tanh(rho_hat)
    log1m = log_one_minus_rho2(rho_hat)
    quad = u.square() + (v - rho * u).square() * torch.exp(-log1m)
    return -_LOG_2PI - log_sigma.sum(-1) - 0.5 * log1m - 0.5 * quad


def offset_log_prob(params: StrokeParams, offsets: Tensor) -> Tensor:
    """Eq. 3 in log space: ``log Σ_j Π_j N(Δx, Δy | …_j)`` by ``logsumexp``; (..., 2) → (...)."""
    log_n = bivariate_normal_log_prob(offsets, params.mu, params.log_sigma, params.rho_hat)
    return torch.logsumexp(params.log_pi + log_n, -1)


def pen_log_prob(params: StrokeParams, pen: Tensor) -> Tensor:
    """The summand of ``L_p`` (Eq. 9) negated: ``Σ_k p_k log q_k``; (..., 3) → (...)."""
    return (pen * params.log_q).sum(-1)


def _categorical(log_p: Tensor, generator: torch.Generator | None) -> Tensor:
    """Gumbel-max sample of ``Categorical(exp(log_p))`` over the last dim.

    The uniform noise is clamped into (0, 1), so the Gumbel noise is finite and a category with
    ``log_p = −inf`` is never chosen: one-hot ``log_p`` (τ = 0) gives its argmax every time.
    """
    u = torch.rand(log_p.shape, generator=generator, dtype=log_p.dtype, device=log_p.device)
    finfo = torch.finfo(log_p.dtype)
    u = u.clamp(finfo.tiny, 1.0 - finfo.eps)
    return (log_p - torch.log(-torch.log(u))).argmax(-1)


def sample_step(
    params: StrokeParams,
    sample_shape: tuple[int, ...] | torch.Size = (),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample one stroke-5 point per leading index: ``(*sample_shape, *params.shape, 5)``.

    A component ``j ~ Categorical(Π)``, ``(Δx, Δy)`` from its correlated bivariate normal
    (``Δx = μ_x + σ_x ε₁``, ``Δy = μ_y + σ_y (ρ ε₁ + √(1−ρ²) ε₂)``) and a one-hot pen state
    ``k ~ Categorical(q)`` (sec. 3.2). Temper ``params`` first (:func:`apply_temperature`); at
    ``τ = 0`` the result is deterministic. This is the step an autoregressive decoder calls.
    """
    shape = torch.Size(sample_shape) + params.shape
    p = params.expand(shape)
    j = _categorical(p.log_pi, generator)
    mu = p.mu.gather(-2, j[..., None, None].expand(*shape, 1, 2)).squeeze(-2)
    sigma = p.log_sigma.gather(-2, j[..., None, None].expand(*shape, 1, 2)).squeeze(-2).exp()
    rho_hat = p.rho_hat.gather(-1, j[..., None]).squeeze(-1)
    eps = torch.randn((*shape, 2), generator=generator, dtype=mu.dtype, device=mu.device)
    e1, e2 = eps.unbind(-1)
    rho = torch.tanh(rho_hat)
    root = torch.exp(0.5 * log_one_minus_rho2(rho_hat))
    dx = mu[..., 0] + sigma[..., 0] * e1
    dy = mu[..., 1] + sigma[..., 1] * (rho * e1 + root * e2)
    pen = F.one_hot(_categorical(p.log_q, generator), NUM_PEN_STATES).to(mu.dtype)
    return torch.cat([dx[..., None], dy[..., None], pen], -1)


class StrokeSequence(TorchDistribution):
    """Distribution of a padded stroke-5 target sequence ``S_1 … S_{N_max}`` (Eqs. 3–9).

    ``params``: raw outputs ``y`` (..., N_max, 6M+3) (Eqs. 4–7 via :func:`mixture_params`) or a
    :class:`StrokeParams` with leading shape (..., N_max). ``lengths`` (...) are the ``N_s`` (an
    integer tensor broadcasting with the leading dims). ``batch_shape`` is the broadcast leading
    shape, ``event_shape`` is ``(N_max, 5)``; works with ``pyro.plate``, ``.to_event``,
    ``.expand`` and extra leading (particle) dims.

    ``log_prob(x)`` = ``Σ_{i≤N_s} log Σ_j Π_j N(Δx_i, Δy_i | …) + Σ_{i≤N_max} Σ_k p_k log q_k``
    = ``−N_max · L_R`` (Eq. 9). It does not depend on the offsets after ``N_s`` (the paper
    discards those pdf parameters), so it is a masked likelihood, not a normalised density in
    them. ``temperature`` (Eq. 8) tempers the parameters of both ``sample`` and ``log_prob``;
    at ``τ = 0`` the distribution is a point mass and ``log_prob`` raises.

    ``sample()`` draws every step independently from its own parameters with
    :func:`sample_step` (offsets after ``N_s`` set to 0). It does not feed samples back into a
    decoder: ancestral sampling is the model's job.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = False

    def __init__(
        self,
        params: Tensor | StrokeParams,
        lengths: Tensor,
        *,
        num_mixtures: int | None = None,
        temperature: float = 1.0,
        validate_args: bool | None = None,
    ):
        if isinstance(params, StrokeParams):
            if num_mixtures is not None and num_mixtures != params.num_mixtures:
                raise ValueError(
                    f"StrokeSequence: num_mixtures={num_mixtures} but params have "
                    f"M = {params.num_mixtures}"
                )
            params = apply_temperature(params, temperature)
        else:
            m = num_mixtures
            if m is None:
                m, rest = divmod(params.shape[-1] - NUM_PEN_STATES, 6)
                if rest or m < 1:
                    raise ValueError(
                        f"StrokeSequence: outputs' last dim must be 6M+3, found "
                        f"{tuple(params.shape)}"
                    )
            params = mixture_params(params, m, temperature)
        if len(params.shape) < 1:
            raise ValueError("StrokeSequence: params need a step dimension (..., N_max)")
        lengths = torch.as_tensor(lengths, device=params.log_q.device)
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise ValueError(f"StrokeSequence: lengths must be integers, found {lengths.dtype}")
        num_steps = params.shape[-1]
        if bool(((lengths < 0) | (lengths > num_steps)).any()):
            raise ValueError(
                f"StrokeSequence: lengths must lie in [0, N_max = {num_steps}], found "
                f"min {int(lengths.min())}, max {int(lengths.max())}"
            )
        batch_shape = torch.broadcast_shapes(params.shape[:-1], lengths.shape)
        self.params = params.expand((*batch_shape, num_steps))
        self.lengths = lengths.expand(batch_shape)
        self.temperature = float(temperature)
        super().__init__(batch_shape, torch.Size((num_steps, 5)), validate_args=validate_args)

    @property
    def num_steps(self) -> int:
        """``N_max``."""
        return self.event_shape[0]

    def step_mask(self) -> Tensor:
        """``i < N_s`` (0-based step ``i``), shape ``batch_shape + (N_max,)``."""
        steps = torch.arange(self.num_steps, device=self.lengths.device)
        return steps < self.lengths.unsqueeze(-1)

    def expand(
        self, batch_shape: tuple[int, ...] | torch.Size, _instance: StrokeSequence | None = None
    ) -> StrokeSequence:
        new = self._get_checked_instance(StrokeSequence, _instance)
        batch_shape = torch.Size(batch_shape)
        new.params = self.params.expand((*batch_shape, self.num_steps))
        new.lengths = self.lengths.expand(batch_shape)
        new.temperature = self.temperature
        super(StrokeSequence, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob_terms(self, x: Tensor, pen_rows: str = "n_max") -> tuple[Tensor, Tensor]:
        """The offset and pen log-likelihoods of Eq. 9 (``−N_max L_s`` and ``−N_max L_p``).

        ``pen_rows`` (:data:`PEN_ROWS`) is the rows the pen term sums over: ``"n_max"`` is
        Eq. 9 (``i = 1 … N_max``, what the paper trains and reports); ``"n_s"`` is the
        reference code's evaluation model (magenta ``sketch_rnn/model.py``, ``get_lossfunc``:
        ``if not self.hps.is_training`` multiplies the pen loss by ``fs = 1 − p_3``), which
        drops the end-of-sketch and padding rows ``i > N_s``.
        """
        if pen_rows not in PEN_ROWS:
            raise ValueError(
                f"StrokeSequence: pen_rows must be one of {PEN_ROWS}, found {pen_rows!r}"
            )
        if self.temperature == 0.0:
            raise ValueError(
                "StrokeSequence.log_prob: undefined at temperature 0 (a point mass); "
                "use temperature > 0"
            )
        if self._validate_args:
            self._validate_sample(x)
        mask = self.step_mask()
        offsets = torch.where(mask.unsqueeze(-1), x[..., :2], 0.0)  # no inf/NaN from padding
        log_off = torch.where(mask, offset_log_prob(self.params, offsets), 0.0).sum(-1)
        log_pen = pen_log_prob(self.params, x[..., 2:])
        if pen_rows == "n_s":
            log_pen = torch.where(mask, log_pen, 0.0)
        return log_off, log_pen.sum(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """``−N_max · L_R`` (Eq. 9), shape ``broadcast(x.shape[:-2], batch_shape)``."""
        log_off, log_pen = self.log_prob_terms(x)
        return log_off + log_pen

    def reconstruction_loss(self, x: Tensor, pen_rows: str = "n_max") -> Tensor:
        """``L_R = L_s + L_p`` of Eq. 9 (both normalised by ``N_max``), per sequence;
        ``pen_rows="n_s"`` is the reference code's evaluation reading (:meth:`log_prob_terms`)."""
        log_off, log_pen = self.log_prob_terms(x, pen_rows)
        return -(log_off + log_pen) / self.num_steps

    @property
    def mean(self) -> Tensor:
        """``E[x]``: offsets ``Σ_j Π_j μ_j`` for steps ``< N_s`` (0 after), pen ``q``."""
        offsets = (self.params.pi.unsqueeze(-1) * self.params.mu).sum(-2)
        offsets = torch.where(self.step_mask().unsqueeze(-1), offsets, 0.0)
        return torch.cat([offsets, self.params.q], -1)

    def sample(self, sample_shape: tuple[int, ...] | torch.Size = ()) -> Tensor:
        """Step-independent sample (see the class doc), shape ``sample_shape + (…, N_max, 5)``."""
        with torch.no_grad():
            x = sample_step(self.params, sample_shape)
            keep = self.step_mask().unsqueeze(-1).expand_as(x[..., :2])
            return torch.cat([torch.where(keep, x[..., :2], 0.0), x[..., 2:]], -1)
