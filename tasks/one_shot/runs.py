"""The 20 within-alphabet 20-way one-shot classification runs of Lake et al. (2015).

Read directly from the official archive ``all_runs.zip`` of GitHub brendenlake/omniglot
(``python/one-shot-classification/``), found as ``<data dir>/omniglot/all_runs.zip`` (sha256
checked) or given as a path (a zip, or a folder with the same layout). Each run folder
``runNN/`` holds ``training/classXX.png`` (the 20 supports, one per character of one alphabet),
``test/itemYY.png`` (the 20 queries, other drawers of the same characters) and
``class_labels.txt``, one line ``runNN/test/itemYY.png runNN/training/classXX.png`` per query
pairing it with its true support. Images are 105×105 1-bit PNGs, 1 = background.

Per run (:class:`OneShotRun`): supports and queries in name order (as the official demo
``demo_classification.py`` sorts them), ``labels[q]`` = the index of query ``q``'s true
support, and two versions of every image:

* ``*_binary``: the 105×105 images as bool with ``True`` = ink (the baselines' input);
* ``supports`` / ``queries``: DooD's preprocessing (Liang et al. 2022, appendix A and sec. 3.2):
  inverted (ink = 1), resized to 50×50 by antialiased bilinear interpolation, grey values in
  ``[0, 1]``, no binarisation.

Every label file and every file a label line names is checked before an image is decoded; a
problem raises :class:`~tasks.data.DataError` naming the run, the file and the line.
``metadata`` (alphabet, character ids and drawers) comes from matching each image to
``images_evaluation.npz`` and ``characters.csv`` when both are in the data directory.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from tasks.data import DataError
from tasks.data.images50 import OMNIGLOT_FILES
from tasks.data.mnist import resize_images
from tasks.data.paths import DataDir, FileSpec, file_sha256, find, locate

__all__ = ["LABEL_FILE", "RUNS_ARCHIVE", "OneShotRun", "OneShotRuns", "load_runs"]

RUNS_ARCHIVE = FileSpec(
    "omniglot",
    "all_runs.zip",
    "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
    "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
    "one-shot-classification/all_runs.zip",
)
CHARACTERS_CSV = FileSpec(
    "omniglot",
    "characters.csv",
    "6705710558e070ebb42edb04eb2234ee231c5f6c3f2045c438cfa826d6ad7bef",
    None,
)
LABEL_FILE = "class_labels.txt"
DEFAULT_SIZE = 50
_RUN_FOLDER = re.compile(r"run\d+")
_FIRST_EVALUATION_ID = 965  # official character id of images_evaluation.npz index 0
#: What PIL raises for a damaged image (a broken PNG chunk is a SyntaxError, a short header a
#: struct.error).
_IMAGE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    struct.error,
    Image.DecompressionBombError,
)


@dataclass(frozen=True)
class OneShotRun:
    """One N-way one-shot run: ``S`` supports, ``Q`` queries and the true support of each."""

    name: str
    supports: Tensor  # (S, 1, size, size) float, ink = 1
    queries: Tensor  # (Q, 1, size, size) float, ink = 1
    labels: Tensor  # (Q,) int64: index into the supports
    support_names: tuple[str, ...]  # archive paths, e.g. run01/training/class01.png
    query_names: tuple[str, ...]
    supports_binary: Tensor  # (S, 1, 105, 105) bool, True = ink
    queries_binary: Tensor  # (Q, 1, 105, 105) bool, True = ink
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OneShotRuns:
    """The runs of an archive and where they came from (for the results' settings)."""

    runs: tuple[OneShotRun, ...]
    source: dict[str, Any]


@dataclass(frozen=True)
class _RunLayout:
    name: str
    supports: tuple[str, ...]
    queries: tuple[str, ...]
    labels: tuple[int, ...]


# ----------------------------------------------------------------------------- reading
def _read_files(path: Path) -> dict[str, bytes]:
    """Every file of the zip (or folder) at ``path``: archive name → bytes."""
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()
        }
    if not path.is_file():
        raise DataError(f"one-shot runs archive {path} not found")
    try:
        with zipfile.ZipFile(path) as archive:
            return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot read the one-shot runs archive ({exc}); the file is corrupt or not "
            f"a zip; replace it with the official {RUNS_ARCHIVE.url}"
        ) from exc
    except (NotImplementedError, RuntimeError) as exc:  # unknown compression, encrypted
        raise DataError(
            f"{path}: the one-shot runs archive uses a zip feature this reader lacks ({exc}); "
            f"replace it with the official {RUNS_ARCHIVE.url}"
        ) from exc


