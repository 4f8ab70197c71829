"""Gradient-estimator diagnostics: the mean and variance of a stochastic gradient.

Used to compare estimators of the same objective — e.g. DooD's stop variables by NVIL
(:class:`inference.nvil.NVILObjective`) and by exact enumeration
(:class:`inference.nvil.EnumeratedObjective`) — at the same parameters and on the same batch.
The only randomness between draws is the estimator's own (the latents it samples), so the
spread of the draws is the estimator's variance. Moments are accumulated with Welford's
algorithm per parameter, so memory stays at three copies of the parameters however many draws
are taken (a paper-size DooD has 28M parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GradientMoments", "gradient_moments"]


@dataclass
class GradientMoments:
    """Per-group summaries over ``draws`` gradient draws.

    ``total_variance`` is ``Σ_i Var(g_i)`` (the trace of the gradient covariance, per draw),
    ``mean_norm_sq`` is ``‖E g‖²`` (estimated from the sample mean minus its own variance,
    ``‖ḡ‖² − tr Cov / draws``, unbiased) and ``snr = mean_norm_sq / total_variance``: how many
    draws per step it would take for the signal to match the noise.
    """

    draws: int
    total_variance: dict[str, float]
    mean_norm_sq: dict[str, float]

    @property
    def snr(self) -> dict[str, float]:
        return {
            k: self.mean_norm_sq[k] / v if v > 0 else float("inf")
            for k, v in self.total_variance.items()
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "draws": self.draws,
            "total_variance": self.total_variance,
            "mean_norm_sq": self.mean_norm_sq,
            "snr": self.snr,
        }


def gradient_moments(
    loss_fn: Callable[[], Tensor],
    named_params: Sequence[tuple[str, Tensor]],
    groups: dict[str, Callable[[str], bool]],
    draws: int,
) -> GradientMoments:
    """Draw ``draws`` independent gradients of ``loss_fn()`` (a fresh stochastic scalar loss per
    call) with respect to ``named_params`` and summarise them per group.

    ``groups`` maps a group name to a predicate on parameter names (e.g. ``"stop network":
    lambda n: n.startswith("guide.pres_net.")``); a parameter may belong to several groups.
    Parameters without a gradient in a draw count as zero. ``.grad`` fields are left untouched.
    """
    if draws < 2:
        raise ValueError(f"gradient_moments: draws must be >= 2, found {draws}")
    names = [n for n, _ in named_params]
    params = [p for _, p in named_params]
    for group, keep in groups.items():
        if not any(keep(n) for n in names):
            raise ValueError(f"gradient_moments: group {group!r} matches no parameter")
    mean = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    m2 = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    for k in range(1, draws + 1):
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for mu, sq, g in zip(mean, m2, grads, strict=True):
            g = torch.zeros_like(mu) if g is None else g.double()
            delta = g - mu
            mu.add_(delta / k)
            sq.add_(delta * (g - mu))
    variance = {}
    signal = {}
    for group, keep in groups.items():
        idx = [i for i, n in enumerate(names) if keep(n)]
        var = sum(float(m2[i].sum()) for i in idx) / (draws - 1)
        norm_sq = sum(float(mean[i].square().sum()) for i in idx)
        variance[group] = var
        signal[group] = max(norm_sq - var / draws, 0.0)
    return GradientMoments(draws, variance, signal)
