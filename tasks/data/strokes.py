"""Stroke datasets for sketch-rnn (Ha & Eck 2017, sec. 3.1 and appendix sec. 1–3).

Sequences are stroke-3 (:mod:`tasks.data.stroke_formats`); batches of them come from
:class:`tasks.data.batches.StrokeBatches`.

Datasets (:data:`STROKE_DATASETS`):

* ``omniglot``, ``aaron_sheep``, ``kanji.rdp100`` — hardmaru's sketch-rnn ``.npz`` files
  (``strokes/<name>.npz``, keys ``train``/``valid``/``test``, object arrays of int16 (float64 for
  kanji) stroke-3 sequences). Several may be passed as a list and are concatenated, with the
  list position as label.
* ``quickdraw`` — the official *simplified* ndjson records (RDP ε = 2, integer coordinates
  0–255) in ``quickdraw_strokes/quickdraw_simplified_first25.zip`` (25 drawings per category);
  ``classes`` picks categories (default: all), concatenated in the given order. The 25 drawings of
  each category are split in file order into 15 train / 5 valid / 5 test (our choice; the zip has
  no splits). Not for training, only for loader and smoke tests.
* ``glyphs`` — the embedded synthetic glyphs (:mod:`tasks.data.glyphs`), their Bézier strokes
  sampled as polylines in ``[-1, 1]²``, scaled by :data:`GLYPH_PIXEL_SCALE` (the 0–255 pixel range
  of QuickDraw), rounded to integers and RDP-simplified with ε = 2, like QuickDraw.

Polylines (QuickDraw, glyphs) become stroke-3 with the first point at the origin, so the first
row is ``(0, 0, ·)`` — the convention of the sketch-rnn ``omniglot.npz`` and of sec. 3.1 ("the
initial absolute coordinate of the drawing is located at the origin").

Preprocessing (:func:`load_strokes`): sketches longer than ``max_length`` points are dropped
(``N_max`` = 250 by default, as in the reference code), then offsets are divided by one scale
factor: the standard deviation of all ``Δx`` and ``Δy`` values (pooled) of the training split
after the length filter, so that the training offsets have standard deviation 1 (appendix
sec. 1). The mean is not removed. The reference code also clamps offsets to ±1000; this is not
in the paper and is not done here (no offset in the shared files exceeds 600).
"""

from __future__ import annotations

import functools
import json
import pickle
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core import DataError, check_split
from .glyphs import glyph_strokes, load_glyphs
from .paths import DataDir, FileSpec, locate
from .stroke_formats import lines_to_stroke3, rdp, validate_sequence

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "GLYPH_PIXEL_SCALE",
    "NPZ_FILES",
    "QUICKDRAW_SPLIT_SIZES",
    "QUICKDRAW_ZIP",
    "STROKE_DATASETS",
    "StrokeData",
    "load_strokes",
    "quickdraw_categories",
    "scale_factor_of",
    "training_scale_factor",
]

DEFAULT_MAX_LENGTH = 250  # N_max of the reference code (hps.max_seq_len)
GLYPH_PIXEL_SCALE = 127.5  # [-1, 1] -> a 255-pixel range, as QuickDraw's 0..255 coordinates
GLYPH_EPSILON = 2.0  # RDP ε of QuickDraw's simplified data (appendix sec. 1)
GLYPH_NUM_POINTS = 16  # points per Bézier stroke before simplification
QUICKDRAW_SPLIT_SIZES = {"train": 15, "valid": 5, "test": 5}  # per category, file order

_SKETCH_RNN_URL = "https://github.com/hardmaru/sketch-rnn-datasets/raw/master/"


def _npz_spec(folder: str, filename: str, sha256: str) -> FileSpec:
    return FileSpec("strokes", filename, sha256, f"{_SKETCH_RNN_URL}{folder}/{filename}")


