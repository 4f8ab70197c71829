"""Stroke datasets for sketch-rnn (Ha & Eck 2017, sec. 3.1 and appendix sec. 1–3).

Formats (sec. 3.1):

* **stroke-3** — what the files hold and what :class:`StrokeData` keeps: rows
  ``(Δx, Δy, pen_lifted)``, ``pen_lifted = 1`` on the last point of every stroke. The first row is
  the offset of the first point from the origin.
* **stroke-5** — what the model sees: rows ``(Δx, Δy, p_1, p_2, p_3)`` with ``p_1`` pen down
  (draw to the next point), ``p_2`` pen lifted after this point, ``p_3`` end of sketch. Following
  the paper (sec. 3.2) and its reference code (``utils.DataLoader.pad_batch``),
  :func:`to_stroke5` returns ``N_max + 1`` rows (``N_max`` = ``max_length``):

  - row 0 is the start token ``S_0 = (0, 0, 1, 0, 0)``;
  - rows ``1 … N_s`` are the sketch, ``(Δx, Δy, 1 − pen_lifted, pen_lifted, 0)``;
  - rows ``N_s + 1 … N_max`` are ``(0, 0, 0, 0, 1)``: the first of them is the end-of-sketch
    step, the rest is padding ("we set S_i to be (0, 0, 0, 0, 1) for i > N_s"). A sketch of
    exactly ``N_max`` points has no end-of-sketch row, as in the reference code.

  Decoder inputs are rows ``0 … N_max − 1`` and targets rows ``1 … N_max``
  (:func:`inputs_and_targets`); :class:`generative.strokes.StrokeSequence` scores the targets.

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

Augmentation (appendix sec. 3): every sketch's ``Δx`` and ``Δy`` columns are multiplied by two
independent factors ``U(0.9, 1.1)`` (:func:`augment`). The reference code's random dropping of
points (``augment_stroke_prob``) is not described in the paper and is not implemented.
"""

from __future__ import annotations

import functools
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from generative.strokes import END_TOKEN, START_TOKEN

from . import DataError, check_split, derive_seed
from .paths import DataDir, FileSpec, locate

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "GLYPH_PIXEL_SCALE",
    "NPZ_FILES",
    "QUICKDRAW_SPLIT_SIZES",
    "QUICKDRAW_ZIP",
    "RANDOM_SCALE",
    "STROKE_DATASETS",
    "StrokeBatches",
    "StrokeData",
    "augment",
    "inputs_and_targets",
    "lines_to_stroke3",
    "load_strokes",
    "pad_batch",
    "quickdraw_categories",
    "rdp",
    "scale_factor_of",
    "simplify_strokes",
    "stroke3_to_lines",
    "to_stroke3",
    "to_stroke5",
    "training_scale_factor",
    "validate_sequence",
]

DEFAULT_MAX_LENGTH = 250  # N_max of the reference code (hps.max_seq_len)
RANDOM_SCALE = 0.1  # augmentation factors U(1 - 0.1, 1 + 0.1) (appendix sec. 3)
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


# ------------------------------------------------------------------------------ validation
def validate_sequence(seq: object, index: int, dataset: str) -> np.ndarray:
    """Check one stroke-3 sequence and return it as a float32 ``(N, 3)`` array.

    Raises :class:`DataError` naming ``dataset`` and ``index`` when it is not a 2-d numeric
    array of width 3, is empty, holds NaN/inf, or has pen values other than 0/1.
    """
    where = f"{dataset}: sequence {index}"
    try:
        arr = np.asarray(seq)
    except ValueError as exc:  # ragged nested lists
        raise DataError(
            f"{where}: expected a (N, 3) array, found {type(seq).__name__} ({exc})"
        ) from exc
    if arr.dtype.kind not in "iuf":
        raise DataError(f"{where}: expected numeric stroke-3 rows, found dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise DataError(
            f"{where}: expected shape (N, 3) (rows Δx, Δy, pen_lifted), found {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{where}: expected at least 1 point, found an empty sequence")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{where}: expected finite values, found {arr[row, col]} at row {row}")
    bad = (arr[:, 2] != 0) & (arr[:, 2] != 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: expected pen_lifted (column 2) in {{0, 1}}, found {arr[row, 2]} at row {row}"
        )
    return arr.astype(np.float32)


