"""DRAW's recognition network as a Pyro guide (Gregor et al. 2015, sec. 2.1, Eqs. 1–8).

For ``t = 1 … T``::

    x̂_t = x − σ(c_{t-1})                                     (Eq. 3)
    r_t = read(x, x̂_t, h^dec_{t-1})                          (Eq. 4; Eq. 17 or Eq. 27)
    h^enc_t = RNN^enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])       (Eq. 5)
    z_t ~ Q(Z_t | h^enc_t) = N(μ_t, σ_t)                     (Eq. 6; Eqs. 1–2)
    h^dec_t, c_t: the model's decoder step                   (Eqs. 7–8)

The decoder belongs to the model; the guide runs it through :meth:`DrawModel.step` and leaves the
states in the model's memo, so the replayed model does not recompute them.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from generative.attention import AttentiveRead, PlainRead
from generative.draw import DrawModel
from generative.lstm import FusedWeights, fused_step, fused_weights


class DrawGuide(nn.Module):
    """Encoder RNN, read operation and latent posterior ``Q(Z_t | h^enc_t)`` of DRAW.

    The shared :class:`DrawModel` is held by reference and is *not* a submodule, so the guide's
    ``state_dict`` and parameters hold only the recognition network.
    """

    def __init__(self, draw_model: DrawModel):
        super().__init__()
        self.__dict__["draw_model"] = draw_model  # shared, not registered as a submodule
        c = draw_model.config
        if c.read_size is None:
            self.reader: nn.Module = PlainRead(c.channels, c.height, c.width)
        else:
            self.reader = AttentiveRead(
                c.decoder_size,
                c.channels,
                c.height,
                c.width,
                c.read_size,
                start_stride=c.read_start_stride,
            )
        self.encoder = nn.LSTMCell(self.reader.output_size + c.decoder_size, c.encoder_size)
        self.posterior = nn.Linear(c.encoder_size, 2 * c.z_size)  # Eqs. 1–2
        self.h0 = nn.Parameter(torch.zeros(c.encoder_size))  # learned h^enc_0
        self.cell0 = nn.Parameter(torch.zeros(c.encoder_size))

    def posterior_params(self, h_enc: Tensor) -> tuple[Tensor, Tensor]:
        """Eqs. 1–2: ``μ_t = W(h^enc_t)``, ``σ_t = exp(W(h^enc_t))``."""
        loc, log_scale = self.posterior(h_enc).chunk(2, -1)
        return loc, log_scale.exp()

    def encoder_weights(self) -> FusedWeights:
        """RNN^enc's weights as one matrix (:mod:`generative.lstm`): build once per sequence."""
        return fused_weights(self.encoder)

    def encode_step(
        self,
        x: Tensor,
        state,
        enc: tuple[Tensor, Tensor],
        weights: FusedWeights | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Eqs. 3–5: error image, read, encoder step; returns the new encoder ``(h, cell)``.
        ``weights``: :meth:`encoder_weights`, built here when not given."""
        x_err = x - torch.sigmoid(state.canvas)  # Eq. 3
        r = self.reader(x, x_err, state.h)  # Eq. 4
        if weights is None:
            weights = self.encoder_weights()
        return fused_step(weights, [r, state.h], enc)  # Eq. 5

    def guide(self, x: Tensor, **kwargs) -> None:
        """Pyro guide over the sites ``"z_0" … "z_{T-1}"`` of :meth:`DrawModel.model`."""
        pyro.module("draw_guide", self)
        draw = self.draw_model
        batch_size = x.shape[0]
        state = draw.initial_state(batch_size)
        enc = (self.h0.expand(batch_size, -1), self.cell0.expand(batch_size, -1))
        draw.memo.start(draw.param_versions())
        enc_weights, dec_weights = self.encoder_weights(), draw.decoder_weights()
        with pyro.plate("data", batch_size):
            for t in pyro.markov(range(draw.config.steps)):
                enc = self.encode_step(x, state, enc, enc_weights)
                z = pyro.sample(f"z_{t}", dist.Normal(*self.posterior_params(enc[0])).to_event(1))
                state = draw.step(state, z, dec_weights)  # Eqs. 7–8
                draw.memo.record((z,), state)

    def forward(self, x: Tensor, **kwargs) -> None:
        return self.guide(x, **kwargs)
