"""DRAW's selective attention: Gaussian filterbanks, read and write (Gregor et al. 2015, sec. 3).

Conventions. An image batch is ``(B, C, H, W)``; the paper's ``A × B`` image has width ``A = W``
and height ``B = H`` (it writes the read patch as ``F_Y x F_Xᵀ``, so ``x`` has ``H`` rows).
Pixel coordinates ``a ∈ {1, …, A}`` and ``b ∈ {1, …, B}`` are **1-based**, the only reading under
which Eq. 22's ``g_X = (A + 1)/2 · (g̃_X + 1)`` puts ``g̃_X = 0`` on the image centre. Subtract 1
to get 0-based pixel-centre coordinates (as used by the figures).

The same filters serve every colour channel (sec. 3.3).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# Keeps Z_X, Z_Y > 0 when a whole filter row falls outside the image (its response is then ~0).
FILTER_EPS = 1e-8
# Unnormalised filter weights below this are exactly 0 (see ``filterbank``).
FILTER_FLOOR = 1e-12
_LOG_FLOOR = math.log(FILTER_FLOOR) - 1.0  # clamp exponents here: exp() is then below the floor


class AttentionParams(NamedTuple):
    """Attention window in 1-based pixel coordinates, each of shape ``(B,)``."""

    g_x: Tensor  # grid centre, horizontal
    g_y: Tensor  # grid centre, vertical
    delta: Tensor  # stride between adjacent filters
    sigma2: Tensor  # isotropic filter variance
    gamma: Tensor  # intensity

    def box(self, size: int) -> Tensor:
        """``(B, 4)`` box ``(x_min, y_min, x_max, y_max)`` through the outermost filter centres,
        in 0-based pixel-centre coordinates (Eqs. 19–20 with ``i = 1`` and ``i = N``)."""
        half = (size / 2 - 0.5) * self.delta
        return torch.stack(
            [self.g_x - half - 1, self.g_y - half - 1, self.g_x + half - 1, self.g_y + half - 1], -1
        )


def attention_params(raw: Tensor, height: int, width: int, size: int) -> AttentionParams:
    """Eqs. 21–24: map ``(g̃_X, g̃_Y, log σ², log δ̃, log γ) = W(h)`` to the attention window.

    ``raw`` has shape ``(B, 5)``. For ``size == 1`` the stride is irrelevant (Eqs. 19–20 put the
    single filter on the grid centre), and the ``N − 1`` of Eq. 24 is replaced by 1.
    """
    gx_t, gy_t, log_sigma2, log_delta_t, log_gamma = raw.unbind(-1)
    g_x = (width + 1) / 2 * (gx_t + 1)  # Eq. 22 (A = width)
    g_y = (height + 1) / 2 * (gy_t + 1)  # Eq. 23 (B = height)
    delta = (max(width, height) - 1) / max(size - 1, 1) * log_delta_t.exp()  # Eq. 24
    return AttentionParams(g_x, g_y, delta, log_sigma2.exp(), log_gamma.exp())


def filter_centres(g: Tensor, delta: Tensor, size: int) -> Tensor:
    """Eqs. 19–20: ``μ^i = g + (i − N/2 − 0.5) δ`` for ``i = 1 … N``; returns ``g.shape + (N,)``
    (``g`` is ``(B,)`` or ``(B, 2)`` for both axes at once, ``delta`` is ``(B,)``)."""
    i = torch.arange(1, size + 1, dtype=g.dtype, device=g.device)
    offsets = (i - size / 2 - 0.5) * delta.view(-1, *([1] * g.dim()))
    return g.unsqueeze(-1) + offsets


class _Filterbank(torch.autograd.Function):
    """Eqs. 25–26 with a hand-written backward: the same values and gradients as autograd through
    the formula, in a third of the operations (the filterbanks are built 4 times per DRAW step,
    and the per-operation overhead, not arithmetic, is what they cost)."""

    @staticmethod
    def forward(ctx, centres: Tensor, sigma2: Tensor, length: int) -> Tensor:
        a = torch.arange(1, length + 1, dtype=centres.dtype, device=centres.device)
        d = a - centres.unsqueeze(-1)  # (B, N, L)
        s2 = sigma2.view(-1, 1, 1)
        u = d.square().div_(2 * s2).neg_()  # the exponent −d²/2σ²
        f = F.threshold(u.clamp_min(_LOG_FLOOR).exp_(), FILTER_FLOOR, 0.0)
        total = f.sum(-1, keepdim=True)
        f = f.div_(total.clamp_min(FILTER_EPS))
        ctx.save_for_backward(d, u, f, s2, total > FILTER_EPS)
        return f

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        d, u, f, s2, normalised = ctx.saved_tensors
        # ∂L/∂u = F (G − [Z > ε] Σ_a G F): the softmax-like normalisation, then exp.
        g_u = (grad - (grad * f).sum(-1, keepdim=True).mul_(normalised)).mul_(f)
        g_centres = (g_u * d).sum(-1).div_(s2.view(-1, 1))  # ∂u/∂μ = d / σ²
        g_sigma2 = (g_u * u).sum((-1, -2)).div_(s2.view(-1)).neg_()  # ∂u/∂σ² = −u / σ²
        return g_centres, g_sigma2, None


def filterbank(centres: Tensor, sigma2: Tensor, length: int) -> Tensor:
    """Eqs. 25–26: ``F[i, a] = exp(−(a − μ^i)² / 2σ²) / Z`` with rows normalised to sum to one.

    ``centres`` is ``(B, N)``, ``sigma2`` is ``(B,)``; returns ``(B, N, length)`` over the 1-based
    pixel positions ``a = 1 … length``. A row whose filter lies entirely outside the image sums to
    ~0 instead of 1 (``Z`` is floored at ``FILTER_EPS``).

    Weights ``exp(·) < FILTER_FLOOR`` (1e-12) are set to exactly 0 before normalising, and the
    exponent is clamped first. Both are for speed on CPUs: ``exp`` of arguments below ≈ −87 takes
    a slow path, and weights in float32's subnormal range (< 1.2e-38) make every product they
    enter (the read and write matmuls and their backward) 10–20× slower, which was 27% of a
    DRAW MNIST training step. The change to a row whose centre lies on the image is < 1e-12.
    The backward is written out (:class:`_Filterbank`); ``tests/test_attention.py`` checks it
    against autograd through the formula.
    """
    return _Filterbank.apply(centres, sigma2, length)


def filterbanks(
    params: AttentionParams, height: int, width: int, size: int
) -> tuple[Tensor, Tensor]:
    """The horizontal ``F_X`` ``(B, N, W)`` and vertical ``F_Y`` ``(B, N, H)`` filterbanks (on a
    square image both in one call)."""
    if height == width:
        centres = filter_centres(torch.stack([params.g_x, params.g_y], -1), params.delta, size)
        f = filterbank(centres.flatten(1), params.sigma2, width)
        return f[:, :size], f[:, size:]
    f_x = filterbank(filter_centres(params.g_x, params.delta, size), params.sigma2, width)
    f_y = filterbank(filter_centres(params.g_y, params.delta, size), params.sigma2, height)
    return f_x, f_y


def read_patch(image: Tensor, f_x: Tensor, f_y: Tensor, gamma: Tensor) -> Tensor:
    """One term of Eq. 27: ``γ F_Y x F_Xᵀ`` per channel; ``(B, C, H, W) → (B, C, N, N)``
    (two batched matmuls, the ``(B, N, H)`` filters broadcast over the channels)."""
    patch = f_y.unsqueeze(1) @ image @ f_x.transpose(1, 2).unsqueeze(1)
    return gamma[:, None, None, None] * patch


def write_patch(patch: Tensor, f_x: Tensor, f_y: Tensor, gamma: Tensor) -> Tensor:
    """Eq. 29: ``(1/γ̂) F̂_Yᵀ w F̂_X`` per channel; ``(B, C, N, N) → (B, C, H, W)`` (two batched
    matmuls; the ``1/γ̂`` is applied to the ``N × N`` patch, not the image)."""
    scaled = patch / gamma[:, None, None, None]
    return f_y.transpose(1, 2).unsqueeze(1) @ scaled @ f_x.unsqueeze(1)


def start_window(linear: nn.Linear, height: int, width: int, size: int, stride: float) -> None:
    """Set the bias of the attention layer ``W`` (Eq. 21) so that, for ``h = 0``, the window is
    centred (``g̃ = 0``) with its filters ``stride`` pixels apart (Eq. 24) and ``σ = stride / 2``
    (each filter averages the stretch between its neighbours) at intensity ``γ = 1``.

    Not in the paper (which initialises nothing specially): at ``W = 0`` Eq. 24 spreads an
    ``N × N`` window over the whole image, so a 2×2 read of MNIST starts with its filter centres
    at pixels 1.8 and 27.3, outside every digit."""
    if not stride > 0:
        raise ValueError(f"read window stride: expected > 0 pixels, found {stride}")
    unit = (max(width, height) - 1) / max(size - 1, 1)  # δ at log δ̃ = 0
    with torch.no_grad():
        linear.bias.copy_(
            torch.tensor([0.0, 0.0, 2 * math.log(stride / 2), math.log(stride / unit), 0.0])
        )


class AttentiveRead(nn.Module):
    """Eq. 27: read two ``N × N`` patches (image and error image) with shared filters.

    The five attention parameters come from ``W(h^dec_{t−1})`` (Eq. 21). ``start_stride``
    (pixels; ``None``: PyTorch's default init, as the paper) starts the window on the image
    centre with that stride (:func:`start_window`).
    """

    def __init__(
        self,
        hidden_size: int,
        channels: int,
        height: int,
        width: int,
        size: int,
        start_stride: float | None = None,
    ):
        super().__init__()
        self.channels, self.height, self.width, self.size = channels, height, width, size
        self.linear = nn.Linear(hidden_size, 5)
        if start_stride is not None:
            start_window(self.linear, height, width, size, start_stride)
        self.output_size = 2 * channels * size * size

    def window(self, h_dec: Tensor) -> AttentionParams:
        return attention_params(self.linear(h_dec), self.height, self.width, self.size)

    def forward(self, x: Tensor, x_err: Tensor, h_dec: Tensor) -> Tensor:
        params = self.window(h_dec)
        f_x, f_y = filterbanks(params, self.height, self.width, self.size)
        patches = [read_patch(img, f_x, f_y, params.gamma) for img in (x, x_err)]
        return torch.cat(patches, 1).flatten(1)


class PlainRead(nn.Module):
    """Eq. 17: without attention, read the whole image and error image."""

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        self.output_size = 2 * channels * height * width

    def forward(self, x: Tensor, x_err: Tensor, h_dec: Tensor) -> Tensor:
        return torch.cat([x.flatten(1), x_err.flatten(1)], 1)


class AttentiveWrite(nn.Module):
    """Eqs. 28–29: ``w_t = W(h^dec_t)``, written with transposed filters and intensity ``1/γ̂``."""

    def __init__(self, hidden_size: int, channels: int, height: int, width: int, size: int):
        super().__init__()
        self.channels, self.height, self.width, self.size = channels, height, width, size
        self.patch = nn.Linear(hidden_size, channels * size * size)  # Eq. 28
        self.window_linear = nn.Linear(hidden_size, 5)  # Eq. 21 for (γ̂, F̂_X, F̂_Y)

    def window(self, h_dec: Tensor) -> AttentionParams:
        return attention_params(self.window_linear(h_dec), self.height, self.width, self.size)

    def forward(self, h_dec: Tensor) -> tuple[Tensor, AttentionParams]:
        params = self.window(h_dec)
        f_x, f_y = filterbanks(params, self.height, self.width, self.size)
        w = self.patch(h_dec).view(-1, self.channels, self.size, self.size)
        return write_patch(w, f_x, f_y, params.gamma), params


class PlainWrite(nn.Module):
    """Eq. 18: without attention, ``write(h^dec_t) = W(h^dec_t)`` over the whole canvas."""

    def __init__(self, hidden_size: int, channels: int, height: int, width: int):
        super().__init__()
        self.shape = (channels, height, width)
        self.linear = nn.Linear(hidden_size, channels * height * width)

    def forward(self, h_dec: Tensor) -> tuple[Tensor, None]:
        return self.linear(h_dec).view(-1, *self.shape), None
