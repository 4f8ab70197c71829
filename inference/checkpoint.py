"""Checkpoints: atomic writes, ``weights_only`` loads, and checks that name what is wrong.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (so that
``torch.load(..., weights_only=True)`` can read it) with at least::

    format, format_version, model (registry name), model_config (dict),
    model_state, guide_state, step
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
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
