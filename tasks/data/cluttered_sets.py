"""The named (cluttered) translated MNIST sets of RAM and DRAW and their fixed splits.

Named sets (``CLUTTERED_SPECS``): ``mnist_translated_60`` (60×60, no clutter, Table 1b),
``mnist_cluttered_60`` (60×60, 4 pieces, Table 2a) and ``mnist_cluttered_100`` (100×100,
8 pieces, Table 2b; also DRAW's Table 1), all with 8×8 clutter. Sources are the MNIST splits of
:mod:`tasks.data.mnist` (train = official train[:50000], valid = train[50000:], test = t10k).

* :func:`load_cluttered` — fixed sets: the canvas made from digit ``i`` of a split is a fixed
  function of ``(name, split, i)``; ``seed`` only selects the subset when ``num_examples`` is
  smaller than the split, so every run evaluates on the same images.

Recipe and generator: :mod:`tasks.data.cluttered`; training batches of a named set:
:meth:`tasks.data.batches.ClutteredBatches.from_name`.

Memory: float32 canvases take ``N · canvas² · 4`` bytes — 144 MB for 10,000 images at 60×60 and
400 MB at 100×100.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cluttered import render_layout, sample_layout
from .core import DataError, ImageData, check_split, derive_seed
from .mnist import mnist_split_arrays, subset_indices
from .paths import DataDir

__all__ = [
    "CLUTTERED_NAMES",
    "CLUTTERED_SPECS",
    "DEFAULT_NUM_EXAMPLES",
    "ClutterSpec",
    "cluttered_spec",
    "load_cluttered",
]

DEFAULT_NUM_EXAMPLES = 10_000  # per split (all of valid/test; a seeded subset of train)
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


def cluttered_spec(name: str) -> ClutterSpec:
    """The :class:`ClutterSpec` of named set ``name`` (:class:`DataError` if unknown)."""
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
    spec = cluttered_spec(name)
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
