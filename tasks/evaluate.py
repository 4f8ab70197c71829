"""Held-out log-likelihood evaluation of a trained model/guide pair (IWAE, Burda et al. 2016).

``evaluate_log_likelihood`` runs :func:`inference.iwae.importance_log_weights` over a data set in
mini-batches and reports the mean IWAE estimate of log p(x) (a stochastic lower bound, tight as K
grows), its standard error over examples, the ELBO from the same samples and PSIS Pareto k̂
diagnostics of the importance weights. See :mod:`inference.iwae` for the model/guide conventions.
Models needing extra arguments (e.g. a number of steps) can be bound with ``functools.partial``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from torch import Tensor
from tqdm.auto import tqdm

from inference.checkpoint import Checkpoint
from inference.iwae import (
    MIN_PARETO_SAMPLES,
    elbo_from_log_weights,
    importance_log_weights,
    iwae_bound,
    pareto_k,
)
from tasks.data import ImageData, load_images
from tasks.family import ModelSpec
from tasks.options import EvaluateOptions, option, positive
from tasks.results import write_json

__all__ = [
    "ImageEvaluateOptions",
    "evaluate_image_command",
    "evaluate_log_likelihood",
    "evaluate_split",
    "evaluation_subset",
    "format_summary",
    "write_evaluation",
    "stderr",
]

PARETO_K_THRESHOLD = 0.7


def stderr(values: np.ndarray) -> float:
    """Standard error of the mean of the finite ``values`` (NaN for fewer than two)."""
    values = values[np.isfinite(values)]
    if values.size < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(values.size))


def _pareto_summary(k_hat: np.ndarray, num_particles: int) -> dict[str, Any]:
    finite = k_hat[~np.isnan(k_hat)]
    if finite.size == 0:
        return {
            "max": math.nan,
            "mean": math.nan,
            f"fraction_above_{PARETO_K_THRESHOLD}": math.nan,
            "note": (
                f"k̂ unavailable: needs at least {MIN_PARETO_SAMPLES} importance samples, "
                f"got K={num_particles}"
            ),
        }
    k_max = float(np.max(finite))
    frac = float(np.mean(finite > PARETO_K_THRESHOLD))
    if k_max <= 0.5:
        note = "all k̂ <= 0.5: importance weights look finite-variance; estimate reliable"
    elif k_max <= PARETO_K_THRESHOLD:
        note = "max k̂ in (0.5, 0.7]: estimate usable but converging slowly in K"
    else:
        note = (
            f"{100 * frac:.1f}% of examples have k̂ > 0.7: their IWAE estimates may be biased "
            "low; improve the guide or raise K"
        )
    return {
        "max": k_max,
        "mean": float(np.mean(finite)),
        f"fraction_above_{PARETO_K_THRESHOLD}": frac,
        "note": note,
    }


def evaluate_log_likelihood(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    images: Tensor,
    *,
    num_particles: int = 200,
    batch_size: int = 100,
    chunk_size: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    seed: int | None = 0,
) -> dict[str, Any]:
    """IWAE estimate of the mean log p(x) over ``images`` (``(N, ...)``, dim 0 = examples).

    Returns a JSON-ready dict: ``num_examples``, ``iwae_samples`` (K), ``log_likelihood`` (mean
    per-example IWAE estimate, nats), ``log_likelihood_stderr``, ``nll`` (= −log_likelihood),
    ``elbo``, ``elbo_stderr``, ``pareto_k`` {``max``, ``mean``, ``fraction_above_0.7``, ``note``}
    and ``per_example`` lists. When ``seed`` is not None the global pyro/torch/numpy RNGs are
    seeded with it (``pyro.set_rng_seed``) so results are reproducible. Batches of ``images`` are
    moved to ``device``; the model/guide parameters must already live there.
    """
    if not isinstance(images, Tensor) or images.dim() == 0:
        raise ValueError("images must be a tensor of shape (N, ...)")
    num_examples = images.shape[0]
    if num_examples == 0:
        raise ValueError("images is empty (N = 0)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    if seed is not None:
        pyro.set_rng_seed(seed)
    device = torch.device(device)

    ll_parts: list[np.ndarray] = []
    elbo_parts: list[np.ndarray] = []
    k_parts: list[np.ndarray] = []
    total, seen = 0.0, 0
    with tqdm(total=num_examples, desc="IWAE log p(x)", unit="ex", disable=not progress) as bar:
        for start in range(0, num_examples, batch_size):
            batch = images[start : start + batch_size].to(device)
            log_w = importance_log_weights(
                model, guide, batch, num_particles=num_particles, chunk_size=chunk_size
            )
            ll = iwae_bound(log_w).cpu().numpy()
            ll_parts.append(ll)
            elbo_parts.append(elbo_from_log_weights(log_w).cpu().numpy())
            if num_particles >= MIN_PARETO_SAMPLES:
                k_parts.append(pareto_k(log_w))
            else:
                k_parts.append(np.full(batch.shape[0], np.nan))
            total += float(ll.sum())
            seen += batch.shape[0]
            bar.update(batch.shape[0])
            bar.set_postfix(log_px=f"{total / seen:.3f}")

    ll_all = np.concatenate(ll_parts)
    elbo_all = np.concatenate(elbo_parts)
    k_all = np.concatenate(k_parts)
    mean_ll = float(np.mean(ll_all))
    return {
        "num_examples": int(num_examples),
        "iwae_samples": int(num_particles),
        "log_likelihood": mean_ll,
        "log_likelihood_stderr": stderr(ll_all),
        "nll": -mean_ll,
        "elbo": float(np.mean(elbo_all)),
        "elbo_stderr": stderr(elbo_all),
        "pareto_k": _pareto_summary(k_all, num_particles),
        "per_example": {
            "log_likelihood": ll_all.tolist(),
            "elbo": elbo_all.tolist(),
            "pareto_k": k_all.tolist(),
        },
    }


def evaluation_subset(data: ImageData, num_examples: int | None, seed: int = 0) -> Tensor:
    """A fixed random subset of ``data.images`` in their original order (the canonical
    binarized-MNIST test split is sorted by class, so its first N images are not a sample)."""
    n = len(data.images)
    if num_examples is None or num_examples >= n:
        return data.images
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return data.images[perm[:num_examples].sort().values]


def evaluate_split(
    model: Callable,
    guide: Callable,
    data: ImageData,
    *,
    num_examples: int | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`evaluate_log_likelihood` on a fixed subset of a loaded split, with the dataset,
    split and binarisation recorded in the result."""
    images = evaluation_subset(data, num_examples, seed=seed)
    result = evaluate_log_likelihood(model, guide, images, seed=seed, **kwargs)
    result.update(dataset=data.name, split=data.split, binarization=data.binarization)
    return result


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, fmt).replace("-", "−")


