"""The one list of model families, and lookups by model name.

A new family adds its package ``tasks/<family>/`` exposing ``FAMILY`` and one line to
:data:`FAMILIES`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from inference.checkpoint import Checkpoint, CheckpointError, check_device, read_checkpoint
from tasks.catch import FAMILY as CATCH
from tasks.dood import FAMILY as DOOD
from tasks.draw import FAMILY as DRAW
from tasks.family import Family, ModelSpec
from tasks.ram import FAMILY as RAM
from tasks.sketch_rnn import FAMILY as SKETCH_RNN

__all__ = ["FAMILIES", "find_model", "load_trained", "model_names"]

FAMILIES: tuple[Family, ...] = (DRAW, SKETCH_RNN, DOOD, RAM, CATCH)


def model_names(families: tuple[Family, ...] | None = None) -> list[str]:
    """Every registered model name."""
    return [spec.name for family in families or FAMILIES for spec in family.models]


def find_model(name: str, families: tuple[Family, ...] | None = None) -> tuple[Family, ModelSpec]:
    """The family and spec of the model registered as ``name``."""
    for family in families or FAMILIES:
        for spec in family.models:
            if spec.name == name:
                return family, spec
    raise ValueError(f"unknown model {name!r}; registered models: {', '.join(model_names())}")


def check_registry(families: tuple[Family, ...]) -> None:
    """Model names are unique across families."""
    names = model_names(families)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RuntimeError(f"model names registered twice: {twice}")


def load_trained(
    path: str | Path, *, device: str | torch.device = "cpu", expected_model: str | None = None
) -> tuple[nn.Module, nn.Module, Checkpoint]:
    """The model and guide stored in a checkpoint (eval mode, on ``device``) and the checkpoint.

    ``device`` is checked before the file is read (an unavailable one is a ``ValueError`` about
    the device); the file is read onto the CPU and the modules are then moved to ``device``.
    """
    check_device(device, path)
    checkpoint = read_checkpoint(path, expected_model=expected_model, map_location="cpu")
    try:
        _, spec = find_model(checkpoint.model)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {checkpoint.path}: {exc}") from None
    model, guide = spec.restore(checkpoint, device)
    return model, guide, checkpoint


check_registry(FAMILIES)
