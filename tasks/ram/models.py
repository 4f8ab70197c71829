"""The classifiers for the registry: builders, named configurations and training options.

``ram`` is :class:`generative.ram.RAM` with its location policy as the guide
(:class:`guides.ram.RAMGuide`); ``dram`` (:class:`generative.ram.DRAM`), ``fc`` and ``convnet``
(:mod:`generative.classifiers`) have no latents and an empty guide. The named configurations are
the typed tables of :mod:`generative` (``RAM_CONFIGS``, ``DRAM_CONFIGS``,
``CLASSIFIER_CONFIGS``); the image size comes from the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from generative.classifiers import (
    CLASSIFIER_CONFIGS,
    ConvClassifier,
    ConvConfig,
    FCClassifier,
    FCConfig,
)
from generative.config import ImageConfig
from generative.ram import DRAM, DRAM_CONFIGS, RAM, RAM_CONFIGS, DRAMConfig, RAMConfig
from guides.empty import EmptyGuide
from guides.ram import RAMGuide
from inference.reinforce import OBJECTIVE_MODES
from tasks.options import check_options, non_negative, option, positive
from tasks.ram.data import check_dataset

__all__ = [
    "CLASSIFIER_OBJECTIVE",
    "ClassifierOptions",
    "NAMED_CONFIGS",
    "RAMOptions",
    "build_convnet",
    "build_dram",
    "build_fc",
    "build_ram",
    "classifier_config",
    "config_names",
    "default_config_name",
]

#: the objective of the classifiers without latents (``−log p(y | x)``, the trainer's ELBO)
CLASSIFIER_OBJECTIVE = "elbo (−log p(y|x))"


def build_ram(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    ram = RAM(RAMConfig.from_dict(config))
    return ram, RAMGuide(ram)


def build_dram(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    return DRAM(DRAMConfig.from_dict(config)), EmptyGuide()


def build_fc(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    return FCClassifier(FCConfig.from_dict(config)), EmptyGuide()


def build_convnet(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    return ConvClassifier(ConvConfig.from_dict(config)), EmptyGuide()


NAMED_CONFIGS: dict[str, Mapping[str, ImageConfig]] = {
    "ram": RAM_CONFIGS,
    "dram": DRAM_CONFIGS,
    "fc": CLASSIFIER_CONFIGS["fc"],
    "convnet": CLASSIFIER_CONFIGS["convnet"],
}


def _named(model: str) -> Mapping[str, ImageConfig]:
    if model not in NAMED_CONFIGS:
        raise ValueError(f"unknown classifier {model!r}; expected one of {sorted(NAMED_CONFIGS)}")
    return NAMED_CONFIGS[model]


def config_names(model: str) -> tuple[str, ...]:
    """The named configurations of ``model``, sorted."""
    return tuple(sorted(_named(model)))


def default_config_name(model: str, dataset: str) -> str:
    """The paper's configuration of ``model`` for ``dataset`` (RAM Tables 1–2, DRAW Table 1)."""
    _named(model)
    check_dataset(dataset)
    if model == "ram":
        return {
            "mnist": "mnist_28",
            "mnist_translated_60": "translated_60",
            "mnist_cluttered_60": "cluttered_60",
            "mnist_cluttered_100": "cluttered_100",
        }[dataset]
    if model == "dram":
        return "cluttered_100"
    if model == "fc":
        return "fc_256"
    return "conv_86" if dataset == "mnist_cluttered_100" else "conv_256"


def classifier_config(
    model: str, config_name: str, image_shape: tuple[int, int, int], **overrides: Any
) -> dict[str, Any]:
    """The named configuration of ``model`` fitted to images ``(C, H, W)``, with the ``overrides``
    that are not ``None`` (e.g. ``location_std``), as a plain dict."""
    named = _named(model)
    if config_name not in named:
        raise ValueError(f"unknown {model} config {config_name!r}; expected one of {sorted(named)}")
    channels, height, width = image_shape
    values = {k: v for k, v in overrides.items() if v is not None}
    fitted = replace(named[config_name], channels=channels, height=height, width=width, **values)
    return fitted.to_dict()


@dataclass
class ClassifierOptions:
    """Options of ``pyro-draw train dram|fc|convnet`` (and, with more, ``ram``)."""

    num_train: int | None = option(
        None, "use only this many training digits", check=positive, default_text="all"
    )
    num_valid: int = option(1000, "validation images", check=positive)
    eval_examples: int | None = option(
        None,
        "test images for the final evaluation",
        check=positive,
        default_text="the whole test set",
    )
    lr_decay: float = option(
        1.0, "learning-rate factor per step: lr_t = max(min_lr, lr·decay^t)", check=positive
    )
    min_lr: float = option(0.0, "floor of the decayed learning rate", check=non_negative)

    def __post_init__(self) -> None:
        check_options(self)


@dataclass
class RAMOptions(ClassifierOptions):
    """Options of ``pyro-draw train ram``: the classifiers' and RAM's objective and policy."""

    objective: str = option(
        "hybrid",
        "hybrid: RAM's CE + REINFORCE (0/1 reward); tracegraph: TraceGraph_ELBO with the policy "
        "as guide (reward log p(y|l,x))",
        choices=OBJECTIVE_MODES,
    )
    reinforce_weight: float = option(
        1.0, "weight of the REINFORCE term in the hybrid loss", check=non_negative
    )
    location_std: float | None = option(
        None, "location policy std σ", check=positive, default_text="the config's"
    )
    mc_samples: int = option(
        10, "glimpse paths averaged for the Monte-Carlo test error", check=positive
    )
