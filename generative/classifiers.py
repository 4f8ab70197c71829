"""The non-attention baselines of RAM's Tables 1–2 (Mnih et al. 2014), as Pyro models.

* :class:`FCClassifier` — "FC, 2 layers (64 | 256 hiddens each)": two fully connected layers of
  rectifier units on the whole image, then a linear softmax.
* :class:`ConvClassifier` — "Convolutional, 2 layers": "one layer of 8 10 × 10 filters with
  stride 5, followed by a fully connected layer with 256 units [86 in the 100 × 100 case] with
  rectifiers after each layer" (captions of Tables 1 and 2), then a linear softmax. Sec. 4.1's
  text says *16* filters for Table 1b, the captions say 8; we follow the captions because only 8
  filters give what the text also says — "roughly the same number of parameters" as RAM: on
  60×60 inputs the map is 8·11·11 = 968 features, 968·256 ≈ 248k weights (16 filters: ≈ 496k),
  against ≈ 255k for RAM; on 100×100, 8·19·19·86 ≈ 248k again. The convolution uses no padding.

Each model's ``.model(images, labels=None)`` observes the label at the site ``"y"`` inside
``pyro.plate("data", B)``; there are no latents, so :class:`guides.empty.EmptyGuide` with any
ELBO gives the loss ``−log p(y | x)`` (cross-entropy).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import pyro
import pyro.distributions as dist
from torch import Tensor, nn

from generative.checks import check_classification_batch
from generative.config import ImageConfig

__all__ = [
    "CLASSIFIER_CONFIGS",
    "ConvClassifier",
    "ConvConfig",
    "FCClassifier",
    "FCConfig",
    "conv_output_side",
]


def _check_positive(obj: Any) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        if int(value) < 1:
            raise ValueError(f"{type(obj).__name__}.{f.name}: expected >= 1, found {value}")


@dataclass(frozen=True)
class FCConfig(ImageConfig):
    """RAM Tables 1–2 "FC, 2 layers": ``hidden`` rectifier units per layer."""

    channels: int = 1
    height: int = 28
    width: int = 28
    hidden: int = 256
    layers: int = 2
    num_classes: int = 10

    def __post_init__(self) -> None:
        _check_positive(self)


@dataclass(frozen=True)
class ConvConfig(ImageConfig):
    """RAM Tables 1–2 "Convolutional, 2 layers" (see the module docstring)."""

    channels: int = 1
    height: int = 60
    width: int = 60
    filters: int = 8
    kernel: int = 10
    stride: int = 5
    hidden: int = 256  # 86 for 100×100 (Table 2 caption)
    num_classes: int = 10

    def __post_init__(self) -> None:
        _check_positive(self)
        if self.kernel > min(self.height, self.width):
            raise ValueError(
                f"ConvConfig.kernel: expected <= the image side {min(self.height, self.width)}, "
                f"found {self.kernel}"
            )


def conv_output_side(side: int, kernel: int, stride: int) -> int:
    """Output side of an unpadded convolution: ``⌊(side − kernel)/stride⌋ + 1``."""
    return (side - kernel) // stride + 1


# Named configurations (the image size is set from the dataset when building).
CLASSIFIER_CONFIGS: dict[str, dict[str, FCConfig | ConvConfig]] = {
    "fc": {
        "fc_256": FCConfig(hidden=256),
        "fc_64": FCConfig(hidden=64),
        "small": FCConfig(hidden=32),
    },
    "convnet": {
        "conv_256": ConvConfig(hidden=256),
        "conv_86": ConvConfig(hidden=86),
        "small": ConvConfig(hidden=32),
    },
}


class _Classifier(nn.Module):
    """Shared Pyro interface; subclasses set ``config`` and the ``layers`` network."""

    name = "classifier"
    layers: nn.Module

    def logits(self, images: Tensor, *, deterministic: bool = True) -> Tensor:
        """``(B, num_classes)`` class logits."""
        c = self.config
        check_classification_batch(images, None, c.image_shape, c.num_classes)
        return self.layers(images)

    def model(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """``p(y | x)``: observe (or sample) ``y`` inside ``pyro.plate("data", B)``; returns the
        logits."""
        pyro.module(self.name, self)
        c = self.config
        check_classification_batch(images, labels, c.image_shape, c.num_classes)
        logits = self.layers(images)
        with pyro.plate("data", images.shape[0]):
            pyro.sample("y", dist.Categorical(logits=logits), obs=labels)
        return logits


class FCClassifier(_Classifier):
    """``layers`` × (Linear → ReLU) with ``hidden`` units on the flattened image, then a linear
    softmax (RAM Table 1 "FC, 2 layers")."""

    name = "fc"

    def __init__(self, config: FCConfig):
        super().__init__()
        self.config = c = config
        sizes = [c.channels * c.height * c.width] + [c.hidden] * c.layers
        modules: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            modules += [nn.Linear(a, b), nn.ReLU()]
        modules.append(nn.Linear(sizes[-1], c.num_classes))
        self.layers = nn.Sequential(*modules)


class ConvClassifier(_Classifier):
    """Conv(``filters`` × ``kernel²``, stride) → ReLU → Linear(``hidden``) → ReLU → linear
    softmax (RAM Tables 1–2 "Convolutional, 2 layers")."""

    name = "convnet"

    def __init__(self, config: ConvConfig):
        super().__init__()
        self.config = c = config
        rows = conv_output_side(c.height, c.kernel, c.stride)
        cols = conv_output_side(c.width, c.kernel, c.stride)
        self.layers = nn.Sequential(
            nn.Conv2d(c.channels, c.filters, c.kernel, stride=c.stride),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c.filters * rows * cols, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, c.num_classes),
        )