NPZ_FILES: dict[str, FileSpec] = {
    "omniglot": _npz_spec(
        "omniglot",
        "omniglot.npz",
        "bd5277621a8c577919491dfa729a59a8b5c216cff9e4fda9cef532db29f120c7",
    ),
    "aaron_sheep": _npz_spec(
        "aaron_sheep",
        "aaron_sheep.npz",
        "65f8e51e43587661798ac137a204c9e049e0d11dcd50cba372ae3ca32de8b54c",
    ),
    "kanji.rdp100": _npz_spec(
        "kanji",
        "kanji.rdp100.npz",
        "d625d310f3132ab3b7fa9bb574d8c8201e18a51d92fdcd4b4f783b5a7730d58a",
    ),
}
# A zip of the first 25 lines of each official simplified ndjson file (see the shared data
# README); a derived artefact with no download URL. Official per-category files:
# https://storage.googleapis.com/quickdraw_dataset/full/simplified/<category>.ndjson
QUICKDRAW_ZIP = FileSpec(
    "quickdraw_strokes",
    "quickdraw_simplified_first25.zip",
    "d1dbe044f5aad4a72015b41031d92bcf9f01bd634f35c183136e69d2b0a5c082",
    None,
)
STROKE_DATASETS: tuple[str, ...] = (*NPZ_FILES, "quickdraw", "glyphs")


