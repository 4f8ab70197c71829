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

Decoder cells (``config.cell``; all use PyTorch's gate order ``i, f, g, o`` and forget-gate bias
1.0, as the reference code's ``forget_bias``):

* ``"lstm"`` — a plain LSTM. With recurrent dropout off (or in eval mode) it runs as one fused
  ``nn.LSTM`` call; with recurrent dropout during training it runs step by step on the same
  weights (measured on one CPU thread, decoder forward + backward: 2.4× slower than fused at
  128 units, B = 100, N_max = 250; 2.4× at 2048 units, B = 20, N_max = 60).
* ``"layer_norm"`` — layer-normalised LSTM (Ba et al. 2016) with recurrent dropout without memory
  loss (Semeniuta et al. 2016): dropout on the cell update ``g = tanh(·)`` only (appendix sec. 3).
* ``"hyper"`` — HyperLSTM (Ha et al. 2017, "HyperNetworks", the paper's decoder, sec. 4): a small
  layer-normalised LSTM reads ``[x_i; h_{i−1}]`` and emits per-step scalings of the main LSTM's
  input and recurrent pre-activations and a dynamic bias (memory-efficient weight scaling,
  HyperNetworks sec. 3.2), followed by layer norm and recurrent dropout as above. At the
  paper's 2048 units it costs 4.3× the fused LSTM and 1.6× the layer-norm LSTM per decoder
  forward + backward (B = 20, N_max = 60, one thread; ``benchmarks/sketch_rnn_step.py --cells``).

Recurrent dropout is stored as the **drop** probability (``recurrent_dropout = 0.1`` is the
paper's keep probability of 90 %) and only acts in ``train()`` mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch import Tensor, nn
from torch.distributions import constraints

from generative.config import ConfigDict
from generative.strokes import (
    END_TOKEN,
    START_TOKEN,
    StrokeSequence,
    mixture_params,
    num_outputs,
    sample_step,
)

__all__ = [
    "CELLS",
    "SKETCH_RNN_CONFIGS",
    "AncestralStrokes",
    "HyperLSTMCell",
    "LSTMDecoderCell",
    "LayerNormLSTMCell",
    "SketchRNN",
    "SketchRNNConfig",
    "sketch_rnn_config",
    "stroke5_lengths",
    "target_lengths",
]

CELLS: tuple[str, ...] = ("lstm", "layer_norm", "hyper")
FORGET_BIAS = 1.0  # reference code's forget_bias, added to the forget gate pre-activation
LAYER_NORM_EPS = 1e-3  # reference code's layer_norm epsilon
HYPER_INIT_GAMMA = 0.1  # HyperLSTM scaling at initialisation (recurrent batch-norm trick)
INIT_STD = 0.001  # Gaussian init std of W_z (initial state) in the reference code


@dataclass(frozen=True)
class SketchRNNConfig(ConfigDict):
    """Hyper-parameters of a sketch-rnn network (appendix sec. 3).

    ``enc_hidden`` is the size of EACH direction of the bidirectional encoder, so ``h = [h→; h←]``
    (Eq. 1) has ``2 · enc_hidden`` units. ``recurrent_dropout`` is the drop probability (keep
    probability 0.9 ⇔ 0.1). ``max_length`` is ``N_max``; ``scale_factor`` the training set's
    offset standard deviation the data were divided by (appendix sec. 1), stored so that samples
    can be mapped back to pixels and other splits normalised alike (``None`` = not recorded).
    ``hyper_hidden`` / ``hyper_embedding`` size the HyperLSTM's small LSTM and its signals.
    """

    label = "sketch-rnn config"

    enc_hidden: int = 256
    dec_hidden: int = 512
    z_dim: int = 128  # N_z
    num_mixtures: int = 20  # M
    cell: str = "layer_norm"
    recurrent_dropout: float = 0.1
    conditional: bool = True
    max_length: int = 250  # N_max
    scale_factor: float | None = None
    hyper_hidden: int = 256
    hyper_embedding: int = 32

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"SketchRNNConfig.cell: expected one of {CELLS}, found {self.cell!r}")
        for name in ("enc_hidden", "dec_hidden", "z_dim", "num_mixtures", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SketchRNNConfig.{name}: expected an integer >= 1, found {value}")
        if self.cell == "hyper":
            for name in ("hyper_hidden", "hyper_embedding"):
                if getattr(self, name) < 1:
                    raise ValueError(
                        f"SketchRNNConfig.{name}: expected >= 1, found {getattr(self, name)}"
                    )
        if not 0.0 <= self.recurrent_dropout < 1.0:
            raise ValueError(
                "SketchRNNConfig.recurrent_dropout: expected a drop probability in [0, 1), "
                f"found {self.recurrent_dropout}"
            )
        if self.scale_factor is not None and not (
            math.isfinite(self.scale_factor) and self.scale_factor > 0
        ):
            raise ValueError(
                f"SketchRNNConfig.scale_factor: expected None or > 0, found {self.scale_factor}"
            )


_PAPER = SketchRNNConfig(
    enc_hidden=256,
    dec_hidden=2048,
    z_dim=128,
    num_mixtures=20,
    cell="hyper",
    recurrent_dropout=0.1,
    hyper_hidden=256,
    hyper_embedding=32,
)
_SMALL = SketchRNNConfig(
    enc_hidden=64, dec_hidden=128, z_dim=32, num_mixtures=10, cell="lstm", recurrent_dropout=0.0
)
_BASE_CONFIGS: dict[str, SketchRNNConfig] = {
    # Appendix sec. 3: encoder 512 nodes (= 256 per direction, as the reference code's
    # enc_rnn_size=256 whose bidirectional state is 2 × 256), decoder 2048-unit HyperLSTM
    # (sec. 4), M = 20, N_z = 128, layer norm, recurrent dropout keep 0.9. The paper gives no
    # HyperLSTM sizes; 256 hyper units / 32-dim signals are the reference code's defaults.
    "paper": _PAPER,
    # The same with the layer-normalised LSTM decoder (the appendix's "Layer Normalization").
    "paper_layer_norm": replace(_PAPER, cell="layer_norm"),
    # The reference code's default hparams: 256 × 2 encoder, 512 decoder (plain LSTM cell with
    # recurrent dropout), M = 20, N_z = 128.
    "reference": replace(_PAPER, dec_hidden=512, cell="lstm"),
    # Not from the paper: trains in minutes on a CPU. Plain LSTM without recurrent dropout, so
    # the decoder runs as one fused nn.LSTM call.
    "small": _SMALL,
    # Not from the paper: small with the layer-norm cell and recurrent dropout (per-step loop).
    "small_layer_norm": replace(_SMALL, cell="layer_norm", recurrent_dropout=0.1),
}
#: Named configurations; ``<name>_decoder`` is the unconditional decoder-only model (sec. 3.3).
SKETCH_RNN_CONFIGS: dict[str, SketchRNNConfig] = {
    **_BASE_CONFIGS,
    **{f"{k}_decoder": replace(v, conditional=False) for k, v in _BASE_CONFIGS.items()},
}


def sketch_rnn_config(name: str, **overrides) -> SketchRNNConfig:
    """A named configuration with fields overridden (e.g. ``max_length``, ``scale_factor``)."""
    if name not in SKETCH_RNN_CONFIGS:
        raise ValueError(
            f"unknown sketch-rnn config {name!r}; choose one of {sorted(SKETCH_RNN_CONFIGS)}"
        )
    return replace(SKETCH_RNN_CONFIGS[name], **overrides)


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
def _orthogonal_blocks_(weight: Tensor, blocks: int) -> None:
    """Orthogonal init of each of the ``blocks`` gate blocks of a ``(blocks·H, H)`` matrix
    (the reference code's ``lstm_ortho_initializer``)."""
    with torch.no_grad():
        for block in weight.chunk(blocks, 0):
            nn.init.orthogonal_(block)


def _cell_update(
    gates: Tensor, c: Tensor, drop: float, training: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM update from (normalised) gate pre-activations ``(B, 4, H)`` in order ``i, f, g, o``,
    with recurrent dropout on ``tanh(g)`` only (Semeniuta et al. 2016): returns ``(c', o, g)``."""
    i, f, g, o = gates.unbind(1)
    g = torch.tanh(g)
    if training and drop > 0:
        g = F.dropout(g, drop, training=True)
    c = torch.sigmoid(f + FORGET_BIAS) * c + torch.sigmoid(i) * g
    return c, o, g


class LSTMDecoderCell(nn.Module):
    """Plain LSTM (``cell="lstm"``): fused ``nn.LSTM`` unless recurrent dropout is active.

    The per-step path uses the very same ``nn.LSTM`` weights. The forget-gate bias starts at
    1.0 (in ``bias_ih``), the recurrent weights orthogonal per gate (reference code's init).
    """

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.hidden_size, self.dropout = hidden_size, dropout
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        with torch.no_grad():
            nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
            _orthogonal_blocks_(self.lstm.weight_hh_l0, 4)
            self.lstm.bias_ih_l0.zero_()
            self.lstm.bias_hh_l0.zero_()
            self.lstm.bias_ih_l0[hidden_size : 2 * hidden_size] = FORGET_BIAS

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Sizes of the state tensors ``(h, c)``."""
        return (self.hidden_size, self.hidden_size)

    def uses_fused(self, training: bool) -> bool:
        return not (training and self.dropout > 0)

    def project(self, x: Tensor) -> Tensor:
        """Input contribution ``W_ih x + b_ih + b_hh`` (..., 4H), for all steps at once."""
        return F.linear(x, self.lstm.weight_ih_l0, self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0)

    def step_projected(self, xw: Tensor, state: tuple[Tensor, ...], training: bool):
        h, c = state
        gates = xw + F.linear(h, self.lstm.weight_hh_l0)
        i, f, g, o = gates.unflatten(-1, (4, self.hidden_size)).unbind(1)
        # PyTorch's LSTM: the forget bias lives in bias_ih, so no FORGET_BIAS here
        g = torch.tanh(g)
        if training and self.dropout > 0:
            g = F.dropout(g, self.dropout, training=True)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * g
        return torch.sigmoid(o) * torch.tanh(c), c

    def step(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        """One step: ``x`` (B, I) → new state ``(h, c)``."""
        return self.step_projected(self.project(x), state, training)

    def sequence(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        """Run over ``x`` (B, T, I): returns ``h`` of every step (B, T, H) and the last state."""
        if self.uses_fused(training):
            h0, c0 = (s.unsqueeze(0).contiguous() for s in state)
            out, (h, c) = self.lstm(x, (h0, c0))
            return out, (h[0], c[0])
        outs = []
        # unbind, not xw[:, t]: indexing's backward would materialise a full-size gradient per
        # step (quadratic in T)
        for xw_t in self.project(x).unbind(1):
            state = self.step_projected(xw_t, state, training)
            outs.append(state[0])
        return torch.stack(outs, 1), state


class LayerNormLSTMCell(nn.Module):
    """Layer-normalised LSTM with recurrent dropout (``cell="layer_norm"``; Ba et al. 2016,
    Semeniuta et al. 2016, reference code's ``LayerNormLSTMCell``).

    ``gates = LN(W_x x + W_h h)`` per gate block (the LN shift is the bias),
    ``c' = σ(f + 1) c + σ(i) drop(tanh g)``, ``h' = tanh(LN(c')) σ(o)``.
    """

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.hidden_size, self.dropout = hidden_size, dropout
        self.weight_x = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_h = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.ln_weight = nn.Parameter(torch.ones(4, hidden_size))
        self.ln_bias = nn.Parameter(torch.zeros(4, hidden_size))
        self.ln_c_weight = nn.Parameter(torch.ones(hidden_size))
        self.ln_c_bias = nn.Parameter(torch.zeros(hidden_size))
        nn.init.xavier_uniform_(self.weight_x)
        _orthogonal_blocks_(self.weight_h, 4)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size, self.hidden_size)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_x)

    def update(self, pre: Tensor, c: Tensor, training: bool) -> tuple[Tensor, Tensor]:
        """From gate pre-activations ``(B, 4H)`` and ``c``: the new ``(h, c)``."""
        gates = F.layer_norm(
            pre.unflatten(-1, (4, self.hidden_size)), (self.hidden_size,), eps=LAYER_NORM_EPS
        )
        gates = gates * self.ln_weight + self.ln_bias
        c, o, _ = _cell_update(gates, c, self.dropout, training)
        c_norm = F.layer_norm(
            c, (self.hidden_size,), self.ln_c_weight, self.ln_c_bias, eps=LAYER_NORM_EPS
        )
        return torch.tanh(c_norm) * torch.sigmoid(o), c

    def step_projected(self, xw: Tensor, state: tuple[Tensor, ...], training: bool):
        h, c = state
        return self.update(xw + F.linear(h, self.weight_h), c, training)

    def step(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        return self.step_projected(self.project(x), state, training)

    def sequence(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        outs = []
        # unbind, not xw[:, t]: indexing's backward would materialise a full-size gradient per
        # step (quadratic in T)
        for xw_t in self.project(x).unbind(1):
            state = self.step_projected(xw_t, state, training)
            outs.append(state[0])
        return torch.stack(outs, 1), state


class HyperLSTMCell(nn.Module):
    """HyperLSTM (Ha, Dai & Le 2017, sec. 3.2; the paper's decoder, sec. 4), with layer norm and
    recurrent dropout as the reference code's ``HyperLSTMCell``.

    A layer-normalised LSTM of ``hyper_hidden`` units reads ``[x_i; h_{i−1}]``; from its output
    ``ĥ`` the signals ``z = W ĥ + b`` (``hyper_embedding`` dims) give per-unit scalings
    ``d(z) = W_d z`` of each gate's input part ``W_x x`` and recurrent part ``W_h h`` and a dynamic
    bias ``b(z_b)``: ``gate = LN(d_x ⊙ W_x x + d_h ⊙ W_h h + b(z_b) + b)``. Initialisation as the
    reference code: ``d ≡ 0.1`` and ``b(z_b) ≡ 0`` at the start.

    State: ``(h, c, ĥ, ĉ)``; only the recurrent dropout of the main cell is used (the reference
    code's ``hyper_use_recurrent_dropout=False``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        dropout: float = 0.0,
        hyper_hidden: int = 256,
        hyper_embedding: int = 32,
    ):
        super().__init__()
        self.input_size, self.hidden_size, self.dropout = input_size, hidden_size, dropout
        self.hyper_hidden, self.hyper_embedding = hyper_hidden, hyper_embedding
        h, e = hidden_size, hyper_embedding
        # the hyper LSTM reads [x; h]: its weight for x is hyper.weight_x, the one for h is stacked
        # under the main recurrent weight, so that one matmul of h serves both
        self.hyper = LayerNormLSTMCell(input_size, hyper_hidden, 0.0)
        self.weight_x = nn.Parameter(torch.empty(4 * h, input_size))
        self.weight_h = nn.Parameter(torch.empty(4 * h + 4 * hyper_hidden, h))
        self.bias = nn.Parameter(torch.zeros(4 * h))
        # signals z for the 8 scalings (4 gates × {input, recurrent}) and the 4 dynamic biases
        self.z_scale = nn.Linear(hyper_hidden, 8 * e)
        self.z_bias = nn.Linear(hyper_hidden, 4 * e, bias=False)
        self.scale_weight = nn.Parameter(torch.full((8, e, h), HYPER_INIT_GAMMA / e))
        self.bias_weight = nn.Parameter(torch.zeros(4, e, h))
        self.ln_weight = nn.Parameter(torch.ones(4, h))
        self.ln_bias = nn.Parameter(torch.zeros(4, h))
        self.ln_c_weight = nn.Parameter(torch.ones(h))
        self.ln_c_bias = nn.Parameter(torch.zeros(h))
        nn.init.xavier_uniform_(self.weight_x)
        _orthogonal_blocks_(self.weight_h[: 4 * h], 4)
        with torch.no_grad():
            nn.init.xavier_uniform_(self.weight_h[4 * h :])
            self.z_scale.weight.zero_()
            self.z_scale.bias.fill_(1.0)
            nn.init.normal_(self.z_bias.weight, std=0.01)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Sizes of ``(h, c, ĥ, ĉ)``."""
        return (self.hidden_size, self.hidden_size, self.hyper_hidden, self.hyper_hidden)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Input contributions ``W_x x`` of the main cell and of the hyper cell, for all steps at
        once."""
        return F.linear(x, self.weight_x), self.hyper.project(x)

    def step_projected(self, xw: tuple[Tensor, Tensor], state: tuple[Tensor, ...], training: bool):
        h, c, hyper_h, hyper_c = state
        main_x, hyper_x = xw
        e, n = self.hyper_embedding, self.hidden_size
        h_main, h_hyper = F.linear(h, self.weight_h).split([4 * n, 4 * self.hyper_hidden], -1)
        hyper_pre = hyper_x + h_hyper + F.linear(hyper_h, self.hyper.weight_h)
        hyper_h, hyper_c = self.hyper.update(hyper_pre, hyper_c, False)
        scale = torch.einsum(
            "bke,keh->bkh", self.z_scale(hyper_h).unflatten(-1, (8, e)), self.scale_weight
        )
        dyn_bias = torch.einsum(
            "bke,keh->bkh", self.z_bias(hyper_h).unflatten(-1, (4, e)), self.bias_weight
        )
        x_part = main_x.unflatten(-1, (4, n))
        h_part = h_main.unflatten(-1, (4, n))
        pre = scale[:, :4] * x_part + scale[:, 4:] * h_part + dyn_bias + self.bias.view(4, n)
        gates = F.layer_norm(pre, (n,), eps=LAYER_NORM_EPS) * self.ln_weight + self.ln_bias
        c, o, _ = _cell_update(gates, c, self.dropout, training)
        c_norm = F.layer_norm(c, (n,), self.ln_c_weight, self.ln_c_bias, eps=LAYER_NORM_EPS)
        return torch.tanh(c_norm) * torch.sigmoid(o), c, hyper_h, hyper_c

    def step(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        return self.step_projected(self.project(x), state, training)

    def sequence(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        main_x, hyper_x = self.project(x)
        outs = []
        for xw_t in zip(main_x.unbind(1), hyper_x.unbind(1), strict=True):
            state = self.step_projected(xw_t, state, training)
            outs.append(state[0])
        return torch.stack(outs, 1), state


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
