"""The image-dataset registry: ``load_images(name, split)`` → :class:`~tasks.data.core.ImageData`.

Every image source declares its :class:`~tasks.data.core.ImageDataset` entries in its own
``DATASETS`` tuple; :data:`IMAGE_DATASETS` collects them by name:

* ``glyphs`` — embedded synthetic Bézier-stroke glyphs with ground truth, no files needed
  (:mod:`tasks.data.glyphs`);
* ``mnist`` — grey MNIST from the official IDX files (:mod:`tasks.data.mnist`);
* ``binarized_mnist`` — the fixed binarisation of Larochelle & Murray (:mod:`tasks.data.mnist`);
* ``two_digit_mnist`` — DRAW's 60×60 two-digit MNIST (:mod:`tasks.data.multi_mnist`);
* ``mnist50``, ``omniglot50`` (inverted), ``quickdraw50`` — DooD's 50×50 grey datasets
  (:mod:`tasks.data.images50`); ``emnist50``/``kmnist50`` are registered as unavailable so that
  asking for them gives a clear "not available" error.

:data:`DATASET_NAMES` lists every registered name, :func:`available_datasets` only those that can
load. Splits are ``train`` / ``valid`` / ``test``. File locations: :mod:`tasks.data.paths`.
"""

from __future__ import annotations

from .core import DataError, ImageData, ImageDataset, check_split
from .glyphs import DATASETS as GLYPHS_DATASETS
from .images50 import DATASETS as IMAGES50_DATASETS
from .mnist import DATASETS as MNIST_DATASETS
from .multi_mnist import DATASETS as MULTI_MNIST_DATASETS
from .paths import DataDir

__all__ = ["DATASET_NAMES", "IMAGE_DATASETS", "available_datasets", "load_images"]

IMAGE_DATASETS: dict[str, ImageDataset] = {
    dataset.name: dataset
    for dataset in (
        *GLYPHS_DATASETS,
        *MNIST_DATASETS,
        *MULTI_MNIST_DATASETS,
        *IMAGES50_DATASETS,
    )
}
DATASET_NAMES: tuple[str, ...] = tuple(IMAGE_DATASETS)


def available_datasets() -> tuple[str, ...]:
    """Names of the registered datasets that can load (in registry order)."""
    return tuple(name for name, dataset in IMAGE_DATASETS.items() if dataset.available)


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
    dataset = IMAGE_DATASETS.get(name)
    if dataset is None:
        raise DataError(f"unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    check_split(name, split)
    if num_examples is not None and num_examples < 1:
        raise DataError(f"dataset {name!r}: num_examples must be >= 1, found {num_examples}")
    if size is not None and size < 1:
        raise DataError(f"dataset {name!r}: size must be >= 1, found {size}")
    return dataset.load(
        split,
        data_dir=data_dir,
        download=download,
        num_examples=num_examples,
        size=size,
        seed=seed,
    )
