"""sketch-rnn (Ha & Eck 2017) as a family: ``pyro-draw train sketch-rnn|sketch-rnn-decoder`` and
the checkpoint commands ``evaluate``, ``sample``, ``reconstruct``, ``interpolate``, ``complete``.

Modules: :mod:`~tasks.sketch_rnn.models` (builders, configurations, training options),
:mod:`~tasks.sketch_rnn.data` (splits and the data of a checkpoint command),
:mod:`~tasks.sketch_rnn.training` (the :class:`~tasks.family.TrainPlan`),
:mod:`~tasks.sketch_rnn.evaluate` (L_R, L_KL, IWAE), the creative tasks
(:mod:`~tasks.sketch_rnn.sampling`, :mod:`~tasks.sketch_rnn.latent`,
:mod:`~tasks.sketch_rnn.completion`), their figures (:mod:`~tasks.sketch_rnn.pictures`) drawn by
:mod:`~tasks.sketch_rnn.svg` and :mod:`~tasks.sketch_rnn.figures`, and the checkpoint commands
(:mod:`~tasks.sketch_rnn.commands`).
"""

from __future__ import annotations

from tasks.data.strokes import STROKE_DATASETS
from tasks.family import Command, Family, ModelSpec
from tasks.sketch_rnn.commands import (
    CompleteOptions,
    InterpolateOptions,
    ReconstructOptions,
    SketchSampleOptions,
    complete_command,
    interpolate_command,
    reconstruct_command,
    sample_command,
)
from tasks.sketch_rnn.evaluate import SketchEvaluateOptions, evaluate_command
from tasks.sketch_rnn.models import (
    CONDITIONAL_CONFIGS,
    DECODER_CONFIGS,
    SketchDecoderOptions,
    SketchRNNOptions,
    build_conditional,
    build_decoder,
)
from tasks.sketch_rnn.training import SketchPlan

__all__ = ["FAMILY"]

FAMILY = Family(
    name="sketch-rnn",
    models=(
        ModelSpec(
            name="sketch-rnn",
            help="sketch-rnn VAE (bidirectional encoder, autoregressive GMM decoder)",
            build=build_conditional,
            configs=CONDITIONAL_CONFIGS,
            default_config="small",
            default_dataset="aaron_sheep",
            options=SketchRNNOptions,
        ),
        ModelSpec(
            name="sketch-rnn-decoder",
            help="sketch-rnn decoder-only unconditional model (sec. 3.3)",
            build=build_decoder,
            configs=DECODER_CONFIGS,
            default_config="small_decoder",
            default_dataset="aaron_sheep",
            options=SketchDecoderOptions,
        ),
    ),
    plan=SketchPlan,
    datasets=STROKE_DATASETS,
    run_defaults={
        "steps": 3000,
        "batch_size": 100,
        "lr": 1e-3,
        "clip_norm": 0.0,  # the reference code's clip (models.py says why)
        "clip_value": 1.0,
        "validate_every": 500,
        "checkpoint_every": 500,
    },
    model_run_defaults={
        "sketch-rnn": {"out": "runs/sketch-rnn"},
        "sketch-rnn-decoder": {"out": "runs/sketch-rnn-decoder"},
    },
    multiple_datasets=True,
    commands={
        "evaluate": Command(evaluate_command, SketchEvaluateOptions),
        "sample": Command(sample_command, SketchSampleOptions),
        "reconstruct": Command(reconstruct_command, ReconstructOptions, models=("sketch-rnn",)),
        "interpolate": Command(interpolate_command, InterpolateOptions, models=("sketch-rnn",)),
        "complete": Command(complete_command, CompleteOptions),
    },
)
