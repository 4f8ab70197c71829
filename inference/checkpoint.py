"""Checkpoints: atomic writes, ``weights_only`` loads, and checks that name what is wrong.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (so that
``torch.load(..., weights_only=True)`` can read it) with at least::

    format, format_version, model (registry name), model_config (dict),
    model_state, guide_state, step

and the rest of its :class:`RunRecord` (``config_name``, ``data``, ``objective``).
:func:`read_checkpoint` reads it once into a typed :class:`Checkpoint`. Before unpickling, the
file is checked to be a PyTorch zip archive whose members pass their CRC-32 (``torch.load`` does
not check them, so a bit flip inside a tensor would load silently); every problem is one
:class:`CheckpointError` that names the file and says what it is and is not.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

FORMAT = "pyro-draw-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("model", "model_config", "model_state", "guide_state", "step")
_FIELD_TYPES: dict[str, type] = {
    "model": str,
    "model_config": dict,
    "model_state": dict,
    "guide_state": dict,
    "step": int,
}
_ZIP_MAGIC = b"PK\x03\x04"  # what torch.save writes: a zip archive
_PICKLE_MAGIC = b"\x80"  # pickle protocol 2+: legacy torch.save, or a plain pickle
_SNIFF_BYTES = 512
_CRC_CHUNK = 1 << 20
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not what the caller expects."""


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` atomically: to a temporary file in the same folder, fsync, rename.

    A crash mid-write leaves any previous checkpoint at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"refusing to save {path}: missing keys {missing}")
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    return write_atomic(path, lambda fh: torch.save(data, fh))


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it and rename it over
    ``path`` (with the usual file mode, not mkstemp's 0600): a crash mid-write leaves any
    previous file at ``path`` intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | Path, *, expected_model: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check its format and model name.

    The device is checked first (``ValueError``: a device problem, the file is not read), then
    the file: a missing, empty, truncated, corrupted or foreign file, or one without the fields
    :func:`save_checkpoint` writes, raises one :class:`CheckpointError` naming it. The file is
    only read, never changed.
    """
    path = Path(path)
    check_device(map_location, path)
    check_file(path)
    data = _torch_load(path, map_location)
    check_fields(data, path)
    if expected_model is not None and data["model"] != expected_model:
        raise CheckpointError(
            f"{path} holds a {data['model']!r} model, expected {expected_model!r}"
        )
    return data


def check_device(device: str | torch.device, path: str | Path) -> None:
    """Raise ``ValueError`` (a device problem, not the checkpoint's) when ``device`` cannot be
    used on this machine, before ``path`` is read."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"cannot load checkpoint {path} onto {device!r}: not a torch device ({exc})"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = (
            f"this torch {torch.__version__} is a CPU-only build"
            if torch.version.cuda is None
            else "no CUDA device or driver was found"
        )
        raise ValueError(
            f"device {str(device)!r} is not available on this machine ({build}); checkpoint "
            f"{path} was not read (load it with device 'cpu', CLI: --device cpu)"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device 'mps' is not available on this machine; checkpoint {path} was not read"
        )


def check_file(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a readable, intact PyTorch zip file."""
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, expected a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be opened ({exc.strerror})") from None
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes), not a pyro-draw checkpoint")
    if not head.startswith(_ZIP_MAGIC):
        raise CheckpointError(f"checkpoint {path} {_what_it_is(head, size)}")
    _check_zip(path, size)


def _what_it_is(head: bytes, size: int) -> str:
    """What a file that does not start like a zip archive is, in words."""
    if head.startswith(_PICKLE_MAGIC):
        return (
            "is a pickle or a legacy (pre-zip) PyTorch file, not a pyro-draw checkpoint "
            "(those are PyTorch zip archives)"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the sniffed bytes is fine
        text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else None
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"is a text file ({size} bytes, starts {first!r}), not a PyTorch checkpoint"
    return (
        f"is not a PyTorch checkpoint (its first bytes are not a zip archive: "
        f"{head[:8].hex(' ')}); it is not a pyro-draw checkpoint"
    )


def _check_zip(path: Path, size: int) -> None:
    """Open the zip archive and verify every member's CRC-32 (torch.load does not)."""
    broken = f"checkpoint {path} is truncated or corrupted"
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for info in members:
                _check_member(archive, info, broken)
    except zipfile.BadZipFile as exc:
        reason = str(exc)
        if reason == "File is not a zip file":  # it starts like one: its end is missing
            reason = "no central directory at its end, as when a write is cut short"
        raise CheckpointError(
            f"{broken} (zip archive unreadable: {reason}; {size} bytes)"
        ) from None
    except CheckpointError:
        raise
    except Exception as exc:  # zlib/struct/unicode errors from damaged headers
        raise CheckpointError(
            f"{broken} (zip archive unreadable: damaged headers, {type(exc).__name__}; "
            f"{size} bytes)"
        ) from None
    if not any(info.filename.endswith("/data.pkl") for info in members):
        names = ", ".join(info.filename for info in members[:3]) or "no files"
        raise CheckpointError(
            f"checkpoint {path} is a zip archive but not a PyTorch checkpoint (no data.pkl; it "
            f"holds {names})"
        )


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, broken: str) -> None:
    """Read one member to its end, so that zipfile compares its CRC-32."""
    try:
        with archive.open(info) as member:
            while member.read(_CRC_CHUNK):
                pass
    except zipfile.BadZipFile as exc:
        if "CRC" not in str(exc):
            raise
        raise CheckpointError(
            f"{broken} (zip archive member {info.filename!r} fails its CRC-32 check: its bytes "
            "changed after it was written)"
        ) from None


def _torch_load(path: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` with its errors said in our words."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _UNSUPPORTED_GLOBAL.search(str(exc))
        what = f"a pickled {found.group(1)} object" if found else "pickled Python objects"
        raise CheckpointError(
            f"checkpoint {path} holds {what}, which a safe (weights-only) load does not read: "
            "not a pyro-draw checkpoint (those hold only tensors, numbers, strings, lists and "
            "dicts)"
        ) from None
    except Exception as exc:  # a member that passed its CRC check but does not unpickle
        raise CheckpointError(
            f"checkpoint {path} is a zip archive whose contents PyTorch cannot read "
            f"({type(exc).__name__}): corrupted, or not a pyro-draw checkpoint"
        ) from None


