"""The generator of translated and cluttered translated MNIST (RAM, Mnih et al. 2014, sec. 4.1;
DRAW sec. 4.1).

Recipe. A ``28 × 28`` MNIST digit is placed on a black ``canvas × canvas`` image at a uniformly
random integer top-left position with the whole digit inside. Cluttered variants then add
``num_clutter`` pieces of clutter: each is a ``clutter_size × clutter_size`` crop (uniformly random
position inside the source digit, so a crop may be blank) of a uniformly random *other* digit of
the same split, pasted at a uniformly random position fully inside the canvas. Intensities are
combined by the pixel-wise **maximum**, so values stay in ``[0, 1]`` and the digit's own pixels are
never dimmed or saturated by overlaps (DeepMind's ``mnist-cluttered`` generator adds and clips at
1 instead; RAM's paper does not say). Position tensors are top-left ``(row, column)``, 0-based.

The named sets and their fixed evaluation splits are in :mod:`tasks.data.cluttered_sets`;
on-the-fly training batches come from :class:`tasks.data.batches.ClutteredBatches`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .core import DataError

__all__ = [
    "DigitArray",
    "Layout",
    "check_digits",
    "cluttered_mnist",
    "gather_digits",
    "render_layout",
    "sample_layout",
    "translated_mnist",
]

DigitArray = np.ndarray | Tensor  # (N, h, w) uint8 in 0..255 or float in [0, 1]
_CHUNK = 2048


class Layout(NamedTuple):
    """Where everything goes, for ``N`` canvases with ``K`` clutter pieces each (all int64)."""

    positions: Tensor  # (N, 2) top-left (row, col) of the digit on the canvas
    clutter_sources: Tensor  # (N, K) index of each piece's source digit in the clutter source
    clutter_crops: Tensor  # (N, K, 2) top-left (row, col) of each crop within its source digit
    clutter_positions: Tensor  # (N, K, 2) top-left (row, col) of each piece on the canvas

    def select(self, index: Tensor | slice) -> Layout:
        """The layouts of the canvases ``index``."""
        return Layout(*(t[index] for t in self))


# ----------------------------------------------------------------------------- helpers
def check_digits(digits: DigitArray, what: str) -> None:
    """Raise :class:`DataError` unless ``digits`` is an ``(N, h, w)`` uint8 array/tensor or
    floats in ``[0, 1]``; ``what`` names it in the message."""
    if not isinstance(digits, np.ndarray | Tensor) or digits.ndim != 3:
        raise DataError(
            f"{what}: expected an (N, height, width) array or tensor, found "
            f"{type(digits).__name__} of shape {getattr(digits, 'shape', None)}"
        )
    if isinstance(digits, np.ndarray):
        is_uint8, is_float = digits.dtype == np.uint8, np.issubdtype(digits.dtype, np.floating)
        empty = digits.size == 0
    else:
        is_uint8, is_float = digits.dtype == torch.uint8, digits.is_floating_point()
        empty = digits.numel() == 0
    if is_uint8:
        return
    if not is_float:
        raise DataError(f"{what}: expected uint8 or floating-point pixels, found {digits.dtype}")
    if not empty and (digits.min() < 0 or digits.max() > 1):
        raise DataError(
            f"{what}: expected float intensities in [0, 1], found range "
            f"[{float(digits.min())}, {float(digits.max())}]"
        )


def gather_digits(source: DigitArray, *index: Tensor) -> Tensor:
    """``source[index]`` as float32 in ``[0, 1]`` (uint8 is divided by 255)."""
    if isinstance(source, np.ndarray):
        out = torch.from_numpy(np.ascontiguousarray(source[tuple(i.numpy() for i in index)]))
    else:
        out = source[index]
    if out.dtype == torch.uint8:
        return out.float().div_(255.0)
    return out.float()


def _randint(high: int, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    return torch.randint(0, high, shape, generator=generator)


def _check_range(what: str, values: Tensor, high: int) -> None:
    """Raise unless ``0 <= values <= high`` (so every piece lies inside its image)."""
    if values.numel() and (values.min() < 0 or values.max() > high):
        raise DataError(
            f"layout: expected {what} in 0..{high}, found {int(values.min())}..{int(values.max())}"
        )


def _paste_max(canvas: Tensor, patches: Tensor, top_left: Tensor) -> None:
    """In place: ``canvas[n, r0 + i, c0 + j] = max(canvas[...], patches[n, i, j])``.

    ``canvas`` is ``(N, H, W)``, ``patches`` ``(N, h, w)``, ``top_left`` ``(N, 2)``; each patch must
    lie inside the canvas (indices are then unique within one call).
    """
    n, h, w = patches.shape
    batch = torch.arange(n)[:, None, None]
    rows = (top_left[:, 0, None] + torch.arange(h))[:, :, None]
    cols = (top_left[:, 1, None] + torch.arange(w))[:, None, :]
    canvas[batch, rows, cols] = torch.maximum(canvas[batch, rows, cols], patches)


# ----------------------------------------------------------------------------- generation
def sample_layout(
    num: int,
    *,
    canvas: int,
    digit_shape: tuple[int, int] = (28, 28),
    num_clutter: int = 0,
    clutter_size: int = 8,
    num_sources: int = 0,
    source_shape: tuple[int, int] = (28, 28),
    exclude: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Layout:
    """Draw the random placement of ``num`` canvases (see the module docstring for the recipe).

    Clutter sources are uniform over ``range(num_sources)``, skipping ``exclude[n]`` (the index of
    canvas ``n``'s own digit in the clutter source, when both come from the same pool). Draw
    order: digit rows, digit columns, sources, crop rows/columns, piece rows/columns.
    """
    if num < 0:
        raise DataError(f"layout: expected num >= 0 canvases, found {num}")
    if min(digit_shape) < 1 or max(digit_shape) > canvas:
        raise DataError(
            f"layout: expected the digit ({digit_shape[0]}x{digit_shape[1]}) to fit the "
            f"{canvas}x{canvas} canvas"
        )
    if num_clutter < 0:
        raise DataError(f"layout: expected num_clutter >= 0, found {num_clutter}")
    if num_clutter > 0:
        if not 1 <= clutter_size <= min(canvas, *source_shape):
            raise DataError(
                f"layout: expected 1 <= clutter_size <= min(canvas, source sides) = "
                f"{min(canvas, *source_shape)}, found {clutter_size}"
            )
        needed = 1 if exclude is None else 2
        if num_sources < needed:
            raise DataError(
                f"layout: clutter needs at least {needed} source digit(s)"
                + (" (one is excluded per canvas)" if exclude is not None else "")
                + f", found {num_sources}"
            )
        if exclude is not None and exclude.shape != (num,):
            raise DataError(
                f"layout: expected exclude of shape ({num},), found {tuple(exclude.shape)}"
            )
    k = num_clutter
    positions = torch.stack(
        [
            _randint(canvas - digit_shape[0] + 1, (num,), generator),
            _randint(canvas - digit_shape[1] + 1, (num,), generator),
        ],
        -1,
    )
    if k == 0:
        empty = torch.zeros(num, 0, dtype=torch.int64)
        return Layout(positions, empty, empty.view(num, 0, 2), empty.view(num, 0, 2))
    if exclude is None:
        sources = _randint(num_sources, (num, k), generator)
    else:
        sources = _randint(num_sources - 1, (num, k), generator)
        sources += (sources >= exclude.to(torch.int64)[:, None]).to(torch.int64)
    crops = torch.stack(
        [
            _randint(source_shape[0] - clutter_size + 1, (num, k), generator),
            _randint(source_shape[1] - clutter_size + 1, (num, k), generator),
        ],
        -1,
    )
    places = _randint(canvas - clutter_size + 1, (num, k, 2), generator)
    return Layout(positions, sources, crops, places)


def render_layout(
    digits: DigitArray,
    layout: Layout,
    *,
    canvas: int,
    clutter_source: DigitArray | None = None,
    clutter_size: int = 8,
) -> Tensor:
    """Draw ``digits`` ``(N, h, w)`` and their clutter as laid out by ``layout``.

    Returns float32 ``(N, canvas, canvas)`` in ``[0, 1]``; pieces are combined by maximum.
    """
    check_digits(digits, "digits")
    n, h, w = digits.shape
    if layout.positions.shape != (n, 2):
        raise DataError(
            f"layout: expected positions of shape ({n}, 2) for {n} digits, found "
            f"{tuple(layout.positions.shape)}"
        )
    k = layout.clutter_sources.shape[1]
    _check_range("digit positions", layout.positions, canvas - max(h, w))
    if k:
        if clutter_source is None:
            raise DataError(f"layout has {k} clutter pieces per canvas but no clutter_source")
        check_digits(clutter_source, "clutter_source")
        m, sh, sw = clutter_source.shape
        _check_range("clutter sources", layout.clutter_sources, m - 1)
        _check_range("clutter crops", layout.clutter_crops, min(sh, sw) - clutter_size)
        _check_range("clutter positions", layout.clutter_positions, canvas - clutter_size)
    images = torch.zeros(n, canvas, canvas)
    offsets = torch.arange(clutter_size)
    for start in range(0, n, _CHUNK):
        rows = slice(start, start + _CHUNK)
        part, sub = images[rows], layout.select(rows)  # `part` is a view
        _paste_max(
            part, gather_digits(digits, torch.arange(start, start + len(part))), sub.positions
        )
        for j in range(k):
            crop_r = (sub.clutter_crops[:, j, 0, None] + offsets)[:, :, None]
            crop_c = (sub.clutter_crops[:, j, 1, None] + offsets)[:, None, :]
            pieces = gather_digits(
                clutter_source, sub.clutter_sources[:, j, None, None], crop_r, crop_c
            )
            _paste_max(part, pieces, sub.clutter_positions[:, j])
    return images


def translated_mnist(
    digits: DigitArray, *, canvas: int = 60, generator: torch.Generator | None = None
) -> Tensor:
    """RAM's translated MNIST: each digit at a uniformly random place fully inside a black
    ``canvas × canvas`` image; ``(N, h, w)`` uint8/float → float32 ``(N, canvas, canvas)``."""
    check_digits(digits, "digits")
    layout = sample_layout(
        digits.shape[0], canvas=canvas, digit_shape=tuple(digits.shape[1:]), generator=generator
    )
    return render_layout(digits, layout, canvas=canvas)


def cluttered_mnist(
    digits: DigitArray,
    clutter_source: DigitArray,
    *,
    canvas: int = 60,
    num_clutter: int = 4,
    clutter_size: int = 8,
    exclude: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """RAM's cluttered translated MNIST: a translated digit plus ``num_clutter`` random
    ``clutter_size²`` crops of random digits of ``clutter_source``, combined by maximum.

    Use 60/4 or 100/8 for the paper's sets. When ``digits`` are drawn from ``clutter_source``,
    pass their indices as ``exclude`` so no canvas gets clutter from its own digit. Returns float32
    ``(N, canvas, canvas)`` in ``[0, 1]``.
    """
    check_digits(digits, "digits")
    check_digits(clutter_source, "clutter_source")
    layout = sample_layout(
        digits.shape[0],
        canvas=canvas,
        digit_shape=tuple(digits.shape[1:]),
        num_clutter=num_clutter,
        clutter_size=clutter_size,
        num_sources=clutter_source.shape[0],
        source_shape=tuple(clutter_source.shape[1:]),
        exclude=exclude,
        generator=generator,
    )
    return render_layout(
        digits, layout, canvas=canvas, clutter_source=clutter_source, clutter_size=clutter_size
    )
