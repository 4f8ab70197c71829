"""Tests of tasks/data: real MNIST files, glyphs, two-digit MNIST and file handling."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from generative.bezier import bezier_points, compose_canvas, render_strokes
from tasks.data import DATASET_NAMES, DataError, ImageData, load_images
from tasks.data import paths as paths_mod
from tasks.data.core import TooFewExamplesError, binarize
from tasks.data.glyphs import (
    DEFAULT_NUM_EXAMPLES,
    FRAME,
    NUM_CURVE_SAMPLES,
    canonical_to_image,
    glyph_strokes,
)
from tasks.data.mnist import (
    BINARIZED_AMAT,
    BINARIZED_NPZ,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    MNIST_FILES,
    mnist_split_arrays,
    read_idx,
)
from tasks.data.paths import FileSpec, file_sha256, locate, resolve_data_dir

# From /work/shared/data/README.md
MNIST_TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_MEAN_PIXEL = 33.3184  # of the 60k official training images, in 0..255
BINARIZED_MEANS = {"train": 0.13056, "valid": 0.13113, "test": 0.13251}


def assert_binary(images: torch.Tensor) -> None:
    """All values are exactly 0 or 1, and both occur (cheaper than ``unique`` on big tensors)."""
    assert ((images == 0) | (images == 1)).all()
    assert (images == 0).any() and (images == 1).any()


# --------------------------------------------------------------------------- MNIST (real files)
def test_mnist_shapes_labels_and_binarization(real_data_dir: Path) -> None:
    data = {s: load_images("mnist", s, data_dir=real_data_dir) for s in ("train", "valid", "test")}
    expected_n = {"train": 50_000, "valid": 10_000, "test": 10_000}
    for split, d in data.items():
        assert isinstance(d, ImageData)
        assert d.images.shape == (expected_n[split], 1, 28, 28)
        assert d.images.dtype == torch.float32 and d.labels.dtype == torch.int64
        assert d.images.min() >= 0 and d.images.max() <= 1
        json.dumps(d.info)  # provenance must be JSON-serialisable
    train_valid = torch.cat([data["train"].labels, data["valid"].labels])
    assert torch.bincount(train_valid).tolist() == MNIST_TRAIN_LABEL_COUNTS
    assert torch.bincount(data["test"].labels).tolist() == MNIST_TEST_LABEL_COUNTS
    # train is grey (dynamic) = first 50k official images; valid's source is the last 10k.
    assert data["train"].binarization == "dynamic"
    grey = np.concatenate([mnist_split_arrays(s, real_data_dir)[0] for s in ("train", "valid")])
    assert grey.shape == (60_000, 28, 28)
    assert float(grey.mean(dtype=np.float64)) == pytest.approx(MNIST_TRAIN_MEAN_PIXEL, abs=1e-4)
    assert data["train"].images.sum().item() == pytest.approx(
        grey[:50_000].sum(dtype=np.float64) / 255, rel=1e-5
    )
    for split in ("valid", "test"):
        d = data[split]
        assert d.binarization == "seeded" and "binarization_seed" in d.info
        assert_binary(d.images)
    # seeded binarisation is reproducible and independent of the subset that is selected
    again = load_images("mnist", "test", data_dir=real_data_dir, num_examples=100, seed=3)
    assert again.images.shape[0] == 100
    index = again.extras["index"]
    assert index.shape == (100,) and (index.diff() > 0).all()
    assert torch.equal(again.images, data["test"].images[index])
    assert torch.equal(again.labels, data["test"].labels[index])
    assert not torch.equal(index, torch.arange(100))  # a seeded subset, not a prefix


def test_mnist_resize_for_dood(real_data_dir: Path) -> None:
    d = load_images("mnist", "train", data_dir=real_data_dir, num_examples=32, size=50)
    assert d.images.shape == (32, 1, 50, 50)
    assert d.images.min() >= 0 and d.images.max() <= 1
    assert d.info["size"] == 50


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_binarized_mnist_fixed_values_and_means(real_data_dir: Path, split: str) -> None:
    d = load_images("binarized_mnist", split, data_dir=real_data_dir)
    assert d.binarization == "fixed" and d.labels is None
    assert d.images.shape == ({"train": 50_000}.get(split, 10_000), 1, 28, 28)
    assert_binary(d.images)
    assert d.images.mean().item() == pytest.approx(BINARIZED_MEANS[split], abs=5e-6)
    assert d.info["files"][0]["sha256"] == BINARIZED_NPZ.sha256


def test_binarized_mnist_reads_canonical_amat(real_data_dir: Path, tmp_path: Path) -> None:
    """Re-serialising the npz split as text gives the official .amat (sha256 from the README);
    the loader must then prefer it and return identical images."""
    from_npz = load_images("binarized_mnist", "valid", data_dir=real_data_dir)
    pixels = from_npz.images.reshape(-1, 784).to(torch.uint8).numpy()
    spec = BINARIZED_AMAT["valid"]
    target = spec.path_in(tmp_path)
    target.parent.mkdir(parents=True)
    text = np.full((pixels.shape[0], 2 * 784), ord(" "), dtype=np.uint8)
    text[:, 0::2] = pixels + ord("0")
    text[:, -1] = ord("\n")
    target.write_bytes(text.tobytes())
    assert file_sha256(target) == spec.sha256
    from_amat = load_images("binarized_mnist", "valid", data_dir=tmp_path)
    assert from_amat.binarization == "fixed"
    assert from_amat.info["files"][0]["path"] == str(target)
    assert torch.equal(from_amat.images, from_npz.images)


def test_binarized_mnist_falls_back_to_mnist(
    real_data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "mnist").mkdir()
    for spec in MNIST_FILES.values():  # symlinks, nothing is copied
        (tmp_path / "mnist" / spec.filename).symlink_to(spec.path_in(real_data_dir))
    with caplog.at_level(logging.WARNING):
        d = load_images("binarized_mnist", "test", data_dir=tmp_path, num_examples=50)
    assert d.binarization == "seeded" and d.name == "binarized_mnist"
    note = d.info["binarization_note"]
    assert "fell back to MNIST" in note and "binarized_mnist_test.amat" in note
    assert any("fell back to MNIST" in r.getMessage() for r in caplog.records)
    train = load_images("binarized_mnist", "train", data_dir=tmp_path, num_examples=5)
    assert train.binarization == "dynamic"


# --------------------------------------------------------------------------- file handling
def test_missing_file_error_names_file_url_and_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_images("mnist", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in msg
    assert "http://yann.lecun.com/exdb/mnist/t10k-images-idx3-ubyte.gz" in msg
    assert str(tmp_path / "mnist") in msg
    assert "download=True" in msg and "--download" in msg
    assert "data_dir argument" in msg


def test_missing_everything_for_binarized_mnist(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="binarized_mnist_valid.amat") as err:
        load_images("binarized_mnist", "valid", data_dir=tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(err.value)


def test_corrupt_file_reports_expected_and_found_sha(tmp_path: Path) -> None:
    spec = MNIST_FILES["test_images"]
    bad = spec.path_in(tmp_path)
    bad.parent.mkdir(parents=True)
    garbage = b"this is not the MNIST test set" * 100
    bad.write_bytes(garbage)
    with pytest.raises(DataError) as err:
        load_images("mnist", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert str(bad) in msg
    assert spec.sha256 in msg and hashlib.sha256(garbage).hexdigest() in msg
    assert "delete it" in msg
    # download=True must not silently overwrite a corrupt file either
    with pytest.raises(DataError, match="checksum mismatch"):
        locate(spec, tmp_path, download=True)


def _write_idx(path: Path, magic: int, dims: tuple[int, ...], payload: bytes) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    with gzip.open(path, "wb") as handle:
        handle.write(header + payload)


def test_idx_parser_checks_magic_and_size(tmp_path: Path) -> None:
    good = tmp_path / "good.gz"
    _write_idx(good, IDX_IMAGES_MAGIC, (2, 3, 4), bytes(range(24)))
    array = read_idx(good, IDX_IMAGES_MAGIC)
    assert array.shape == (2, 3, 4) and array[1, 2, 3] == 23
    labels_file = tmp_path / "labels.gz"
    _write_idx(labels_file, IDX_LABELS_MAGIC, (3,), bytes([1, 2, 3]))
    with pytest.raises(DataError) as err:
        read_idx(labels_file, IDX_IMAGES_MAGIC)
    msg = str(err.value)
    assert str(labels_file) in msg and "0x00000803" in msg and "0x00000801" in msg
    short = tmp_path / "short.gz"
    _write_idx(short, IDX_IMAGES_MAGIC, (2, 3, 4), bytes(20))
    with pytest.raises(DataError, match="payload size mismatch"):
        read_idx(short, IDX_IMAGES_MAGIC)
    not_gz = tmp_path / "plain.gz"
    not_gz.write_bytes(b"\x00\x00\x08\x03 not gzip")
    with pytest.raises(DataError, match="cannot decompress"):
        read_idx(not_gz, IDX_IMAGES_MAGIC)


def test_download_via_file_url(tmp_path: Path) -> None:
    source = tmp_path / "remote" / "blob.bin"
    source.parent.mkdir()
    content = b"\x01\x02pyro-draw" * 1000
    source.write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    data_dir = tmp_path / "data"
    spec = FileSpec("things", "blob.bin", sha, source.as_uri())
    with pytest.raises(DataError, match="download=True"):
        locate(spec, data_dir)
    path = locate(spec, data_dir, download=True)
    assert path == spec.path_in(data_dir.resolve()) and path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["blob.bin"]  # no temp leftovers
    assert locate(spec, data_dir) == path  # now found without downloading

    bad = FileSpec("other", "blob.bin", "0" * 64, source.as_uri())
    with pytest.raises(DataError) as err:
        locate(bad, data_dir, download=True)
    assert "0" * 64 in str(err.value) and sha in str(err.value)
    assert list((data_dir / "other").iterdir()) == []  # neither target nor temp file left

    unreachable = FileSpec("gone", "x.bin", sha, (tmp_path / "nope.bin").as_uri())
    with pytest.raises(DataError, match="could not download"):
        locate(unreachable, data_dir, download=True)
    assert list((data_dir / "gone").iterdir()) == []


def test_sha256_is_cached_per_path_size_mtime(tmp_path: Path, monkeypatch) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    first = file_sha256(f)
    assert first == hashlib.sha256(b"abc").hexdigest()

    def boom(*args, **kwargs):
        raise AssertionError("re-hashed a file that was already verified")

    monkeypatch.setattr(paths_mod.hashlib, "sha256", boom)
    assert file_sha256(f) == first
    f.write_bytes(b"abcd")  # size (and mtime) change invalidates the cache entry
    with pytest.raises(AssertionError, match="re-hashed"):
        file_sha256(f)


def test_resolve_data_dir_precedence(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYRO_DRAW_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert resolve_data_dir() == (tmp_path / "env").resolve()
    monkeypatch.delenv("PYRO_DRAW_DATA_DIR")
    work = tmp_path / "work"
    (tmp_path / "shared" / "data").mkdir(parents=True)
    work.mkdir()
    monkeypatch.chdir(work)
    assert resolve_data_dir() == (tmp_path / "shared" / "data").resolve()


def test_too_many_examples_requested(real_data_dir: Path) -> None:
    with pytest.raises(DataError, match="num_examples=10001, but only 10000") as info:
        load_images("mnist", "test", data_dir=real_data_dir, num_examples=10_001)
    assert isinstance(info.value, TooFewExamplesError) and info.value.available == 10_000


def test_unknown_name_and_split() -> None:
    with pytest.raises(DataError) as err:
        load_images("fashion_mnist", "train")
    for name in DATASET_NAMES:
        assert name in str(err.value)
    with pytest.raises(DataError, match="'train', 'valid', 'test'"):
        load_images("glyphs", "validation")


def test_binarize_is_bernoulli() -> None:
    probs = torch.tensor([0.0, 1.0, 0.3]).repeat(20_000, 1)
    sample = binarize(probs, torch.Generator().manual_seed(0))
    assert set(sample.unique().tolist()) <= {0.0, 1.0}
    assert sample[:, 0].sum() == 0 and sample[:, 1].sum() == 20_000
    assert sample[:, 2].mean().item() == pytest.approx(0.3, abs=0.015)


# --------------------------------------------------------------------------- glyphs
def test_glyphs_deterministic_and_seed_dependent() -> None:
    a = load_images("glyphs", "train", num_examples=200, seed=7)
    b = load_images("glyphs", "train", num_examples=200, seed=7)
    assert torch.equal(a.images, b.images)
    for key, value in a.extras.items():
        assert torch.equal(value, b.extras[key]), key
    c = load_images("glyphs", "train", num_examples=200, seed=8)
    assert not torch.equal(a.images, c.images)
    v = load_images("glyphs", "valid", num_examples=200, seed=7)
    assert not torch.equal(a.extras["control_points"], v.extras["control_points"])
    json.dumps(a.info)


def test_glyph_ground_truth_reproduces_images() -> None:
    d = load_images("glyphs", "train", num_examples=300, size=28, seed=1)
    x = d.extras
    assert d.images.shape == (300, 1, 28, 28) and d.binarization == "dynamic"
    assert d.images.min() >= 0 and d.images.max() <= 1
    counts = x["num_strokes"]
    assert counts.dtype == torch.int64 and counts.min() >= 1 and counts.max() <= 6
    assert set(counts.tolist()) == {1, 2, 3, 4, 5, 6}
    assert torch.equal(x["stroke_mask"].sum(-1), counts)
    assert x["control_points"].shape == (300, 6, 4, 2) and x["layout"].shape == (300, 6, 4)
    absent = ~x["stroke_mask"]
    assert (x["control_points"][absent] == 0).all() and (x["canonical_points"][absent] == 0).all()
    # canonical -> image map p_img = t + s R(theta) p_can
    mapped = canonical_to_image(x["canonical_points"], x["layout"])
    present = x["stroke_mask"]
    torch.testing.assert_close(mapped[present], x["control_points"][present], atol=1e-5, rtol=0)
    assert x["control_points"].abs().max() <= FRAME + 1e-5  # strokes lie inside the frame
    # re-render the stored control points with the stored renderer parameters
    strokes = render_strokes(
        x["control_points"], x["sigma"], x["omega0"], 28, 28, NUM_CURVE_SAMPLES
    )
    canvas = compose_canvas(strokes, x["omega1"], present)
    torch.testing.assert_close(canvas, d.images[:, 0], atol=1e-5, rtol=0)


def test_glyph_strokes_look_like_pen_strokes() -> None:
    d = load_images("glyphs", "train", num_examples=400, size=28, seed=2)
    single = d.extras["num_strokes"] == 1
    ink = (d.images[single] > 0.5).flatten(1).sum(1)
    assert single.sum() > 20
    assert ink.min() >= 5, "strokes must be visible"
    assert ink.max() <= 120, "a single stroke must not be a blob"
    border = d.images[:, 0].clone()
    border[:, 1:-1, 1:-1] = 0
    assert border.max() < 0.2  # ink stays off the image border


def test_glyph_sizes_splits_and_seeded_binarization() -> None:
    v = load_images("glyphs", "valid", num_examples=64, size=50, seed=0)
    assert v.images.shape == (64, 1, 50, 50) and v.binarization == "seeded"
    assert_binary(v.images)
    x = v.extras
    grey = compose_canvas(
        render_strokes(x["control_points"], x["sigma"], x["omega0"], 50, 50),
        x["omega1"],
        x["stroke_mask"],
    )
    assert (grey[v.images[:, 0] == 1] > 0).all()  # ink only where the grey image has ink
    assert torch.equal(v.images, load_images("glyphs", "valid", num_examples=64, size=50).images)
    assert DEFAULT_NUM_EXAMPLES == {"train": 10_000, "valid": 1_000, "test": 1_000}


def test_glyph_strokes_polylines() -> None:
    d = load_images("glyphs", "test", num_examples=20, seed=4)
    polylines = glyph_strokes(d, num_points=12)
    assert len(polylines) == 20
    for i, strokes in enumerate(polylines):
        assert len(strokes) == int(d.extras["num_strokes"][i])
        cps = d.extras["control_points"][i][d.extras["stroke_mask"][i]]
        for line, cp in zip(strokes, cps, strict=True):
            assert line.shape == (12, 2)
            np.testing.assert_allclose(line[0], cp[0].numpy(), atol=1e-6)
            np.testing.assert_allclose(line[-1], cp[-1].numpy(), atol=1e-6)
            np.testing.assert_allclose(line, bezier_points(cp, 12).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="control_points"):
        glyph_strokes(ImageData("x", "train", torch.zeros(1, 1, 2, 2), None, "none"))


@pytest.mark.slow
def test_default_glyph_train_split_is_fast() -> None:
    start = time.perf_counter()
    d = load_images("glyphs", "train")
    elapsed = time.perf_counter() - start
    assert d.images.shape == (10_000, 1, 28, 28)
    assert elapsed < 5.0, f"default glyph train split took {elapsed:.1f} s"


# --------------------------------------------------------------------------- two-digit MNIST
def test_two_digit_mnist(real_data_dir: Path) -> None:
    d = load_images("two_digit_mnist", "train", data_dir=real_data_dir, num_examples=64, seed=5)
    assert d.images.shape == (64, 1, 60, 60) and d.binarization == "dynamic"
    assert d.images.min() >= 0 and d.images.max() <= 1 and d.labels is None
    again = load_images("two_digit_mnist", "train", data_dir=real_data_dir, num_examples=64, seed=5)
    assert torch.equal(d.images, again.images)
    other = load_images("two_digit_mnist", "train", data_dir=real_data_dir, num_examples=64, seed=6)
    assert not torch.equal(d.images, other.images)
    # rebuild every image from the recorded sources and positions
    digits, labels, _ = mnist_split_arrays("train", real_data_dir)
    src, pos = d.extras["source_indices"], d.extras["positions"]
    assert torch.equal(d.extras["digit_labels"], torch.from_numpy(labels[src.numpy()]).long())
    assert pos.min() >= 0 and pos.max() <= 60 - 28
    rebuilt = torch.zeros(64, 60, 60)
    for i in range(64):
        for k in range(2):
            r, c = pos[i, k].tolist()
            rebuilt[i, r : r + 28, c : c + 28] += torch.from_numpy(digits[int(src[i, k])] / 255.0)
    torch.testing.assert_close(d.images[:, 0], rebuilt.clamp(max=1.0))
    assert (d.images.flatten(1).sum(1) > 0).all()
    test = load_images("two_digit_mnist", "test", data_dir=real_data_dir, num_examples=16)
    assert test.binarization == "seeded"
    assert_binary(test.images)
    json.dumps(test.info)


def test_registry_lists_every_name_and_offers_only_those_that_load():
    from tasks.data.registry import IMAGE_DATASETS, available_datasets

    assert set(IMAGE_DATASETS) == set(DATASET_NAMES)
    offered = available_datasets()
    assert "glyphs" in offered and "emnist50" not in offered and "kmnist50" not in offered
    for name in set(DATASET_NAMES) - set(offered):
        with pytest.raises(DataError, match="not available"):
            load_images(name, "test")
    with pytest.raises(DataError, match="glyphs"):
        load_images("no_such_set", "test")
