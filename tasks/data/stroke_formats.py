"""Stroke formats of sketch-rnn (Ha & Eck 2017, sec. 3.1), conversions and augmentation.

* **stroke-3** — what the files hold and what :class:`tasks.data.strokes.StrokeData` keeps: rows
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

Polylines (:func:`stroke3_to_lines`, :func:`lines_to_stroke3`) are absolute ``(n, 2)`` point
arrays; :func:`rdp` is Ramer–Douglas–Peucker simplification.

Augmentation (appendix sec. 3): every sketch's ``Δx`` and ``Δy`` columns are multiplied by two
independent factors ``U(0.9, 1.1)`` (:func:`augment`). The reference code's random dropping of
points (``augment_stroke_prob``) is not described in the paper and is not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from generative.strokes import END_TOKEN, START_TOKEN

from .core import DataError

__all__ = [
    "MAGENTA_DROP_PROB",
    "MAGENTA_RANDOM_SCALE",
    "MAX_ABS_OFFSET",
    "RANDOM_SCALE",
    "augment",
    "drop_points",
    "inputs_and_targets",
    "lines_to_stroke3",
    "pad_batch",
    "rdp",
    "simplify_strokes",
    "stroke3_to_lines",
    "to_stroke3",
    "to_stroke5",
    "validate_sequence",
]

#: The paper's augmentation factors U(1 - 0.1, 1 + 0.1) (appendix sec. 3).
RANDOM_SCALE = 0.1
#: magenta's default ``random_scale_factor`` (``model.py get_default_hparams``).
MAGENTA_RANDOM_SCALE = 0.15
#: magenta's default ``augment_stroke_prob`` (point dropping; the paper does not mention it).
MAGENTA_DROP_PROB = 0.1
#: Largest |Δx|, |Δy| a loaded sketch may hold: far beyond any drawing (QuickDraw coordinates
#: are 0-255, the sketch-rnn files stay under 600, the reference code clamps at 1000), small
#: enough that squares and sums stay finite in float32.
MAX_ABS_OFFSET = 1e6


# ------------------------------------------------------------------------------ validation
def validate_sequence(seq: object, index: int, dataset: str) -> np.ndarray:
    """Check one stroke-3 sequence and return it as a float32 ``(N, 3)`` array.

    Raises :class:`DataError` naming ``dataset`` and ``index`` when it is not a 2-d integer or
    float array of width 3 (bool, complex, object and string arrays are refused), is empty,
    holds NaN/inf or an offset beyond ±:data:`MAX_ABS_OFFSET`, or has pen values other than 0/1.
    """
    where = f"{dataset}: sequence {index}"
    try:
        arr = np.asarray(seq)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise DataError(
            f"{where}: expected a (N, 3) array, found {type(seq).__name__} ({exc})"
        ) from exc
    if arr.dtype.kind not in "iuf":
        raise DataError(
            f"{where}: expected numeric (integer or float) stroke-3 rows, found dtype {arr.dtype}"
        )
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise DataError(
            f"{where}: expected shape (N, 3) (rows Δx, Δy, pen_lifted), found {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{where}: expected at least 1 point, found an empty sequence")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{where}: expected finite values, found {arr[row, col]} at row {row}")
    offsets = np.abs(arr[:, :2].astype(np.float64))
    if offsets.max() > MAX_ABS_OFFSET:
        row, col = np.unravel_index(int(np.argmax(offsets)), offsets.shape)
        raise DataError(
            f"{where}: expected offsets (columns 0-1) within ±{MAX_ABS_OFFSET:g}, found "
            f"{arr[row, col]} at row {row}"
        )
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


# ------------------------------------------------------------------------------ augmentation
def _scale_draws(rng: np.random.Generator, n: int, random_scale: float) -> np.ndarray:
    return rng.uniform(1.0 - random_scale, 1.0 + random_scale, size=(n, 2))


def drop_points(seq3: np.ndarray, rng: np.random.Generator, prob: float) -> np.ndarray:
    """Point-dropping augmentation of magenta's ``utils.py augment_strokes``: each pen-down
    point that is at least the 4th point of its stroke is dropped with probability ``prob``
    and the previously kept point moves to its position (its offset absorbs the dropped one's).
    A stroke's first three points and its pen-lifted end are never dropped, and the absolute
    position of every pen-lifted point is unchanged. Returns a new float32 stroke-3 array."""
    seq3 = np.asarray(seq3, dtype=np.float32)
    n = len(seq3)
    if prob <= 0 or n < 4:
        return seq3.copy()
    pen = seq3[:, 2]
    starts = np.r_[True, pen[:-1] == 1]
    in_stroke = np.arange(n) - np.flatnonzero(starts)[np.cumsum(starts) - 1]
    drop = (pen == 0) & (in_stroke >= 3) & (rng.random(n) < prob)
    if not drop.any():
        return seq3.copy()
    group = np.cumsum(~drop) - 1  # the kept point each point merges into
    last = np.r_[group[1:] != group[:-1], True]  # the last point of each group
    position = np.cumsum(seq3[:, :2].astype(np.float64), axis=0)[last]
    offsets = np.diff(position, axis=0, prepend=np.zeros((1, 2)))
    return np.column_stack([offsets, pen[~drop]]).astype(np.float32)


def augment(
    sequences: Sequence[np.ndarray],
    rng: np.random.Generator,
    random_scale: float = RANDOM_SCALE,
    drop_prob: float = 0.0,
) -> list[np.ndarray]:
    """Multiply each sketch's ``Δx`` and ``Δy`` by independent ``U(1 ± random_scale)`` factors
    (appendix sec. 3), then, with ``drop_prob > 0``, drop points as :func:`drop_points`
    (magenta's order: scale first); returns new float32 arrays, inputs unchanged."""
    factors = _scale_draws(rng, len(sequences), random_scale)
    out = []
    for s, f in zip(sequences, factors, strict=True):
        s = np.array(s, dtype=np.float32)
        s[:, :2] *= f.astype(np.float32)
        out.append(drop_points(s, rng, drop_prob) if drop_prob > 0 else s)
    return out
