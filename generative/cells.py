"""sketch-rnn's decoder cells (Ha & Eck 2017, appendix sec. 3), kept apart from the model (as the
reference code keeps its cells in ``rnn.py``); :func:`generative.sketch_rnn.make_cell` builds the
one a configuration names.

Decoder cells (``config.cell``; all use PyTorch's gate order ``i, f, g, o`` and forget-gate bias
1.0, as the reference code's ``forget_bias``):

* ``"lstm"`` (:class:`LSTMDecoderCell`) — a plain LSTM. With recurrent dropout off (or in eval mode)
  it runs as one fused ``nn.LSTM`` call; with recurrent dropout during training it runs step by step
  on the same weights (measured on one CPU thread, decoder forward + backward: 2.4× slower than
  fused at 128 units, B = 100, N_max = 250; 2.4× at 2048 units, B = 20, N_max = 60).
* ``"layer_norm"`` (:class:`LayerNormLSTMCell`) — layer-normalised LSTM (Ba et al. 2016) with
  recurrent dropout without memory loss (Semeniuta et al. 2016): dropout on the cell update
  ``g = tanh(·)`` only (appendix sec. 3).
* ``"hyper"`` (:class:`HyperLSTMCell`) — HyperLSTM (Ha et al. 2017, "HyperNetworks", the paper's
  decoder, sec. 4): a small layer-normalised LSTM reads ``[x_i; h_{i−1}]`` and emits per-step
  scalings of the main LSTM's input and recurrent pre-activations and a dynamic bias
  (memory-efficient weight scaling, HyperNetworks sec. 3.2), followed by layer norm and recurrent
  dropout as above. At the paper's 2048 units it costs 4.3× the fused LSTM and 1.6× the layer-norm
  LSTM per decoder forward + backward (B = 20, N_max = 60, one thread;
  ``benchmarks/sketch_rnn_step.py --cells``).

Every cell offers ``state_sizes``, ``project(x)`` (the input contributions of all steps at once),
``step_projected(xw, state, training)``, ``step(x, state, training)`` and
``sequence(x, state, training)`` (``h`` of every step and the last state); the last two come from
their common base :class:`DecoderCell`. ``dropout`` is the
recurrent **drop** probability and only acts when ``training``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DecoderCell", "HyperLSTMCell", "LSTMDecoderCell", "LayerNormLSTMCell"]

FORGET_BIAS = 1.0  # reference code's forget_bias, added to the forget gate pre-activation
LAYER_NORM_EPS = 1e-3  # reference code's layer_norm epsilon
HYPER_INIT_GAMMA = 0.1  # HyperLSTM scaling at initialisation (recurrent batch-norm trick)


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


class DecoderCell(nn.Module):
    """Base of the decoder cells: :meth:`step` and :meth:`sequence` from the subclass's
    ``project`` and ``step_projected``."""

    def project(self, x: Tensor) -> Any:
        raise NotImplementedError

    def step_projected(self, xw: Any, state: tuple[Tensor, ...], training: bool):
        raise NotImplementedError

    def projected_steps(self, xw: Any) -> Iterable[Any]:
        """The per-step slices of ``project(x)`` for ``x`` (B, T, I)."""
        # unbind, not xw[:, t]: indexing's backward would materialise a full-size gradient per
        # step (quadratic in T)
        return xw.unbind(1)

    def step(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        """One step: ``x`` (B, I) → the new state."""
        return self.step_projected(self.project(x), state, training)

    def sequence(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        """Run over ``x`` (B, T, I): returns ``h`` of every step (B, T, H) and the last state."""
        outs = []
        for xw_t in self.projected_steps(self.project(x)):
            state = self.step_projected(xw_t, state, training)
            outs.append(state[0])
        return torch.stack(outs, 1), state


class LSTMDecoderCell(DecoderCell):
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

    def sequence(self, x: Tensor, state: tuple[Tensor, ...], training: bool = False):
        """Run over ``x`` (B, T, I): returns ``h`` of every step (B, T, H) and the last state."""
        if self.uses_fused(training):
            h0, c0 = (s.unsqueeze(0).contiguous() for s in state)
            out, (h, c) = self.lstm(x, (h0, c0))
            return out, (h[0], c[0])
        return super().sequence(x, state, training)


class LayerNormLSTMCell(DecoderCell):
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


class HyperLSTMCell(DecoderCell):
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

    def projected_steps(self, xw: tuple[Tensor, Tensor]) -> Iterable[tuple[Tensor, Tensor]]:
        main_x, hyper_x = xw
        return zip(main_x.unbind(1), hyper_x.unbind(1), strict=True)
