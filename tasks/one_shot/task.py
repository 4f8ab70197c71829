"""``pyro-draw one-shot``: within-alphabet 20-way one-shot classification on Omniglot.

The protocol of Lake et al. (2015) and the official demo ``demo_classification.py``, as DooD
reports it (Liang et al. 2022, sec. 3.2, Table 1): in each of the 20 runs every query is
assigned the support with the highest score (one-way, no data augmentation), the accuracy of a
run is its fraction of correct queries, and the result is the mean over runs ± its standard
error. :func:`evaluate_runs` takes any scorer ``run -> (Q, S)`` scores.

The classifier is either type-token scoring of a DooD or AIR / Difference-AIR checkpoint
(:mod:`tasks.one_shot.type_token`, :mod:`tasks.one_shot.air_tokens`; ``pyro-draw one-shot
CHECKPOINT``, the same options for both) or a model-free baseline
(:mod:`tasks.one_shot.baselines`; ``pyro-draw one-shot --baseline mhd|pixel``), exactly one.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tasks.evaluate import stderr
from tasks.families import load_trained
from tasks.figures import save_image_grid
from tasks.one_shot.baselines import BASELINES, Scorer
from tasks.one_shot.runs import DEFAULT_SIZE, OneShotRun, OneShotRuns, load_runs
from tasks.one_shot.tokens import (
    AFFINE_PRIORS,
    MOTOR_REDUCTIONS,
    TOKEN_SCORES,
    TYPE_SELECTIONS,
    TYPE_WEIGHTS,
    TypeTokenSettings,
)
from tasks.one_shot.type_token import TypeTokenScorer
from tasks.options import DataOptions, field_default, non_negative, option, positive
from tasks.results import write_json

__all__ = [
    "ONE_SHOT_DESCRIPTION",
    "ONE_SHOT_HELP",
    "TYPE_TOKEN_OPTIONS",
    "OneShotOptions",
    "add_one_shot_arguments",
    "evaluate_runs",
    "one_shot_summary",
    "run_one_shot",
    "save_one_shot_examples",
]

ONE_SHOT_HELP = "Omniglot 20-way within-alphabet one-shot classification (Lake et al. runs)"
ONE_SHOT_DESCRIPTION = (
    "Classify the queries of the 20 official one-shot runs (all_runs.zip of brendenlake/omniglot) "
    "either with a DooD or AIR CHECKPOINT by type-token scoring (DooD sec. 3.2, Eqs. 17-20: K "
    "guide parses of each support as types, a token model of motor noise (DooD: on the control "
    "points; AIR: on z_what, with the affine on the rendering) and one affine per character "
    "fitted to each query by Adam) or by a model-free --baseline: mhd, the official demo's "
    "Modified Hausdorff distance on the 105x105 ink pixels (38.8% error stated), or pixel, "
    "cosine nearest neighbour on the 50x50 grey images. Writes <out>/one_shot_<classifier>.json "
    "(type_token, type_token_2way, mhd or pixel) and .png."
)
PROTOCOL = (
    "20 runs of within-alphabet 20-way one-shot classification (Lake et al. 2015); one-way: each "
    "query is assigned the support with the highest score; accuracy per run, mean over runs ± "
    "standard error"
)
CLASSIFIERS = {
    "type-token": "type-token scoring, one-way: log sum_k pi_k max_z p(query | z) p(z | "
    "psi_k) over K guide parses psi_k of the support (Liang et al. 2022, Eqs. 17-20)",
    "type-token-2way": "type-token scoring, two-way: log p(q | s) + log p(s | q) - log p(s) "
    "(the official code's default; not the paper's Table 1 setting)",
    "mhd": "Modified Hausdorff distance between centred ink-pixel sets of the 105x105 images "
    "(official demo_classification baseline)",
    "pixel": "cosine similarity of the 50x50 grey images (ink = 1, DooD's preprocessing)",
}
EXAMPLES_PER_RUN = 2


_TT = "type-token: "


@dataclass
class OneShotOptions(DataOptions):
    """Options of ``pyro-draw one-shot``: a DooD or AIR ``checkpoint`` (type-token scoring, the
    CLI's positional ``CHECKPOINT``) or a ``baseline``, exactly one; the ``type-token`` options
    (:data:`TYPE_TOKEN_OPTIONS`, see :class:`tasks.one_shot.type_token.TypeTokenSettings`) apply
    to the checkpoint only. Their defaults are the paper's reading; the help names the official
    code's choice where it differs."""

    baseline: str | None = option(
        None, "model-free classifier (instead of a CHECKPOINT)", choices=tuple(BASELINES)
    )
    checkpoint: str | None = option(None, "a DooD or AIR checkpoint: type-token scoring", cli=False)
    runs: str | None = option(
        None,
        "the one-shot runs: the official all_runs.zip, or a folder with its layout",
        metavar="PATH",
        default_text="<data dir>/omniglot/all_runs.zip",
    )
    num_runs: int | None = option(
        None, "classify only the first N runs", check=positive, metavar="N", default_text="all"
    )
    out: str = option("runs/one-shot", "output folder")
    pictures: bool = option(True, "skip the picture")
    two_way: bool = option(
        False,
        _TT + "two-way score log p(q|s) + log p(s|q) - log p(s) (official default; the "
        "paper's Table 1 is one-way)",
    )
    type_samples: int = option(
        12, _TT + "K types per image (official: 4 rounds x 3)", check=positive, metavar="K"
    )
    type_selection: str = option(
        "sample",
        _TT + "sample: K guide samples (paper); best-of: each the best of --type-candidates "
        "guide samples by log p(x, type) (official)",
        choices=TYPE_SELECTIONS,
    )
    type_candidates: int = option(
        20, _TT + "guide samples per type for --type-selection best-of", check=positive
    )
    type_weights: str = option(
        "importance",
        _TT + "pi_k from importance: log p(x, type) - log q(type | x) (our reading of Eqs. "
        "18-20); joint: log p(x, type) (Eq. 20 as printed; official)",
        choices=TYPE_WEIGHTS,
    )
    motor_noise: float = option(
        2e-3, _TT + "motor-noise std of the control points, [-1, 1] units", check=positive
    )
    motor_reduction: str = option(
        "mean",
        _TT + "motor-noise log-density averaged over present strokes (official) or summed "
        "(AIR: over present parts)",
        choices=MOTOR_REDUCTIONS,
    )
    what_noise: float = option(
        0.1,
        _TT + "AIR: std of the token's z_what around the type's (prior N(0, I); ours, the "
        "paper gives none)",
        check=positive,
    )
    affine_prior: str = option(
        "normal",
        _TT + "prior on the unconstrained affine: normal N(0, 1), or flat (official: none)",
        choices=AFFINE_PRIORS,
    )
    affine_shift: float = option(0.2, _TT + "affine shift range +-", check=non_negative)
    affine_scale: list[float] = option(
        [0.6, 1.4],
        _TT + "affine scale range (official; appendix B.3: 0.8 1.2)",
        check=positive,
        nargs=2,
        metavar=("LOW", "HIGH"),
    )
    affine_rotation: float = option(
        0.25 * math.pi,
        _TT + "affine rotation range +-, radians",
        check=non_negative,
        default_text="0.25 pi",
    )
    affine_shear: float = option(
        0.3 * math.pi,
        _TT + "affine shear range +-, raw coefficients (official; appendix B.3: 0.25 pi)",
        check=non_negative,
        default_text="0.3 pi",
    )
    rotation_in_degrees: bool = option(
        False, _TT + "read the rotation range in degrees (the official code's deg2rad)"
    )
    token_steps: int = option(
        100, _TT + "Adam steps of the max over tokens", check=non_negative, metavar="N"
    )
    token_lr: float = option(1e-2, _TT + "Adam learning rate of the token fit", check=positive)
    token_score: str = option(
        "best",
        _TT + "best: the best log-joint seen while fitting; final: after the last step (official)",
        choices=TOKEN_SCORES,
    )
    token_chunk: int = option(
        256, _TT + "(query, support, type) triples fitted per batch (memory)", check=positive
    )
    type_rows: int = option(
        1024, _TT + "guide rows per batch of type inference (memory)", check=positive
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.baseline is None) == (self.checkpoint is None):
            raise ValueError(
                "give either a DooD or AIR CHECKPOINT (type-token scoring) or --baseline "
                f"{'|'.join(BASELINES)}" + (", not both" if self.baseline is not None else "")
            )
        if self.checkpoint is not None:
            self.type_token_settings()  # checks the combination (e.g. the scale range)
        if self.baseline is not None:
            changed = [
                f"--{f.name.replace('_', '-')}"
                for f in fields(self)
                if f.name in TYPE_TOKEN_OPTIONS and getattr(self, f.name) != field_default(f)
            ]
            if changed:
                raise ValueError(
                    f"{', '.join(changed)}: type-token options apply to a CHECKPOINT, not to "
                    f"--baseline {self.baseline}"
                )

    def type_token_settings(self) -> TypeTokenSettings:
        """The :class:`TypeTokenSettings` of these options."""
        values = {name: getattr(self, name) for name in TYPE_TOKEN_OPTIONS}
        values["affine_scale"] = tuple(values["affine_scale"])
        return TypeTokenSettings(**values)


#: the options of ``pyro-draw one-shot`` that configure type-token scoring
TYPE_TOKEN_OPTIONS = tuple(f.name for f in fields(TypeTokenSettings))


def add_one_shot_arguments(parser: argparse.ArgumentParser) -> None:
    """The positional ``CHECKPOINT`` of ``pyro-draw one-shot`` (optional: or ``--baseline``)."""
    parser.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        metavar="CHECKPOINT",
        help="a DooD or AIR checkpoint.pt: classify by type-token scoring (or give --baseline)",
    )


