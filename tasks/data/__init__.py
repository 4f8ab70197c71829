"""Image datasets for the drawing models: ``load_images(name, split)`` → :class:`ImageData`.

Datasets (``DATASET_NAMES``):

* ``glyphs`` — embedded synthetic Bézier-stroke glyphs with ground truth, no files needed
  (:mod:`tasks.data.glyphs`);
* ``mnist`` — grey MNIST from the official IDX files (:mod:`tasks.data.mnist`);
* ``binarized_mnist`` — the fixed binarisation of Larochelle & Murray (:mod:`tasks.data.mnist`);
* ``two_digit_mnist`` — DRAW's 60×60 two-digit MNIST (:mod:`tasks.data.multi_mnist`);
* ``mnist50``, ``omniglot50`` (inverted), ``quickdraw50`` — DooD's 50×50 grey datasets
  (:mod:`tasks.data.images50`); ``emnist50``/``kmnist50`` are named so that asking for them gives
  a clear "not available" error.

Splits are ``train`` / ``valid`` / ``test``. File locations: :mod:`tasks.data.paths`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .paths import DataDir, DataError, resolve_data_dir

__all__ = [
    "BINARIZATIONS",
    "DATASET_NAMES",
    "SPLITS",
    "DataError",
    "ImageData",
    "binarize",
    "derive_seed",
    "load_images",
    "resolve_data_dir",
]

IMAGES50_NAMES: tuple[str, ...] = ("mnist50", "omniglot50", "quickdraw50", "emnist50", "kmnist50")
DATASET_NAMES: tuple[str, ...] = (
    "glyphs",
    "mnist",
    "binarized_mnist",
    "two_digit_mnist",
    *IMAGES50_NAMES,
)
SPLITS: tuple[str, ...] = ("train", "valid", "test")
BINARIZATIONS: tuple[str, ...] = ("fixed", "seeded", "dynamic", "none")


@dataclass
class ImageData:
    """A loaded split.

    ``binarization`` says how to treat ``images`` as Bernoulli data:
    ``"fixed"`` already 0/1 from a canonical fixed binarisation; ``"seeded"`` binarised once at
    load time with a fixed seed (evaluation splits); ``"dynamic"`` grey values, the trainer
    samples ``Bernoulli(x)`` every batch; ``"none"`` grey values used directly as targets.
    """

    name: str
    split: str
    images: Tensor  # float32 (N, C, H, W) in [0, 1]
    labels: Tensor | None  # int64 (N,) or None
    binarization: str
    info: dict = field(default_factory=dict)  # JSON-serialisable provenance
    extras: dict = field(default_factory=dict)  # dataset-specific tensors

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.float32:
            raise DataError(
                f"ImageData({self.name}/{self.split}).images: expected float32 (N, C, H, W), "
                f"found {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.binarization not in BINARIZATIONS:
            raise DataError(
                f"ImageData({self.name}/{self.split}).binarization: expected one of "
                f"{BINARIZATIONS}, found {self.binarization!r}"
            )
        if self.labels is not None and self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"ImageData({self.name}/{self.split}).labels: expected shape "
                f"({self.images.shape[0]},), found {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]


def binarize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sample ``Bernoulli(images)`` as float 0/1 (same dtype and shape as ``images``)."""
    noise = torch.rand(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return (noise < images).to(images.dtype)


def split_binarization(
    images: Tensor, split: str, binarize_seed: int, info: dict
) -> tuple[Tensor, str]:
    """The generated datasets' rule: ``dynamic`` grey images for train; valid/test binarised
    once with ``binarize_seed`` (``seeded``). Records the rule in ``info``."""
    if split == "train":
        info["binarization_note"] = "grey values; sample Bernoulli(x) per batch"
        return images, "dynamic"
    info["binarization_seed"] = binarize_seed
    info["binarization_note"] = f"Bernoulli(grey) sampled once with seed {binarize_seed}"
    return binarize(images, torch.Generator().manual_seed(binarize_seed)), "seeded"


def derive_seed(*parts: object) -> int:
    """Stable 63-bit seed from ``parts`` (independent of ``PYTHONHASHSEED``)."""
    text = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def check_split(name: str, split: str) -> None:
    """Raise :class:`DataError` unless ``split`` is one of ``SPLITS``."""
    if split not in SPLITS:
        raise DataError(f"dataset {name!r}: unknown split {split!r}; expected one of {SPLITS}")


def load_images(
    name: str,
    split: str,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    num_examples: int | None = None,
    size: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Load split ``split`` of dataset ``name`` (one of ``DATASET_NAMES``).

    ``num_examples`` limits the split (a seeded subset for file datasets, the generated count
    for synthetic ones); ``size`` is the image side (dataset default if ``None``); ``seed``
    drives subset selection and synthetic generation. Evaluation binarisations of MNIST use a
    fixed seed independent of ``seed`` so every run evaluates on the same binary images.
    """
    if name not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    check_split(name, split)
    if num_examples is not None and num_examples < 1:
        raise DataError(f"dataset {name!r}: num_examples must be >= 1, found {num_examples}")
    if size is not None and size < 1:
        raise DataError(f"dataset {name!r}: size must be >= 1, found {size}")
    if name == "glyphs":
        from .glyphs import load_glyphs

        return load_glyphs(split, num_examples=num_examples, size=size, seed=seed)
    if name in ("mnist", "binarized_mnist"):
        from .mnist import load_binarized_mnist, load_mnist

        loader = load_mnist if name == "mnist" else load_binarized_mnist
        return loader(
            split,
            data_dir=data_dir,
            download=download,
            num_examples=num_examples,
            size=size,
            seed=seed,
        )
    if name in IMAGES50_NAMES:
        from .images50 import load_images50

        return load_images50(
            name,
            split,
            data_dir=data_dir,
            download=download,
            num_examples=num_examples,
            size=size,
            seed=seed,
        )
    from .multi_mnist import load_two_digit_mnist

    return load_two_digit_mnist(
        split, data_dir=data_dir, download=download, num_examples=num_examples, size=size, seed=seed
    )
