"""Two-digit MNIST of DRAW (Gregor et al. 2015, section 4.3).

Each image is a black ``60 × 60`` canvas with two ``28 × 28`` MNIST digits, chosen uniformly at
random (with replacement) from the matching MNIST split (train = official train[:50000],
valid = official train[50000:], test = t10k), placed at independent uniformly random integer
positions fully inside the canvas; overlapping intensities are added and clipped to ``≤ 1``.

Generation is deterministic given ``(seed, split, size, num_examples)``. Default sizes: train
20,000, valid/test 2,000 images. Memory: the images are float32, ``N · size² · 4`` bytes, i.e.
≈ 288 MB for the default train split and ≈ 29 MB for valid/test at 60×60 (plus the MNIST
source arrays, ≈ 47 MB of uint8, cached in-process).

``labels`` is ``None``; ``extras`` holds ``digit_labels`` (N, 2) int64, ``positions`` (N, 2, 2)
int64 = top-left ``(row, column)`` of each digit, and ``source_indices`` (N, 2) int64 into the
MNIST split.
"""

from __future__ import annotations

import numpy as np
import torch

from .core import DataError, ImageData, ImageDataset, check_split, derive_seed, split_binarization
from .mnist import mnist_split_arrays
from .paths import DataDir

__all__ = ["DATASETS", "DEFAULT_CANVAS", "DEFAULT_NUM_EXAMPLES", "load_two_digit_mnist"]

DEFAULT_CANVAS = 60
DIGIT = 28
DEFAULT_NUM_EXAMPLES = {"train": 20_000, "valid": 2_000, "test": 2_000}
_CHUNK = 2048


def load_two_digit_mnist(
    split: str,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    num_examples: int | None = None,
    size: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Generate the ``split`` two-digit set on a ``size × size`` canvas (default 60).

    Binarisation: ``dynamic`` for train, ``seeded`` (seed derived from ``seed``) for valid/test.
    """
    check_split("two_digit_mnist", split)
    side = DEFAULT_CANVAS if size is None else size
    if side < DIGIT:
        raise DataError(f"two_digit_mnist: canvas size must be >= {DIGIT}, found {side}")
    n = DEFAULT_NUM_EXAMPLES[split] if num_examples is None else num_examples
    digits_u8, labels_u8, files = mnist_split_arrays(split, data_dir, download)
    gen_seed = derive_seed("two_digit_mnist", seed, split)
    generator = torch.Generator().manual_seed(gen_seed)
    source = torch.randint(0, digits_u8.shape[0], (n, 2), generator=generator)
    positions = torch.randint(0, side - DIGIT + 1, (n, 2, 2), generator=generator)

    offsets = torch.arange(DIGIT)
    images = torch.zeros(n, 1, side, side)
    for start in range(0, n, _CHUNK):
        rows = slice(start, start + _CHUNK)
        canvas = images[rows, 0]  # view
        batch = torch.arange(canvas.shape[0])[:, None, None]
        for d in range(2):
            digits = torch.from_numpy(digits_u8[source[rows, d].numpy()]).float().div_(255.0)
            r = (positions[rows, d, 0, None] + offsets)[:, :, None]
            c = (positions[rows, d, 1, None] + offsets)[:, None, :]
            canvas[batch, r, c] += digits  # indices are unique within one digit placement
        canvas.clamp_(max=1.0)

    info = {
        "dataset": "two_digit_mnist",
        "split": split,
        "files": files,
        "seed": seed,
        "generation_seed": gen_seed,
        "num_examples": n,
        "size": side,
        "source": "MNIST "
        + {
            "train": "official train[:50000]",
            "valid": "official train[50000:]",
            "test": "official t10k",
        }[split],
    }
    bin_seed = derive_seed("two_digit_mnist", seed, split, "binarize")
    images, binarization = split_binarization(images, split, bin_seed, info)
    extras = {
        "digit_labels": torch.from_numpy(labels_u8[source.numpy()].astype(np.int64)),
        "positions": positions,
        "source_indices": source,
    }
    return ImageData("two_digit_mnist", split, images, None, binarization, info, extras)


DATASETS: tuple[ImageDataset, ...] = (ImageDataset("two_digit_mnist", load_two_digit_mnist),)
