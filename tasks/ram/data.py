"""The classification data of RAM, DRAM and their baselines.

Datasets (:data:`CLASSIFICATION_DATASETS`): ``mnist`` (28×28 grey digits),
``mnist_translated_60``, ``mnist_cluttered_60`` and ``mnist_cluttered_100``
(:mod:`tasks.data.cluttered_sets`). Training images are generated on the fly
(:class:`tasks.data.batches.ClutteredBatches`, a deterministic function of the step; plain
``mnist`` is the degenerate 28×28 canvas without clutter, i.e. shuffled digits), validation and
test images are fixed sets. MNIST pixels are grey values in ``[0, 1]`` for every split (no
binarisation: these are classification tasks).
"""

from __future__ import annotations

import numpy as np
import torch

from inference.checkpoint import Checkpoint
from tasks.data.batches import ClutteredBatches
from tasks.data.cluttered_sets import CLUTTERED_NAMES, CLUTTERED_SPECS, load_cluttered
from tasks.data.core import DataError, ImageData, check_split
from tasks.data.mnist import mnist_split_arrays, subset_indices
from tasks.options import SplitOptions

__all__ = [
    "CLASSIFICATION_DATASETS",
    "check_dataset",
    "checkpoint_split",
    "classification_batches",
    "load_classification_split",
]

CLASSIFICATION_DATASETS: tuple[str, ...] = ("mnist", *CLUTTERED_NAMES)


def check_dataset(dataset: str) -> None:
    """Raise :class:`DataError` unless ``dataset`` is a classification dataset."""
    if dataset not in CLASSIFICATION_DATASETS:
        raise DataError(
            f"unknown classification dataset {dataset!r}; expected one of {CLASSIFICATION_DATASETS}"
        )


def _canvas(dataset: str) -> tuple[int, int, int]:
    """``(canvas side, clutter pieces, clutter side)``; plain MNIST is a bare 28×28 canvas."""
    if dataset == "mnist":
        return 28, 0, 8
    spec = CLUTTERED_SPECS[dataset]
    return spec.canvas, spec.num_clutter, spec.clutter_size


def classification_batches(
    dataset: str,
    batch_size: int,
    *,
    seed: int = 0,
    num_train: int | None = None,
    data_dir: str | None = None,
    download: bool = False,
) -> ClutteredBatches:
    """On-the-fly ``(images (B, 1, S, S), labels (B,))`` training batches of ``dataset`` from the
    MNIST train split (``num_train``: a seeded subset of its digits)."""
    check_dataset(dataset)
    digits, labels, _ = mnist_split_arrays("train", data_dir, download)
    index = subset_indices(digits.shape[0], num_train, seed, f"{dataset}/train")
    if index is not None:
        digits, labels = digits[index.numpy()], labels[index.numpy()]
    canvas, clutter, clutter_size = _canvas(dataset)
    return ClutteredBatches(
        digits,
        labels,
        batch_size,
        canvas=canvas,
        num_clutter=clutter,
        clutter_size=clutter_size,
        seed=seed,
    )


def load_classification_split(
    dataset: str,
    split: str,
    *,
    num_examples: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    download: bool = False,
) -> ImageData:
    """A fixed labelled split (``num_examples``: a seeded sorted subset; default all of it for
    ``mnist``, ``tasks.data.cluttered_sets.DEFAULT_NUM_EXAMPLES`` for the generated sets)."""
    check_dataset(dataset)
    check_split(dataset, split)
    if dataset != "mnist":
        return load_cluttered(
            dataset,
            split,
            data_dir=data_dir,
            download=download,
            num_examples=num_examples,
            seed=seed,
        )
    digits, labels, files = mnist_split_arrays(split, data_dir, download)
    total = digits.shape[0]
    index = subset_indices(total, num_examples, seed, f"mnist/{split}")
    rows = slice(None) if index is None else index.numpy()
    images = torch.from_numpy(np.array(digits[rows])).float().div_(255.0).unsqueeze(1)
    info = {
        "dataset": "mnist",
        "split": split,
        "files": files,
        "total_in_split": total,
        "num_examples": images.shape[0],
        "subset": "all" if index is None else f"seeded random subset (seed={seed}), sorted",
        "seed": seed,
        "size": 28,
        "binarization_note": "grey values in [0, 1], used directly",
    }
    extras = {"index": torch.arange(total) if index is None else index}
    label_t = torch.from_numpy(labels[rows].astype(np.int64))
    return ImageData("mnist", split, images, label_t, "none", info, extras)


def checkpoint_split(
    checkpoint: Checkpoint, options: SplitOptions, num_examples: int | None
) -> ImageData:
    """The labelled split a checkpoint command reads: ``--split`` of ``--dataset`` or of the
    dataset the checkpoint was trained on, ``num_examples`` of it (seeded by ``--seed``; the
    default subset if ``None``), files found through ``--data-dir`` and ``--download``."""
    return load_classification_split(
        options.dataset_of(checkpoint.record),
        options.split,
        num_examples=num_examples,
        seed=options.seed,
        data_dir=options.data_dir,
        download=options.download,
    )
