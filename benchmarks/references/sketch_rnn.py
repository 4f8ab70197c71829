"""sketch-rnn's annealed training loss (Ha & Eck 2017, appendix Eq. 4: Eq. 2 for ``z``, the
decoder, Eq. 9 with the mixture functions of :mod:`generative.strokes`, appendix Eq. 2 for the KL)
written directly in PyTorch, on the modules of :class:`generative.sketch_rnn.SketchRNN` and
:class:`guides.sketch_rnn.SketchRNNGuide`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from generative.sketch_rnn import SketchRNN
from generative.strokes import mixture_params, offset_log_prob, pen_log_prob
from guides.sketch_rnn import SketchRNNGuide
from inference.annealing import AnnealedKLObjective

__all__ = ["plain_sketch_rnn_loss"]


def plain_sketch_rnn_loss(
    model: SketchRNN,
    guide: SketchRNNGuide,
    x5: Tensor,
    lengths: Tensor,
    objective: AnnealedKLObjective,
    step: int,
) -> Tensor:
    """Appendix Eq. 4 for a batch, written directly in PyTorch (no Pyro)."""
    c = model.config
    inputs, targets = x5[:, :-1], x5[:, 1:]
    z = None
    if c.conditional:
        mu, sigma_hat = guide.posterior_params(x5, lengths)  # Eq. 2
        z = mu + torch.exp(sigma_hat / 2) * torch.randn_like(mu)
    params = mixture_params(model.decoder_outputs(inputs, z), c.num_mixtures)  # Eqs. 4–7
    mask = torch.arange(c.max_length) < lengths.unsqueeze(-1)
    offsets = torch.where(mask.unsqueeze(-1), targets[..., :2], 0.0)
    log_s = torch.where(mask, offset_log_prob(params, offsets), 0.0).sum(-1)
    log_p = pen_log_prob(params, targets[..., 2:]).sum(-1)
    l_r = -(log_s + log_p).mean() / c.max_length  # Eq. 9
    if not c.conditional:
        return l_r
    l_kl = -0.5 * (1 + sigma_hat - mu.square() - sigma_hat.exp()).mean()  # appendix Eq. 2
    eta = objective.eta(step)
    return l_r + objective.w_kl * eta * torch.clamp(l_kl, min=objective.kl_min)  # Eq. 4
