"""RAM's hybrid loss (Mnih et al. 2014, sec. 3.2: cross-entropy + REINFORCE with the 0/1 reward
and a learned baseline + the baseline's squared error) written directly in PyTorch, on the
weights of a :class:`generative.ram.RAM`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from generative.glimpse import clip_locations
from generative.ram import RAM

__all__ = ["plain_ram_loss"]


def plain_ram_loss(ram: RAM, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
    """RAM's hybrid loss per example, in plain PyTorch (no Pyro), for ``ram``'s weights.

    Locations are drawn exactly as the Pyro model draws them: ``l_0`` uniform on ``[−1, 1]²``
    (``low + rand·(high − low)``), then ``l_t = torch.normal(f_l(h_t), σ)`` without gradient.
    """
    c = ram.config
    batch = images.shape[0]
    h, cell = ram.initial_state(batch, images)
    state = (h, cell)
    log_probs, baselines = [], []
    for t in range(c.num_glimpses):
        baselines.append(ram.baseline_net(state[0].detach()).squeeze(-1))
        if t == 0:
            low, high = images.new_full((batch, 2), -1.0), images.new_full((batch, 2), 1.0)
            loc = low + torch.rand(batch, 2, dtype=images.dtype) * (high - low)
            log_probs.append(images.new_full((batch,), -2 * math.log(2.0)))  # log 1/area
        else:
            mean = ram.location_mean(state[0])
            with torch.no_grad():
                loc = torch.normal(mean, c.location_std)
            std = c.location_std
            lp = -((loc - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)
            log_probs.append(lp.sum(-1))
        state = ram.core(state, ram.glimpse_net(images, clip_locations(loc)))
    logits = ram.action_net(state[0])
    cross_entropy = F.cross_entropy(logits, labels)
    reward = (logits.argmax(-1) == labels).to(images.dtype)
    lp = torch.stack(log_probs)  # (T, B)
    b = torch.stack(baselines)  # (T, B)
    advantage = (reward - b).detach()
    reinforce = -(advantage * lp).sum(0).mean()
    baseline_mse = (reward - b).pow(2).sum(0).mean()
    loss = cross_entropy + reinforce + baseline_mse
    return loss, {"accuracy": reward.mean().item(), "cross_entropy": cross_entropy.item()}
