"""RAM's guide for the variational reading (Ba et al. 2015): the location policy itself.

``q(l | x, y) = π(l | x)``: :meth:`generative.ram.RAM.policy` samples the same location sites
``"l_0" … "l_{T−1}"`` as the model, from the same network, without the label site. Used by
``inference.reinforce.RAMObjective(mode="tracegraph")``.
"""

from __future__ import annotations

from torch import Tensor, nn

from generative.ram import RAM

__all__ = ["RAMGuide"]


class RAMGuide(nn.Module):
    """The variational reading's guide ``q(l | x, y) = π(l | x)``: RAM's own location policy
    (shares every parameter with the model; used by ``RAMObjective(mode="tracegraph")``)."""

    def __init__(self, ram: RAM):
        super().__init__()
        self.ram = ram

    def guide(self, images: Tensor, labels: Tensor | None = None) -> None:
        self.ram.policy(images, labels)
