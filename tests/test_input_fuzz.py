"""Property-based tests of the loaders and input checks: bad stroke-3 arrays, images, IDX files
and zip archives each give a specific DataError/ValueError naming the file or field, never an
IndexError, struct.error or KeyError from deep inside."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from generative.checks import check_classification_batch, check_image_batch
from tasks.data import DataError, ImageData
from tasks.data import mnist as mnist_mod
from tasks.data import strokes as strokes_mod
from tasks.data.core import check_images
from tasks.data.mnist import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, mnist_split_arrays, read_idx
from tasks.data.paths import FileSpec, file_sha256
from tasks.data.stroke_formats import MAX_ABS_OFFSET, validate_sequence
from tasks.data.strokes import load_strokes
from tasks.evaluate import evaluate_log_likelihood
from tasks.one_shot.runs import load_runs

FAST = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_fresh = itertools.count()


def _fresh_dir(root: Path) -> Path:
    """A new folder per example: the loaders cache on (path, size, mtime)."""
    path = root / f"case{next(_fresh)}"
    path.mkdir()
    return path


# --------------------------------------------------------------------------- stroke-3 arrays
def _stroke3(min_rows: int = 1, max_rows: int = 12) -> st.SearchStrategy[np.ndarray]:
    """Valid stroke-3 sketches: integer or float offsets, pen 0/1."""

    @st.composite
    def build(draw: st.DrawFn) -> np.ndarray:
        n = draw(st.integers(min_rows, max_rows))
        offsets = draw(st.lists(st.integers(-600, 600), min_size=2 * n, max_size=2 * n))
        pens = draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))
        dtype = draw(st.sampled_from([np.int16, np.int64, np.float32, np.float64]))
        return np.column_stack([np.reshape(offsets, (n, 2)), pens]).astype(dtype)

    return build()


@FAST
@given(seq=_stroke3())
def test_a_valid_sketch_passes_as_float32(seq: np.ndarray) -> None:
    out = validate_sequence(seq, 0, "toy")
    assert out.dtype == np.float32 and np.array_equal(out, seq.astype(np.float32))


@FAST
@given(
    seq=_stroke3(),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
    data=st.data(),
)
def test_nan_or_inf_is_named_with_its_row(seq: np.ndarray, value: float, data) -> None:
    seq = seq.astype(np.float64)
    row = data.draw(st.integers(0, len(seq) - 1))
    seq[row, data.draw(st.integers(0, 2))] = value
    with pytest.raises(DataError, match=rf"^toy: sequence 4: expected finite values.*row {row}"):
        validate_sequence(seq, 4, "toy")


@FAST
@given(
    seq=_stroke3(),
    huge=st.floats(MAX_ABS_OFFSET * 1.01, 1e300) | st.integers(2 * 10**6, 2**62),
    negative=st.booleans(),
    data=st.data(),
)
def test_huge_offsets_are_refused(seq: np.ndarray, huge: float, negative: bool, data) -> None:
    seq = seq.astype(np.float64 if isinstance(huge, float) else np.int64)
    row = data.draw(st.integers(0, len(seq) - 1))
    seq[row, data.draw(st.integers(0, 1))] = -huge if negative else huge
    with pytest.raises(DataError, match=rf"toy: sequence 0: expected offsets .*at row {row}"):
        validate_sequence(seq, 0, "toy")


@FAST
@given(seq=_stroke3(), dtype=st.sampled_from([object, str, complex, bool]))
def test_wrong_dtypes_are_refused(seq: np.ndarray, dtype: type) -> None:
    with pytest.raises(DataError, match=r"toy: sequence 2: expected numeric .*found dtype"):
        validate_sequence(seq.astype(dtype), 2, "toy")


@FAST
@given(shape=st.lists(st.integers(0, 5), min_size=0, max_size=4))
def test_wrong_shapes_and_empty_sketches_are_refused(shape: list[int]) -> None:
    seq = np.zeros(shape, dtype=np.float32)
    if len(shape) == 2 and shape[1] == 3:
        pattern = "expected at least 1 point, found an empty sequence"
        if shape[0]:
            return  # a valid (N, 3) sketch
    else:
        pattern = r"expected shape \(N, 3\)"
    with pytest.raises(DataError, match=rf"toy: sequence 1: {pattern}"):
        validate_sequence(seq, 1, "toy")


def test_ragged_rows_and_pen_values() -> None:
    with pytest.raises(DataError, match=r"toy: sequence 0: expected a \(N, 3\) array"):
        validate_sequence([[0, 0, 1], [1, 1]], 0, "toy")
    with pytest.raises(DataError, match=r"expected pen_lifted .*found 0.5 at row 1"):
        validate_sequence([[0, 0, 0], [1, 1, 0.5]], 0, "toy")


def test_a_single_point_sketch_is_valid() -> None:
    assert validate_sequence([[3, -2, 1]], 0, "toy").shape == (1, 3)


# ------------------------------------------------------------------ stroke-3 .npz files
def _npz_dataset(monkeypatch: pytest.MonkeyPatch, root: Path, write) -> Path:
    """``write(path)`` the omniglot .npz under a fresh data dir and point the loader at it."""
    data_dir = _fresh_dir(root)
    path = data_dir / "strokes" / "omniglot.npz"
    path.parent.mkdir()
    write(path)
    spec = FileSpec("strokes", "omniglot.npz", file_sha256(path), None)
    monkeypatch.setitem(strokes_mod.NPZ_FILES, "omniglot", spec)
    return data_dir


def _objects(sequences: list[np.ndarray]) -> np.ndarray:
    items = np.empty(len(sequences), dtype=object)
    for i, seq in enumerate(sequences):
        items[i] = seq
    return items


BAD_SKETCHES = {
    "nan": (np.array([[0.0, np.nan, 0], [1, 1, 1]]), "expected finite values"),
    "huge": (np.array([[0.0, 0, 0], [3e9, 1, 1]]), "expected offsets"),
    "empty": (np.zeros((0, 3), np.int16), "empty sequence"),
    "strings": (np.array([["a", "b", "c"]]), "expected numeric"),
    "complex": (np.array([[1j, 0, 1]]), "expected numeric"),
    "bool": (np.array([[True, False, True]]), "expected numeric"),
    "width_2": (np.zeros((3, 2), np.int16), r"expected shape \(N, 3\)"),
    "scalar": (np.array(5), r"expected shape \(N, 3\)"),
}


@FAST
@given(
    good=st.lists(_stroke3(min_rows=2), min_size=1, max_size=5),
    bad=st.sampled_from(sorted(BAD_SKETCHES)),
    data=st.data(),
)
def test_a_bad_sketch_in_an_npz_is_named_by_file_split_and_index(
    good: list[np.ndarray], bad: str, data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = data.draw(st.integers(0, len(good)))
    sketch, pattern = BAD_SKETCHES[bad]
    items = _objects([*good[:at], sketch, *good[at:]])
    data_dir = _npz_dataset(
        monkeypatch,
        tmp_path,
        lambda p: np.savez(p, train=items, valid=items[:1], test=items[:1]),
    )
    with pytest.raises(DataError, match=rf"omniglot\.npz\[train\]: sequence {at}: .*{pattern}"):
        load_strokes("omniglot", "train", data_dir=data_dir)


NPZ_FAULTS = {
    "random_bytes": (lambda p: p.write_bytes(bytes(range(256))), "expected a sketch-rnn .npz"),
    "text": (lambda p: p.write_text("train,valid,test\n"), "expected a sketch-rnn .npz"),
    "empty": (lambda p: p.write_bytes(b""), "found an empty file"),
    "missing_key": (
        lambda p: np.savez(p, valid=_objects([np.zeros((1, 3))])),
        r"expected key 'train' .*found \['valid'\]",
    ),
    "not_a_list": (
        lambda p: np.savez(p, train=np.zeros((2, 4, 3))),
        r"expected a 1-d array of sequences, found shape \(2, 4, 3\)",
    ),
    "truncated": (
        lambda p: (np.savez(p, train=_objects([np.ones((4, 3))])), _cut(p, 0.6)),
        "cannot read sketch-rnn npz",
    ),
}


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("fault", sorted(NPZ_FAULTS))
def test_a_broken_npz_file_is_named(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write, pattern = NPZ_FAULTS[fault]
    data_dir = _npz_dataset(monkeypatch, tmp_path, write)
    with pytest.raises(DataError, match=rf"omniglot\.npz.*{pattern}"):
        load_strokes("omniglot", "train", data_dir=data_dir)


def test_single_point_zero_sketches_give_no_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _objects([np.zeros((1, 3), np.int16)] * 3)
    data_dir = _npz_dataset(
        monkeypatch, tmp_path, lambda p: np.savez(p, train=items, valid=items, test=items)
    )
    with pytest.raises(DataError, match=r"standard deviation 0\.0; expected > 0"):
        load_strokes("omniglot", "train", data_dir=data_dir)


# ----------------------------------------------------------------------- QuickDraw zip
def _quickdraw(monkeypatch: pytest.MonkeyPatch, root: Path, members: dict[str, bytes]) -> Path:
    data_dir = _fresh_dir(root)
    path = data_dir / "quickdraw_strokes" / "quickdraw_simplified_first25.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"quickdraw_simplified_first25/{name}", data)
    spec = FileSpec("quickdraw_strokes", path.name, file_sha256(path), None)
    monkeypatch.setattr(strokes_mod, "QUICKDRAW_ZIP", spec)
    return data_dir


def _record(i: int) -> str:
    return json.dumps({"drawing": [[[0, 10 + i, 20], [0, 5, 9]], [[3, 4], [7, 8]]]})


QUICKDRAW_FAULTS = {
    "missing_member": ({"dog.ndjson": "\n".join(map(_record, range(25)))}, "no category 'cat'"),
    "too_few_lines": ({"cat.ndjson": "\n".join(map(_record, range(7)))}, "expected 25 drawings"),
    "not_json": (
        {"cat.ndjson": "\n".join(["{oops"] + [_record(i) for i in range(24)])},
        "line 0: malformed record",
    ),
    "no_drawing_key": (
        {"cat.ndjson": "\n".join(['{"word": "cat"}'] + [_record(i) for i in range(24)])},
        "line 0: malformed record",
    ),
    "ragged_stroke": (
        {
            "cat.ndjson": "\n".join(
                ['{"drawing": [[[0, 1], [2]]]}'] + [_record(i) for i in range(24)]
            )
        },
        "line 0: malformed record",
    ),
    "not_utf8": ({"cat.ndjson": b"\xff\xfe" * 30}, "is corrupted or not UTF-8"),
}


@pytest.mark.parametrize("fault", sorted(QUICKDRAW_FAULTS))
def test_a_broken_quickdraw_zip_is_named(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members, pattern = QUICKDRAW_FAULTS[fault]
    members = {k: v.encode() if isinstance(v, str) else v for k, v in members.items()}
    data_dir = _quickdraw(monkeypatch, tmp_path, members)
    with pytest.raises(DataError, match=rf"quickdraw_simplified_first25\.zip.*{pattern}"):
        load_strokes("quickdraw", "train", classes=["cat"], data_dir=data_dir)


def test_a_quickdraw_file_that_is_not_a_zip(tmp_path: Path, monkeypatch) -> None:
    data_dir = _fresh_dir(tmp_path)
    path = data_dir / "quickdraw_strokes" / "quickdraw_simplified_first25.zip"
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04" + bytes(100))  # starts like a zip, nothing else
    spec = FileSpec("quickdraw_strokes", path.name, file_sha256(path), None)
    monkeypatch.setattr(strokes_mod, "QUICKDRAW_ZIP", spec)
    with pytest.raises(DataError, match=r"first25\.zip: the QuickDraw zip is truncated"):
        load_strokes("quickdraw", "train", data_dir=data_dir)


# ------------------------------------------------------------------------------- images
@FAST
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=6).filter(lambda s: len(s) != 4))
def test_images_of_the_wrong_rank_are_refused(shape: list[int]) -> None:
    with pytest.raises(DataError, match=r"ImageData\(x/train\)\.images: expected float32 \(N"):
        ImageData("x", "train", torch.zeros(shape), None, "none")


@FAST
@given(dtype=st.sampled_from([torch.float64, torch.float16, torch.uint8, torch.bool, torch.int64]))
def test_images_of_the_wrong_dtype_are_refused(dtype: torch.dtype) -> None:
    with pytest.raises(DataError, match=rf"images: expected float32 .*found {dtype}"):
        ImageData("x", "train", torch.zeros(2, 1, 3, 3, dtype=dtype), None, "none")


@FAST
@given(
    value=st.floats(width=32).filter(lambda v: not 0 <= v <= 1),
    index=st.tuples(st.integers(0, 2), st.just(0), st.integers(0, 3), st.integers(0, 3)),
)
def test_images_outside_0_1_or_nan_are_refused(value: float, index: tuple) -> None:
    images = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    images[index] = value
    found = rf"1 NaN \(first at {re.escape(str(index))}\)" if np.isnan(value) else "values in"
    with pytest.raises(
        DataError, match=rf"ImageData\(x/test\)\.images: expected values in \[0, 1\], found {found}"
    ):
        ImageData("x", "test", images, None, "seeded")


def test_images_in_0_1_pass_and_a_tensor_is_required() -> None:
    check_images(torch.tensor([0.0, 1.0]).reshape(2, 1, 1, 1), "x")
    with pytest.raises(DataError, match="x: expected a float32 tensor"):
        check_images(np.zeros((1, 1, 2, 2), np.float32), "x")


@FAST
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_model_image_checks_name_the_model_and_shape(shape: list[int]) -> None:
    images = torch.zeros(shape)
    if len(shape) == 4 and shape[1:] == [1, 5, 5]:
        check_image_batch(images, (1, 5, 5), "DooD")
        return
    with pytest.raises(ValueError, match=r"DooD: images must have shape \(B, 1, 5, 5\), found"):
        check_image_batch(images, (1, 5, 5), "DooD")
    with pytest.raises(ValueError, match=r"images: expected shape \(B, 1, 5, 5\)"):
        check_classification_batch(images, None, (1, 5, 5), 10)


@FAST
@given(labels=st.lists(st.integers(-3, 14), min_size=2, max_size=2))
def test_classification_labels_out_of_range(labels: list[int]) -> None:
    images = torch.zeros(2, 1, 5, 5)
    if all(0 <= v < 10 for v in labels):
        check_classification_batch(images, torch.tensor(labels), (1, 5, 5), 10)
        return
    with pytest.raises(ValueError, match=r"labels: expected classes in \[0, 10\)"):
        check_classification_batch(images, torch.tensor(labels), (1, 5, 5), 10)


@FAST
@given(value=st.sampled_from([np.nan, np.inf, -np.inf]), example=st.integers(0, 3))
def test_evaluation_refuses_non_finite_images_before_any_work(value: float, example: int) -> None:
    images = torch.zeros(4, 1, 2, 2)
    images[example, 0, 1, 0] = value

    def never(*args, **kwargs):
        raise AssertionError("the model ran")

    with pytest.raises(ValueError, match=rf"images: expected finite .*example {example}\)"):
        evaluate_log_likelihood(never, never, images, progress=False)


# ---------------------------------------------------------------------------- IDX files
def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + payload


def _write_gz(root: Path, raw: bytes) -> Path:
    path = _fresh_dir(root) / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    return path


@FAST
@given(magic=st.integers(0, 2**32 - 1).filter(lambda m: m != IDX_IMAGES_MAGIC))
def test_idx_with_a_wrong_magic_number(magic: int, tmp_path: Path) -> None:
    path = _write_gz(tmp_path, _idx(magic, (1, 2, 2), bytes(4)))
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: wrong IDX magic number"):
        read_idx(path, IDX_IMAGES_MAGIC)


@FAST
@given(
    dims=st.tuples(*[st.integers(0, 8)] * 3) | st.tuples(*[st.integers(0, 2**32 - 1)] * 3),
    extra=st.integers(-5, 5).filter(bool),
)
def test_idx_whose_payload_does_not_match_its_dims(dims: tuple, extra: int, tmp_path) -> None:
    length = max(0, min(math.prod(dims), 600) + extra)
    assume(length != math.prod(dims))
    path = _write_gz(tmp_path, _idx(IDX_IMAGES_MAGIC, dims, bytes(length)))
    with pytest.raises(
        DataError, match=rf"IDX payload size mismatch for dims {re.escape(str(dims))}"
    ):
        read_idx(path, IDX_IMAGES_MAGIC)


@FAST
@given(cut=st.integers(0, 15))
def test_idx_with_a_truncated_header(cut: int, tmp_path: Path) -> None:
    path = _write_gz(tmp_path, _idx(IDX_IMAGES_MAGIC, (1, 2, 2), bytes(4))[:cut])
    with pytest.raises(DataError, match=r"IDX (file too short|header)|wrong IDX magic|truncated"):
        read_idx(path, IDX_IMAGES_MAGIC)


@FAST
@given(data=st.data())
def test_idx_with_a_truncated_or_damaged_gzip_stream(data, tmp_path: Path) -> None:
    raw = gzip.compress(_idx(IDX_IMAGES_MAGIC, (3, 4, 4), bytes(range(48))))
    if data.draw(st.booleans(), label="cut"):
        bad = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        bad = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
    path = _fresh_dir(tmp_path) / "images-idx3-ubyte.gz"
    path.write_bytes(bad)
    try:
        array = read_idx(path, IDX_IMAGES_MAGIC)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert array.tolist() == np.arange(48, dtype=np.uint8).reshape(3, 4, 4).tolist()


def test_idx_that_is_missing_or_not_gzip(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere.gz: expected a gzipped IDX file, not found"):
        read_idx(tmp_path / "nowhere.gz", IDX_IMAGES_MAGIC)
    with pytest.raises(DataError, match="expected a gzipped IDX file, a directory"):
        read_idx(tmp_path, IDX_IMAGES_MAGIC)
    plain = tmp_path / "plain.gz"
    plain.write_bytes(_idx(IDX_IMAGES_MAGIC, (1, 1, 1), b"\x00"))
    with pytest.raises(DataError, match="plain.gz: cannot decompress gzipped IDX file"):
        read_idx(plain, IDX_IMAGES_MAGIC)


@pytest.mark.parametrize(
    ("images", "labels", "pattern"),
    [
        ((3, 27, 28), bytes(3), r"expected images of shape \(N, 28, 28\), found \(3, 27, 28\)"),
        ((3, 28, 28), bytes([0, 4, 12]), "expected labels in 0..9, found max 12"),
        ((3, 28, 28), bytes(2), "2 labels for 3 images"),
    ],
)
def test_mnist_files_that_do_not_agree(
    images: tuple, labels: bytes, pattern: str, tmp_path: Path, monkeypatch
) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    raw = {
        "test_images": _idx(IDX_IMAGES_MAGIC, images, bytes(int(np.prod(images)))),
        "test_labels": _idx(IDX_LABELS_MAGIC, (len(labels),), labels),
    }
    for key, data in raw.items():
        spec = mnist_mod.MNIST_FILES[key]
        path = folder / spec.filename
        path.write_bytes(gzip.compress(data))
        monkeypatch.setitem(
            mnist_mod.MNIST_FILES, key, FileSpec("mnist", spec.filename, file_sha256(path), None)
        )
    with pytest.raises(DataError, match=pattern):
        mnist_split_arrays("test", tmp_path)


# ------------------------------------------------------------------- one-shot runs zip
def _png(ink: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(~ink).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def _runs_members(runs: int = 2, ways: int = 3) -> dict[str, bytes]:
    """An archive with the official layout: run folders, PNGs and label files."""
    members: dict[str, bytes] = {}
    for r in range(1, runs + 1):
        run = f"run{r:02d}"
        lines = []
        for k in range(1, ways + 1):
            ink = np.zeros((9, 9), dtype=bool)
            ink[k, :] = True
            members[f"{run}/training/class{k:02d}.png"] = _png(ink)
            members[f"{run}/test/item{k:02d}.png"] = _png(ink.T)
            lines.append(f"{run}/test/item{k:02d}.png {run}/training/class{k:02d}.png")
        members[f"{run}/class_labels.txt"] = ("\n".join(lines) + "\n").encode()
    return members


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


MEMBERS = sorted(_runs_members())


@FAST
@given(drop=st.sets(st.sampled_from(MEMBERS), min_size=1))
def test_runs_archive_with_missing_members(drop: set[str], tmp_path: Path) -> None:
    members = {k: v for k, v in _runs_members().items() if k not in drop}
    path = _write_zip(_fresh_dir(tmp_path) / "runs.zip", members)
    with pytest.raises(DataError) as exc:
        load_runs(path, metadata=False)
    message = str(exc.value)
    assert message.startswith(str(path)), message
    assert re.search(r"run run0\d|no runNN/ folders", message), message


@FAST
@given(data=st.data())
def test_runs_archive_with_a_damaged_image(data, tmp_path: Path) -> None:
    members = _runs_members()
    name = data.draw(st.sampled_from([n for n in MEMBERS if n.endswith(".png")]), label="png")
    png = members[name]
    if data.draw(st.booleans(), label="cut"):
        members[name] = png[: data.draw(st.integers(0, len(png) - 1), label="length")]
    else:
        at = data.draw(st.integers(0, len(png) - 1), label="at")
        members[name] = png[:at] + bytes([png[at] ^ 0xFF]) + png[at + 1 :]
    path = _write_zip(_fresh_dir(tmp_path) / "runs.zip", members)
    try:
        load_runs(path, metadata=False)
    except DataError as exc:
        assert str(path) in str(exc)


@FAST
@given(data=st.data())
def test_runs_archive_cut_or_flipped(data, tmp_path: Path) -> None:
    raw = _write_zip(tmp_path / "good.zip", _runs_members()).read_bytes()
    if data.draw(st.booleans(), label="cut"):
        bad = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        bad = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
    path = _fresh_dir(tmp_path) / "runs.zip"
    path.write_bytes(bad)
    try:
        runs = load_runs(path, metadata=False)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert len(runs.runs) >= 1


def test_runs_archive_with_a_broken_png_chunk(tmp_path: Path) -> None:
    """PIL says a broken chunk with a SyntaxError; the loader says which file."""
    members = _runs_members()
    name = "run02/test/item01.png"
    png = bytearray(members[name])
    png[png.index(b"IDAT") - 1] = 5  # the data chunk's length: its end now lands mid-chunk
    members[name] = bytes(png)
    path = _write_zip(tmp_path / "runs.zip", members)
    with pytest.raises(DataError, match=rf"run run02: {name} is not a readable image"):
        load_runs(path, metadata=False)
