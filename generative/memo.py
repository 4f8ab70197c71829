"""A replay memo: what a guide computed per step, reused by the model replayed on its draws.

DRAW's and DooD's guides run the model's own deterministic networks (DRAW's decoder; DooD's shared
RNNs and renderer) to condition their proposals. The guide records, per step, the tensors it
sampled and what it computed; when the model is then replayed on the very same tensors
(``poutine.replay`` passes them through by identity) under unchanged parameters
(``Tensor._version``), it reuses those results instead of computing them again. It is a pure
cache: values and gradients are identical with or without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import torch
from torch import Tensor

__all__ = ["ReplayMemo"]

V = TypeVar("V")


class ReplayMemo(Generic[V]):
    """Per-step results of a guide, keyed by the identity of the tensors it sampled and by the
    parameters' ``_version``s.

    The guide calls :meth:`start` (with the model's parameter versions) and then :meth:`record`
    once per step. Step ``t`` hits (:meth:`hits`) only if it was recorded, the given sampled
    tensors are the very objects recorded at step ``t`` (a prefix of them, for a model that
    looks a step up before all of its sites are sampled), the parameters have not been modified
    in place since (``Tensor._version``), and gradients were recorded if they are needed now. The
    model must reuse step ``t`` only if steps ``0 … t−1`` also hit (the results depend on the
    whole prefix), and calls :meth:`clear` when it is done.

    With ``keep_all=False`` only the latest value is kept when the guide ran without gradients
    (IWAE, validation), so memory does not grow with the number of steps (with gradients every
    value is kept: autograd keeps them alive anyway); a model that needs every step's value
    while it replays passes ``keep_all=True``.
    """

    def __init__(self, *, keep_all: bool) -> None:
        self.keep_all = keep_all
        self.clear()

    def clear(self) -> None:
        """Forget every recorded step."""
        self._samples: list[tuple[Tensor, ...]] = []
        self._values: dict[int, V] = {}
        self._versions: tuple[int, ...] = ()
        self._grad = False

    def start(self, versions: tuple[int, ...]) -> None:
        """Begin a new guide run under the parameter versions ``versions``."""
        self.clear()
        self._versions, self._grad = versions, torch.is_grad_enabled()

    def record(self, samples: Sequence[Tensor], value: V) -> None:
        """Record the next step: the tensors the guide sampled (in site order) and its results."""
        if not (self.keep_all or self._grad):
            self._values.clear()
        self._values[len(self._samples)] = value
        self._samples.append(tuple(samples))

    def hits(self, t: int, versions: tuple[int, ...], *samples: Tensor) -> bool:
        """Whether the guide's step ``t`` sampled these very tensors (the first ``len(samples)``
        of the step) under the same parameters."""
        if t >= len(self._samples) or versions != self._versions:
            return False
        recorded = self._samples[t]
        if len(samples) > len(recorded):
            return False
        if any(a is not b for a, b in zip(recorded[: len(samples)], samples, strict=True)):
            return False
        return self._grad or not torch.is_grad_enabled()

    def value(self, t: int) -> V | None:
        """The results recorded at step ``t``, if they were kept."""
        return self._values.get(t)
