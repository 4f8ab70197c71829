"""The registry of trainable models: build a model/guide pair from a name and a config dict.

Checkpoints store the registry name and the config dict, so every task can rebuild the exact
networks from the checkpoint alone (:func:`load_trained`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from generative.draw import DRAW_CONFIGS, DrawConfig, DrawModel, draw_config
from guides.draw import DrawGuide
from inference.checkpoint import load_checkpoint


def _build_draw(config: dict) -> tuple[nn.Module, nn.Module]:
    model = DrawModel(DrawConfig.from_dict(config))
    return model, DrawGuide(model)


def _draw_config(name: str, image_shape: tuple[int, int, int]) -> dict:
    channels, height, width = image_shape
    return draw_config(name, channels=channels, height=height, width=width).to_dict()


class ModelEntry(NamedTuple):
    """A registered model: ``build(config dict) -> (model, guide)`` and its named configs."""

    build: Callable[[dict], tuple[nn.Module, nn.Module]]
    configs: Sequence[str]


# Family modules each expose ``MODELS: dict[str, ModelEntry]``; they are imported on first use.
FAMILY_MODULES: tuple[str, ...] = (
    "tasks.models",
    "tasks.sketch_rnn",
    "tasks.ram",
    "tasks.catch",
    "tasks.dood",
)

MODELS: dict[str, ModelEntry] = {"draw": ModelEntry(_build_draw, sorted(DRAW_CONFIGS))}


def registry() -> dict[str, ModelEntry]:
    """Every registered model, from all family modules."""
    entries: dict[str, ModelEntry] = {}
    for module in FAMILY_MODULES:
        for name, entry in importlib.import_module(module).MODELS.items():
            if name in entries:
                raise RuntimeError(f"model name {name!r} registered twice (again by {module})")
            entries[name] = entry
    return entries


def _entry(name: str) -> ModelEntry:
    models = registry()
    if name not in models:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(models)}")
    return models[name]


def config_names(name: str) -> list[str]:
    return list(_entry(name).configs)


def model_config(name: str, config_name: str, image_shape: tuple[int, int, int]) -> dict:
    """The named DRAW configuration ``config_name``, fitted to images of shape ``(C, H, W)``."""
    if name != "draw":
        raise ValueError(f"model_config builds DRAW configurations, not {name!r}")
    return _draw_config(config_name, image_shape)


def build_model(name: str, config: dict) -> tuple[nn.Module, nn.Module]:
    """A fresh (model, guide) pair."""
    return _entry(name).build(config)


def load_trained(
    path: str | Path, *, device: str | torch.device = "cpu", expected_model: str | None = None
) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """Rebuild the model and guide stored in a checkpoint; returns them in eval mode and the
    checkpoint dict."""
    data = load_checkpoint(path, expected_model=expected_model, map_location=device)
    model, guide = build_model(data["model"], data["model_config"])
    model.load_state_dict(data["model_state"])
    guide.load_state_dict(data["guide_state"])
    model.to(device).eval()
    guide.to(device).eval()
    return model, guide, data
