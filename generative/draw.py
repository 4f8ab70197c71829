"""DRAW's generative model (Gregor et al. 2015, sec. 2.3, Eqs. 13–16, with the likelihood of Eq. 9).

For ``t = 1 … T``::

    z_t ~ P(Z_t) = N(0, I)                                   (Eq. 13)
    h^dec_t = RNN^dec(h^dec_{t-1}, z_t)                      (Eq. 14)
    c_t = c_{t-1} + write(h^dec_t)                           (Eq. 15)
    x ~ D(X | c_T) = Bernoulli(σ(c_T))                       (Eq. 16, Eq. 9)

``c_0`` and the decoder's initial LSTM state are learned (sec. 2.1). Every ``z_t`` is a Pyro
sample site named ``"z_{t}"`` (0-based ``t``) inside ``pyro.plate("data")``; the image is the
observed site ``"x"``. With ``record=True`` the model also exposes ``"canvas_{t}"`` (σ(c_t)) and,
with write attention, ``"write_window_{t}"`` = ``(g_X, g_Y, δ, σ², γ)`` as deterministic sites.

The guide (``guides.draw.DrawGuide``) runs this same decoder to compute ``h^dec_{t-1}`` and
``c_{t-1}`` for its reads. So that SVI does not pay for the decoder twice, the guide leaves the
decoder states it computed in a :class:`generative.memo.ReplayMemo`; when the model is then
replayed on the very same ``z`` tensors (``poutine.replay`` passes them through by identity) under
unchanged parameters, it reuses those states. This is a pure cache: results and gradients are
identical. Step ``t`` of the memo is ``((z_t,), DecoderState after step t)``; without gradients
only the latest state is kept, so memory does not grow with ``T``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor, nn

from generative.attention import AttentionParams, AttentiveWrite, PlainWrite
from generative.checks import check_image_batch
from generative.config import ConfigDict, named_config
from generative.lstm import FusedWeights, fused_step, fused_weights
from generative.memo import ReplayMemo
from generative.traces import stack_sites


@dataclass(frozen=True)
class DrawConfig(ConfigDict):
    """Hyper-parameters of a DRAW network (Table 3 of the paper)."""

    label = "DRAW config"

    height: int = 28
    width: int = 28
    channels: int = 1
    steps: int = 64  # T, "#glimpses"
    encoder_size: int = 256  # LSTM #h (encoder)
    decoder_size: int = 256  # LSTM #h (decoder)
    z_size: int = 100
    read_size: int | None = 2  # N of the read patch; None = no attention (Eq. 17)
    write_size: int | None = 5  # N of the write patch; None = no attention (Eq. 18)
    # Not in the paper: start the read window centred with filters this many pixels apart
    # (generative.attention.start_window); None = PyTorch's default init, as the paper.
    read_start_stride: float | None = None


DRAW_CONFIGS: dict[str, DrawConfig] = {
    # Table 3, "MNIST Model": 64 glimpses, 256 LSTM units, 100 latents, read 2×2, write 5×5.
    "mnist": DrawConfig(),
    # The same with the 2×2 read window started on the digit (filters 8 px apart around the
    # centre, σ = 4 px): a documented deviation, measured in the README.
    "mnist_read_start": DrawConfig(read_start_stride=8.0),
    # Table 2's "DRAW without attention": same sizes, Eqs. 17–18.
    "mnist_no_attention": DrawConfig(read_size=None, write_size=None),
    # Sec. 4.3: two digits on a 60×60 canvas. Table 3 gives no row; our choice (documented).
    "mnist_two_digits": DrawConfig(height=60, width=60, read_size=12, write_size=12),
    # Table 3, "SVHN Model": 54×54 patches, 32 glimpses, 800 units, 100 latents, 12×12 / 12×12.
    "svhn": DrawConfig(
        height=54,
        width=54,
        channels=3,
        steps=32,
        encoder_size=800,
        decoder_size=800,
        read_size=12,
        write_size=12,
    ),
    # Table 3, "CIFAR Model": 32×32, 64 glimpses, 400 units, 200 latents, 5×5 / 5×5.
    "cifar": DrawConfig(
        height=32,
        width=32,
        channels=3,
        steps=64,
        encoder_size=400,
        decoder_size=400,
        z_size=200,
        read_size=5,
        write_size=5,
    ),
    # Not from the paper: a small network that learns within a minute on 2 CPU cores. It reads
    # the whole image (Eq. 17) and writes with 5×5 attention: a 2×2 read window must first learn
    # where to look, which takes far longer than a minute (measured on glyphs: after 300 steps
    # −ELBO 190.5 with 2×2 reads, i.e. still the mean image, 180.5 with 5×5, 166.8 without).
    "small": DrawConfig(steps=16, encoder_size=128, decoder_size=128, z_size=16, read_size=None),
}


def draw_config(name: str, **overrides) -> DrawConfig:
    """A named configuration with fields overridden (e.g. the image size of a dataset)."""
    return named_config(DRAW_CONFIGS, "DRAW", name, overrides)


class DecoderState(NamedTuple):
    h: Tensor  # h^dec_t, (B, decoder_size)
    cell: Tensor  # LSTM cell state, (B, decoder_size)
    canvas: Tensor  # c_t (logits), (B, C, H, W)
    window: AttentionParams | None  # write window used at step t (None without attention)


class DrawModel(nn.Module):
    """The DRAW generative network and its Pyro ``model`` (Eqs. 13–16 and 9)."""

    def __init__(self, config: DrawConfig):
        super().__init__()
        self.config = c = config
        self.image_shape = (c.channels, c.height, c.width)
        self.decoder = nn.LSTMCell(c.z_size, c.decoder_size)  # RNN^dec, Eq. 14
        if c.write_size is None:
            self.writer: nn.Module = PlainWrite(c.decoder_size, *self.image_shape)
        else:
            self.writer = AttentiveWrite(c.decoder_size, *self.image_shape, c.write_size)
        self.canvas0 = nn.Parameter(torch.zeros(*self.image_shape))  # learned c_0
        self.h0 = nn.Parameter(torch.zeros(c.decoder_size))  # learned h^dec_0
        self.cell0 = nn.Parameter(torch.zeros(c.decoder_size))
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.memo: ReplayMemo[DecoderState] = ReplayMemo(keep_all=False)

    # -- deterministic network -------------------------------------------------------------
    def param_versions(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.parameters())

    def initial_state(self, batch_size: int) -> DecoderState:
        expand = (batch_size, self.config.decoder_size)
        canvas = self.canvas0.expand(batch_size, *self.image_shape)
        return DecoderState(self.h0.expand(expand), self.cell0.expand(expand), canvas, None)

    def decoder_weights(self) -> FusedWeights:
        """RNN^dec's weights as one matrix (:mod:`generative.lstm`): build once per sequence."""
        return fused_weights(self.decoder)

    def step(
        self, state: DecoderState, z: Tensor, weights: FusedWeights | None = None
    ) -> DecoderState:
        """Eqs. 14–15 (= Eqs. 7–8 during inference): one decoder step and canvas update.
        ``weights``: :meth:`decoder_weights`, built here when not given."""
        if weights is None:
            weights = self.decoder_weights()
        h, cell = fused_step(weights, [z], (state.h, state.cell))
        delta, window = self.writer(h)
        return DecoderState(h, cell, state.canvas + delta, window)

    def decode(
        self, state: DecoderState, zs: list[Tensor], weights: FusedWeights | None = None
    ) -> DecoderState:
        """Run :meth:`step` over a sequence of latents."""
        if weights is None:
            weights = self.decoder_weights()
        for z in zs:
            state = self.step(state, z, weights)
        return state

    def prior(self, batch_size: int) -> dist.Distribution:
        """Eq. 13: ``P(Z_t) = N(0, I)``."""
        zero = self._zero.expand(batch_size, self.config.z_size)
        return dist.Normal(zero, zero + 1).to_event(1)

    def likelihood(self, canvas: Tensor) -> dist.Distribution:
        """Eqs. 9 and 16: ``D(X | c_T) = Bernoulli(σ(c_T))`` over all pixels (and channels).

        For grey or colour targets in [0, 1] this is the paper's cross-entropy (sec. 4); Pyro's
        argument validation must then be off, since it only admits 0/1 values.
        """
        return dist.Bernoulli(logits=canvas).to_event(3)

    # -- Pyro model ------------------------------------------------------------------------
    def model(
        self, x: Tensor | None = None, *, batch_size: int | None = None, record: bool = False
    ) -> Tensor:
        """Pyro model. ``x``: ``(B, C, H, W)`` observations, or ``None`` to generate ``batch_size``
        images. Returns the final canvas probabilities σ(c_T)."""
        pyro.module("draw_model", self)
        if x is not None:
            check_image_batch(x, self.image_shape, "DRAW")
        batch_size = x.shape[0] if x is not None else batch_size
        if batch_size is None:
            raise ValueError("DrawModel.model needs x or batch_size")
        steps = self.config.steps
        state = self.initial_state(batch_size)
        versions = self.param_versions()
        weights: FusedWeights | None = None  # built at the first step the memo cannot supply
        reuse, zs = not record, []
        prior = self.prior(batch_size)  # the same N(0, I) at every step (Eq. 13)
        with pyro.plate("data", batch_size):
            for t in pyro.markov(range(steps)):
                z = pyro.sample(f"z_{t}", prior)
                zs.append(z)
                if reuse and self.memo.hits(t, versions, z):
                    continue
                if weights is None:
                    weights = self.decoder_weights()
                if reuse and t > 0:  # first miss after hits: the state of the shared prefix
                    state = self.memo.value(t - 1) or self.decode(state, zs[:-1], weights)
                reuse = False
                state = self.step(state, z, weights)
                if record:
                    pyro.deterministic(f"canvas_{t}", torch.sigmoid(state.canvas), event_dim=3)
                    if state.window is not None:
                        pyro.deterministic(f"write_window_{t}", torch.stack(state.window, -1), 1)
            if reuse:
                state = self.memo.value(steps - 1)
            self.memo.clear()
            pyro.sample("x", self.likelihood(state.canvas), obs=x)
        return torch.sigmoid(state.canvas)

    def forward(self, x: Tensor | None = None, **kwargs) -> Tensor:
        return self.model(x, **kwargs)

    @torch.no_grad()
    def generate(self, num_samples: int) -> dict[str, Tensor]:
        """Sample from the prior (sec. 2.3) recording every step: ``canvases`` ``(S, T, C, H, W)``
        (σ(c_t), the paper shows means) and, with write attention, ``windows`` ``(S, T, 5)``."""
        trace = pyro.poutine.trace(self.model).get_trace(batch_size=num_samples, record=True)
        sites = {"canvases": "canvas"}
        if self.config.write_size is not None:
            sites["windows"] = "write_window"
        return stack_sites(trace, self.config.steps, sites)
