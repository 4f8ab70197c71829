"""RAM playing Catch (Mnih et al. 2014, sec. 4.2) as a family: ``pyro-draw train ram-catch``
and its checkpoint commands.

The game is :mod:`generative.catch_game`, the agent :mod:`generative.catch_agent`, its objective
:class:`inference.catch.CatchObjective`. Here: the options and builder (:mod:`.models`), playing
and catch rates (:mod:`.play`), the training plan and its batches of new games
(:mod:`.training`), ``evaluate`` (:mod:`.evaluate`) and the filmstrips (:mod:`.pictures`).
Catch has no dataset: every step plays new games.
"""

from __future__ import annotations

from tasks.catch.evaluate import CatchEvaluateOptions, evaluate_command
from tasks.catch.models import CONFIG_NAMES, CatchOptions, build_agent
from tasks.catch.pictures import sample_command
from tasks.catch.training import CatchPlan
from tasks.family import Command, Family, ModelSpec
from tasks.options import CheckpointOptions

__all__ = ["FAMILY"]

FAMILY = Family(
    name="catch",
    models=(
        ModelSpec(
            name="ram-catch",
            help="RAM playing Catch from the final reward alone (Mnih et al. 2014, sec. 4.2)",
            build=build_agent,
            configs=CONFIG_NAMES,
            default_config="paper",
            options=CatchOptions,
        ),
    ),
    plan=CatchPlan,
    datasets=(),
    run_defaults={
        "out": "runs/ram_catch",
        "steps": 2000,
        "batch_size": 64,
        "lr": 1e-3,
        "clip_norm": 10.0,
        "validate_every": 250,
        "checkpoint_every": 250,
    },
    commands={
        "evaluate": Command(evaluate_command, CatchEvaluateOptions),
        "sample": Command(sample_command, CheckpointOptions),
    },
)
