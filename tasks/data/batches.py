"""Mini-batch sources: deterministic functions of the training step.

Each has ``batch_size`` and ``batch(step)`` (the :class:`inference.trainer.BatchSource`
protocol), so a resumed run sees exactly the batches of an uninterrupted one:

* :class:`ImageBatches` — shuffled batches of an image tensor, optionally binarised per batch;
* :class:`StrokeBatches` — padded stroke-5 batches of stroke data (sketch-rnn), optionally
  augmented (:func:`tasks.data.stroke_formats.augment`);
* :class:`ClutteredBatches` — (cluttered) translated MNIST generated on the fly (RAM).

All three visit their examples epoch by epoch in seeded permutations (:class:`EpochBatches`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .cluttered import DigitArray, Layout, check_digits, gather_digits, render_layout, sample_layout
from .cluttered_sets import cluttered_spec
from .core import DataError, check_split, derive_seed
from .mnist import mnist_split_arrays
from .paths import DataDir
from .stroke_formats import RANDOM_SCALE, augment, pad_batch
from .strokes import StrokeData

__all__ = ["ClutteredBatches", "EpochBatches", "ImageBatches", "StrokeBatches"]


class EpochBatches:
    """Batches of ``batch_size`` of ``num_examples`` examples, epoch by epoch: epoch ``e``
    visits them in a permutation seeded by :meth:`permutation_seed` ``(e)``, and the ragged tail
    is dropped."""

    def __init__(self, num_examples: int, batch_size: int, seed: int):
        self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
        self.batches_per_epoch = num_examples // batch_size
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.int64)

    def permutation_seed(self, epoch: int) -> int:
        return self.seed * 1_000_003 + epoch

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(self.permutation_seed(epoch))
            self._perm = torch.randperm(self.num_examples, generator=gen)
            self._perm_epoch = epoch
        return self._perm

    def epoch(self, step: int) -> float:
        return step / self.batches_per_epoch

    def indices(self, step: int) -> Tensor:
        """Indices of the examples of the batch at ``step``."""
        epoch, index = divmod(step, self.batches_per_epoch)
        return self._permutation(epoch)[index * self.batch_size : (index + 1) * self.batch_size]


class ImageBatches(EpochBatches):
    """Shuffled mini-batches of an image tensor, epoch by epoch, reproducible from ``seed``.

    With ``dynamic_binarization`` every batch is resampled as ``Bernoulli(x)`` from a generator
    seeded by ``(seed, step)``.
    """

    def __init__(
        self, images: Tensor, batch_size: int, *, seed: int = 0, dynamic_binarization: bool = False
    ):
        if batch_size > len(images):
            raise ValueError(f"batch size {batch_size} exceeds the {len(images)} training images")
        super().__init__(len(images), batch_size, seed)
        self.images = images
        self.dynamic_binarization = dynamic_binarization

    def batch(self, step: int) -> tuple[Tensor]:
        x = self.images[self.indices(step)]
        if self.dynamic_binarization:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * step + 1)
            x = torch.bernoulli(x, generator=gen)
        return (x,)


class StrokeBatches(EpochBatches):
    """Shuffled mini-batches ``(x5 (B, N_max + 1, 5) float32, lengths (B,) int64)`` of stroke
    data, a deterministic function of the step (like :class:`ImageBatches`).

    Epoch ``e`` uses a permutation seeded by ``(seed, e)``; the ragged tail is dropped. With
    ``augment`` every batch is scaled (and with ``drop_prob > 0`` thinned) by :func:`augment`
    with the generator :meth:`rng` ``(step)``.
    ``max_length`` is ``N_max`` (default: the longest sequence in ``data``); use one value for all
    splits so that ``L_R`` (normalised by ``N_max``, Eq. 9) is comparable.
    """

    def __init__(
        self,
        data: StrokeData | Sequence[np.ndarray],
        batch_size: int,
        *,
        max_length: int | None = None,
        seed: int = 0,
        augment: bool = True,
        random_scale: float = RANDOM_SCALE,
        drop_prob: float = 0.0,
    ):
        self.sequences = list(data.sequences if isinstance(data, StrokeData) else data)
        if not 1 <= batch_size <= len(self.sequences):
            raise ValueError(
                f"StrokeBatches: batch size {batch_size} not in [1, {len(self.sequences)}] "
                f"(the number of sequences)"
            )
        longest = max(len(s) for s in self.sequences)
        self.max_length = longest if max_length is None else max_length
        if longest > self.max_length:
            raise ValueError(
                f"StrokeBatches: a sequence has {longest} points, more than max_length="
                f"{self.max_length}"
            )
        super().__init__(len(self.sequences), batch_size, seed)
        if not 0.0 <= random_scale < 1.0 or not 0.0 <= drop_prob < 1.0:
            raise ValueError(
                f"StrokeBatches: random_scale and drop_prob must lie in [0, 1), found "
                f"{random_scale} and {drop_prob}"
            )
        self.augment, self.random_scale, self.drop_prob = augment, random_scale, drop_prob

    def rng(self, step: int) -> np.random.Generator:
        """The augmentation generator of ``step`` (seeded by ``(seed, step)``)."""
        return np.random.default_rng(derive_seed("strokes", self.seed, step))

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        chosen = [self.sequences[i] for i in self.indices(step).tolist()]
        if self.augment:
            chosen = augment(chosen, self.rng(step), self.random_scale, self.drop_prob)
        return pad_batch(chosen, self.max_length)


class ClutteredBatches(EpochBatches):
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
        check_digits(digits, "digits")
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
        super().__init__(digits.shape[0], batch_size, seed)
        self.digits, self.labels = digits, labels
        self.canvas, self.num_clutter, self.clutter_size = canvas, num_clutter, clutter_size
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
        spec = cluttered_spec(name)
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

    def permutation_seed(self, epoch: int) -> int:
        return derive_seed("cluttered_batches", self.seed, epoch)

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        index = self.indices(step)
        gen = torch.Generator().manual_seed(
            derive_seed("cluttered_batches", self.seed, "step", step)
        )
        layout = self._layout(index, gen)
        images = render_layout(
            gather_digits(self.digits, index),
            layout,
            canvas=self.canvas,
            clutter_source=self.digits,
            clutter_size=self.clutter_size,
        )
        return images.unsqueeze(1), self.labels[index]
