"""The images a Fréchet distance compares, for a checkpoint: its real held-out images, the
labelled training images its feature network learns from, and its samples.

A checkpoint's :class:`ImageSource` is its family's data at its image size:

* DooD and the AIR baselines (``dood``, ``air``, ``difference-air``): :func:`load_dood_images`,
  grey ``[0, 1]`` at the model's size; samples are the final canvases of
  :func:`tasks.dood.pictures.generate_samples` (DooD at ``temperature``, appendix D.2.1);
* DRAW: :func:`tasks.data.load_images` as DRAW trains on it; samples are the final canvases
  ``σ(c_T)`` (:func:`tasks.draw.pictures.sample_canvases`), Bernoulli-sampled when the held-out
  split is binary (``binarized_mnist``, and MNIST's fixed-seed test binarisation), so that
  samples and data lie on the same support.

Labels of the feature network (:func:`labelled_images`): MNIST digits (``binarized_mnist`` has
none, so its network learns MNIST's digits from the same 50k training images, Bernoulli-sampled
every batch); QuickDraw categories; Omniglot *character* labels of the background set (964
classes; the loaders carry no alphabet labels), tested on the held-out drawers 19–20 of those
characters, since the test split (evaluation set) holds other characters; glyphs: the number of
strokes (1–6, the only label the generator gives).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from inference.checkpoint import Checkpoint
from tasks.data import ImageData, load_images
from tasks.data.core import DataError, TooFewExamplesError, binarize
from tasks.dood.data import canonical_dataset, load_dood_images
from tasks.dood.models import MODEL_NAMES as STROKE_MODELS
from tasks.dood.pictures import generate_samples
from tasks.draw.pictures import sample_canvases
from tasks.quality.features import LabelledImages

__all__ = [
    "IMAGE_MODELS",
    "ImageSource",
    "image_source",
    "labelled_images",
    "load_real",
    "model_samples",
]

IMAGE_MODELS: tuple[str, ...] = (*STROKE_MODELS, "draw")
_BINARY = ("fixed", "seeded")
_LABEL_SOURCE = {"binarized_mnist": "mnist"}  # no labels of its own: the same digits, binarised
_ACCURACY_SPLIT = {"omniglot": "valid"}  # the test characters are not the training characters
_SAMPLE_CHUNK = 100


@dataclass(frozen=True)
class ImageSource:
    """A checkpoint's data: ``kind`` ``"strokes"`` (DooD/AIR loaders) or ``"images"`` (DRAW's),
    the ``dataset`` name and the square image ``size``."""

    kind: str
    dataset: str
    size: int

    @property
    def key(self) -> str:
        return f"{self.dataset}_{self.size}"


def image_source(checkpoint: Checkpoint) -> ImageSource:
    """The :class:`ImageSource` of a DooD, AIR or DRAW checkpoint; ``ValueError`` for others."""
    if checkpoint.model not in IMAGE_MODELS:
        raise ValueError(
            f"fid: {checkpoint.path} holds a {checkpoint.model!r} model, which does not sample "
            f"images; Fréchet distances take {', '.join(IMAGE_MODELS)} checkpoints"
        )
    config = checkpoint.model_config
    if config.get("height") != config.get("width") or config.get("channels", 1) != 1:
        raise ValueError(f"fid: {checkpoint.path}: square grey images only, found {config}")
    dataset = checkpoint.record.dataset
    if not isinstance(dataset, str):
        raise ValueError(f"fid: {checkpoint.path} does not record one training dataset")
    if checkpoint.model in STROKE_MODELS:
        return ImageSource("strokes", canonical_dataset(dataset), int(config["height"]))
    return ImageSource("images", dataset, int(config["height"]))


def _load(
    source: ImageSource,
    dataset: str,
    split: str,
    num: int | None,
    seed: int,
    where: dict[str, Any],
) -> ImageData:
    if source.kind == "strokes":
        return load_dood_images(
            dataset, split, size=source.size, num_examples=num, seed=seed, **where
        )
    data = load_images(dataset, split, num_examples=num, seed=seed, **where)
    if data.images.shape[-1] != source.size:
        raise DataError(
            f"{dataset}/{split} images are {data.images.shape[-1]} px, the model's {source.size}"
        )
    return data


def load_real(
    source: ImageSource,
    num: int,
    *,
    seed: int = 0,
    data_dir: str | Path | None = None,
    download: bool = False,
) -> tuple[Tensor, Tensor, ImageData]:
    """Two disjoint sets of ``num`` held-out test images (a seeded random ``2·num`` subset of
    the test split, shuffled and halved): ``(compared with samples, the floor's other half,
    the loaded data)``. ``DataError`` if the split holds fewer than ``2·num``."""
    data = _load(source, source.dataset, "test", 2 * num, seed, _where(data_dir, download))
    if len(data) < 2 * num:
        raise DataError(
            f"{source.dataset}/test holds {len(data)} images: the floor needs 2 x {num}; lower "
            "--num-samples"
        )
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    images = data.images[order]
    return images[:num], images[num : 2 * num], data


def _where(data_dir: str | Path | None, download: bool) -> dict[str, Any]:
    return {"data_dir": data_dir, "download": download}


def _load_at_most(
    source: ImageSource,
    dataset: str,
    split: str,
    num: int | None,
    seed: int,
    where: dict[str, Any],
) -> ImageData:
    """A seeded subset of ``num`` images, or the whole split when it holds fewer."""
    try:
        return _load(source, dataset, split, num, seed, where)
    except TooFewExamplesError:  # the split is smaller: take all of it
        return _load(source, dataset, split, None, seed, where)


def _labels(data: ImageData) -> Tensor:
    if data.labels is not None:
        return data.labels
    if "num_strokes" in data.extras:
        return data.extras["num_strokes"].long() - 1
    raise DataError(
        f"{data.name}/{data.split} has no labels to train a feature network on; give "
        "--features PATH (Inception-v3) instead"
    )


def labelled_images(
    source: ImageSource,
    *,
    num_train: int | None = 20000,
    num_test: int = 2000,
    seed: int = 0,
    data_dir: str | Path | None = None,
    download: bool = False,
) -> LabelledImages:
    """The feature network's training and held-out images with their labels (module
    docstring), seeded subsets of at most ``num_train`` / ``num_test`` images."""
    where = _where(data_dir, download)
    canonical = canonical_dataset(source.dataset) if source.kind == "strokes" else source.dataset
    dataset = _LABEL_SOURCE.get(canonical, source.dataset)
    train = _load_at_most(source, dataset, "train", num_train, seed, where)
    split = _ACCURACY_SPLIT.get(canonical, "test")
    test = _load_at_most(source, dataset, split, num_test, seed, where)
    train_labels, test_labels = _labels(train), _labels(test)
    binary_target = source.kind == "images" and (
        dataset != source.dataset or test.binarization in _BINARY
    )
    return LabelledImages(
        dataset=source.dataset,
        size=source.size,
        train_images=train.images,
        train_labels=train_labels,
        test_images=test.images,
        test_labels=test_labels,
        num_classes=int(max(train_labels.max(), test_labels.max())) + 1,
        binarize=binary_target and train.binarization not in _BINARY,
        describe={
            "labels_from": f"{dataset}/train",
            "labels": _label_name(canonical),
            "accuracy_split": f"{dataset}/{split}",
            "train_binarization": train.binarization,
        },
    )


def _label_name(dataset: str) -> str:
    return {
        "omniglot": "character (background set, 964 classes)",
        "glyphs": "number of strokes (1-6)",
        "quickdraw": "category",
    }.get(dataset, "digit")


def model_samples(
    model: nn.Module,
    source: ImageSource,
    num: int,
    *,
    temperature: float = 1.0,
    binary: bool = False,
    seed: int = 0,
) -> Tensor:
    """``(num, 1, H, W)`` unconditional samples in ``[0, 1]`` (module docstring), drawn in
    chunks under ``torch.no_grad`` with a seeded RNG (the global one is left untouched);
    ``binary``: Bernoulli-sample DRAW's canvases."""
    was = model.training
    model.eval()
    parts = []
    try:
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, num, _SAMPLE_CHUNK):
                n = min(_SAMPLE_CHUNK, num - start)
                if source.kind == "strokes":
                    images = generate_samples(model, n, temperature)["images"]
                else:
                    images = sample_canvases(model, n)
                    images = binarize(images.clamp(0, 1)) if binary else images
                parts.append(images.float().clamp(0.0, 1.0).cpu())
    finally:
        model.train(was)
    return torch.cat(parts)
