"""DooD's datasets at 50×50 (Liang et al. 2022, appendix A): MNIST, Omniglot, QuickDraw.

"All dataset images are scaled to 50x50 in grayscale" (appendix A); the official code does it
with ``torchvision.transforms.Resize([50, 50], antialias=True)`` on the PIL image, which
:func:`tasks.data.mnist.resize_images` reproduces (bilinear, antialiased when shrinking). Images
stay grey in ``[0, 1]`` with ink = 1 (``binarization="none"``): DooD and its AIR baselines use a
Laplace likelihood on the grey values (sec. 3.1, Fig. 4 caption).

Datasets (``IMAGES50_NAMES``) and splits (``train`` / ``valid`` / ``test``):

* ``mnist50`` — MNIST from the official IDX files (:mod:`tasks.data.mnist`). The paper trains on
  all 60k training images and tests on the 10k test images; like the project's ``mnist``, the
  last 10k training images are held out as ``valid``: train = official train[:50000], valid =
  official train[50000:], test = official t10k.
* ``omniglot50`` — Omniglot, "the original split [22], with inverted black and white pixels":
  the background set (964 characters × 20 drawers = 19,280 images) is for training, the
  evaluation set (659 × 20 = 13,180) is ``test``. ``valid`` holds out drawers 19 and 20 of every
  background character (1,928 images), ``train`` keeps drawers 1–18 (17,352). Read from the
  npz copies ``omniglot/images_background.npz`` / ``images_evaluation.npz`` (pixel-identical to
  the official PNGs; no official download of these npz files exists). ``labels`` are global
  character indices 0–1622 (background ``k`` → ``k``, evaluation ``k`` → ``964 + k``, i.e. the
  official file number − 1); ``extras["drawer"]`` is the 0-based drawer.
* ``quickdraw50`` — QuickDraw 28×28 bitmaps (``quickdraw_bitmaps/quickdraw_bitmap_6class_3000.npz``,
  white strokes on black, the official ``numpy_bitmap`` format). **Substitute, not the paper's
  set**: the paper uses 10 categories with 4k/1k train/test images each (XJay18/QuickDraw-pytorch);
  only 6 categories × 3000 images are available here (``QUICKDRAW_CLASSES``), and only 3 of
  them (apple, bicycle, eye) are among the paper's 10. Per category, rows [0, 2100) are
  ``train``, [2100, 2400) ``valid`` and [2400, 3000) ``test`` (the paper's 4:1 train:test ratio,
  with 1/8 of the training part held out). ``labels`` index ``QUICKDRAW_CLASSES``.
* ``emnist50``, ``kmnist50`` — the paper's EMNIST ("balanced") and KMNIST: **not available**
  (no usable copy of their image files could be obtained); loading raises :class:`DataError`.

``num_examples`` takes a seeded random subset (sorted) of the split; ``extras["index"]`` is each
example's position in the split. ``size`` (default 50) is the output side.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .core import DataError, ImageData, ImageDataset, check_split
from .mnist import _cache_key, mnist_split_arrays, resize_images, subset_indices
from .paths import DataDir, FileSpec, file_sha256, locate

__all__ = [
    "DATASETS",
    "DEFAULT_SIZE",
    "IMAGES50_NAMES",
    "OMNIGLOT_FILES",
    "OMNIGLOT_VALID_DRAWERS",
    "QUICKDRAW_BITMAPS",
    "QUICKDRAW_CLASSES",
    "QUICKDRAW_ROWS",
    "UNAVAILABLE",
    "load_images50",
]

DEFAULT_SIZE = 50
IMAGES50_NAMES: tuple[str, ...] = ("mnist50", "omniglot50", "quickdraw50", "emnist50", "kmnist50")

# Not available: name -> (what the paper uses, canonical source).
UNAVAILABLE: dict[str, tuple[str, str]] = {
    "emnist50": (
        'EMNIST "balanced" (112,800 train / 18,800 test images, 47 classes)',
        "https://www.nist.gov/itl/products-and-services/emnist-dataset",
    ),
    "kmnist50": (
        "KMNIST (60k train / 10k test images, 10 classes)",
        "https://github.com/rois-codh/kmnist",
    ),
}

OMNIGLOT_FILES: dict[str, FileSpec] = {
    "background": FileSpec(
        "omniglot",
        "images_background.npz",
        "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
        None,
    ),
    "evaluation": FileSpec(
        "omniglot",
        "images_evaluation.npz",
        "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
        None,
    ),
}
_OMNIGLOT_SOURCE = (
    "these npz files (keys 'images' bool (characters, 20, 105, 105), True = background, and "
    "'labels') come from GitHub bitsandscraps/omniglot, built from the official zips of "
    "https://github.com/brendenlake/omniglot (python/images_background.zip, "
    "images_evaluation.zip)"
)
_OMNIGLOT_CHARACTERS = {"background": 964, "evaluation": 659}
OMNIGLOT_DRAWERS = 20
OMNIGLOT_VALID_DRAWERS = (18, 19)  # 0-based: drawers 19 and 20 of each background character

QUICKDRAW_BITMAPS = FileSpec(
    "quickdraw_bitmaps",
    "quickdraw_bitmap_6class_3000.npz",
    "510e4f92eb08b804f6a42c0a1aab562b9a206196f1c5fcec050605578c10d4ad",
    None,
)
_QUICKDRAW_SOURCE = (
    "this npz (one key per category, uint8 (3000, 784)) comes from GitHub "
    "sukumr/Doodle-Classifier, whose preparation script takes the first 3000 rows of the "
    "official https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/"
    "<category>.npy (not verified)"
)
QUICKDRAW_CLASSES: tuple[str, ...] = ("apple", "bicycle", "cat", "diamond", "eye", "fish")
DOOD_QUICKDRAW_CLASSES: tuple[str, ...] = (
    "eye",
    "bicycle",
    "tree",
    "eyeglasses",
    "book",
    "airplane",
    "cell phone",
    "smiley face",
    "apple",
    "car",
)
QUICKDRAW_PER_CLASS = 3000
QUICKDRAW_ROWS: dict[str, tuple[int, int]] = {
    "train": (0, 2100),
    "valid": (2100, 2400),
    "test": (2400, 3000),
}
_CHUNK = 2048


def _locate(spec: FileSpec, data_dir: DataDir, download: bool, source: str) -> Path:
    try:
        return locate(spec, data_dir, download)
    except DataError as exc:
        raise DataError(f"{exc}\n  source: {source}") from exc


def _float_chunks(
    array: np.ndarray, rows: tuple[np.ndarray, ...], scale: float, invert: bool
) -> Iterator[Tensor]:
    """``array[rows]`` as float ``(n, 1, h, w)`` chunks in ``[0, 1]`` (``1 - x`` if ``invert``),
    so a whole split is never held as float at the source resolution."""
    count = rows[0].shape[0]
    for start in range(0, count, _CHUNK):
        part = array[tuple(r[start : start + _CHUNK] for r in rows)]
        chunk = torch.from_numpy(np.ascontiguousarray(part)).unsqueeze(1).float()
        if scale != 1.0:
            chunk.div_(scale)
        yield 1.0 - chunk if invert else chunk


def _finish(
    name: str,
    split: str,
    chunks: Iterable[Tensor],
    labels: Tensor,
    index: Tensor | None,
    side: int,
    info: dict,
    extras: dict[str, Tensor],
) -> ImageData:
    """Resize chunk by chunk and wrap up."""
    images = torch.cat([resize_images(chunk, side) for chunk in chunks])
    total = info["total_in_split"]
    extras = {"index": torch.arange(total) if index is None else index, **extras}
    info.update(num_examples=images.shape[0], size=side)
    info["binarization_note"] = "grey values in [0, 1], ink = 1, used directly (Laplace likelihood)"
    return ImageData(name, split, images.contiguous(), labels, "none", info, extras)


def _subset_info(index: Tensor | None, seed: int) -> str:
    return "all" if index is None else f"seeded random subset (seed={seed}), sorted"


# ----------------------------------------------------------------------------- MNIST
def _load_mnist50(
    split: str, data_dir: DataDir, download: bool, num_examples: int | None, side: int, seed: int
) -> ImageData:
    images_u8, labels_u8, files = mnist_split_arrays(split, data_dir, download)
    total = images_u8.shape[0]
    index = subset_indices(total, num_examples, seed, f"mnist50/{split}")
    rows = np.arange(total) if index is None else index.numpy()
    chunks = _float_chunks(images_u8, (rows,), 255.0, invert=False)
    labels = torch.from_numpy(labels_u8[rows].astype(np.int64))
    info = {
        "dataset": "mnist50",
        "split": split,
        "files": files,
        "split_rule": {
            "train": "official train[:50000] (the paper trains on all 60000)",
            "valid": "official train[50000:]",
            "test": "official t10k (as the paper)",
        }[split],
        "total_in_split": total,
        "subset": _subset_info(index, seed),
        "seed": seed,
        "preprocessing": "28x28 -> size x size, bilinear (appendix A)",
    }
    return _finish("mnist50", split, chunks, labels, index, side, info, {})


# ----------------------------------------------------------------------------- Omniglot
@functools.lru_cache(maxsize=2)
def _read_omniglot_cached(path: str, size: int, mtime_ns: int, characters: int) -> np.ndarray:
    del size, mtime_ns  # cache key only
    try:
        with np.load(path) as archive:
            if "images" not in archive.files:
                raise DataError(f"{path}: missing key 'images'; found keys {archive.files}")
            images = archive["images"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read npz archive ({exc})") from exc
    expected = (characters, OMNIGLOT_DRAWERS, 105, 105)
    if images.dtype != np.bool_ or images.shape != expected:
        raise DataError(
            f"{path}['images']: expected bool {expected} (True = white background), found "
            f"{images.dtype} {images.shape}"
        )
    images.flags.writeable = False
    return images


def _omniglot_rows(split: str) -> tuple[str, np.ndarray, np.ndarray]:
    """``(set, character indices, drawer indices)`` of every example of ``split``, in order."""
    subset = "evaluation" if split == "test" else "background"
    characters = _OMNIGLOT_CHARACTERS[subset]
    if split == "test":
        drawers = np.arange(OMNIGLOT_DRAWERS)
    elif split == "valid":
        drawers = np.array(OMNIGLOT_VALID_DRAWERS)
    else:
        drawers = np.setdiff1d(np.arange(OMNIGLOT_DRAWERS), OMNIGLOT_VALID_DRAWERS)
    char, drawer = np.meshgrid(np.arange(characters), drawers, indexing="ij")
    return subset, char.reshape(-1), drawer.reshape(-1)


def _load_omniglot50(
    split: str, data_dir: DataDir, download: bool, num_examples: int | None, side: int, seed: int
) -> ImageData:
    subset, char, drawer = _omniglot_rows(split)
    spec = OMNIGLOT_FILES[subset]
    path = _locate(spec, data_dir, download, _OMNIGLOT_SOURCE)
    array = _read_omniglot_cached(*_cache_key(path), _OMNIGLOT_CHARACTERS[subset])
    total = char.shape[0]
    index = subset_indices(total, num_examples, seed, f"omniglot50/{split}")
    if index is not None:
        char, drawer = char[index.numpy()], drawer[index.numpy()]
    # Appendix A: "inverted black and white pixels" (stored True = white background → ink = 1).
    chunks = _float_chunks(array, (char, drawer), 1.0, invert=True)
    offset = 0 if subset == "background" else _OMNIGLOT_CHARACTERS["background"]
    labels = torch.from_numpy(char.astype(np.int64) + offset)
    info = {
        "dataset": "omniglot50",
        "split": split,
        "files": [{"path": str(path), "sha256": file_sha256(path)}],
        "split_rule": {
            "train": "background set, drawers 1-18 of each character",
            "valid": "background set, drawers 19-20 of each character",
            "test": "evaluation set, all 20 drawers (the paper's test set)",
        }[split],
        "total_in_split": total,
        "subset": _subset_info(index, seed),
        "seed": seed,
        "preprocessing": "inverted (ink = 1), 105x105 -> size x size, bilinear antialiased",
    }
    extras = {"drawer": torch.from_numpy(drawer.astype(np.int64))}
    return _finish("omniglot50", split, chunks, labels, index, side, info, extras)


# ----------------------------------------------------------------------------- QuickDraw
@functools.lru_cache(maxsize=1)
def _read_quickdraw_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    """``(6, 3000, 28, 28)`` uint8 in ``QUICKDRAW_CLASSES`` order (read-only)."""
    del size, mtime_ns
    try:
        with np.load(path) as archive:
            missing = [c for c in QUICKDRAW_CLASSES if c not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing category keys {missing}; found keys {archive.files}"
                )
            arrays = [archive[c] for c in QUICKDRAW_CLASSES]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read npz archive ({exc})") from exc
    for cls, arr in zip(QUICKDRAW_CLASSES, arrays, strict=True):
        if arr.dtype != np.uint8 or arr.shape != (QUICKDRAW_PER_CLASS, 784):
            raise DataError(
                f"{path}[{cls!r}]: expected uint8 ({QUICKDRAW_PER_CLASS}, 784) 28x28 bitmaps, "
                f"found {arr.dtype} {arr.shape}"
            )
    stacked = np.stack(arrays).reshape(len(QUICKDRAW_CLASSES), QUICKDRAW_PER_CLASS, 28, 28)
    stacked.flags.writeable = False
    return stacked


def _load_quickdraw50(
    split: str, data_dir: DataDir, download: bool, num_examples: int | None, side: int, seed: int
) -> ImageData:
    path = _locate(QUICKDRAW_BITMAPS, data_dir, download, _QUICKDRAW_SOURCE)
    array = _read_quickdraw_cached(*_cache_key(path))
    start, stop = QUICKDRAW_ROWS[split]
    per_class = stop - start
    cls, row = np.meshgrid(np.arange(len(QUICKDRAW_CLASSES)), np.arange(start, stop), indexing="ij")
    cls, row = cls.reshape(-1), row.reshape(-1)
    total = cls.shape[0]
    index = subset_indices(total, num_examples, seed, f"quickdraw50/{split}")
    if index is not None:
        cls, row = cls[index.numpy()], row[index.numpy()]
    chunks = _float_chunks(array, (cls, row), 255.0, invert=False)
    info = {
        "dataset": "quickdraw50",
        "split": split,
        "files": [{"path": str(path), "sha256": file_sha256(path)}],
        "classes": list(QUICKDRAW_CLASSES),
        "classes_in_paper": [c for c in QUICKDRAW_CLASSES if c in DOOD_QUICKDRAW_CLASSES],
        "substitute_note": (
            "the paper uses 10 categories x 4k/1k train/test (XJay18/QuickDraw-pytorch); only "
            "these 6 categories x 3000 are available, 3 of them among the paper's 10"
        ),
        "split_rule": f"rows [{start}, {stop}) of each category ({per_class} per category)",
        "total_in_split": total,
        "subset": _subset_info(index, seed),
        "seed": seed,
        "preprocessing": "28x28 -> size x size, bilinear (appendix A)",
    }
    extras = {"row": torch.from_numpy(row.astype(np.int64))}
    labels = torch.from_numpy(cls.astype(np.int64))
    return _finish("quickdraw50", split, chunks, labels, index, side, info, extras)


_LOADERS = {
    "mnist50": _load_mnist50,
    "omniglot50": _load_omniglot50,
    "quickdraw50": _load_quickdraw50,
}


def _unavailable_message(name: str) -> str:
    what, canonical = UNAVAILABLE[name]
    return (
        f"dataset {name!r}: the paper's {what} is not available in this project — no usable "
        f"copy of its image files could be obtained for the shared data (see the shared "
        f"data README, 'Searched for and NOT found'), and no loader for its files exists "
        f"yet. Canonical source: {canonical}. Available DooD datasets: "
        f"{', '.join(_LOADERS)}."
    )


def load_images50(
    name: str,
    split: str,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    num_examples: int | None = None,
    size: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Load split ``split`` of the DooD dataset ``name`` (one of ``IMAGES50_NAMES``).

    Returns grey ``(N, 1, size, size)`` float32 images in ``[0, 1]`` with ink = 1
    (``binarization="none"``), integer ``labels`` and ``extras["index"]`` (module docstring).
    Raises :class:`DataError` for unknown or unavailable datasets, bad splits and missing,
    corrupt or malformed files.
    """
    if name in UNAVAILABLE:
        raise DataError(_unavailable_message(name))
    if name not in _LOADERS:
        raise DataError(f"unknown DooD dataset {name!r}; expected one of {IMAGES50_NAMES}")
    check_split(name, split)
    if num_examples is not None and num_examples < 1:
        raise DataError(f"dataset {name!r}: num_examples must be >= 1, found {num_examples}")
    side = DEFAULT_SIZE if size is None else size
    if side < 1:
        raise DataError(f"dataset {name!r}: size must be >= 1, found {side}")
    return _LOADERS[name](split, data_dir, download, num_examples, side, seed)


DATASETS: tuple[ImageDataset, ...] = tuple(
    ImageDataset(
        name,
        functools.partial(load_images50, name),
        available=name not in UNAVAILABLE,
        why_unavailable=_unavailable_message(name) if name in UNAVAILABLE else "",
    )
    for name in IMAGES50_NAMES
)
