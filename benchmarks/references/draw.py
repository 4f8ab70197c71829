"""DRAW's loss (Gregor et al. 2015, Eqs. 9–12) written directly in PyTorch, on the modules of
:class:`generative.draw.DrawModel` and :class:`guides.draw.DrawGuide`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from generative.draw import DrawModel
from guides.draw import DrawGuide

__all__ = ["plain_draw_loss"]


def plain_draw_loss(model: DrawModel, guide: DrawGuide, x: Tensor) -> Tensor:
    """The DRAW loss of Eq. 12 summed over the batch, written directly in PyTorch."""
    batch = x.shape[0]
    state = model.initial_state(batch)
    enc = (guide.h0.expand(batch, -1), guide.cell0.expand(batch, -1))
    latent_loss = x.new_zeros(())
    enc_weights, dec_weights = guide.encoder_weights(), model.decoder_weights()
    for _ in range(model.config.steps):
        enc = guide.encode_step(x, state, enc, enc_weights)
        mu, sigma = guide.posterior_params(enc[0])
        z = mu + sigma * torch.randn_like(mu)
        latent_loss = latent_loss + 0.5 * (mu**2 + sigma**2 - 2 * sigma.log() - 1).sum()  # Eq. 11
        state = model.step(state, z, dec_weights)
    recon = F.binary_cross_entropy_with_logits(state.canvas, x, reduction="sum")  # Eq. 9
    return recon + latent_loss