def check_fields(data: Any, path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``data`` holds the fields :func:`save_checkpoint`
    writes, of the right types."""
    if not isinstance(data, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(data).__name__}, not a pyro-draw checkpoint (a "
            "dict of the fields pyro-draw train writes)"
        )
    if "format" not in data:
        keys = ", ".join(repr(k) for k in list(data)[:5]) or "none"
        raise CheckpointError(
            f"checkpoint {path} is a PyTorch file but not a pyro-draw checkpoint: it holds no "
            f"'format' field (its keys: {keys})"
        )
    if data["format"] != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a pyro-draw checkpoint (format: {data['format']!r}, "
            f"expected {FORMAT!r})"
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {data.get('format_version')!r}; this "
            f"pyro-draw reads version {FORMAT_VERSION} (written by another version)"
        )
    for key in REQUIRED_KEYS:
        if key not in data:
            raise CheckpointError(
                f"checkpoint {path} holds no {key!r} field: not written by pyro-draw train"
            )
    for key, kind in _FIELD_TYPES.items():
        value = data[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(
                f"checkpoint {path}: field {key!r} should be a {kind.__name__}, found "
                f"{type(value).__name__}: not written by pyro-draw train"
            )


@dataclass(frozen=True)
class RunRecord:
    """What a checkpoint says about its run: the registered model name and configuration, the
    named configuration it came from, the data's provenance and the objective's settings (a
    resumed run must use the same)."""

    model: str
    model_config: dict[str, Any]
    config_name: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    objective: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def dataset(self) -> Any:
        return self.data.get("dataset")


@dataclass
class Checkpoint:
    """A loaded checkpoint: its run record, step and the full payload (states, optimiser, RNG)."""

    path: Path
    record: RunRecord
    step: int
    payload: dict[str, Any]

    @property
    def model(self) -> str:
        return self.record.model

    @property
    def model_config(self) -> dict[str, Any]:
        return self.record.model_config


def _objective_record(data: dict[str, Any]) -> dict[str, Any]:
    """The objective settings of ``data``; checkpoints written before the run record stored a
    mode name (RAM: ``"hybrid"``) or a description, and RAM's ``reinforce_weight`` beside it
    (the other classifiers of RAM's tables stored an unused ``reinforce_weight`` too: dropped)."""
    objective = data.get("objective", {})
    if not isinstance(objective, dict):
        objective = {"mode": objective}
    ram = data.get("model") == "ram"
    if ram and "reinforce_weight" in data and "reinforce_weight" not in objective:
        objective = {**objective, "reinforce_weight": data["reinforce_weight"]}
    return objective


def read_checkpoint(
    path: str | Path, *, expected_model: str | None = None, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """:func:`load_checkpoint`, typed: the one reader every command uses."""
    data = load_checkpoint(path, expected_model=expected_model, map_location=map_location)
    payload_data = data.get("data", {})
    if "augment" in data and isinstance(payload_data, dict) and "augment" not in payload_data:
        payload_data = {**payload_data, "augment": data["augment"]}  # sketch-rnn before the record
    record = RunRecord(
        model=data["model"],
        model_config=data["model_config"],
        config_name=data.get("config_name"),
        data=payload_data if isinstance(payload_data, dict) else {"dataset": payload_data},
        objective=_objective_record(data),
    )
    return Checkpoint(path=Path(path), record=record, step=int(data["step"]), payload=data)


def _umask() -> int:
    """The process's file-creation mask."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
