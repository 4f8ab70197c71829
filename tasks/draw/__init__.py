"""DRAW (Gregor et al. 2015) as a family: ``pyro-draw train draw`` and its checkpoint commands.

``draw`` is the quickstart model: ``pyro-draw train`` alone trains the small DRAW on glyphs.
"""

from __future__ import annotations

from tasks.data import available_datasets
from tasks.draw.models import CONFIG_NAMES, DrawOptions, build_draw
from tasks.draw.pictures import SampleOptions, sample_command
from tasks.draw.training import DrawPlan
from tasks.evaluate import ImageEvaluateOptions, evaluate_image_command
from tasks.family import Command, Family, ModelSpec

__all__ = ["FAMILY"]

FAMILY = Family(
    name="draw",
    models=(
        ModelSpec(
            name="draw",
            help="DRAW (default: a small DRAW on glyphs, about a minute on 2 CPU cores)",
            build=build_draw,
            configs=CONFIG_NAMES,
            default_config="small",
            default_dataset="glyphs",
            options=DrawOptions,
        ),
    ),
    plan=DrawPlan,
    datasets=available_datasets(),
    run_defaults={"out": "runs/quickstart", "steps": 600, "batch_size": 100, "lr": 1e-3},
    commands={
        "evaluate": Command(evaluate_image_command, ImageEvaluateOptions),
        "sample": Command(sample_command, SampleOptions),
    },
)
