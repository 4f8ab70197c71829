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
# shape, which for a per-example policy it already has), also through ``to_event`` (whose
# ``Independent`` wrapper would otherwise be rebuilt at every site), and ``ScoreNormal.sample()``
# draws ``randn · scale + loc`` directly: the parameters are already broadcast to the batch shape,
# and this is what ``torch.normal(loc, scale)`` computes (same random stream, same values; checked
# in ``tests/test_reinforce.py``) without its per-call ``scale >= 0`` check, a reduction and a
# host read.
class _SameShapeExpand:
    """``expand`` to the batch shape the distribution already has returns it unchanged."""

    def expand(self, batch_shape: Sequence[int], _instance: Any = None) -> Any:
        if _instance is None:
            if torch.Size(batch_shape) == self.batch_shape:  # type: ignore[attr-defined]
                return self
            # a new instance of this very class (torch refuses to pick one for a subclass with
            # its own ``__init__``), filled in by the base class's ``expand``
            _instance = self._get_checked_instance(type(self), None)  # type: ignore[attr-defined]
        return super().expand(batch_shape, _instance)  # type: ignore[misc]


class _ScoreIndependent(_SameShapeExpand, dist.Independent):
    """``Independent`` whose same-shape ``expand`` is a no-op (what ``to_event`` returns below),
    built without ``Independent.__init__``'s generic shape bookkeeping."""

    def __init__(
        self,
        base_distribution: Any,
        reinterpreted_batch_ndims: int,
        validate_args: bool | None = None,
    ) -> None:
        batch: torch.Size = base_distribution.batch_shape
        n = reinterpreted_batch_ndims
        if not 0 < n <= len(batch):
            super().__init__(base_distribution, n, validate_args)  # its errors
            return
        self.base_dist, self.reinterpreted_batch_ndims = base_distribution, n
        cut = len(batch) - n
        event = batch[cut:] + base_distribution.event_shape
        torch.distributions.Distribution.__init__(self, batch[:cut], event, validate_args)


class _ScoreOnly(_SameShapeExpand):
    """The points above for a Pyro distribution it precedes in the bases: no
    reparameterisation, and ``expand`` to the batch shape it already has is a no-op, also after
    ``to_event``."""

    has_rsample = False

    def to_event(self, reinterpreted_batch_ndims: int | None = None) -> Any:
        shape: torch.Size = self.batch_shape  # type: ignore[attr-defined]
        n = len(shape) if reinterpreted_batch_ndims is None else reinterpreted_batch_ndims
        if n <= 0:  # no-op or error, as Pyro's
            return super().to_event(n)  # type: ignore[misc]
        return _ScoreIndependent(self, n)


class ScoreNormal(_ScoreOnly, dist.Normal):
    """``Normal`` that never reparameterises (actions trained by REINFORCE).

    A tensor ``loc`` with a tensor ``scale`` of its shape or a scalar one (a policy's mean and its
    fixed σ) is stored as ``Normal`` would store it, without the generic ``broadcast_all``."""

    def __init__(
        self, loc: Tensor | float, scale: Tensor | float, validate_args: bool | None = None
    ) -> None:
        if isinstance(loc, Tensor) and isinstance(scale, Tensor) and scale.shape == loc.shape:
            self.loc, self.scale = loc, scale
        elif isinstance(loc, Tensor) and isinstance(scale, Tensor) and scale.dim() == 0:
            self.loc, self.scale = loc, scale.expand(loc.shape)
        else:
            super().__init__(loc, scale, validate_args=validate_args)
            return
        torch.distributions.Distribution.__init__(self, loc.shape, validate_args=validate_args)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> Tensor:
        if len(sample_shape):
            return super().sample(sample_shape)
        loc = self.loc.detach()  # no graph: the value of ``torch.normal`` under ``no_grad``
        noise = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
        return noise.mul_(self.scale.detach()).add_(loc)


class ScoreUniform(_ScoreOnly, dist.Uniform):
    """``Uniform`` that never reparameterises."""
