"""Checkpoints: atomic writes, ``weights_only`` loads, and checks that name what is wrong.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (so that
``torch.load(..., weights_only=True)`` can read it) with at least::

    format, format_version, model (registry name), model_config (dict),
    model_state, guide_state, step

and the rest of its :class:`RunRecord` (``config_name``, ``data``, ``objective``).
:func:`read_checkpoint` reads it once into a typed :class:`Checkpoint`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

FORMAT = "pyro-draw-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("model", "model_config", "model_state", "guide_state", "step")


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
    """Load a checkpoint with ``weights_only=True`` and check its format and model name."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors from a truncated or foreign file
        raise CheckpointError(f"checkpoint {path} could not be read: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not a pyro-draw checkpoint (format: {found!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {data.get('format_version')} is not supported "
            f"(expected {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks the fields {missing}")
    if expected_model is not None and data["model"] != expected_model:
        raise CheckpointError(
            f"{path} holds a {data['model']!r} model, expected {expected_model!r}"
        )
    return data


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