def _run_result(run: OneShotRun, scores: torch.Tensor, seconds: float) -> dict[str, Any]:
    """Accuracy, predictions and mistakes of one run from its ``(Q, S)`` scores."""
    expected = (len(run.query_names), len(run.support_names))
    if tuple(scores.shape) != expected:
        raise ValueError(f"{run.name}: scores of shape {tuple(scores.shape)}, expected {expected}")
    predictions = scores.argmax(1).tolist()  # the first of tied supports, as the demo's argmin
    labels = run.labels.tolist()
    short = lambda name: Path(name).stem  # noqa: E731
    mistakes = [
        {
            "query": short(run.query_names[q]),
            "chosen": short(run.support_names[p]),
            "true": short(run.support_names[t]),
        }
        for q, (p, t) in enumerate(zip(predictions, labels, strict=True))
        if p != t
    ]
    return {
        "run": run.name,
        "alphabet": run.metadata.get("alphabet"),
        "accuracy": 1.0 - len(mistakes) / len(labels),
        "errors": len(mistakes),
        "num_queries": len(labels),
        "num_supports": len(run.support_names),
        "seconds": seconds,
        "predictions": predictions,
        "labels": labels,
        "mistakes": mistakes,
    }


def evaluate_runs(
    runs: OneShotRuns, scorer: Scorer, *, name: str, progress: bool = True
) -> dict[str, Any]:
    """Classify every run with ``scorer`` (a tqdm bar shows the running accuracy); the result
    has ``mean_accuracy`` (a fraction), ``stderr`` over runs and ``per_run``."""
    start = time.perf_counter()
    per_run: list[dict[str, Any]] = []
    with tqdm(runs.runs, desc=f"one-shot {name}", unit="run", disable=not progress) as bar:
        for run in bar:
            began = time.perf_counter()
            scores = scorer(run)
            per_run.append(_run_result(run, scores, time.perf_counter() - began))
            bar.set_postfix(acc=f"{np.mean([r['accuracy'] for r in per_run]):.2%}")
    accuracy = np.array([r["accuracy"] for r in per_run])
    return {
        "task": "omniglot one-shot classification",
        "protocol": PROTOCOL,
        "classifier": name,
        "mean_accuracy": float(accuracy.mean()),
        "stderr": stderr(accuracy),
        "mean_error": float(1.0 - accuracy.mean()),
        "num_runs": len(per_run),
        "num_queries": int(sum(r["num_queries"] for r in per_run)),
        "per_run": per_run,
        "source": runs.source,
        "seconds": time.perf_counter() - start,
    }


