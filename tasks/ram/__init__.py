"""Classification with attention as a family: RAM (Mnih et al. 2014), Differentiable RAM (DRAW
sec. 4.1) and the fully connected / convolutional baselines of RAM's Tables 1–2.

``pyro-draw train ram|dram|fc|convnet`` and ``evaluate`` (test errors) / ``sample`` (attention
figures, RAM and DRAM) of their checkpoints. Modules: the builders, named configurations and
options (:mod:`.models`), the classification data (:mod:`.data`), the training plan
(:mod:`.training`), the test errors (:mod:`.evaluate`) and the attention figures
(:mod:`.pictures`). Without ``--config`` a model trains with the paper's configuration for its
dataset (:func:`tasks.ram.models.default_config_name`).
"""

from __future__ import annotations

from tasks.family import Command, Family, ModelSpec
from tasks.options import EvaluateOptions
from tasks.ram.data import CLASSIFICATION_DATASETS
from tasks.ram.evaluate import RAMEvaluateOptions, evaluate_command
from tasks.ram.models import (
    ClassifierOptions,
    RAMOptions,
    build_convnet,
    build_dram,
    build_fc,
    build_ram,
    config_names,
)
from tasks.ram.pictures import AttentionSampleOptions, sample_command
from tasks.ram.training import classifier_plan

__all__ = ["FAMILY"]


def _spec(name: str, help: str, build, options: type, dataset: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        help=help,
        build=build,
        configs=config_names(name),
        default_config=None,  # the paper's for the dataset
        options=options,
        default_dataset=dataset,
    )


FAMILY = Family(
    name="ram",
    models=(
        _spec(
            "ram",
            "Recurrent Attention Model (Mnih et al. 2014), hybrid REINFORCE loss",
            build_ram,
            RAMOptions,
            "mnist",
        ),
        _spec(
            "dram",
            "Differentiable RAM: LSTM + DRAW selective read (DRAW sec. 4.1)",
            build_dram,
            ClassifierOptions,
            "mnist_cluttered_100",
        ),
        _spec(
            "fc",
            "fully connected baseline of RAM Tables 1-2 (2 ReLU layers)",
            build_fc,
            ClassifierOptions,
            "mnist",
        ),
        _spec(
            "convnet",
            "convolutional baseline of RAM Tables 1-2 (8 10x10 filters, stride 5)",
            build_convnet,
            ClassifierOptions,
            "mnist_translated_60",
        ),
    ),
    plan=classifier_plan,
    datasets=CLASSIFICATION_DATASETS,
    run_defaults={
        "steps": 2000,
        "batch_size": 100,
        "lr": 1e-3,
        "validate_every": 500,
        "checkpoint_every": 500,
    },
    model_run_defaults={name: {"out": f"runs/{name}"} for name in ("ram", "dram", "fc", "convnet")},
    commands={
        "evaluate": (
            Command(evaluate_command, RAMEvaluateOptions, models=("ram",)),
            Command(evaluate_command, EvaluateOptions, models=("dram", "fc", "convnet")),
        ),
        "sample": Command(sample_command, AttentionSampleOptions, models=("ram", "dram")),
    },
)
