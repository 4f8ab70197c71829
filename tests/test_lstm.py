"""generative.lstm: an LSTMCell step as one matrix product."""

import torch
from torch import nn

from generative.lstm import fused_step, fused_weights


def test_fused_step_equals_lstm_cell_values_and_gradients():
    torch.manual_seed(0)
    cell = nn.LSTMCell(7 + 3, 5).double()
    x, r = torch.randn(4, 7, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    state = (torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64))
    h_ref, c_ref = cell(torch.cat([x, r], 1), state)
    h, c = fused_step(fused_weights(cell), [x, r], state)  # the input given in two pieces
    torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-14)
    torch.testing.assert_close(c, c_ref, rtol=0, atol=1e-14)
    params = list(cell.parameters())
    ref = torch.autograd.grad((h_ref * 1.5 + c_ref**2).sum(), params)
    got = torch.autograd.grad((h * 1.5 + c**2).sum(), params)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_fused_weights_of_a_cell_without_bias():
    cell = nn.LSTMCell(3, 2, bias=False)
    x, state = torch.randn(2, 3), (torch.randn(2, 2), torch.randn(2, 2))
    for got, ref in zip(fused_step(fused_weights(cell), [x], state), cell(x, state), strict=True):
        torch.testing.assert_close(got, ref)