def format_summary(result: dict[str, Any]) -> str:
    """One/two-line human-readable summary of an :func:`evaluate_log_likelihood` result."""
    pk = result.get("pareto_k", {})
    line = (
        f"log p(x) ≈ {_num(result['log_likelihood'], '.2f')} ± "
        f"{_num(result['log_likelihood_stderr'], '.2f')} nats "
        f"(IWAE, K={result['iwae_samples']}, N={result['num_examples']}); "
        f"ELBO {_num(result['elbo'], '.2f')}; Pareto k̂ max {_num(pk.get('max'), '.2f')}"
    )
    note = pk.get("note")
    return f"{line}\n  {note}" if note else line


@dataclass
class ImageEvaluateOptions(EvaluateOptions):
    """``pyro-draw evaluate`` of an image model: IWAE with K importance samples."""

    iwae_samples: int = option(200, "importance samples K", check=positive)
    chunk_size: int | None = option(
        None, "particles per chunk", check=positive, default_text="bounded by memory"
    )


def evaluate_image_command(
    spec: ModelSpec, checkpoint: Checkpoint, options: ImageEvaluateOptions
) -> None:
    """``pyro-draw evaluate CHECKPOINT``: IWAE log-likelihood, ELBO and Pareto k̂ per example."""
    model, guide = spec.restore(checkpoint, options.device)
    dataset = options.dataset_of(checkpoint.record)
    data = load_images(dataset, options.split, data_dir=options.data_dir, download=options.download)
    result = evaluate_split(
        model.model,
        guide.guide,
        data,
        num_examples=options.num_examples,
        seed=options.seed,
        num_particles=options.iwae_samples,
        batch_size=options.batch_size,
        chunk_size=options.chunk_size,
        device=options.device,
        progress=options.progress,
    )
    result.update(checkpoint=str(checkpoint.path), step=checkpoint.step)
    name = f"eval_{dataset}_{options.split}_K{options.iwae_samples}.json"
    write_evaluation(result, options.json_path(checkpoint.path, name), format_summary(result))


def write_evaluation(result: dict[str, Any], path: Path, summary: str) -> None:
    """What every ``pyro-draw evaluate`` ends with: ``result`` written as JSON to ``path``, then
    ``summary`` and the path printed."""
    write_json(result, path)
    print(summary)
    print(f"wrote {path}")
