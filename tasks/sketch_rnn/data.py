"""sketch-rnn's data: the train/valid/test splits of a training run and the split a checkpoint
command reads, all normalised by the training split's scale factor.

Sketches longer than ``max_length`` are dropped first; ``N_max`` of a new run is the longest
sketch kept in any split (as the reference code), and is stored in the model config with the
scale factor, so a checkpoint command loads its data in the model's units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from generative.sketch_rnn_config import SketchRNNConfig
from inference.checkpoint import Checkpoint
from tasks.data.strokes import DEFAULT_MAX_LENGTH, StrokeData, load_strokes
from tasks.options import DataOptions

__all__ = ["checkpoint_data", "dataset_name", "load_sketch_splits", "subset"]


def dataset_name(dataset: str | Sequence[str]) -> str | list[str]:
    """One name, or the list of npz names to concatenate (a one-name list is that name); a name
    ``a+b`` (:attr:`StrokeData.name` of concatenated npz datasets) is the list ``[a, b]``."""
    if isinstance(dataset, str):
        return dataset.split("+") if "+" in dataset else dataset
    names = list(dataset)
    return names[0] if len(names) == 1 else names


def load_sketch_splits(
    dataset: str | Sequence[str],
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    classes: Sequence[str] | None = None,
    scale_factor: float | None = None,
    data_dir: str | None = None,
    download: bool = False,
) -> dict[str, StrokeData]:
    """Train/valid/test splits normalised by the training split's scale factor (or the given
    one), sketches longer than ``max_length`` dropped."""
    name = dataset_name(dataset)
    common = dict(data_dir=data_dir, download=download, max_length=max_length, classes=classes)
    train = load_strokes(name, "train", scale_factor=scale_factor, **common)
    splits = {"train": train}
    for split in ("valid", "test"):
        splits[split] = load_strokes(name, split, scale_factor=train.scale_factor, **common)
    return splits


def subset(data: StrokeData, num_examples: int | None, seed: int) -> list[np.ndarray]:
    """A fixed random subset of the sequences, in their original order."""
    n = len(data)
    if num_examples is None or num_examples >= n:
        return list(data.sequences)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [data.sequences[i] for i in perm[:num_examples].sort().values.tolist()]


def checkpoint_data(
    checkpoint: Checkpoint,
    config: SketchRNNConfig,
    options: DataOptions,
    *,
    dataset: str | None = None,
    split: str = "test",
) -> StrokeData:
    """The split a checkpoint command reads, in the model's units: ``dataset`` or the dataset
    the checkpoint was trained on (with its QuickDraw categories), at most ``N_max`` points,
    normalised by the model's scale factor; files found through ``options``."""
    name = dataset or checkpoint.record.dataset
    if name is None:
        raise ValueError(f"{checkpoint.path}: the checkpoint records no dataset; pass --dataset")
    # the training categories (QuickDraw) unless another dataset is asked for
    classes = checkpoint.record.data.get("classes") if dataset is None else None
    return load_strokes(
        dataset_name(name),
        split,
        data_dir=options.data_dir,
        download=options.download,
        max_length=config.max_length,
        scale_factor=config.scale_factor,
        classes=classes,
    )
