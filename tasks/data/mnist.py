"""MNIST (grey, official IDX files) and fixed binarised MNIST (Larochelle & Murray 2011).

Splits follow the standard binarised-MNIST protocol: ``train`` = the first 50,000 official
training images, ``valid`` = the last 10,000, ``test`` = the official t10k set.

``binarized_mnist`` reads, in order of preference, the canonical text files
``binarized_mnist/binarized_mnist_{split}.amat`` (official, downloadable), the bit-packed
``binarized_mnist/binarized_mnist.npz`` of the shared data, and otherwise falls back to MNIST with
dynamic/seeded binarisation (recorded in ``info["binarization_note"]`` with a warning). Its
canonical test split is ordered by digit class, so use the whole split or a seeded subset
(what ``num_examples`` gives), never a prefix.
"""

from __future__ import annotations

import functools
import gzip
import logging
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .core import (
    DataError,
    ImageData,
    ImageDataset,
    TooFewExamplesError,
    check_split,
    derive_seed,
)
from .paths import DataDir, FileSpec, file_sha256, find, locate

__all__ = [
    "BINARIZED_AMAT",
    "BINARIZED_NPZ",
    "DATASETS",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "MNIST_FILES",
    "load_binarized_mnist",
    "load_mnist",
    "mnist_split_arrays",
    "read_idx",
    "resize_images",
    "subset_indices",
]

logger = logging.getLogger(__name__)

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dims
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dim
NUM_TRAIN = 50_000  # first 50k official training images; the last 10k form `valid`

_MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
_MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def _mnist_spec(filename: str, sha256: str) -> FileSpec:
    return FileSpec("mnist", filename, sha256, _MNIST_URL + filename, (_MNIST_MIRROR + filename,))


