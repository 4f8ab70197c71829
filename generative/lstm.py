"""An ``nn.LSTMCell`` step as one matrix product, for recurrences that run a cell many times.

PyTorch's CPU ``LSTMCell`` computes ``W_ih x + b_ih`` and ``W_hh h + b_hh`` as two matrix products,
each first copying its broadcast bias into the output, and then adds them. Here the weights are
concatenated once per sequence (:func:`fused_weights`) and every step is a single ``addmm`` of
``[x, h]`` (:func:`fused_step`): one bias copy, no sum of two ``(B, 4H)`` tensors, and one larger
product. The cell keeps its parameters (and so its ``state_dict``); values equal ``cell(x, (h, c))``
up to float rounding (the sum over ``[x, h]`` is taken in a different order).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class FusedWeights(NamedTuple):
    weight: Tensor  # (4H, I + H) = [W_ih, W_hh]
    bias: Tensor  # (4H,) = b_ih + b_hh


def fused_weights(cell: nn.LSTMCell) -> FusedWeights:
    """``[W_ih, W_hh]`` and ``b_ih + b_hh`` of ``cell`` (build once per sequence: gradients flow
    back through the concatenation to the cell's own parameters)."""
    weight = torch.cat([cell.weight_ih, cell.weight_hh], 1)
    if cell.bias:
        return FusedWeights(weight, cell.bias_ih + cell.bias_hh)
    return FusedWeights(weight, weight.new_zeros(weight.shape[0]))


def fused_step(
    weights: FusedWeights, inputs: list[Tensor], state: tuple[Tensor, Tensor]
) -> tuple[Tensor, Tensor]:
    """One LSTM step (PyTorch's gate order ``i, f, g, o``) on the concatenation of ``inputs`` (the
    cell's input, possibly in pieces) and ``h``; returns the new ``(h, c)``."""
    h, c = state
    gates = torch.addmm(weights.bias, torch.cat([*inputs, h], 1), weights.weight.t())
    size = h.shape[1]
    input_forget = gates[:, : 2 * size].sigmoid()
    update = gates[:, 2 * size : 3 * size].tanh()
    cell = input_forget[:, size:] * c + input_forget[:, :size] * update
    return gates[:, 3 * size :].sigmoid() * cell.tanh(), cell