def _run_folders(files: Mapping[str, bytes], where: str) -> dict[str, str]:
    """Run name → its folder inside the archive (``runNN`` at any depth)."""
    folders: dict[str, str] = {}
    for name in files:
        parts = name.split("/")
        for depth, part in enumerate(parts[:-1]):
            if _RUN_FOLDER.fullmatch(part):
                folder = "/".join(parts[: depth + 1])
                if folders.setdefault(part, folder) != folder:
                    raise DataError(f"{where}: two folders named {part}: {folders[part]}, {folder}")
                break
    if not folders:
        raise DataError(f"{where}: no runNN/ folders (expected the layout of {RUNS_ARCHIVE.url})")
    return dict(sorted(folders.items()))


def _layout(files: Mapping[str, bytes], run: str, folder: str, where: str) -> _RunLayout:
    """Supports, queries and labels of one run, every named file checked to exist."""
    label_path = f"{folder}/{LABEL_FILE}"
    if label_path not in files:
        raise DataError(f"{where}: run {run} has no label file {label_path}")
    root = folder[: -len(run)]  # label lines name files relative to the folder holding the runs
    candidates = sorted(
        n for n in files if n.startswith(f"{folder}/training/") and n.endswith(".png")
    )
    pairs: dict[str, str] = {}
    text = files[label_path].decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        at = f"{where}: run {run}, {label_path} line {number} ({line.strip()!r})"
        fields = line.split()
        if len(fields) != 2:
            raise DataError(
                f"{at}: expected 'test-item training-class', found {len(fields)} fields"
            )
        query, support = (root + f for f in fields)
        for name in (query, support):
            if name not in files:
                raise DataError(f"{at}: names {name}, which is not in the archive")
        if support not in candidates:
            raise DataError(f"{at}: {support} is not a training image of {run}")
        if query in pairs:
            raise DataError(f"{at}: {query} is labelled twice")
        pairs[query] = support
    if not pairs:
        raise DataError(f"{where}: run {run}: {label_path} has no label lines")
    queries = tuple(sorted(pairs))
    labels = tuple(candidates.index(pairs[q]) for q in queries)
    return _RunLayout(run, tuple(candidates), queries, labels)


def _decode(files: Mapping[str, bytes], names: tuple[str, ...], where: str) -> np.ndarray:
    """``(N, H, W)`` bool images, ``True`` = ink (pixels darker than mid-grey)."""
    images = []
    for name in names:
        try:
            with Image.open(io.BytesIO(files[name])) as image:
                images.append(np.asarray(image.convert("L")) < 128)
        except _IMAGE_ERRORS as exc:
            raise DataError(f"{where}: {name} is not a readable image ({exc})") from exc
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise DataError(
            f"{where}: images of different sizes: {sorted(shapes)} (every image of a run must "
            "have the same size)"
        )
    return np.stack(images)


def _grey(binary: Tensor, size: int) -> Tensor:
    """DooD's input: ink = 1, antialiased bilinear resize to ``size``, grey (no binarisation)."""
    return resize_images(binary.float(), size).contiguous()