# -------------------------------------------------------------------------- stroke-3 <-> 5
def to_stroke5(seq3: np.ndarray, max_length: int) -> np.ndarray:
    """Stroke-3 ``(N_s, 3)`` → stroke-5 ``(max_length + 1, 5)`` float32 (see the module doc):
    start token, the ``N_s`` points, then ``(0, 0, 0, 0, 1)`` up to row ``max_length``."""
    seq3 = np.asarray(seq3)
    if seq3.ndim != 2 or seq3.shape[1] != 3:
        raise ValueError(f"to_stroke5: expected stroke-3 shape (N, 3), found {seq3.shape}")
    n = seq3.shape[0]
    if n > max_length:
        raise ValueError(f"to_stroke5: sequence has {n} points, more than max_length={max_length}")
    out = np.zeros((max_length + 1, 5), dtype=np.float32)
    out[0] = START_TOKEN
    out[1 : n + 1, :2] = seq3[:, :2]
    out[1 : n + 1, 3] = seq3[:, 2]
    out[1 : n + 1, 2] = 1 - out[1 : n + 1, 3]
    out[n + 1 :] = END_TOKEN
    return out


def to_stroke3(seq5: np.ndarray | Tensor, *, start_token: bool = True) -> np.ndarray:
    """Stroke-5 → stroke-3, inverse of :func:`to_stroke5` (exact on its outputs).

    With ``start_token`` row 0 must be ``S_0`` and is dropped (set it to ``False`` for model
    samples, which are targets without ``S_0``). The sketch ends before the first row with
    ``p_3 = 1`` (or at the end); ``pen_lifted = p_2``.
    """
    arr = seq5.detach().cpu().numpy() if isinstance(seq5, Tensor) else np.asarray(seq5)
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise ValueError(f"to_stroke3: expected stroke-5 shape (N, 5), found {arr.shape}")
    if start_token:
        if arr.shape[0] == 0 or not np.array_equal(arr[0], START_TOKEN):
            found = arr[0].tolist() if arr.shape[0] else "no rows"
            raise ValueError(
                f"to_stroke3: expected the start token {START_TOKEN} at row 0, found {found}"
            )
        arr = arr[1:]
    ends = np.flatnonzero(arr[:, 4] > 0.5)
    n = int(ends[0]) if ends.size else arr.shape[0]
    out = np.empty((n, 3), dtype=np.float32)
    out[:, :2] = arr[:n, :2]
    out[:, 2] = arr[:n, 3]
    return out


def pad_batch(sequences: Sequence[np.ndarray], max_length: int) -> tuple[Tensor, Tensor]:
    """Stroke-5 batch ``(B, max_length + 1, 5)`` float32 (rows as in :func:`to_stroke5`) and the
    lengths ``N_s`` ``(B,)`` int64."""
    x5 = np.stack([to_stroke5(s, max_length) for s in sequences])
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    return torch.from_numpy(x5), lengths


def inputs_and_targets(x5: Tensor) -> tuple[Tensor, Tensor]:
    """Decoder inputs ``S_0 … S_{N_max−1}`` and targets ``S_1 … S_{N_max}`` of a padded batch."""
    return x5[..., :-1, :], x5[..., 1:, :]


