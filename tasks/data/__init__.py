"""Datasets and batch sources of the drawing models.

Image datasets load by name through the registry (:mod:`tasks.data.registry`):
``load_images(name, split)`` → :class:`ImageData`. Other modules: :mod:`tasks.data.core`
(shared types and helpers), :mod:`tasks.data.paths` (file locations, checksums, downloads), one
module per source (:mod:`~tasks.data.glyphs`, :mod:`~tasks.data.mnist`,
:mod:`~tasks.data.multi_mnist`, :mod:`~tasks.data.images50`, :mod:`~tasks.data.cluttered` and
:mod:`~tasks.data.cluttered_sets`, :mod:`~tasks.data.strokes` and
:mod:`~tasks.data.stroke_formats`) and :mod:`tasks.data.batches` (every mini-batch source).

This package only re-exports the main API; nothing inside it imports ``tasks.data`` itself.
"""

from .core import DataError, ImageData
from .registry import DATASET_NAMES, available_datasets, load_images

__all__ = ["DATASET_NAMES", "DataError", "ImageData", "available_datasets", "load_images"]
