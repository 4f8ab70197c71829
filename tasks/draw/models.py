"""DRAW's models for the registry: the builder, named configurations and training options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from generative.draw import DRAW_CONFIGS, DrawConfig, DrawModel, draw_config
from guides.draw import DrawGuide
from inference.trainer import ELBOS
from tasks.options import option, positive

__all__ = ["CONFIG_NAMES", "DrawOptions", "build_draw", "fitted_config"]

CONFIG_NAMES: tuple[str, ...] = tuple(sorted(DRAW_CONFIGS))


def build_draw(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """A fresh (model, guide) pair from a :class:`DrawConfig` dict (checkpoint rebuild)."""
    model = DrawModel(DrawConfig.from_dict(config))
    return model, DrawGuide(model)


def fitted_config(name: str, image_shape: tuple[int, int, int]) -> dict[str, Any]:
    """The named configuration ``name`` fitted to images of shape ``(C, H, W)``."""
    channels, height, width = image_shape
    return draw_config(name, channels=channels, height=height, width=width).to_dict()


@dataclass
class DrawOptions:
    """Options of ``pyro-draw train draw``."""

    elbo: str = option(
        "meanfield",
        "meanfield: analytic KL (TraceMeanField_ELBO); trace: Monte-Carlo KL",
        choices=tuple(sorted(ELBOS)),
    )
    num_particles: int = option(1, "ELBO particles per example", check=positive)
    num_train: int | None = option(
        None, "use only this many training images", check=positive, default_text="all"
    )
    num_valid: int = option(1000, "validation images", check=positive)
    iwae_samples: int = option(50, "K for the final test IWAE estimate", check=positive)
    eval_examples: int = option(
        500, "test images for the final evaluation (a fixed random subset)", check=positive
    )
