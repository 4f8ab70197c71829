"""Translated and cluttered translated MNIST of RAM (Mnih et al. 2014, sec. 4.1; DRAW sec. 4.1).

Recipe. A ``28 × 28`` MNIST digit is placed on a black ``canvas × canvas`` image at a uniformly
random integer top-left position with the whole digit inside. Cluttered variants then add
``num_clutter`` pieces of clutter: each is a ``clutter_size × clutter_size`` crop (uniformly random
position inside the source digit, so a crop may be blank) of a uniformly random *other* digit of
the same split, pasted at a uniformly random position fully inside the canvas. Intensities are
combined by the pixel-wise **maximum**, so values stay in ``[0, 1]`` and the digit's own pixels are
never dimmed or saturated by overlaps (DeepMind's ``mnist-cluttered`` generator adds and clips at
1 instead; RAM's paper does not say). Position tensors are top-left ``(row, column)``, 0-based.

Named sets (``CLUTTERED_SPECS``): ``mnist_translated_60`` (60×60, no clutter, Table 1b),
``mnist_cluttered_60`` (60×60, 4 pieces, Table 2a) and ``mnist_cluttered_100`` (100×100,
8 pieces, Table 2b; also DRAW's Table 1), all with 8×8 clutter. Sources are the MNIST splits of
:mod:`tasks.data.mnist` (train = official train[:50000], valid = train[50000:], test = t10k).

* :func:`load_cluttered` — fixed sets: the canvas made from digit ``i`` of a split is a fixed
  function of ``(name, split, i)``; ``seed`` only selects the subset when ``num_examples`` is
  smaller than the split, so every run evaluates on the same images.
* :class:`ClutteredBatches` — on-the-fly training batches (as in the paper), a deterministic
  function of ``(seed, step)`` like :class:`inference.trainer.ImageBatches`.

Memory: float32 canvases take ``N · canvas² · 4`` bytes — 144 MB for 10,000 images at 60×60 and
400 MB at 100×100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from . import DataError, ImageData, check_split, derive_seed
from .mnist import mnist_split_arrays, subset_indices
from .paths import DataDir

__all__ = [
    "CLUTTERED_NAMES",
    "CLUTTERED_SPECS",
    "DEFAULT_NUM_EXAMPLES",
    "ClutterSpec",
    "ClutteredBatches",
    "Layout",
    "cluttered_mnist",
    "load_cluttered",
    "render_layout",
    "sample_layout",
    "translated_mnist",
]

DigitArray = np.ndarray | Tensor  # (N, h, w) uint8 in 0..255 or float in [0, 1]
DEFAULT_NUM_EXAMPLES = 10_000  # per split (all of valid/test; a seeded subset of train)
_CHUNK = 2048
_SPLIT_RULES = {
    "train": "official train[:50000]",
    "valid": "official train[50000:]",
    "test": "official t10k",
}


@dataclass(frozen=True)
class ClutterSpec:
    """Canvas side, number and side of the clutter pieces of a named set."""

    canvas: int
    num_clutter: int
    clutter_size: int = 8
    source: str = ""  # where the paper uses it


CLUTTERED_SPECS: dict[str, ClutterSpec] = {
    "mnist_translated_60": ClutterSpec(60, 0, 8, "RAM Table 1b"),
    "mnist_cluttered_60": ClutterSpec(60, 4, 8, "RAM Table 2a"),
    "mnist_cluttered_100": ClutterSpec(100, 8, 8, "RAM Table 2b, DRAW Table 1"),
}
CLUTTERED_NAMES: tuple[str, ...] = tuple(CLUTTERED_SPECS)


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
def _check_digits(digits: DigitArray, what: str) -> None:
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


def _gather(source: DigitArray, *index: Tensor) -> Tensor:
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
    _check_digits(digits, "digits")
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
        _check_digits(clutter_source, "clutter_source")
        m, sh, sw = clutter_source.shape
        _check_range("clutter sources", layout.clutter_sources, m - 1)
        _check_range("clutter crops", layout.clutter_crops, min(sh, sw) - clutter_size)
        _check_range("clutter positions", layout.clutter_positions, canvas - clutter_size)
    images = torch.zeros(n, canvas, canvas)
    offsets = torch.arange(clutter_size)
    for start in range(0, n, _CHUNK):
        rows = slice(start, start + _CHUNK)
        part, sub = images[rows], layout.select(rows)  # `part` is a view
        _paste_max(part, _gather(digits, torch.arange(start, start + len(part))), sub.positions)
        for j in range(k):
            crop_r = (sub.clutter_crops[:, j, 0, None] + offsets)[:, :, None]
            crop_c = (sub.clutter_crops[:, j, 1, None] + offsets)[:, None, :]
            pieces = _gather(clutter_source, sub.clutter_sources[:, j, None, None], crop_r, crop_c)
            _paste_max(part, pieces, sub.clutter_positions[:, j])
    return images


def translated_mnist(
    digits: DigitArray, *, canvas: int = 60, generator: torch.Generator | None = None
) -> Tensor:
    """RAM's translated MNIST: each digit at a uniformly random place fully inside a black
    ``canvas × canvas`` image; ``(N, h, w)`` uint8/float → float32 ``(N, canvas, canvas)``."""
    _check_digits(digits, "digits")
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
    _check_digits(digits, "digits")
    _check_digits(clutter_source, "clutter_source")
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


def _spec(name: str) -> ClutterSpec:
    if name not in CLUTTERED_SPECS:
        raise DataError(f"unknown cluttered dataset {name!r}; expected one of {CLUTTERED_NAMES}")
    return CLUTTERED_SPECS[name]


def _recipe(spec: ClutterSpec) -> dict:
    return {
        "canvas": spec.canvas,
        "digit_size": 28,
        "num_clutter": spec.num_clutter,
        "clutter_size": spec.clutter_size,
        "placement": "uniform integer top-left, digit fully inside the canvas",
        "clutter": "uniform crop of a uniform other digit of the same split, pasted fully inside",
        "combine": "pixel-wise maximum",
        "paper": spec.source,
    }


# ----------------------------------------------------------------------------- training batches
class ClutteredBatches:
    """On-the-fly (cluttered) translated MNIST mini-batches, a deterministic function of the step.

    Every epoch visits each source digit at most once (the ragged tail is dropped), in a
    permutation seeded by ``(seed, epoch)``; the layout of step ``s`` is drawn from a generator
    seeded by ``(seed, s)``, so a resumed run sees exactly the batches of an uninterrupted one.
    Clutter comes from the other digits of the same pool. ``batch(step)`` returns
    ``(images (B, 1, canvas, canvas) float32, labels (B,) int64)``.
    """

    def __init__(
        self,
        digits: DigitArray,
        labels: np.ndarray | Tensor,
        batch_size: int,
        *,
        canvas: int,
        num_clutter: int,
        clutter_size: int = 8,
        seed: int = 0,
    ):
        _check_digits(digits, "digits")
        if isinstance(labels, np.ndarray):
            labels = torch.from_numpy(labels.astype(np.int64))
        labels = labels.to(torch.int64)
        if labels.shape != (digits.shape[0],):
            raise DataError(
                f"labels: expected shape ({digits.shape[0]},), found {tuple(labels.shape)}"
            )
        if not 1 <= batch_size <= digits.shape[0]:
            raise DataError(
                f"batch size: expected 1..{digits.shape[0]} (the number of digits), "
                f"found {batch_size}"
            )
        self.digits, self.labels, self.batch_size, self.seed = digits, labels, batch_size, seed
        self.canvas, self.num_clutter, self.clutter_size = canvas, num_clutter, clutter_size
        self.batches_per_epoch = digits.shape[0] // batch_size  # the ragged tail is dropped
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.int64)
        # Fail now rather than at the first batch if the configuration is impossible.
        self._layout(torch.zeros(1, dtype=torch.int64), torch.Generator().manual_seed(0))

    @classmethod
    def from_name(
        cls,
        name: str,
        batch_size: int,
        *,
        split: str = "train",
        data_dir: DataDir = None,
        download: bool = False,
        seed: int = 0,
    ) -> ClutteredBatches:
        """Batches of the named set (one of ``CLUTTERED_NAMES``) from an MNIST split."""
        spec = _spec(name)
        check_split(name, split)
        digits, labels, _ = mnist_split_arrays(split, data_dir, download)
        return cls(
            digits,
            labels,
            batch_size,
            canvas=spec.canvas,
            num_clutter=spec.num_clutter,
            clutter_size=spec.clutter_size,
            seed=seed,
        )

    def _layout(self, index: Tensor, generator: torch.Generator | None) -> Layout:
        return sample_layout(
            len(index),
            canvas=self.canvas,
            digit_shape=tuple(self.digits.shape[1:]),
            num_clutter=self.num_clutter,
            clutter_size=self.clutter_size,
            num_sources=self.digits.shape[0],
            source_shape=tuple(self.digits.shape[1:]),
            exclude=index,
            generator=generator,
        )

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(derive_seed("cluttered_batches", self.seed, epoch))
            self._perm = torch.randperm(self.digits.shape[0], generator=gen)
            self._perm_epoch = epoch
        return self._perm

    def epoch(self, step: int) -> float:
        return step / self.batches_per_epoch

    def indices(self, step: int) -> Tensor:
        """Source-digit indices of the batch of ``step``."""
        epoch, i = divmod(step, self.batches_per_epoch)
        return self._permutation(epoch)[i * self.batch_size : (i + 1) * self.batch_size]

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        index = self.indices(step)
        gen = torch.Generator().manual_seed(
            derive_seed("cluttered_batches", self.seed, "step", step)
        )
        layout = self._layout(index, gen)
        images = render_layout(
            _gather(self.digits, index),
            layout,
            canvas=self.canvas,
            clutter_source=self.digits,
            clutter_size=self.clutter_size,
        )
        return images.unsqueeze(1), self.labels[index]


# ----------------------------------------------------------------------------- fixed sets
def load_cluttered(
    name: str,
    split: str,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    num_examples: int | None = None,
    seed: int = 0,
) -> ImageData:
    """The fixed ``split`` of named set ``name`` (one of ``CLUTTERED_NAMES``), one canvas per
    source digit; ``binarization="none"`` and ``labels`` are the digits' classes.

    ``num_examples`` (default ``DEFAULT_NUM_EXAMPLES``, capped at the split size: all of
    valid/test) selects a sorted seeded subset of the split's digits. ``extras``: ``index`` (N,)
    position of each digit in the split, and the :class:`Layout` fields ``positions``,
    ``clutter_sources`` (indices into the split), ``clutter_crops`` and ``clutter_positions``.
    """
    spec = _spec(name)
    check_split(name, split)
    if num_examples is not None and num_examples < 1:
        raise DataError(f"dataset {name!r}: num_examples must be >= 1, found {num_examples}")
    digits, labels, files = mnist_split_arrays(split, data_dir, download)
    total = digits.shape[0]
    n = min(DEFAULT_NUM_EXAMPLES, total) if num_examples is None else num_examples
    index = subset_indices(total, n, seed, f"{name}/{split}")
    index = torch.arange(total) if index is None else index
    gen_seed = derive_seed("cluttered", name, split)
    layout = sample_layout(
        total,
        canvas=spec.canvas,
        num_clutter=spec.num_clutter,
        clutter_size=spec.clutter_size,
        num_sources=total,
        exclude=torch.arange(total),
        generator=torch.Generator().manual_seed(gen_seed),
    ).select(index)
    images = render_layout(
        digits[index.numpy()],
        layout,
        canvas=spec.canvas,
        clutter_source=digits,
        clutter_size=spec.clutter_size,
    )
    info = {
        "dataset": name,
        "split": split,
        "files": files,
        "source": f"MNIST {_SPLIT_RULES[split]}",
        "recipe": _recipe(spec),
        "generation_seed": gen_seed,
        "generation_note": "canvas of digit i fixed by (name, split, i); independent of seed",
        "total_in_split": total,
        "num_examples": len(index),
        "subset": "all" if len(index) == total else f"seeded random subset (seed={seed}), sorted",
        "seed": seed,
        "size": spec.canvas,
        "binarization_note": "grey values in [0, 1], used directly",
    }
    extras = {"index": index, **layout._asdict()}
    labels_t = torch.from_numpy(labels[index.numpy()].astype(np.int64))
    return ImageData(name, split, images.unsqueeze(1), labels_t, "none", info, extras)
