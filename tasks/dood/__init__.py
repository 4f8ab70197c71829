"""DooD (Liang et al. 2022, "Drawing out of Distribution") and its AIR baselines as a family:
``pyro-draw train dood|air|difference-air`` and their checkpoint commands.

* :mod:`tasks.dood.models` — builders, named configurations (:func:`model_config`), training
  options, the stop objective (NVIL or the enumerated stroke count) and appendix C's learning
  rates;
* :mod:`tasks.dood.data` — ``mnist``, ``omniglot``, ``quickdraw`` (50×50, appendix A) and the
  embedded ``glyphs``, grey, at the model's size; partial drawings;
* :mod:`tasks.dood.training` — the :class:`~tasks.family.TrainPlan`;
* :mod:`tasks.dood.evaluate` — IWAE log-likelihood, ELBO and inferred stroke counts;
* :mod:`tasks.dood.pictures` (with :mod:`tasks.dood.mosaic`) — step-by-step reconstructions with
  the Bézier curves, samples per temperature, completions; :mod:`tasks.dood.completion` —
  partial completion (Fig. 8);
* :mod:`tasks.dood.commands` — ``evaluate``, ``sample``, ``reconstruct``, ``complete``;
  :mod:`tasks.dood.strokes` — ``strokes``: k-means clusters, silhouette and t-SNE of the inferred
  strokes (Fig. 5).
"""

from __future__ import annotations

from tasks.dood.commands import (
    CompleteOptions,
    DooDEvaluateOptions,
    ReconstructOptions,
    SampleOptions,
    complete_command,
    evaluate_command,
    reconstruct_command,
    sample_command,
)
from tasks.dood.data import DATASETS
from tasks.dood.models import (
    BASE_LR,
    CONFIGS,
    MODEL_NAMES,
    DooDOptions,
    build_air_pair,
    build_dood,
)
from tasks.dood.strokes import StrokesOptions, strokes_command
from tasks.dood.training import DooDPlan
from tasks.family import Command, Family, ModelSpec

__all__ = ["FAMILY"]

_HELP = {
    "dood": "DooD (Liang et al. 2022): Bézier strokes, layout GMMs, NVIL (paper config: 50x50; "
    "ablations: dood_dR, dood_EG, dood_SP)",
    "air": "vanilla AIR baseline of DooD (Fig. 3d)",
    "difference-air": "Difference-AIR, DooD's AIR baseline (Fig. 3c, guide reads x - canvas)",
}
_BUILD = {"dood": build_dood, "air": build_air_pair(False), "difference-air": build_air_pair(True)}

FAMILY = Family(
    name="dood",
    models=tuple(
        ModelSpec(
            name=name,
            help=_HELP[name],
            build=_BUILD[name],
            configs=CONFIGS[name],
            default_config=None,  # chosen for the dataset (default_config_name)
            options=DooDOptions,
            default_dataset="mnist",
        )
        for name in MODEL_NAMES
    ),
    plan=DooDPlan,
    datasets=DATASETS,
    run_defaults={
        "steps": 2000,
        "batch_size": 64,
        "lr": None,  # DooDPlan.train_settings: BASE_LR, or CONFIG_LR for the CPU configs
        "validate_every": 200,
        "checkpoint_every": 200,
    },
    model_run_defaults={name: {"out": f"runs/{name}"} for name in MODEL_NAMES},
    default_texts={"lr": f"the config's: {BASE_LR:g} (appendix C), 1e-3 for the CPU configs"},
    commands={
        "evaluate": Command(evaluate_command, DooDEvaluateOptions),
        "sample": Command(sample_command, SampleOptions),
        "reconstruct": Command(reconstruct_command, ReconstructOptions),
        "complete": Command(complete_command, CompleteOptions, models=("dood",)),
        "strokes": Command(strokes_command, StrokesOptions),
    },
)
