"""sketch-rnn's generative model (Ha & Eck 2017, sec. 3.2–3.3, appendix sec. 3).

Conditional model (a sequence-to-sequence VAE, sec. 3.2)::

    z ~ N(0, I)                                   (prior of the VAE, sec. 3.2 / [15])
    [h_0; c_0] = tanh(W_z z + b_z)                (sec. 3.2, before Eq. 3)
    x_i = [S_{i−1}; z],  S_0 = (0, 0, 1, 0, 0)
    [h_i; c_i] = forward(x_i, [h_{i−1}; c_{i−1}]),  y_i = W_y h_i + b_y ∈ R^{6M+3}   (Eq. 4)
    S_i ~ GMM(Δx, Δy) × Categorical(p_1, p_2, p_3)   (Eqs. 3, 5–7)

Unconditional model (sec. 3.3, ``conditional=False``): no ``z``, zero initial state, ``x_i =
S_{i−1}``.

Pyro sites (inside ``pyro.plate("data", B)``): ``"z"`` (conditional only, ``Normal(0, 1)
.to_event(1)``, ``N_z`` dims) and ``"strokes"``, the whole padded target sequence ``S_1 …
S_{N_max}`` in ONE site (event shape ``(N_max, 5)``), a :class:`generative.strokes.StrokeSequence`
whose ``log_prob`` is ``−N_max · L_R`` (Eq. 9). The decoder is teacher-forced on the data, so one
site is exact and lets a fused ``nn.LSTM`` run the whole sequence. There is no per-step Pyro site,
hence no ``pyro.markov`` loop: the step structure lives inside the distribution.

Vectorised particles: ``z`` may carry extra leading dims (e.g. ``(P, B, N_z)`` under
``vectorize_particles`` or a particle plate); the decoder flattens them into its batch and
``"strokes"`` then has batch shape ``(P, B)``. The generic IWAE (:mod:`inference.iwae`) repeats the
batch instead, which works because every per-example tensor has dim 0 = ``B``.

Decoder cells (``config.cell``): ``"lstm"``, ``"layer_norm"`` and the paper's ``"hyper"``
(HyperLSTM), in :mod:`generative.cells`; :func:`make_cell` builds the one a configuration names.
The configuration and its named tables are in :mod:`generative.sketch_rnn_config`.

Recurrent dropout is stored as the **drop** probability (``recurrent_dropout = 0.1`` is the
paper's keep probability of 90 %) and only acts in ``train()`` mode.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from torch import Tensor, nn
from torch.distributions import constraints

from generative.cells import HyperLSTMCell, LayerNormLSTMCell, LSTMDecoderCell
from generative.sketch_rnn_config import SketchRNNConfig
from generative.strokes import (
    END_TOKEN,
    START_TOKEN,
    StrokeSequence,
    mixture_params,
    num_outputs,
    sample_step,
)

__all__ = [
    "AncestralStrokes",
    "SketchRNN",
    "make_cell",
    "stroke5_lengths",
    "target_lengths",
]

INIT_STD = 0.001  # Gaussian init std of W_z (initial state) in the reference code


# ------------------------------------------------------------------------------ lengths
def target_lengths(targets: Tensor) -> Tensor:
    """``N_s`` of padded stroke-5 targets ``(..., N_max, 5)`` (rows ``S_1 … S_{N_max}``): the
    index of the first row with ``p_3 = 1``, or ``N_max`` when there is none (sec. 3.2)."""
    end = targets[..., 4] > 0.5
    n = targets.shape[-2]
    first = torch.where(end, torch.arange(n, device=targets.device), n)
    return first.min(-1).values


def stroke5_lengths(x5: Tensor) -> Tensor:
    """``N_s`` of a padded stroke-5 batch ``(..., N_max + 1, 5)`` with the start token at row 0
    (the layout of :func:`tasks.data.strokes.pad_batch`)."""
    return target_lengths(x5[..., 1:, :])


# -------------------------------------------------------------------------------- cells
def make_cell(config: SketchRNNConfig, input_size: int) -> nn.Module:
    """The decoder cell named by ``config.cell``."""
    c = config
    if c.cell == "lstm":
        return LSTMDecoderCell(input_size, c.dec_hidden, c.recurrent_dropout)
    if c.cell == "layer_norm":
        return LayerNormLSTMCell(input_size, c.dec_hidden, c.recurrent_dropout)
    return HyperLSTMCell(
        input_size, c.dec_hidden, c.recurrent_dropout, c.hyper_hidden, c.hyper_embedding
    )


# -------------------------------------------------------------------------------- model
class SketchRNN(nn.Module):
    """The sketch-rnn decoder and its Pyro ``model`` (sec. 3.2–3.3, Eqs. 3–9)."""

    def __init__(self, config: SketchRNNConfig):
        super().__init__()
        self.config = c = config
        self.input_size = 5 + (c.z_dim if c.conditional else 0)
        self.cell = make_cell(c, self.input_size)
        self.state_sizes = tuple(self.cell.state_sizes)
        if c.conditional:
            # [h_0; c_0] = tanh(W_z z + b_z) (sec. 3.2); for the HyperLSTM also its hyper state
            self.init_state = nn.Linear(c.z_dim, sum(self.state_sizes))
            with torch.no_grad():
                nn.init.normal_(self.init_state.weight, std=INIT_STD)
                self.init_state.bias.zero_()
        self.output = nn.Linear(c.dec_hidden, num_outputs(c.num_mixtures))  # W_y, b_y (Eq. 4)
        self.register_buffer("start_token", torch.tensor(START_TOKEN), persistent=False)
        self.register_buffer("end_token", torch.tensor(END_TOKEN), persistent=False)

    # -- deterministic network -------------------------------------------------------------
    def decoder_initial_state(
        self, z: Tensor | None, batch_size: int | None = None
    ) -> tuple[Tensor, ...]:
        """``[h_0; c_0] = tanh(W_z z + b_z)`` (sec. 3.2) split into the cell's state tensors,
        each ``(B, size)``; zeros for the unconditional model (sec. 3.3, ``batch_size`` needed)."""
        if self.config.conditional:
            if z is None:
                raise ValueError("SketchRNN.decoder_initial_state: the conditional model needs z")
            self._check_z(z)
            flat = torch.tanh(self.init_state(z))
        else:
            if z is not None:
                raise ValueError(
                    "SketchRNN.decoder_initial_state: the decoder-only model takes no z"
                )
            if batch_size is None:
                raise ValueError("SketchRNN.decoder_initial_state: batch_size is needed without z")
            flat = self.start_token.new_zeros(batch_size, sum(self.state_sizes))
        return tuple(flat.split(self.state_sizes, -1))

    def _check_z(self, z: Tensor) -> None:
        if z.dim() < 1 or z.shape[-1] != self.config.z_dim:
            raise ValueError(
                f"SketchRNN: z must have last dim N_z = {self.config.z_dim}, found shape "
                f"{tuple(z.shape)}"
            )

    def decoder_inputs(self, strokes: Tensor, z: Tensor | None) -> Tensor:
        """``x_i = [S_{i−1}; z]`` (Eq. 4) for ``strokes`` (B, T, 5) and ``z`` (B, N_z); only
        ``S_{i−1}`` for the unconditional model (sec. 3.3)."""
        if z is None:
            return strokes
        return torch.cat([strokes, z.unsqueeze(-2).expand(*strokes.shape[:-1], z.shape[-1])], -1)

    def run_decoder(
        self, strokes: Tensor, z: Tensor | None, state: tuple[Tensor, ...] | None = None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Teacher-forced decoder over ``strokes`` (B, T, 5) (Eq. 4): the outputs ``y``
        (B, T, 6M+3) and the final state. ``state`` defaults to :meth:`decoder_initial_state`.
        Recurrent dropout is active in ``train()`` mode."""
        if state is None:
            state = self.decoder_initial_state(z, strokes.shape[0])
        h, state = self.cell.sequence(self.decoder_inputs(strokes, z), state, self.training)
        return self.output(h), state

    def decoder_outputs(self, inputs: Tensor, z: Tensor | None) -> Tensor:
        """Outputs ``y_1 … y_T`` (Eq. 4) for decoder inputs ``S_0 … S_{T−1}`` (B, T, 5).

        ``z`` may have extra leading dims ``(..., B, N_z)`` (vectorised particles): inputs are
        broadcast and the result has shape ``(..., B, T, 6M+3)``.
        """
        if inputs.dim() != 3 or inputs.shape[-1] != 5:
            raise ValueError(
                f"SketchRNN: decoder inputs must be (B, T, 5), found {tuple(inputs.shape)}"
            )
        if z is None:
            y, _ = self.run_decoder(inputs, None)
            return y
        self._check_z(z)
        batch_shape = torch.broadcast_shapes(z.shape[:-1], inputs.shape[:1])
        zf = z.expand(*batch_shape, z.shape[-1]).reshape(-1, z.shape[-1])
        xf = inputs.expand(*batch_shape, *inputs.shape[1:]).reshape(-1, *inputs.shape[1:])
        y, _ = self.run_decoder(xf, zf)
        return y.reshape(*batch_shape, *y.shape[1:])

    def likelihood(self, inputs: Tensor, z: Tensor | None, lengths: Tensor) -> StrokeSequence:
        """``p(S_1 … S_{N_max} | z)`` given the teacher-forced inputs (Eqs. 3–9)."""
        y = self.decoder_outputs(inputs, z)
        return StrokeSequence(y, lengths, num_mixtures=self.config.num_mixtures)

    def prior(self, batch_size: int) -> dist.Distribution:
        """``z ~ N(0, I)`` with ``N_z`` dims (sec. 3.2, the VAE prior)."""
        zero = self.start_token.new_zeros(batch_size, self.config.z_dim)
        return dist.Normal(zero, zero + 1).to_event(1)

    def check_batch(self, x5: Tensor, lengths: Tensor | None) -> Tensor:
        """Validate a padded stroke-5 batch ``(B, N_max + 1, 5)`` and its lengths; returns the
        lengths (derived with :func:`stroke5_lengths` when ``None``)."""
        n_max = self.config.max_length
        if x5.dim() != 3 or x5.shape[1:] != (n_max + 1, 5):
            raise ValueError(
                f"SketchRNN: x5 must have shape (B, N_max + 1 = {n_max + 1}, 5) (start token, "
                f"N_max = config.max_length rows), found {tuple(x5.shape)}"
            )
        if lengths is None:
            return stroke5_lengths(x5)
        if lengths.shape != x5.shape[:1] or lengths.dtype.is_floating_point:
            raise ValueError(
                f"SketchRNN: lengths must be integers of shape ({x5.shape[0]},), found "
                f"{lengths.dtype} {tuple(lengths.shape)}"
            )
        if bool(((lengths < 1) | (lengths > n_max)).any()):
            raise ValueError(
                f"SketchRNN: lengths must lie in [1, N_max = {n_max}], found min "
                f"{int(lengths.min())}, max {int(lengths.max())}"
            )
        return lengths

    # -- Pyro model ------------------------------------------------------------------------
    def model(
        self,
        x5: Tensor | None = None,
        lengths: Tensor | None = None,
        *,
        batch_size: int | None = None,
    ) -> Tensor:
        """Pyro model. ``x5``: padded stroke-5 batch ``(B, N_max + 1, 5)`` with the start token
        (:func:`tasks.data.strokes.pad_batch`), ``lengths`` its ``N_s`` (derived from ``x5``
        when ``None``). With ``x5 = None`` it generates ``batch_size`` sketches ancestrally
        (:class:`AncestralStrokes`). Returns the ``"strokes"`` value (targets ``S_1 … S_{N_max}``).
        """
        pyro.module("sketch_rnn", self)
        if x5 is not None:
            lengths = self.check_batch(x5, lengths)
            batch_size = x5.shape[0]
        elif batch_size is None:
            raise ValueError("SketchRNN.model needs x5 or batch_size")
        with pyro.plate("data", batch_size):
            z = pyro.sample("z", self.prior(batch_size)) if self.config.conditional else None
            if x5 is None:
                return pyro.sample("strokes", AncestralStrokes(self, z, (batch_size,)))
            inputs, targets = x5[:, :-1], x5[:, 1:]
            return pyro.sample("strokes", self.likelihood(inputs, z, lengths), obs=targets)

    def forward(self, x5: Tensor | None = None, lengths: Tensor | None = None, **kwargs) -> Tensor:
        return self.model(x5, lengths, **kwargs)

    # -- sampling --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        z: Tensor | None,
        num_steps: int,
        *,
        temperature: float = 1.0,
        prefix: Tensor | None = None,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Ancestral sampling (sec. 3.2): feed each sampled ``S'_i`` back as the next input.

        ``z`` (B, N_z) conditions the decoder (``None`` for the decoder-only model; for the
        conditional model ``None`` draws ``z ~ N(0, I)`` with ``generator``). ``prefix``
        (B, P, 5): stroke-5 rows of an incomplete sketch WITHOUT start token (and without
        ``p_3 = 1`` rows), teacher-forced first (sec. 4.4, "predicting different endings").
        Returns ``(B, num_steps, 5)`` stroke-5 rows without start token that CONTINUE after the
        prefix (concatenate ``prefix`` and the result for the whole sketch). Once ``p_3 = 1``
        is drawn that row and all later rows are ``(0, 0, 0, 0, 1)``. ``temperature`` τ is
        Eq. 8; ``τ = 0`` is deterministic (most likely component's mean and pen state).
        Recurrent dropout is never applied while sampling.
        """
        if num_steps < 0:
            raise ValueError(f"SketchRNN.sample: num_steps must be >= 0, found {num_steps}")
        c = self.config
        sizes = {}
        if z is not None:
            if z.dim() != 2:
                raise ValueError(f"SketchRNN.sample: z must be (B, N_z), found {tuple(z.shape)}")
            sizes["z"] = z.shape[0]
        if prefix is not None:
            if prefix.dim() != 3 or prefix.shape[-1] != 5:
                raise ValueError(
                    f"SketchRNN.sample: prefix must be (B, P, 5) stroke-5 rows, found "
                    f"{tuple(prefix.shape)}"
                )
            if bool((prefix[..., 4] > 0.5).any()):
                raise ValueError(
                    "SketchRNN.sample: prefix contains an end-of-sketch row (p_3 = 1); pass only "
                    "the drawn points (rows 1 … N_s, without the start token)"
                )
            sizes["prefix"] = prefix.shape[0]
        if batch_size is not None:
            sizes["batch_size"] = batch_size
        if not sizes:
            raise ValueError("SketchRNN.sample needs z, prefix or batch_size")
        if len(set(sizes.values())) != 1:
            raise ValueError(f"SketchRNN.sample: inconsistent batch sizes {sizes}")
        batch = next(iter(sizes.values()))
        device = self.start_token.device
        if c.conditional and z is None:
            z = torch.randn(batch, c.z_dim, generator=generator, device=device)
        elif not c.conditional and z is not None:
            raise ValueError("SketchRNN.sample: the decoder-only model takes z=None")
        state = self.decoder_initial_state(z, batch)
        start = self.start_token.expand(batch, 1, 5)
        fed = start if prefix is None else torch.cat([start, prefix.to(start.dtype)], 1)
        h, state = self.cell.sequence(self.decoder_inputs(fed, z), state, False)
        y = self.output(h[:, -1])
        out = self.end_token.expand(batch, num_steps, 5).clone()
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        for t in range(num_steps):
            s = sample_step(mixture_params(y, c.num_mixtures, temperature), generator=generator)
            done = done | (s[:, 4] > 0.5)
            s = torch.where(done.unsqueeze(-1), self.end_token, s)
            out[:, t] = s
            if bool(done.all()) or t == num_steps - 1:
                break
            state = self.cell.step(self.decoder_inputs(s.unsqueeze(1), z)[:, 0], state, False)
            y = self.output(state[0])
        return out


class AncestralStrokes(TorchDistribution):
    """``p(S_1 … S_{N_max} | z)`` of the decoder as a distribution, for the model's generative
    mode (``x5 = None``): ``sample()`` is ancestral (:meth:`SketchRNN.sample`, sec. 3.2) and
    ``log_prob(x)`` is the teacher-forced ``−N_max · L_R`` (Eq. 9) with ``N_s`` read from ``x``
    (:func:`target_lengths`). ``z`` (..., N_z) may have leading (particle) dims."""

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = False

    def __init__(
        self,
        net: SketchRNN,
        z: Tensor | None,
        batch_shape: tuple[int, ...] | torch.Size,
        temperature: float = 1.0,
        validate_args: bool | None = None,
    ):
        self.net, self.z, self.temperature = net, z, float(temperature)
        if z is not None:
            batch_shape = torch.broadcast_shapes(z.shape[:-1], tuple(batch_shape))
        n_max = net.config.max_length
        super().__init__(torch.Size(batch_shape), torch.Size((n_max, 5)), validate_args)

    def expand(self, batch_shape, _instance=None) -> AncestralStrokes:
        z = None if self.z is None else self.z.expand(*batch_shape, self.z.shape[-1])
        return AncestralStrokes(self.net, z, batch_shape, self.temperature)

    def sample(self, sample_shape: tuple[int, ...] | torch.Size = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        n = int(math.prod(shape))
        z = None
        if self.z is not None:
            z = self.z.expand(*shape, self.z.shape[-1]).reshape(n, -1)
        x = self.net.sample(z, self.event_shape[0], temperature=self.temperature, batch_size=n)
        return x.reshape(*shape, *self.event_shape)

    def log_prob(self, x: Tensor) -> Tensor:
        start = self.net.start_token.expand(*x.shape[:-2], 1, 5)
        inputs = torch.cat([start, x[..., :-1, :]], -2)
        batch_shape = torch.broadcast_shapes(x.shape[:-2], self.batch_shape)
        inputs = inputs.expand(*batch_shape, *inputs.shape[-2:]).reshape(-1, *inputs.shape[-2:])
        z = None
        if self.z is not None:
            z = self.z.expand(*batch_shape, self.z.shape[-1]).reshape(-1, self.z.shape[-1])
        y = self.net.decoder_outputs(inputs, z).reshape(*batch_shape, *x.shape[-2:-1], -1)
        seq = StrokeSequence(
            y,
            target_lengths(x),
            num_mixtures=self.net.config.num_mixtures,
            temperature=self.temperature,
        )
        return seq.log_prob(x)