# --------------------------------------------------------------------------- polylines, RDP
def rdp(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer–Douglas–Peucker simplification of a polyline ``(n, 2)`` (iterative).

    Keeps both endpoints, and recursively the point farthest from the chord of each kept span
    when its distance exceeds ``epsilon`` (distance to the chord's line; to the chord's start
    point when the chord has length 0, e.g. closed loops). ``epsilon = 0`` keeps every point.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"rdp: expected points of shape (n, 2), found {points.shape}")
    if not epsilon >= 0:
        raise ValueError(f"rdp: expected epsilon >= 0, found {epsilon}")
    n = points.shape[0]
    if n <= 2 or epsilon == 0:
        return points.copy()
    pts = points.astype(np.float64)
    keep = np.zeros(n, dtype=bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        chord = pts[end] - pts[start]
        rel = pts[start + 1 : end] - pts[start]
        norm = np.hypot(*chord)
        if norm > 0:
            dist = np.abs(chord[0] * rel[:, 1] - chord[1] * rel[:, 0]) / norm
        else:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        k = int(np.argmax(dist))
        if dist[k] > epsilon:
            mid = start + 1 + k
            keep[mid] = True
            stack.extend([(start, mid), (mid, end)])
    return points[keep]


def stroke3_to_lines(seq3: np.ndarray) -> list[np.ndarray]:
    """Absolute polylines ``(n_k, 2)`` (float64) of a stroke-3 sequence, starting from the
    origin; a stroke ends at each ``pen_lifted = 1`` row (and at the last row)."""
    seq3 = np.asarray(seq3)
    absolute = np.cumsum(seq3[:, :2].astype(np.float64), axis=0)
    ends = np.flatnonzero(seq3[:, 2] == 1) + 1
    if not ends.size or ends[-1] != len(seq3):
        ends = np.append(ends, len(seq3))
    starts = np.concatenate([[0], ends[:-1]])
    return [absolute[a:b] for a, b in zip(starts, ends, strict=True) if b > a]


def lines_to_stroke3(
    lines: Sequence[np.ndarray], *, origin: np.ndarray | None = None
) -> np.ndarray:
    """Stroke-3 float32 from absolute polylines: offsets between consecutive points,
    ``pen_lifted = 1`` on each stroke's last point. The first offset is taken from ``origin``
    (default: the first point, i.e. the sketch starts at the origin)."""
    lines = [np.asarray(line, dtype=np.float64).reshape(-1, 2) for line in lines]
    lines = [line for line in lines if len(line)]
    if not lines:
        raise ValueError("lines_to_stroke3: expected at least one non-empty polyline")
    points = np.concatenate(lines)
    pen = np.zeros(len(points))
    pen[np.cumsum([len(line) for line in lines]) - 1] = 1
    start = points[0] if origin is None else np.asarray(origin, dtype=np.float64)
    offsets = np.diff(points, axis=0, prepend=start[None])
    return np.column_stack([offsets, pen]).astype(np.float32)


def simplify_strokes(seq3: np.ndarray, epsilon: float) -> np.ndarray:
    """Apply :func:`rdp` to every stroke of a stroke-3 sequence (float32 result).

    The first offset (from the origin) is kept; the last point is marked pen-lifted.
    """
    lines = stroke3_to_lines(seq3)
    return lines_to_stroke3([rdp(line, epsilon) for line in lines], origin=np.zeros(2))


# ------------------------------------------------------------------------------ file readers
def _npz_raw(name: str, split: str, data_dir: DataDir, download: bool) -> tuple[list, str]:
    path = locate(NPZ_FILES[name], data_dir, download)
    stat = path.stat()
    return list(_npz_split_cached(str(path), stat.st_size, stat.st_mtime_ns, split)), str(path)


@functools.lru_cache(maxsize=8)
def _npz_split_cached(path: str, size: int, mtime_ns: int, split: str) -> tuple[np.ndarray, ...]:
    """Validated float32 sequences of one split, cached in-process (read-only arrays)."""
    del size, mtime_ns  # cache-key only
    try:
        with np.load(path, allow_pickle=True, encoding="latin1") as archive:
            if split not in archive.files:
                raise DataError(
                    f"{path}: expected key {split!r} (keys train/valid/test), found "
                    f"{sorted(archive.files)}"
                )
            items = archive[split]
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read sketch-rnn npz ({exc})") from exc
    if items.ndim != 1:
        raise DataError(
            f"{path}: key {split!r}: expected a 1-d array of sequences, found shape {items.shape}"
        )
    label = f"{Path(path).name}[{split}]"
    sequences = tuple(validate_sequence(item, i, label) for i, item in enumerate(items))
    for seq in sequences:
        seq.setflags(write=False)
    return sequences


def _quickdraw_zip(data_dir: DataDir, download: bool) -> Path:
    return locate(QUICKDRAW_ZIP, data_dir, download)


def quickdraw_categories(data_dir: DataDir = None) -> list[str]:
    """Sorted category names in the QuickDraw zip (file stems, e.g. ``"cell phone"``)."""
    with zipfile.ZipFile(_quickdraw_zip(data_dir, False)) as archive:
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
    from . import load_images
    from .glyphs import glyph_strokes

    data = load_images("glyphs", split)
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
        with zipfile.ZipFile(path) as archive:
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


# ------------------------------------------------------------------------ augmentation, batches
def _scale_draws(rng: np.random.Generator, n: int, random_scale: float) -> np.ndarray:
    return rng.uniform(1.0 - random_scale, 1.0 + random_scale, size=(n, 2))


def augment(
    sequences: Sequence[np.ndarray], rng: np.random.Generator, random_scale: float = RANDOM_SCALE
) -> list[np.ndarray]:
    """Multiply each sketch's ``Δx`` and ``Δy`` by independent ``U(1 ± random_scale)`` factors
    (appendix sec. 3); returns new float32 arrays, inputs unchanged."""
    factors = _scale_draws(rng, len(sequences), random_scale)
    out = []
    for s, f in zip(sequences, factors, strict=True):
        s = np.array(s, dtype=np.float32)
        s[:, :2] *= f.astype(np.float32)
        out.append(s)
    return out


class StrokeBatches:
    """Shuffled mini-batches ``(x5 (B, N_max + 1, 5) float32, lengths (B,) int64)`` of stroke
    data, a deterministic function of the step (like ``inference.trainer.ImageBatches``).

    Epoch ``e`` uses a permutation seeded by ``(seed, e)``; the ragged tail is dropped. With
    ``augment`` every batch is scaled by :func:`augment` with the generator :meth:`rng` ``(step)``.
    ``max_length`` is ``N_max`` (default: the longest sequence in ``data``); use one value for all
    splits so that ``L_R`` (normalised by ``N_max``, Eq. 9) is comparable.
    """

    def __init__(
        self,
        data: StrokeData | Sequence[np.ndarray],
        batch_size: int,
        *,
        max_length: int | None = None,
        seed: int = 0,
        augment: bool = True,
        random_scale: float = RANDOM_SCALE,
    ):
        self.sequences = list(data.sequences if isinstance(data, StrokeData) else data)
        if not 1 <= batch_size <= len(self.sequences):
            raise ValueError(
                f"StrokeBatches: batch size {batch_size} not in [1, {len(self.sequences)}] "
                f"(the number of sequences)"
            )
        longest = max(len(s) for s in self.sequences)
        self.max_length = longest if max_length is None else max_length
        if longest > self.max_length:
            raise ValueError(
                f"StrokeBatches: a sequence has {longest} points, more than max_length="
                f"{self.max_length}"
            )
        self.batch_size, self.seed = batch_size, seed
        self.augment, self.random_scale = augment, random_scale
        self.batches_per_epoch = len(self.sequences) // batch_size
        self._perm_epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(len(self.sequences), generator=gen)
            self._perm_epoch = epoch
        return self._perm

    def epoch(self, step: int) -> float:
        return step / self.batches_per_epoch

    def indices(self, step: int) -> Tensor:
        """Indices into the sequences of the batch at ``step``."""
        epoch, index = divmod(step, self.batches_per_epoch)
        return self._permutation(epoch)[index * self.batch_size : (index + 1) * self.batch_size]

    def rng(self, step: int) -> np.random.Generator:
        """The augmentation generator of ``step`` (seeded by ``(seed, step)``)."""
        return np.random.default_rng(derive_seed("strokes", self.seed, step))

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        chosen = [self.sequences[i] for i in self.indices(step).tolist()]
        if self.augment:
            chosen = augment(chosen, self.rng(step), self.random_scale)
        return pad_batch(chosen, self.max_length)
