"""Omniglot one-shot classification (Lake et al. 2015; DooD, Liang et al. 2022, sec. 3.2).

:mod:`~tasks.one_shot.runs` reads the 20 official within-alphabet 20-way runs,
:mod:`~tasks.one_shot.type_token` scores them with a DooD model by type-token scoring (Eqs.
17–20), :mod:`~tasks.one_shot.air_tokens` with an AIR model (the shared machinery:
:mod:`~tasks.one_shot.scoring`), :mod:`~tasks.one_shot.baselines` holds the model-free
classifiers (the demo's Modified Hausdorff distance and a pixel-space nearest neighbour) and
:mod:`~tasks.one_shot.task` runs a classifier over the runs (``pyro-draw one-shot``) and
:mod:`~tasks.one_shot.exemplars` draws new exemplars of characters from their types (DooD Fig. 7,
``pyro-draw exemplars``).
"""

from tasks.one_shot.air_tokens import AirTokens, AirTypes
from tasks.one_shot.baselines import BASELINES, Scorer, mhd_scores, modified_hausdorff, pixel_scores
from tasks.one_shot.exemplars import (
    EXEMPLARS_DESCRIPTION,
    EXEMPLARS_HELP,
    ExemplarSettings,
    ExemplarsOptions,
    add_exemplars_arguments,
    run_exemplars,
    sample_exemplars,
    write_exemplars_grid,
)
from tasks.one_shot.runs import OneShotRun, OneShotRuns, load_runs
from tasks.one_shot.task import (
    ONE_SHOT_DESCRIPTION,
    ONE_SHOT_HELP,
    OneShotOptions,
    add_one_shot_arguments,
    evaluate_runs,
    run_one_shot,
)
from tasks.one_shot.tokens import TypeTokenSettings, aggregate_scores
from tasks.one_shot.type_token import (
    CharacterTypes,
    TypeTokenScorer,
    infer_types,
    score_types,
    type_token_family,
)

__all__ = [
    "BASELINES",
    "EXEMPLARS_DESCRIPTION",
    "EXEMPLARS_HELP",
    "ONE_SHOT_DESCRIPTION",
    "ONE_SHOT_HELP",
    "AirTokens",
    "AirTypes",
    "CharacterTypes",
    "ExemplarSettings",
    "ExemplarsOptions",
    "OneShotOptions",
    "OneShotRun",
    "OneShotRuns",
    "Scorer",
    "TypeTokenScorer",
    "TypeTokenSettings",
    "add_exemplars_arguments",
    "add_one_shot_arguments",
    "aggregate_scores",
    "evaluate_runs",
    "infer_types",
    "load_runs",
    "mhd_scores",
    "modified_hausdorff",
    "pixel_scores",
    "run_exemplars",
    "run_one_shot",
    "sample_exemplars",
    "score_types",
    "type_token_family",
    "write_exemplars_grid",
]
