"""Test errors of the classifiers, and ``pyro-draw evaluate`` of their checkpoints.

For RAM the error is reported three ways: with one sampled glimpse path per image (the headline
``error``: the agent as it acts, first glimpse random — the reading of the paper's "1 Random
Glimpse" row), along the policy mean (``error_mean_path``, first glimpse at the centre) and with
the class probabilities averaged over ``mc_samples`` sampled paths (``error_mc``, an ensemble over
paths). The other classifiers are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from torch import Tensor, nn

from generative.ram import RAM
from inference.checkpoint import Checkpoint
from tasks.data.core import ImageData
from tasks.evaluate import say, write_evaluation
from tasks.family import ModelSpec
from tasks.options import EvaluateOptions, option, positive
from tasks.ram.data import checkpoint_split

__all__ = [
    "RAMEvaluateOptions",
    "classification_errors",
    "evaluate_classifier",
    "evaluate_command",
    "format_classification_summary",
]


def _is_stochastic(model: nn.Module) -> bool:
    return isinstance(model, RAM)


def evaluate_classifier(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    mc_samples: int = 1,
    deterministic: bool = False,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Test error of ``model`` (any of the family's classifiers) on ``images``/``labels``.

    RAM's prediction is the argmax of the class probabilities averaged over ``mc_samples``
    sampled glimpse paths (``deterministic=True``: one path along the policy mean); the other
    models are deterministic and ignore both options. Returns ``error`` (fraction),
    ``error_stderr`` (binomial), ``errors``, ``num_examples`` and the options used.
    """
    if mc_samples < 1:
        raise ValueError(f"mc_samples: expected >= 1, found {mc_samples}")
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"labels: expected shape ({images.shape[0]},), found {tuple(labels.shape)}"
        )
    stochastic = _is_stochastic(model) and not deterministic
    samples = mc_samples if stochastic else 1
    was_training = model.training
    model.eval()
    wrong = 0
    try:
        with torch.no_grad():
            for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
                x = x.to(device)
                probs = sum(
                    torch.softmax(model.logits(x, deterministic=not stochastic), -1)
                    for _ in range(samples)
                )
                wrong += int((probs.argmax(-1).cpu() != y).sum())
    finally:
        model.train(was_training)
    n = int(labels.shape[0])
    error = wrong / n if n else math.nan
    return {
        "error": error,
        "error_stderr": math.sqrt(error * (1 - error) / n) if n else math.nan,
        "errors": wrong,
        "num_examples": n,
        "mc_samples": samples,
        "deterministic": not stochastic,
    }


def classification_errors(
    model: nn.Module,
    data: ImageData,
    *,
    mc_samples: int = 10,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """``error`` (headline; for RAM one sampled glimpse path) with its binomial stderr and, for
    RAM, ``error_mean_path`` (policy mean) and ``error_mc`` (``mc_samples`` paths averaged)."""
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    common = dict(batch_size=batch_size, device=device)
    head = evaluate_classifier(model, data.images, data.labels, **common)
    out = {
        "error": head["error"],
        "error_stderr": head["error_stderr"],
        "num_examples": head["num_examples"],
    }
    if _is_stochastic(model):
        out["error_policy"] = "one sampled glimpse path per image (first location random)"
        mean = evaluate_classifier(model, data.images, data.labels, deterministic=True, **common)
        mc = evaluate_classifier(model, data.images, data.labels, mc_samples=mc_samples, **common)
        out.update(
            error_mean_path=mean["error"],
            error_mean_path_stderr=mean["error_stderr"],
            error_mc=mc["error"],
            error_mc_stderr=mc["error_stderr"],
            mc_samples=mc_samples,
        )
    return out


def format_classification_summary(result: dict[str, Any]) -> str:
    """The printed line of a classification result (training or ``evaluate``)."""
    t = result["test"]
    line = (
        f"{result['model']} ({result['config_name']}) on {result['dataset']}: error "
        f"{100 * t['error']:.2f}% ± {100 * t['error_stderr']:.2f} (N={t['num_examples']})"
    )
    if "error_mc" in t:
        line += (
            f"; mean path {100 * t['error_mean_path']:.2f}%, "
            f"{t['mc_samples']}-path average {100 * t['error_mc']:.2f}%"
        )
    return line


@dataclass
class RAMEvaluateOptions(EvaluateOptions):
    """Options of ``pyro-draw evaluate`` for RAM checkpoints."""

    location_samples: int = option(
        10, "glimpse paths averaged for the Monte-Carlo test error", check=positive
    )


def _plan_line(model: nn.Module, num_examples: int, paths: int) -> str:
    """What ``evaluate`` will do, said before it starts."""
    line = f"evaluating: test error of {num_examples} examples"
    if _is_stochastic(model):
        line += f" (one sampled glimpse path, the mean path, and {paths} paths averaged)"
    return line


def evaluate_command(spec: ModelSpec, checkpoint: Checkpoint, options: EvaluateOptions) -> None:
    """``pyro-draw evaluate CHECKPOINT``: the test error of a classifier on a split (for RAM
    also along the mean path and averaged over ``--location-samples`` sampled paths)."""
    model, _ = spec.restore(checkpoint, options.device)
    data = checkpoint_split(checkpoint, options, options.num_examples)
    paths = options.location_samples if isinstance(options, RAMEvaluateOptions) else 1
    say(_plan_line(model, len(data.images), paths))
    result = {
        "model": checkpoint.model,
        "config_name": checkpoint.record.config_name,
        "dataset": data.name,
        "split": options.split,
        "step": checkpoint.step,
        "checkpoint": str(checkpoint.path),
        "test": classification_errors(
            model,
            data,
            mc_samples=paths,
            batch_size=options.batch_size,
            device=options.device,
            seed=options.seed,
        ),
    }
    path = options.json_path(checkpoint.path, f"eval_{data.name}_{options.split}.json")
    write_evaluation(result, path, format_classification_summary(result))