def _examples(run: OneShotRun, result: dict[str, Any]) -> list[int]:
    """The queries shown for a run: its mistakes first, then correct ones."""
    pairs = enumerate(zip(result["predictions"], result["labels"], strict=True))
    wrong = [q for q, (p, t) in pairs if p != t]
    right = [q for q in range(len(result["labels"])) if q not in wrong]
    return (wrong + right)[:EXAMPLES_PER_RUN]


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return image.expand(3, *image.shape[-2:]) if image.shape[0] == 1 else image


def token_overlay(query: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)``: the fitted token (red) over the query (cyan); where both are, white."""
    q, t = query.reshape(query.shape[-2:]), token.reshape(token.shape[-2:])
    return torch.stack([t, q, q]).clamp(0.0, 1.0)


def save_one_shot_examples(
    runs: OneShotRuns,
    result: dict[str, Any],
    path: Path,
    tokens: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """One grid for all runs: per run, a few queries (mistakes first), each as the query, the
    chosen support and the true support (the grey images the classifier saw) and, with
    ``tokens`` (run name → ``(Q, 1, H, W)`` fitted token of each query's chosen support), the
    token in red over the query in cyan."""
    images, titles = [], []
    for run, found in zip(runs.runs, result["per_run"], strict=True):
        for q in _examples(run, found):
            chosen, true = found["predictions"][q], found["labels"][q]
            mark = "ok" if chosen == true else "wrong"
            row = [run.queries[q], run.supports[chosen], run.supports[true]]
            titles += [
                f"{run.name} {Path(run.query_names[q]).stem}",
                f"chose {Path(run.support_names[chosen]).stem} {mark}",
                f"true {Path(run.support_names[true]).stem}",
            ]
            if tokens is not None:
                row = [_rgb(image) for image in row]
                row.append(token_overlay(run.queries[q], tokens[run.name][q]))
                titles.append("token (red) on query")
            images += row
    per_example = 3 if tokens is None else 4
    return save_image_grid(
        torch.stack(images), path, ncols=per_example * EXAMPLES_PER_RUN, titles=titles
    )


def one_shot_summary(result: dict[str, Any]) -> str:
    """The printed line: mean accuracy ± standard error over runs, error, time."""
    return (
        f"one-shot {result['classifier']}: accuracy {result['mean_accuracy']:.2%} ± "
        f"{result['stderr']:.2%} (error {result['mean_error']:.2%}) over {result['num_runs']} "
        f"runs, {result['seconds']:.1f} s"
    )


def _load(options: OneShotOptions, size: int) -> OneShotRuns:
    """The runs at ``size`` (the classifier's image size), the first ``num_runs`` of them."""
    runs = load_runs(options.runs, data_dir=options.data_dir, download=options.download, size=size)
    if options.num_runs is None or options.num_runs >= len(runs.runs):
        return runs
    return OneShotRuns(runs.runs[: options.num_runs], {**runs.source, "num_runs": options.num_runs})


def _common_settings(options: OneShotOptions, runs: OneShotRuns) -> dict[str, Any]:
    return {
        "runs": runs.source["path"],
        "num_runs": len(runs.runs),
        "image_size": runs.source["size"],
        "data_dir": options.data_dir,
        "threads": torch.get_num_threads(),
        "seed": options.seed,
    }


def _baseline(options: OneShotOptions) -> tuple[dict[str, Any], OneShotRuns, None]:
    runs = _load(options, DEFAULT_SIZE)
    name = options.baseline
    result = evaluate_runs(runs, BASELINES[name], name=name, progress=options.progress)
    result = {
        "baseline": name,
        "description": CLASSIFIERS[name],
        **result,
        "settings": {
            "baseline": name,
            **_common_settings(options, runs),
            "device": "cpu",  # the baselines are computed on the CPU
        },
    }
    return result, runs, None


def _type_token(options: OneShotOptions) -> tuple[dict[str, Any], OneShotRuns, dict]:
    model, guide, checkpoint = load_trained(options.checkpoint, device=options.device)
    settings = options.type_token_settings()
    scorer = TypeTokenScorer(model, guide, settings, progress=options.progress)  # checks model
    config = model.config
    if config.height != config.width:
        raise ValueError(
            f"{checkpoint.path}: type-token scoring needs a square model, found "
            f"{config.height}x{config.width}"
        )
    runs = _load(options, config.height)
    name = "type-token-2way" if settings.two_way else "type-token"
    result = evaluate_runs(runs, scorer, name=name, progress=options.progress)
    for entry in result["per_run"]:
        entry.update(scorer.timings[entry["run"]])
    seconds = [entry["seconds"] for entry in result["per_run"]]
    result = {
        "description": CLASSIFIERS[name],
        **result,
        "scoring": "two-way" if settings.two_way else "one-way",
        "seconds_per_run": float(np.mean(seconds)),
        "settings": {
            "checkpoint": str(checkpoint.path),
            "model": checkpoint.model,
            "family": scorer.family.name,
            "config_name": checkpoint.record.config_name,
            "trained_on": checkpoint.record.dataset,
            "step": checkpoint.step,
            **_common_settings(options, runs),
            "device": str(options.device),
            "render_points": scorer.num_points,
            "type_token": settings.to_dict(),
        },
    }
    return result, runs, scorer.tokens


def run_one_shot(options: OneShotOptions) -> dict[str, Any]:
    """``pyro-draw one-shot``: load the runs (every file checked first), classify them by
    type-token scoring with ``options.checkpoint`` or by ``options.baseline``, and write
    ``one_shot_<classifier>.json`` (and ``.png``) under ``out``."""
    start = time.perf_counter()
    if options.checkpoint is not None:
        result, runs, tokens = _type_token(options)
    else:
        result, runs, tokens = _baseline(options)
    stem = f"one_shot_{result['classifier'].replace('-', '_')}"
    out = Path(options.out)
    if options.pictures:
        picture = save_one_shot_examples(runs, result, out / f"{stem}.png", tokens)
        result["picture"] = str(picture)
    result["seconds"] = time.perf_counter() - start
    path = out / f"{stem}.json"
    write_json(result, path)
    print(f"{one_shot_summary(result)} -> {path}")
    return result
