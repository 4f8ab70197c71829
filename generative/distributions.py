"""Distributions shared by several models.

* :class:`AbsorbingBernoulli` — DooD's stop variable (Liang et al. 2022, Eq. 4), also AIR's
  ``z_pres``: once ``o_t = 0`` every later ``o`` is 0 exactly.
* :class:`ScoreNormal` / :class:`ScoreUniform` — score-function-only distributions for actions
  trained by REINFORCE (RAM's and the Catch agent's glimpse locations, Mnih et al. 2014,
  sec. 3.2): samples are drawn without gradient, so no pathwise gradient flows through them.

Pitfall (Pyro 1.9): ``dist.Normal(...).has_rsample_(False).to_event(1)`` breaks inside
``pyro.plate`` (the flag is lost when the plate re-expands the distribution, and setting it on the
``Independent`` wrapper raises); :class:`ScoreNormal` / :class:`ScoreUniform` carry the flag as a
class attribute instead. Non-reparameterised samples are drawn without gradient; a reparameterised
location would make ``log π(l)`` independent of the policy mean (``l − μ = σε``) and silently zero
the REINFORCE gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from pyro.distributions.util import broadcast_shape
from torch import Tensor

__all__ = ["AbsorbingBernoulli", "ScoreNormal", "ScoreUniform"]


class AbsorbingBernoulli(TorchDistribution):
    """Eq. 4 exactly: ``p(o_t | o_{t−1}) = o_{t−1} · Bernoulli(o_t; σ(logits))``.

    ``alive`` (0/1, the previous ``o``) broadcasts with ``logits``. Where ``alive = 0`` the value
    is 0 with probability one: ``log_prob(0) = 0`` and ``log_prob(1) = −inf`` (a Pyro
    ``Bernoulli(probs=0)`` would give ``log_prob(1) ≈ −15.9`` because its logits are clamped).
    Samples are exactly 0 there. Supports enumeration (values 0, 1).
    """

    arg_constraints = {"logits": constraints.real, "alive": constraints.boolean}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, logits: Tensor, alive: Tensor, validate_args: bool | None = None):
        shape = broadcast_shape(logits.shape, alive.shape)
        self.logits = logits.expand(shape)
        self.alive = alive.to(logits.dtype).expand(shape)
        super().__init__(torch.Size(shape), validate_args=validate_args)

    @property
    def probs(self) -> Tensor:
        """``P(o_t = 1) = alive · σ(logits)``."""
        return self.alive * torch.sigmoid(self.logits)

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def variance(self) -> Tensor:
        p = self.probs
        return p * (1 - p)

    def expand(self, batch_shape, _instance=None) -> AbsorbingBernoulli:
        new = self._get_checked_instance(AbsorbingBernoulli, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape)
        new.alive = self.alive.expand(batch_shape)
        super(AbsorbingBernoulli, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape: torch.Size | tuple = ()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            return torch.bernoulli(self.probs.expand(shape))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = value.to(self.logits.dtype)
        live = value * F.logsigmoid(self.logits) + (1 - value) * F.logsigmoid(-self.logits)
        dead = torch.where(value == 0, torch.zeros_like(live), torch.full_like(live, -math.inf))
        return torch.where(self.alive > 0, live, dead)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        values = torch.arange(2, dtype=self.logits.dtype, device=self.logits.device)
        values = values.reshape((2,) + (1,) * len(self.batch_shape))
        return values.expand((2,) + self.batch_shape) if expand else values


# Score-function-only distributions. ``dist.Normal(...).has_rsample_(False).to_event(1)`` does not
# survive ``pyro.plate``: its broadcast re-expands the base distribution (losing the instance flag)
# and then fails to set ``has_rsample`` on the ``Independent`` wrapper. A subclass with the class
# attribute ``has_rsample = False`` keeps the flag through ``expand`` and ``to_event``. Samples are
# drawn without gradient, so ``log_prob(sample)`` carries the score ``∇ log π`` and inference
# algorithms (``TraceGraph_ELBO``) treat the site as non-reparameterised.
#
# Both skip work that does not change the result: ``expand`` to the batch shape they already have
# returns the distribution itself (``pyro.plate`` expands every site's distribution to the plate
# shape, which for a per-example policy it already has), and ``ScoreNormal.sample()`` draws with
# ``torch.normal(loc, scale)`` directly (the parameters are already broadcast to the batch shape,
# so the two ``expand`` views of ``Normal.sample`` are no-ops: same random stream, same values).
class _ScoreOnly:
    """The two points above for a Pyro distribution it precedes in the bases: no
    reparameterisation, and ``expand`` to the batch shape it already has is a no-op."""

    has_rsample = False

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Any:
        if _instance is None and torch.Size(batch_shape) == self.batch_shape:  # type: ignore[attr-defined]
            return self
        return super().expand(batch_shape, _instance)  # type: ignore[misc]


class ScoreNormal(_ScoreOnly, dist.Normal):
    """``Normal`` that never reparameterises (actions trained by REINFORCE)."""

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> Tensor:
        if len(sample_shape):
            return super().sample(sample_shape)
        with torch.no_grad():
            return torch.normal(self.loc, self.scale)


class ScoreUniform(_ScoreOnly, dist.Uniform):
    """``Uniform`` that never reparameterises."""