MNIST_FILES: dict[str, FileSpec] = {
    "train_images": _mnist_spec(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train_labels": _mnist_spec(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "test_images": _mnist_spec(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "test_labels": _mnist_spec(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}

_AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_AMAT_SHA256 = {
    "train": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    "valid": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    "test": "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
}
BINARIZED_AMAT: dict[str, FileSpec] = {
    split: FileSpec(
        "binarized_mnist",
        f"binarized_mnist_{split}.amat",
        sha,
        f"{_AMAT_URL}binarized_mnist_{split}.amat",
    )
    for split, sha in _AMAT_SHA256.items()
}
# Bit-packed re-serialisation of the .amat files (see the shared data README); not downloadable.
BINARIZED_NPZ = FileSpec(
    "binarized_mnist",
    "binarized_mnist.npz",
    "50de2c8299a5a297789293ab2c30f6fc3cb8c359a15e5e88d5501aa18ebb8fa5",
    None,
)
_BINARIZED_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}


# ----------------------------------------------------------------------------- file parsing
def _cache_key(path: Path) -> tuple[str, int, int]:
    path = Path(path).resolve()
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


def read_idx(path: str | os.PathLike[str], expected_magic: int) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes (cached in-process); returns a read-only array.

    Raises :class:`DataError` naming the file when the magic number, dimensions or payload size
    are not as expected.
    """
    path = Path(path)
    if not path.is_file():
        found = "a directory" if path.is_dir() else "not found"
        raise DataError(f"{path}: expected a gzipped IDX file, {found}")
    return _read_idx_cached(*_cache_key(path), expected_magic)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, size: int, mtime_ns: int, expected_magic: int) -> np.ndarray:
    del size, mtime_ns  # cache-key only
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot decompress gzipped IDX file ({exc})") from exc
    if len(data) < 4:
        raise DataError(f"{path}: IDX file too short ({len(data)} bytes) to hold a header")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong IDX magic number: expected 0x{expected_magic:08x} "
            f"({expected_magic & 0xFF}-d unsigned bytes), found 0x{magic:08x}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header (expected {header} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_len = header + math.prod(dims)  # exact: np.prod would overflow int64
    if len(data) != expected_len:
        raise DataError(
            f"{path}: IDX payload size mismatch for dims {dims}: expected {expected_len} bytes, "
            f"found {len(data)}"
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    array.flags.writeable = False
    return array


def _read_mnist_file(key: str, data_dir: DataDir, download: bool) -> tuple[np.ndarray, dict]:
    spec = MNIST_FILES[key]
    path = locate(spec, data_dir, download)
    is_images = key.endswith("images")
    array = read_idx(path, IDX_IMAGES_MAGIC if is_images else IDX_LABELS_MAGIC)
    if is_images and array.shape[1:] != (28, 28):
        raise DataError(f"{path}: expected images of shape (N, 28, 28), found {array.shape}")
    if not is_images and array.size and array.max() > 9:
        raise DataError(f"{path}: expected labels in 0..9, found max {int(array.max())}")
    return array, {"path": str(path), "sha256": file_sha256(path)}


def mnist_split_arrays(
    split: str, data_dir: DataDir = None, download: bool = False
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """``(images uint8 (N, 28, 28), labels uint8 (N,), files)`` of an MNIST split (read-only)."""
    check_split("mnist", split)
    prefix = "test" if split == "test" else "train"
    images, info_i = _read_mnist_file(f"{prefix}_images", data_dir, download)
    labels, info_l = _read_mnist_file(f"{prefix}_labels", data_dir, download)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{info_l['path']}: {labels.shape[0]} labels for {images.shape[0]} images in "
            f"{info_i['path']}"
        )
    if split != "test":
        if images.shape[0] <= NUM_TRAIN:
            raise DataError(
                f"{info_i['path']}: expected more than {NUM_TRAIN} training images to form "
                f"train/valid, found {images.shape[0]}"
            )
        rows = slice(0, NUM_TRAIN) if split == "train" else slice(NUM_TRAIN, None)
        images, labels = images[rows], labels[rows]
    return images, labels, [info_i, info_l]


# ----------------------------------------------------------------------------- helpers
def subset_indices(
    total: int, num_examples: int | None, seed: int, what: str = "split"
) -> Tensor | None:
    """Sorted seeded random subset of ``range(total)`` of size ``num_examples`` (``None`` = all)."""
    if num_examples is not None and num_examples > total:
        raise TooFewExamplesError(
            f"{what}: requested num_examples={num_examples}, but only {total} exist", total
        )
    if num_examples is None or num_examples == total:
        return None
    generator = torch.Generator().manual_seed(derive_seed("subset", seed, total))
    return torch.randperm(total, generator=generator)[:num_examples].sort().values


def resize_images(images: Tensor, size: int) -> Tensor:
    """Resize ``(N, C, h, w)`` images in ``[0, 1]`` to ``size × size`` (bilinear, antialiased)."""
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(
        images,
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=size < max(images.shape[-2:]),
    )
    return out.clamp_(0.0, 1.0)


def _seeded_binarize(images: Tensor, seed: int, index: Tensor | None, total: int) -> Tensor:
    """Binarise with noise drawn for the whole split, so example ``i`` of the split gets the same
    binary image whatever subset ``index`` is selected."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand((total, *images.shape[1:]), generator=generator)
    if index is not None:
        noise = noise[index]
    return (noise < images).to(images.dtype)


def _index_tensor(index: Tensor | None, total: int) -> Tensor:
    """``extras["index"]``: position of each returned example within its split."""
    return torch.arange(total) if index is None else index


# ----------------------------------------------------------------------------- loaders
def load_mnist(
    split: str,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    num_examples: int | None = None,
    size: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Grey MNIST: ``dynamic`` binarisation for train, ``seeded`` (fixed seed) for valid/test.

    ``extras["index"]`` (N,) int64 gives each example's position within the split.
    """
    images_u8, labels_u8, files = mnist_split_arrays(split, data_dir, download)
    total = images_u8.shape[0]
    index = subset_indices(total, num_examples, seed, f"mnist/{split}")
    rows = slice(None) if index is None else index.numpy()
    images = torch.from_numpy(np.array(images_u8[rows])).float().div_(255.0)
    images = images.unsqueeze(1)
    labels = torch.from_numpy(labels_u8[rows].astype(np.int64))
    side = 28 if size is None else size
    images = resize_images(images, side)
    info = {
        "dataset": "mnist",
        "split": split,
        "files": files,
        "split_rule": {
            "train": "official train[:50000]",
            "valid": "official train[50000:]",
            "test": "official t10k",
        }[split],
        "total_in_split": total,
        "num_examples": images.shape[0],
        "subset": "all" if index is None else f"seeded random subset (seed={seed}), sorted",
        "seed": seed,
        "size": side,
    }
    if split == "train":
        binarization = "dynamic"
        info["binarization_note"] = "grey values; sample Bernoulli(x) per batch"
    else:
        binarization = "seeded"
        bin_seed = derive_seed("mnist", split, "binarize")
        images = _seeded_binarize(images, bin_seed, index, total)
        info["binarization_seed"] = bin_seed
        info["binarization_note"] = (
            f"Bernoulli(grey) sampled once with fixed seed {bin_seed} (independent of `seed`)"
        )
    return ImageData(
        "mnist",
        split,
        images,
        labels,
        binarization,
        info,
        extras={"index": _index_tensor(index, total)},
    )


@functools.lru_cache(maxsize=4)
def _read_amat_cached(path: str, size: int, mtime_ns: int) -> np.ndarray:
    del size, mtime_ns
    data = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
    row = 2 * 784  # "d d d ... d\n"
    if data.size == 0 or data.size % row:
        raise DataError(
            f"{path}: expected lines of 784 space-separated 0/1 digits ({row} bytes each), "
            f"found {data.size} bytes"
        )
    table = data.reshape(-1, row)
    seps = table[:, 1::2]
    if (seps[:, :-1] != ord(" ")).any() or (seps[:, -1] != ord("\n")).any():
        raise DataError(f"{path}: malformed .amat line (expected '0 1 ... 0\\n' format)")
    pixels = table[:, 0::2] - ord("0")
    if (pixels > 1).any():
        raise DataError(f"{path}: found pixel values other than 0/1")
    pixels.flags.writeable = False
    return pixels


@functools.lru_cache(maxsize=4)
def _read_npz_cached(path: str, size: int, mtime_ns: int, split: str) -> np.ndarray:
    del size, mtime_ns
    try:
        with np.load(path) as archive:
            if split not in archive.files:
                raise DataError(f"{path}: missing key {split!r}; found keys {archive.files}")
            packed = archive[split]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read the binarised-MNIST npz ({exc})") from exc
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != 98:
        raise DataError(
            f"{path}[{split!r}]: expected bit-packed uint8 (N, 98), found "
            f"{packed.dtype} {packed.shape}"
        )
    pixels = np.unpackbits(packed, axis=1)[:, :784]
    pixels.flags.writeable = False
    return pixels


def _binarized_pixels(
    split: str, data_dir: DataDir, download: bool
) -> tuple[np.ndarray, dict] | None:
    amat = find(BINARIZED_AMAT[split], data_dir)
    if amat is None:
        npz = find(BINARIZED_NPZ, data_dir)
        if npz is not None:
            pixels = _read_npz_cached(*_cache_key(npz), split)
            return pixels, {"path": str(npz), "sha256": file_sha256(npz), "key": split}
        if not download:
            return None
        amat = locate(BINARIZED_AMAT[split], data_dir, download=True)
    pixels = _read_amat_cached(*_cache_key(amat))
    return pixels, {"path": str(amat), "sha256": file_sha256(amat)}


def _binarized_fallback(
    split: str, data_dir: DataDir, num_examples: int | None, seed: int
) -> ImageData:
    """``binarized_mnist`` without its files: grey MNIST, with the fallback noted and logged."""
    amat, npz = BINARIZED_AMAT[split], BINARIZED_NPZ
    note = (
        f"fixed binarisation unavailable ({amat.subdir}/{amat.filename} and "
        f"{npz.subdir}/{npz.filename} not found; official URL {amat.url}, or pass "
        "download=True); fell back to MNIST with "
        + ("dynamic binarisation" if split == "train" else "a seeded binarisation")
    )
    try:
        data = load_mnist(
            split,
            data_dir=data_dir,
            download=False,
            num_examples=num_examples,
            size=28,
            seed=seed,
        )
    except DataError as exc:
        raise DataError(f"binarized_mnist/{split}: {note}, but MNIST failed too:\n{exc}") from exc
    logger.warning("binarized_mnist/%s: %s", split, note)
    info = dict(
        data.info,
        dataset="binarized_mnist",
        binarization_note=note + ". " + data.info["binarization_note"],
    )
    return ImageData(
        "binarized_mnist", split, data.images, None, data.binarization, info, extras=data.extras
    )


def load_binarized_mnist(
    split: str,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    num_examples: int | None = None,
    size: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Fixed binarised MNIST (``binarization="fixed"``, no labels), 28×28 only.

    Falls back to MNIST with dynamic/seeded binarisation when no binarised file is available
    and ``download`` is false (see module docstring).
    """
    check_split("binarized_mnist", split)
    if size not in (None, 28):
        raise DataError(
            f"binarized_mnist: only available at 28x28 (a fixed binarisation cannot be "
            f"resized), found size={size}; use 'mnist' with size={size} instead"
        )
    found = _binarized_pixels(split, data_dir, download)
    if found is None:
        return _binarized_fallback(split, data_dir, num_examples, seed)
    pixels, file_info = found
    if pixels.shape[0] != _BINARIZED_SIZES[split]:
        raise DataError(
            f"{file_info['path']}: expected {_BINARIZED_SIZES[split]} {split} images, "
            f"found {pixels.shape[0]}"
        )
    index = subset_indices(pixels.shape[0], num_examples, seed, f"binarized_mnist/{split}")
    rows = slice(None) if index is None else index.numpy()
    images = torch.from_numpy(pixels[rows].astype(np.float32)).reshape(-1, 1, 28, 28)
    info = {
        "dataset": "binarized_mnist",
        "split": split,
        "files": [file_info],
        "total_in_split": int(pixels.shape[0]),
        "num_examples": images.shape[0],
        "subset": "all" if index is None else f"seeded random subset (seed={seed}), sorted",
        "seed": seed,
        "size": 28,
        "binarization_note": "fixed binarisation of Larochelle & Murray (2011)"
        + ("; test split ordered by digit class" if split == "test" else ""),
    }
    return ImageData(
        "binarized_mnist",
        split,
        images,
        None,
        "fixed",
        info,
        extras={"index": _index_tensor(index, int(pixels.shape[0]))},
    )


DATASETS: tuple[ImageDataset, ...] = (
    ImageDataset("mnist", load_mnist),
    ImageDataset("binarized_mnist", load_binarized_mnist),
)
