"""The Catch agent for the registry: the builder, named configurations and training options."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from generative.catch_agent import CATCH_AGENT_CONFIGS, CatchAgent, CatchAgentConfig
from guides.empty import EmptyGuide
from tasks.options import check_options, non_negative, option, positive

__all__ = ["CONFIG_NAMES", "CatchOptions", "agent_config", "build_agent"]

CONFIG_NAMES: tuple[str, ...] = tuple(sorted(CATCH_AGENT_CONFIGS))


def build_agent(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """A fresh (agent, empty guide) pair from a :class:`CatchAgentConfig` dict: the agent's
    sample sites are its actions, trained by REINFORCE, so there is nothing to infer."""
    return CatchAgent(CatchAgentConfig.from_dict(config)), EmptyGuide()


def agent_config(name: str, *, location_std: float | None = None) -> dict[str, Any]:
    """The named configuration ``name`` (``location_std``: override the policy's σ)."""
    if name not in CATCH_AGENT_CONFIGS:
        raise ValueError(
            f"--config: unknown Catch agent config {name!r}; choose one of {list(CONFIG_NAMES)}"
        )
    config = CATCH_AGENT_CONFIGS[name]
    if location_std is not None:
        config = replace(config, location_std=location_std)
    return config.to_dict()


@dataclass
class CatchOptions:
    """Options of ``pyro-draw train ram-catch``."""

    location_std: float | None = option(
        None,
        "standard deviation of the location policy",
        check=positive,
        default_text="the config's",
    )
    location_lr: float | None = option(
        None,
        "learning rate of the location network f_l",
        check=positive,
        default_text="--lr",
    )
    location_penalty: float = option(
        0.0,
        "weight of mean ||Linear(h)||^2 of the location mean before tanh (the paper: 0)",
        check=non_negative,
    )
    teacher_frames: int = option(
        0,
        "curriculum: frames played with the retina on the ball (the paper: 0)",
        check=non_negative,
    )
    teacher_anneal_frames: int = option(
        0,
        "curriculum: then frames over which that share falls linearly to 0",
        check=non_negative,
    )
    teacher_noise: float = option(
        0.0,
        "curriculum: std of the taught retina's offset from the ball (location units)",
        check=non_negative,
    )
    teacher_imitation: float = option(
        0.0,
        "curriculum: weight (x the teacher's share) of regressing the location mean onto the ball",
        check=non_negative,
    )
    lr_decay: float = option(
        1.0, "learning-rate factor per step: lr_t = max(min_lr, lr·decay^t)", check=positive
    )
    min_lr: float = option(0.0, "floor of the decayed learning rate", check=non_negative)
    eval_games: int = option(
        1000,
        "games for the sampled policy's final catch rate (the greedy one is exact)",
        check=positive,
    )

    def __post_init__(self) -> None:
        check_options(self)

    def lr_groups(self) -> dict[str, float]:
        """The learning-rate groups of these options (``--location-lr``)."""
        return {} if self.location_lr is None else {"model.locator.": self.location_lr}