@dataclass
class StrokeData:
    """A loaded split: normalised stroke-3 sequences.

    ``sequences[i]`` is float32 ``(N_i, 3)`` with offsets divided by ``scale_factor``;
    ``labels[i]`` the class index (position in the dataset/category list) or ``None`` for
    single-class data; ``info`` is JSON-serialisable provenance.
    """

    name: str
    split: str
    sequences: list[np.ndarray]
    scale_factor: float
    info: dict = field(default_factory=dict)
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.labels is not None and self.labels.shape != (len(self.sequences),):
            raise DataError(
                f"StrokeData({self.name}/{self.split}).labels: expected shape "
                f"({len(self.sequences)},), found {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def lengths(self) -> np.ndarray:
        """``N_s`` of every sequence (int64)."""
        return np.array([len(s) for s in self.sequences], dtype=np.int64)


# ------------------------------------------------------------------------------ file readers
def _npz_raw(name: str, split: str, data_dir: DataDir, download: bool) -> tuple[list, str]:
    path = locate(NPZ_FILES[name], data_dir, download)
    stat = path.stat()
    return list(_npz_split_cached(str(path), stat.st_size, stat.st_mtime_ns, split)), str(path)


@functools.lru_cache(maxsize=8)
def _npz_split_cached(path: str, size: int, mtime_ns: int, split: str) -> tuple[np.ndarray, ...]:
    """Validated float32 sequences of one split, cached in-process (read-only arrays)."""
    del size, mtime_ns  # cache-key only
    _check_zip_file(Path(path), "a sketch-rnn .npz archive")
    try:
        with np.load(path, allow_pickle=True, encoding="latin1") as archive:
            if split not in archive.files:
                raise DataError(
                    f"{path}: expected key {split!r} (keys train/valid/test), found "
                    f"{sorted(archive.files)}"
                )
            items = archive[split]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise DataError(f"{path}: cannot read sketch-rnn npz ({exc})") from exc
    if not isinstance(items, np.ndarray):  # a member that is not an .npy array
        raise DataError(f"{path}: key {split!r}: expected an array, found {type(items).__name__}")
    if items.ndim != 1:
        raise DataError(
            f"{path}: key {split!r}: expected a 1-d array of sequences, found shape {items.shape}"
        )
    label = f"{Path(path).name}[{split}]"
    sequences = tuple(validate_sequence(item, i, label) for i, item in enumerate(items))
    for seq in sequences:
        seq.setflags(write=False)
    return sequences


def _check_zip_file(path: Path, what: str) -> None:
    """Raise :class:`DataError` unless ``path`` starts like a zip archive (before ``np.load``
    with pickles allowed or ``zipfile`` reads it)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise DataError(f"{path}: cannot open {what} ({exc.strerror})") from None
    if head != b"PK\x03\x04":
        found = "an empty file" if not head else f"first bytes {head.hex(' ')}"
        raise DataError(f"{path}: expected {what} (a zip file), found {found}")


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    """``zipfile.ZipFile(path)``, a damaged archive said as a :class:`DataError`."""
    _check_zip_file(path, what)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path}: {what} is truncated or corrupted ({exc})") from None


def _quickdraw_zip(data_dir: DataDir, download: bool) -> Path:
    return locate(QUICKDRAW_ZIP, data_dir, download)


def quickdraw_categories(data_dir: DataDir = None) -> list[str]:
    """Sorted category names in the QuickDraw zip (file stems, e.g. ``"cell phone"``)."""
    with _open_zip(_quickdraw_zip(data_dir, False), "the QuickDraw zip") as archive:
        return sorted(
            Path(n).stem for n in archive.namelist() if n.endswith(".ndjson") and "/" in n
        )


def _quickdraw_raw(
    archive: zipfile.ZipFile, path: Path, category: str, split: str
) -> tuple[list[np.ndarray], str]:
    member = f"{Path(QUICKDRAW_ZIP.filename).stem}/{category}.ndjson"
    try:
        text = archive.read(member).decode("utf-8")
    except KeyError:
        raise DataError(
            f"{path}: no category {category!r} (member {member!r}); see "
            f"quickdraw_categories() for the {len(archive.namelist())} available"
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: member {member!r} is corrupted or not UTF-8 ({exc})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    sizes = QUICKDRAW_SPLIT_SIZES
    start = {"train": 0, "valid": sizes["train"], "test": sizes["train"] + sizes["valid"]}[split]
    expected = sum(sizes.values())
    if len(lines) != expected:
        raise DataError(f"{path}:{member}: expected {expected} drawings, found {len(lines)}")
    label = f"{path.name}:{member}"
    sequences = []
    for i in range(start, start + sizes[split]):
        try:
            drawing = json.loads(lines[i])["drawing"]
            strokes = [np.asarray(s, dtype=np.float64) for s in drawing]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{label}: line {i}: malformed record ({exc})") from exc
        for k, s in enumerate(strokes):
            if s.ndim != 2 or s.shape[0] != 2 or s.shape[1] == 0:
                raise DataError(
                    f"{label}: line {i}, stroke {k}: expected [[x...], [y...]] of equal, "
                    f"non-zero length, found array of shape {s.shape}"
                )
        if not strokes:
            raise DataError(f"{label}: line {i}: expected at least one stroke, found none")
        sequences.append(lines_to_stroke3([s.T for s in strokes]))
    return sequences, f"{path}:{member}"


@functools.lru_cache(maxsize=3)
def _glyphs_raw(split: str) -> tuple[np.ndarray, ...]:
    """Stroke-3 of the glyphs split, cached in-process (read-only arrays)."""
    data = load_glyphs(split)
    sequences = []
    for lines in glyph_strokes(data, GLYPH_NUM_POINTS):
        pixels = [np.rint(line.astype(np.float64) * GLYPH_PIXEL_SCALE) for line in lines]
        seq = lines_to_stroke3([rdp(p, GLYPH_EPSILON) for p in pixels])
        seq.setflags(write=False)
        sequences.append(seq)
    return tuple(sequences)


def _normalise_names(name: str | Sequence[str], classes: Sequence[str] | None) -> list[str]:
    names = [name] if isinstance(name, str) else list(name)
    if not names:
        raise DataError("load_strokes: expected a dataset name, found an empty list")
    for n in names:
        if n not in STROKE_DATASETS:
            raise DataError(f"unknown stroke dataset {n!r}; expected one of {STROKE_DATASETS}")
    if len(names) > 1 and any(n not in NPZ_FILES for n in names):
        raise DataError(
            f"load_strokes: only the npz datasets {tuple(NPZ_FILES)} can be concatenated by "
            f"name, found {names}; use classes=[...] for QuickDraw categories"
        )
    if classes is not None and names != ["quickdraw"]:
        raise DataError(f"load_strokes: classes apply to 'quickdraw' only, found name {names}")
    return names


def _raw_split(
    name: str | Sequence[str],
    split: str,
    data_dir: DataDir,
    download: bool,
    classes: Sequence[str] | None,
) -> tuple[list[np.ndarray], np.ndarray | None, dict]:
    """Validated, unnormalised stroke-3 sequences (all lengths; may be cached read-only
    arrays: copy before modifying), labels and provenance."""
    names = _normalise_names(name, classes)
    # (items, source file); npz items come validated from _npz_split_cached, the others are
    # validated here
    parts: list[tuple[list, str | None]] = []
    if names == ["quickdraw"]:
        categories = list(classes) if classes is not None else quickdraw_categories(data_dir)
        if not categories:
            raise DataError("load_strokes: quickdraw classes is empty")
        path = _quickdraw_zip(data_dir, download)
        with _open_zip(path, "the QuickDraw zip") as archive:
            for cat in categories:
                items, source = _quickdraw_raw(archive, path, cat, split)
                label = f"quickdraw/{cat}[{split}]"
                checked = [validate_sequence(s, i, label) for i, s in enumerate(items)]
                parts.append((checked, source))
        class_names = categories
    elif names == ["glyphs"]:
        label = f"glyphs[{split}]"
        checked = [validate_sequence(s, i, label) for i, s in enumerate(_glyphs_raw(split))]
        parts.append((checked, None))
        class_names = ["glyphs"]
    else:
        for n in names:
            parts.append(_npz_raw(n, split, data_dir, download))
        class_names = names
    sequences: list[np.ndarray] = []
    labels: list[int] = []
    for label, (items, _) in enumerate(parts):
        sequences.extend(items)
        labels.extend([label] * len(items))
    info = {
        "dataset": names[0] if len(names) == 1 else names,
        "split": split,
        "classes": class_names,
        "files": sorted({source for _, source in parts if source}),
        "num_raw": len(sequences),
    }
    label_array = np.array(labels, dtype=np.int64) if len(class_names) > 1 else None
    return sequences, label_array, info


def scale_factor_of(sequences: Sequence[np.ndarray]) -> float:
    """Standard deviation of all ``Δx`` and ``Δy`` values together (appendix sec. 1)."""
    if not sequences:
        raise DataError("scale_factor_of: no sequences to compute a scale factor from")
    offsets = np.concatenate([np.asarray(s, dtype=np.float64)[:, :2].ravel() for s in sequences])
    std = float(offsets.std())
    if not np.isfinite(std) or std <= 0:
        raise DataError(f"scale_factor_of: offsets have standard deviation {std}; expected > 0")
    return std


def training_scale_factor(
    name: str | Sequence[str],
    *,
    data_dir: DataDir = None,
    download: bool = False,
    max_length: int = DEFAULT_MAX_LENGTH,
    classes: Sequence[str] | None = None,
) -> float:
    """The normalising factor of ``name``: :func:`scale_factor_of` the training split's
    sequences of at most ``max_length`` points (unnormalised)."""
    sequences, _, _ = _raw_split(name, "train", data_dir, download, classes)
    return scale_factor_of([s for s in sequences if len(s) <= max_length])


def load_strokes(
    name: str | Sequence[str],
    split: str,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    max_length: int = DEFAULT_MAX_LENGTH,
    scale_factor: float | None = None,
    classes: Sequence[str] | None = None,
) -> StrokeData:
    """Load ``split`` of stroke dataset ``name`` (one of :data:`STROKE_DATASETS`, or a list of
    npz names to concatenate), drop sketches longer than ``max_length`` and normalise.

    ``scale_factor=None`` computes the factor from the *training* split (also when loading
    valid/test); pass ``train_data.scale_factor`` to avoid recomputing it. ``classes`` selects
    QuickDraw categories. Raises :class:`DataError` on missing/corrupt files or malformed
    sequences.
    """
    check_split(str(name), split)
    if max_length < 1:
        raise DataError(f"load_strokes({name!r}): max_length must be >= 1, found {max_length}")
    if scale_factor is not None and not (np.isfinite(scale_factor) and scale_factor > 0):
        raise DataError(
            f"load_strokes({name!r}): scale_factor must be finite and > 0, found {scale_factor}"
        )
    raw, labels, info = _raw_split(name, split, data_dir, download, classes)
    keep = np.array([len(s) <= max_length for s in raw], dtype=bool)
    kept = [s for s, k in zip(raw, keep, strict=True) if k]
    if not kept:
        raise DataError(
            f"load_strokes({name!r}, {split!r}): no sequence has at most max_length="
            f"{max_length} points"
        )
    if scale_factor is not None:
        factor, source = float(scale_factor), "given"
    elif split == "train":
        factor, source = scale_factor_of(kept), "train split"
    else:
        factor = training_scale_factor(
            name, data_dir=data_dir, download=download, max_length=max_length, classes=classes
        )
        source = "train split"
    sequences = []
    for s in kept:
        s = s.copy()
        s[:, :2] /= np.float32(factor)
        sequences.append(s)
    lengths = [len(s) for s in sequences]
    info.update(
        max_length=max_length,
        num_too_long=int((~keep).sum()),
        num_sequences=len(sequences),
        scale_factor=factor,
        scale_factor_source=source,
        length_min=min(lengths),
        length_max=max(lengths),
        length_mean=float(np.mean(lengths)),
    )
    data_name = name if isinstance(name, str) else "+".join(name)
    return StrokeData(
        data_name, split, sequences, factor, info, None if labels is None else labels[keep]
    )
