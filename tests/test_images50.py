"""Tests of DooD's 50×50 datasets (tasks/data/images50.py) on the shared real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.data import DataError
from tasks.data.images50 import (
    OMNIGLOT_VALID_DRAWERS,
    QUICKDRAW_CLASSES,
    load_images50,
)
from tasks.data.mnist import load_mnist

SPLIT_SIZES = {
    "mnist50": {"train": 50_000, "valid": 10_000, "test": 10_000},
    "omniglot50": {"train": 964 * 18, "valid": 964 * 2, "test": 659 * 20},
    "quickdraw50": {"train": 6 * 2100, "valid": 6 * 300, "test": 6 * 600},
}


@pytest.mark.parametrize("name", sorted(SPLIT_SIZES))
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_shapes_range_labels_and_split_sizes(real_data_dir: Path, name: str, split: str) -> None:
    data = load_images50(name, split, num_examples=24, seed=3, data_dir=real_data_dir)
    assert data.images.shape == (24, 1, 50, 50) and data.images.dtype == torch.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.images.amax(dim=(1, 2, 3)).min() > 0.5  # every image has ink
    assert data.binarization == "none"
    assert data.info["total_in_split"] == SPLIT_SIZES[name][split]
    assert data.labels is not None and data.labels.dtype == torch.int64
    index = data.extras["index"]
    assert index.shape == (24,) and (index.diff() > 0).all()
    assert index.max() < SPLIT_SIZES[name][split]


def test_deterministic_and_seeded_subsets(real_data_dir: Path) -> None:
    a = load_images50("quickdraw50", "valid", num_examples=40, seed=5, data_dir=real_data_dir)
    b = load_images50("quickdraw50", "valid", num_examples=40, seed=5, data_dir=real_data_dir)
    c = load_images50("quickdraw50", "valid", num_examples=40, seed=6, data_dir=real_data_dir)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.extras["index"], c.extras["index"])
    # An example is the same image whatever subset it appears in.
    full = load_images50("quickdraw50", "valid", data_dir=real_data_dir)
    assert torch.equal(full.images[a.extras["index"]], a.images)


def test_mnist50_is_mnist_resized_to_50(real_data_dir: Path) -> None:
    ours = load_images50("mnist50", "train", num_examples=16, seed=2, data_dir=real_data_dir)
    ref = load_mnist("train", num_examples=16, seed=2, size=50, data_dir=real_data_dir)
    assert ref.binarization == "dynamic"  # train split of `mnist` keeps grey values
    torch.testing.assert_close(ours.images, ref.images)
    assert torch.equal(ours.labels, ref.labels)


def test_omniglot_is_inverted_and_split_by_drawer(real_data_dir: Path) -> None:
    raw = np.load(real_data_dir / "omniglot" / "images_background.npz")["images"]
    data = load_images50("omniglot50", "valid", size=105, data_dir=real_data_dir)
    assert data.images.shape == (964 * 2, 1, 105, 105)
    drawers, chars = data.extras["drawer"], data.labels
    assert set(drawers.tolist()) == set(OMNIGLOT_VALID_DRAWERS)
    for i in (0, 1, 777, 1927):  # at the native size the loader is exactly 1 - raw
        expected = torch.from_numpy(~raw[chars[i].item(), drawers[i].item()]).float()
        assert torch.equal(data.images[i, 0], expected)
    assert data.images.mean() < 0.2  # ink = 1 is the minority
    train = load_images50("omniglot50", "train", num_examples=200, data_dir=real_data_dir)
    assert not set(train.extras["drawer"].tolist()) & set(OMNIGLOT_VALID_DRAWERS)
    test = load_images50("omniglot50", "test", num_examples=50, data_dir=real_data_dir)
    assert test.labels.min() >= 964 and test.labels.max() <= 1622  # evaluation alphabets


def test_quickdraw_rows_and_classes(real_data_dir: Path) -> None:
    raw = np.load(real_data_dir / "quickdraw_bitmaps" / "quickdraw_bitmap_6class_3000.npz")
    data = load_images50("quickdraw50", "test", size=28, data_dir=real_data_dir)
    assert data.info["classes"] == list(QUICKDRAW_CLASSES)
    assert data.info["classes_in_paper"] == ["apple", "bicycle", "eye"]
    assert torch.bincount(data.labels).tolist() == [600] * 6
    rows = data.extras["row"]
    assert rows.min() == 2400 and rows.max() == 2999
    for i in (0, 1234, 3599):
        cls = QUICKDRAW_CLASSES[data.labels[i].item()]
        expected = torch.from_numpy(raw[cls][rows[i].item()].reshape(28, 28)).float() / 255
        assert torch.equal(data.images[i, 0], expected)


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("omniglot50", "images_background.npz"),
        ("quickdraw50", "quickdraw_bitmap_6class_3000.npz"),
        ("mnist50", "train-images-idx3-ubyte.gz"),
    ],
)
def test_missing_file_gives_clear_error(tmp_path: Path, name: str, filename: str) -> None:
    with pytest.raises(DataError, match=filename) as info:
        load_images50(name, "train", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_unavailable_and_bad_arguments(real_data_dir: Path) -> None:
    for name, what in [("emnist50", "EMNIST"), ("kmnist50", "KMNIST")]:
        with pytest.raises(DataError, match=f"{what}.*not available"):
            load_images50(name, "train")
    with pytest.raises(DataError, match="unknown DooD dataset"):
        load_images50("svhn50", "train")
    with pytest.raises(DataError, match="unknown split"):
        load_images50("quickdraw50", "validation")
    with pytest.raises(DataError, match="only 1800 exist"):
        load_images50("quickdraw50", "valid", num_examples=5000, data_dir=real_data_dir)
