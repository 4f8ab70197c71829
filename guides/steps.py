"""What the step-by-step guides of DooD and the AIR baselines share (DooD appendix C.1).

:class:`StepGuide` holds the model the guide belongs to and gives both guides their start of a
pass, ``forward`` and :meth:`StepGuide.reconstruct` (the model replayed on the guide's choices
with every step recorded); :func:`sample_presence` draws the presence variable ``z_pres_t`` with
its optional NVIL baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro
import torch
from torch import Tensor, nn

from generative.distributions import AbsorbingBernoulli

__all__ = ["StepGuide", "sample_presence"]


def sample_presence(t: int, logits: Tensor, previous: Tensor, baseline: Tensor | None) -> Tensor:
    """``z_pres_t ~ z_pres_{t−1} · Bernoulli(σ(logits))`` at site ``"z_pres_{t}"``, carrying the
    NVIL baseline value ``baseline`` as ``infer={"baseline": {"baseline_value": b}}`` if given."""
    infer = {} if baseline is None else {"baseline": {"baseline_value": baseline}}
    return pyro.sample(f"z_pres_{t}", AbsorbingBernoulli(logits, previous), infer=infer)


class StepGuide(nn.Module):
    """Base of the step-by-step guides. The model (``config``, ``check_images``,
    ``initial_state`` and the Pyro ``model``) is held by reference as :attr:`drawing_model`, not
    as a submodule, so the guide's parameters and ``state_dict`` are its own networks only.
    ``name`` is the guide's name in Pyro's parameter store; ``collect`` stacks a recorded model
    trace (``collect(trace, config)``). Subclasses define :meth:`guide`."""

    def __init__(self, model: nn.Module, name: str, collect: Callable[..., dict[str, Tensor]]):
        super().__init__()
        self.__dict__["drawing_model"] = model  # shared, not registered as a submodule
        self.pyro_name = name
        self.collect = collect

    @property
    def config(self) -> Any:
        return self.drawing_model.config

    def guide(self, images: Tensor, **kwargs) -> None:
        raise NotImplementedError

    def start(self, images: Tensor) -> Any:
        """The start of a pass of :meth:`guide`: register the networks with Pyro, check the
        ``images`` and return the model's initial state for their batch."""
        pyro.module(self.pyro_name, self)
        self.drawing_model.check_images(images)
        return self.drawing_model.initial_state(images.shape[0])

    def forward(self, images: Tensor, **kwargs) -> None:
        return self.guide(images, **kwargs)

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> dict[str, Tensor]:
        """Infer with the guide and replay the model recording every step (DooD Figs. 1 and 3:
        step-by-step reconstructions); keys as the model's ``collect`` function gives them."""
        guide_trace = pyro.poutine.trace(self.guide).get_trace(images)
        replayed = pyro.poutine.replay(self.drawing_model.model, trace=guide_trace)
        trace = pyro.poutine.trace(replayed).get_trace(images, record=True)
        return self.collect(trace, self.config)
