"""Shared types and helpers of the dataset loaders: :class:`ImageData`, :class:`DataError`,
:class:`ImageDataset` (a registry entry), splits, binarisation and seed derivation.

Depends on nothing else in :mod:`tasks.data`; every loader imports from here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "BINARIZATIONS",
    "SPLITS",
    "DataError",
    "ImageData",
    "ImageDataset",
    "binarize",
    "check_images",
    "check_split",
    "derive_seed",
    "split_binarization",
]

SPLITS: tuple[str, ...] = ("train", "valid", "test")
BINARIZATIONS: tuple[str, ...] = ("fixed", "seeded", "dynamic", "none")


class DataError(Exception):
    """A dataset could not be loaded: unknown name/split, missing, corrupt or malformed file."""


class TooFewExamplesError(DataError):
    """A split holds fewer examples than were asked for (``available`` of them)."""

    def __init__(self, message: str, available: int):
        super().__init__(message)
        self.available = available


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
        check_images(self.images, f"ImageData({self.name}/{self.split}).images")
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


@dataclass(frozen=True)
class ImageDataset:
    """An image dataset of the registry (:data:`tasks.data.registry.IMAGE_DATASETS`).

    ``load(split, *, data_dir, download, num_examples, size, seed)`` returns the split; an
    entry with ``available=False`` is listed so that asking for it explains ``why_unavailable``
    (its ``load`` raises :class:`DataError`).
    """

    name: str
    load: Callable[..., ImageData]
    available: bool = True
    why_unavailable: str = ""


def check_images(images: object, what: str) -> None:
    """Raise :class:`DataError` naming ``what`` unless ``images`` is a float32 ``(N, C, H, W)``
    tensor of values in ``[0, 1]`` (no NaN): what every model's likelihood expects."""
    if not isinstance(images, Tensor):
        raise DataError(f"{what}: expected a float32 tensor (N, C, H, W), found {type(images)}")
    if images.dim() != 4 or images.dtype != torch.float32:
        raise DataError(
            f"{what}: expected float32 (N, C, H, W), found {images.dtype} {tuple(images.shape)}"
        )
    if images.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(images))  # NaN if any value is NaN
    if math.isnan(low) or math.isnan(high):
        nan = torch.isnan(images)
        first = tuple(int(i) for i in nan.nonzero()[0])
        raise DataError(
            f"{what}: expected values in [0, 1], found {int(nan.sum())} NaN (first at {first})"
        )
    if low < 0.0 or high > 1.0:
        raise DataError(f"{what}: expected values in [0, 1], found values in [{low}, {high}]")


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