# ----------------------------------------------------------------------------- metadata
def _evaluation_index(data_dir: DataDir) -> tuple[dict[bytes, tuple[int, int]], dict[int, str]]:
    """Packed image bits → (npz character index, drawer), and npz index → alphabet/character
    (empty when ``images_evaluation.npz`` or ``characters.csv`` is not in the data dir)."""
    npz, table = find(OMNIGLOT_FILES["evaluation"], data_dir), find(CHARACTERS_CSV, data_dir)
    if npz is None or table is None:
        return {}, {}
    with np.load(npz) as archive:
        images = archive["images"]  # (659, 20, 105, 105) bool, True = background
    packed = np.packbits(images.reshape(-1, images.shape[-2] * images.shape[-1]), axis=1)
    drawers = images.shape[1]
    index = {row.tobytes(): divmod(i, drawers) for i, row in enumerate(packed)}
    with open(table, newline="", encoding="utf-8") as handle:
        names = {
            int(row["index_in_npz"]): f"{row['alphabet']}/{row['character']}"
            for row in csv.DictReader(handle)
            if row["set"] == "evaluation"
        }
    return index, names


def _metadata(
    binary: np.ndarray, index: dict[bytes, tuple[int, int]], names: dict[int, str]
) -> list[dict[str, Any] | None]:
    """Alphabet, character id and 1-based drawer of each ``(N, 105, 105)`` ink image."""
    found: list[dict[str, Any] | None] = []
    for row in np.packbits(~binary.reshape(binary.shape[0], -1), axis=1):
        hit = index.get(row.tobytes())
        if hit is None:
            found.append(None)
            continue
        character, drawer = hit
        alphabet, _, name = names.get(character, "?/?").partition("/")
        found.append(
            {
                "alphabet": alphabet,
                "character": name,
                "character_id": _FIRST_EVALUATION_ID + character,
                "drawer": drawer + 1,
            }
        )
    return found


def _run_metadata(supports: list[Any], queries: list[Any]) -> dict[str, Any]:
    alphabets = sorted({m["alphabet"] for m in supports + queries if m is not None})
    return {
        "alphabet": alphabets[0] if len(alphabets) == 1 else alphabets,
        "supports": supports,
        "queries": queries,
        "matched": sum(m is not None for m in supports + queries),
    }


# ----------------------------------------------------------------------------- loading
def _resolve(path: str | Path | None, data_dir: DataDir, download: bool) -> tuple[Path, dict]:
    if path is None:
        found = locate(RUNS_ARCHIVE, data_dir, download)
        return found, {"path": str(found), "sha256": RUNS_ARCHIVE.sha256, "official": True}
    found = Path(path).expanduser().resolve()
    if found.is_file():
        digest = file_sha256(found)
        return found, {
            "path": str(found),
            "sha256": digest,
            "official": digest == RUNS_ARCHIVE.sha256,
        }
    return found, {"path": str(found), "sha256": None, "official": False}


def load_runs(
    path: str | Path | None = None,
    *,
    data_dir: DataDir = None,
    download: bool = False,
    size: int = DEFAULT_SIZE,
    metadata: bool = True,
) -> OneShotRuns:
    """Every run of the archive at ``path`` (default: ``<data dir>/omniglot/all_runs.zip``).

    All label files are checked before any image is decoded. ``metadata`` matches the images
    to ``images_evaluation.npz`` (about half a second) when it and ``characters.csv`` are found.
    """
    archive, source = _resolve(path, data_dir, download)
    files = _read_files(archive)
    where = str(archive)
    layouts = [
        _layout(files, run, folder, where) for run, folder in _run_folders(files, where).items()
    ]
    index, names = _evaluation_index(data_dir) if metadata else ({}, {})
    runs = []
    for layout in layouts:
        at = f"{where}: run {layout.name}"
        supports = _decode(files, layout.supports, at)
        queries = _decode(files, layout.queries, at)
        info = {}
        if index:
            info = _run_metadata(
                _metadata(supports, index, names), _metadata(queries, index, names)
            )
        supports_binary = torch.from_numpy(supports).unsqueeze(1)
        queries_binary = torch.from_numpy(queries).unsqueeze(1)
        runs.append(
            OneShotRun(
                name=layout.name,
                supports=_grey(supports_binary, size),
                queries=_grey(queries_binary, size),
                labels=torch.tensor(layout.labels, dtype=torch.int64),
                support_names=layout.supports,
                query_names=layout.queries,
                supports_binary=supports_binary,
                queries_binary=queries_binary,
                metadata=info,
            )
        )
    source.update(num_runs=len(runs), size=size, metadata=bool(index))
    return OneShotRuns(tuple(runs), source)
