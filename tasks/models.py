"""The registry of trainable models: build a model/guide pair from a name and a config dict.

Checkpoints store the registry name and the config dict, so every task can rebuild the exact
networks from the checkpoint alone (:func:`load_trained`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# name -> (builder from config dict, named configs, config from (config name, image shape))
MODELS: dict[str, tuple[Callable[[dict], tuple[nn.Module, nn.Module]], list[str], Callable]] = {
    "draw": (_build_draw, sorted(DRAW_CONFIGS), _draw_config),
}


def _entry(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def config_names(name: str) -> list[str]:
    return _entry(name)[1]


def model_config(name: str, config_name: str, image_shape: tuple[int, int, int]) -> dict:
    """The named configuration of ``name``, fitted to images of shape ``(C, H, W)``."""
    return _entry(name)[2](config_name, image_shape)


def build_model(name: str, config: dict) -> tuple[nn.Module, nn.Module]:
    """A fresh (model, guide) pair."""
    return _entry(name)[0](config)


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
