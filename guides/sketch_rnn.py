"""sketch-rnn's encoder as a Pyro guide (Ha & Eck 2017, sec. 3.2, Eqs. 1–2).

A bidirectional LSTM reads the sketch ``S = S_1 … S_{N_s}`` forwards and backwards (Eq. 1); its
two final hidden states ``h = [h→; h←]`` are projected to ``μ`` and ``σ̂`` (Eq. 2) and

    q(z | S) = N(μ, diag(σ²)),   σ = exp(σ̂ / 2),   z = μ + σ ⊙ ε.

The encoder reads the ``N_s`` sketch rows only (not the start token, not the end/padding rows),
as the reference code (``output_x`` with ``sequence_length``): the forward LSTM's state is read
at row ``N_s``, and the backward LSTM runs over each sketch reversed within its own length
(``S_{N_s} … S_1``, then padding) and is read at its ``N_s``-th step. An LSTM is causal, so both
states are exactly independent of the padding's length and content. This is what
``pack_padded_sequence`` computes, but two fused calls on the padded batch are much faster on a
CPU: measured on one aaron_sheep batch (B = 100, N_max = 250, 64 units, 1 thread), forward +
backward took 3.1 s packed (PyTorch's packed-LSTM backward is slow on CPU) against 0.67 s here.
The paper's encoder is an LSTM; unlike the reference code we apply neither layer norm nor
recurrent dropout to it, so that it stays fused.

For the decoder-only model (sec. 3.3) the guide has no sample sites.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from generative.sketch_rnn import INIT_STD, SketchRNN


class SketchRNNGuide(nn.Module):
    """Bidirectional LSTM encoder and ``q(z | S)`` of sketch-rnn (Eqs. 1–2).

    The :class:`SketchRNN` is held by reference, not as a submodule: the guide's parameters and
    ``state_dict`` hold only the encoder.
    """

    def __init__(self, model: SketchRNN):
        super().__init__()
        self.__dict__["sketch_model"] = model  # shared, not registered as a submodule
        c = model.config
        self.conditional = c.conditional
        if c.conditional:
            # encode→ and encode← of Eq. 1
            self.encoder_forward = nn.LSTM(5, c.enc_hidden, batch_first=True)
            self.encoder_backward = nn.LSTM(5, c.enc_hidden, batch_first=True)
            with torch.no_grad():  # forget-gate bias 1, as the decoder cells
                for lstm in (self.encoder_forward, self.encoder_backward):
                    lstm.bias_ih_l0.zero_()
                    lstm.bias_hh_l0.zero_()
                    lstm.bias_ih_l0[c.enc_hidden : 2 * c.enc_hidden] = 1.0
            # W_μ, W_σ of Eq. 2 in one layer; Gaussian init std 0.001 as the reference code
            self.posterior = nn.Linear(2 * c.enc_hidden, 2 * c.z_dim)
            with torch.no_grad():
                nn.init.normal_(self.posterior.weight, std=INIT_STD)
                self.posterior.bias.zero_()

    def encoder_state(self, x5: Tensor, lengths: Tensor) -> Tensor:
        """Eq. 1: ``h = [h→; h←]`` (B, 2·enc_hidden) of the sketch rows ``1 … N_s`` of a padded
        stroke-5 batch ``(B, N_max + 1, 5)`` (row 0 is the start token)."""
        if not self.conditional:
            raise ValueError("SketchRNNGuide: the decoder-only model has no encoder")
        lengths = self.sketch_model.check_batch(x5, lengths)
        sketch = x5[:, 1:]  # S_1 … S_{N_max}
        batch, n_max = sketch.shape[:2]
        rows = torch.arange(batch, device=x5.device)
        last = lengths - 1
        # S_reverse: row t holds S_{N_s − t} for t < N_s (rows after N_s are never read)
        steps = torch.arange(n_max, device=x5.device)
        reverse = (last.unsqueeze(1) - steps).clamp(min=0)
        reversed_sketch = sketch.gather(1, reverse.unsqueeze(-1).expand(-1, -1, 5))
        h_forward = self.encoder_forward(sketch)[0][rows, last]
        h_backward = self.encoder_backward(reversed_sketch)[0][rows, last]
        return torch.cat([h_forward, h_backward], -1)

    def posterior_params(self, x5: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 2: ``μ = W_μ h + b_μ`` and ``σ̂ = W_σ h + b_σ``, each (B, N_z)."""
        mu, sigma_hat = self.posterior(self.encoder_state(x5, lengths)).chunk(2, -1)
        return mu, sigma_hat

    def encode(self, x5: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Eq. 2: ``(μ, σ)`` with ``σ = exp(σ̂ / 2)``; ``lengths`` derived from ``x5`` if None."""
        mu, sigma_hat = self.posterior_params(x5, lengths)
        return mu, torch.exp(sigma_hat / 2)

    def guide(
        self, x5: Tensor, lengths: Tensor | None = None, *, batch_size: int | None = None
    ) -> Tensor | None:
        """Pyro guide over the site ``"z"`` of :meth:`SketchRNN.model` (none when unconditional).
        ``batch_size`` is accepted for signature compatibility with the model and ignored."""
        pyro.module("sketch_rnn_guide", self)
        if not self.conditional:
            return None
        mu, sigma = self.encode(x5, lengths)
        with pyro.plate("data", x5.shape[0]):
            return pyro.sample("z", dist.Normal(mu, sigma).to_event(1))

    def forward(self, x5: Tensor, lengths: Tensor | None = None, **kwargs) -> Tensor | None:
        return self.guide(x5, lengths, **kwargs)
