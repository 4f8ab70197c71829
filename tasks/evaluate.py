"""Held-out log-likelihood evaluation of a trained model/guide pair (IWAE, Burda et al. 2016).

``evaluate_log_likelihood`` runs :func:`inference.iwae.importance_log_weights` over a data set in
mini-batches and reports the mean IWAE estimate of log p(x) (a stochastic lower bound, tight as K
grows), its standard error over examples, the ELBO from the same samples and PSIS Pareto k̂
diagnostics of the importance weights. See :mod:`inference.iwae` for the model/guide conventions.
Models needing extra arguments (e.g. a number of steps) can be bound with ``functools.partial``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
import torch.distributed as tdist
from torch import Tensor
from tqdm.auto import tqdm

from inference.checkpoint import Checkpoint
from inference.distributed import world
from inference.iwae import (
    MIN_PARETO_SAMPLES,
    elbo_from_log_weights,
    importance_log_weights,
    iwae_bound,
    pareto_k,
)
from tasks.data import ImageData, load_images
from tasks.data.core import derive_seed
from tasks.family import ModelSpec
from tasks.options import EvaluateOptions, option, positive
from tasks.results import write_json

__all__ = [
    "ImageEvaluateOptions",
    "check_model_images",
    "evaluate_image_command",
    "evaluate_log_likelihood",
    "evaluate_split",
    "eta_line",
    "evaluation_subset",
    "format_summary",
    "plan_line",
    "say",
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
    """Max, mean and the share above 0.7 of the per-example k̂ (NaN: not available).

    An infinite k̂ (PSIS could not fit the weights' tail) counts as above 0.7 and makes ``max``
    infinite (``"inf"`` in the JSON); ``mean`` is over the finite k̂ and ``num_infinite`` says
    how many were left out of it.
    """
    known = k_hat[~np.isnan(k_hat)]
    if known.size == 0:
        return {
            "max": math.nan,
            "mean": math.nan,
            f"fraction_above_{PARETO_K_THRESHOLD}": math.nan,
            "num_infinite": 0,
            "note": (
                f"k̂ unavailable: needs at least {MIN_PARETO_SAMPLES} importance samples, "
                f"got K={num_particles}"
            ),
        }
    finite = known[np.isfinite(known)]
    k_max = float(np.max(known))
    frac = float(np.mean(known > PARETO_K_THRESHOLD))
    infinite = int(known.size - finite.size)
    return {
        "max": k_max,
        "mean": float(np.mean(finite)) if finite.size else math.nan,
        f"fraction_above_{PARETO_K_THRESHOLD}": frac,
        "num_infinite": infinite,
        "note": _pareto_note(k_max, frac, infinite, known.size),
    }


def _pareto_note(k_max: float, frac: float, infinite: int, count: int) -> str:
    if k_max <= 0.5:
        return "all k̂ <= 0.5: importance weights look finite-variance; estimate reliable"
    if k_max <= PARETO_K_THRESHOLD:
        return "max k̂ in (0.5, 0.7]: estimate usable but converging slowly in K"
    among = (
        f" ({infinite} of {count} with k̂ = inf: PSIS could not fit their weights' tail)"
        if infinite
        else ""
    )
    return (
        f"{100 * frac:.1f}% of examples have k̂ > 0.7{among}: their IWAE estimates may be "
        "biased low; improve the guide or raise K"
    )


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
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """IWAE estimate of the mean log p(x) over ``images`` (``(N, ...)``, dim 0 = examples).

    Returns a JSON-ready dict: ``num_examples``, ``iwae_samples`` (K), ``log_likelihood`` (mean
    per-example IWAE estimate, nats), ``log_likelihood_stderr``, ``nll`` (= −log_likelihood),
    ``elbo``, ``elbo_stderr``, ``pareto_k`` {``max``, ``mean``, ``fraction_above_0.7``,
    ``num_infinite``, ``note``} and ``per_example`` lists. When ``seed`` is not None the global
    pyro/torch/numpy RNGs are seeded from it before each batch (``pyro.set_rng_seed``) so
    results are reproducible; under ``torchrun`` the batches are shared out over the ranks
    (batch ``i`` on rank ``i mod N``) and gathered, giving every rank the single-process
    result. Batches of ``images`` are moved to ``device``; the model/guide parameters must
    already live there. ``announce(line)`` (e.g. ``print``) is given what the evaluation will do
    before it starts and, after the first batch, the estimated time of the rest.
    """
    _check_inputs(images, batch_size, num_particles)
    num_examples = images.shape[0]
    device = torch.device(device)
    here = world()
    say = (announce or (lambda line: None)) if here.is_main else (lambda line: None)
    say(plan_line(num_examples, num_particles, batch_size))
    if here.distributed:
        say(f"  sharded over {here.size} processes: batch i on rank i mod {here.size}")

    parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    total, seen = 0.0, 0
    started = time.perf_counter()
    show = progress and here.is_main
    with tqdm(total=num_examples, desc="IWAE log p(x)", unit="ex", disable=not show) as bar:
        for index, start in enumerate(range(0, num_examples, batch_size)):
            if index % here.size != here.rank:
                continue
            if seed is not None:  # per batch, so any rank gives a batch the same noise
                pyro.set_rng_seed(derive_seed("iwae", seed, index) % 2**32)
            batch = images[start : start + batch_size].to(device)
            log_w = importance_log_weights(
                model, guide, batch, num_particles=num_particles, chunk_size=chunk_size
            )
            ll = iwae_bound(log_w).cpu().numpy()
            if num_particles >= MIN_PARETO_SAMPLES:
                k = pareto_k(log_w)
            else:
                k = np.full(batch.shape[0], np.nan)
            parts[index] = (ll, elbo_from_log_weights(log_w).cpu().numpy(), k)
            total += float(ll.sum())
            seen += batch.shape[0]
            bar.update(batch.shape[0] * here.size)
            bar.set_postfix(log_px=f"{total / seen:.3f}")
            if index == here.rank and seen * here.size < num_examples:
                say(eta_line(time.perf_counter() - started, seen * here.size, num_examples))
    parts = gather_parts(parts)
    ll_parts = [parts[i][0] for i in sorted(parts)]
    elbo_parts = [parts[i][1] for i in sorted(parts)]
    k_parts = [parts[i][2] for i in sorted(parts)]

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


def gather_parts(parts: dict[int, Any]) -> dict[int, Any]:
    """Every rank's ``{batch index: arrays}`` merged (``torch.distributed.all_gather_object``);
    ``parts`` itself in a single process."""
    here = world()
    if not here.distributed:
        return parts
    gathered: list[dict[int, Any] | None] = [None] * here.size
    tdist.all_gather_object(gathered, parts)
    merged: dict[int, Any] = {}
    for rank_parts in gathered:
        merged.update(rank_parts or {})
    return merged


def _check_inputs(images: Tensor, batch_size: int, num_particles: int) -> None:
    """``ValueError`` before any work for empty or non-finite images and bad sizes."""
    if not isinstance(images, Tensor) or images.dim() == 0:
        raise ValueError("images must be a tensor of shape (N, ...)")
    if images.shape[0] == 0:
        raise ValueError("images is empty (N = 0)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    if images.is_floating_point():
        bad = ~torch.isfinite(images.reshape(images.shape[0], -1)).all(dim=1)
        if bad.any():
            first = int(bad.nonzero()[0])
            raise ValueError(
                f"images: expected finite values, found NaN/inf in {int(bad.sum())} examples "
                f"(the first is example {first})"
            )


def plan_line(num_examples: int, num_particles: int, batch_size: int) -> str:
    """What an IWAE evaluation will do, said before it starts."""
    batches = math.ceil(num_examples / batch_size)
    timing = "; timing the first batch for an estimate of the rest" if batches > 1 else ""
    return (
        f"evaluating: IWAE log p(x) of {num_examples} examples with K={num_particles} "
        f"importance samples each, in {batches} batch{'es' if batches > 1 else ''} of up to "
        f"{batch_size}{timing}"
    )


def eta_line(seconds: float, done: int, total: int) -> str:
    """The time the first ``done`` of ``total`` examples took and what the rest will take."""
    rest = seconds * (total - done) / max(done, 1)
    finish = time.strftime("%H:%M", time.localtime(time.time() + rest))
    return (
        f"  first {done} examples took {_duration(seconds)}: about {_duration(rest)} for the "
        f"other {total - done} (done near {finish})"
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


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
    """``value`` for the summary: ``inf``/``−inf`` as such, NaN or ``None`` as ``n/a``."""
    if isinstance(value, str):  # a result read back from JSON: "inf", "-inf"
        value = float(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
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
    check_model_images(model, data, checkpoint.path)
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
        announce=say,
    )
    result.update(checkpoint=str(checkpoint.path), step=checkpoint.step)
    name = f"eval_{dataset}_{options.split}_K{options.iwae_samples}.json"
    write_evaluation(result, options.json_path(checkpoint.path, name), format_summary(result))


def check_model_images(model: Any, data: ImageData, path: Path) -> None:
    """``ValueError`` before any work when ``data``'s images are not the ``(C, H, W)`` that
    ``model.config`` (``channels``, default 1, ``height``, ``width``) takes."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "height"):
        return
    expected = (getattr(config, "channels", 1), config.height, config.width)
    found = tuple(data.images.shape[1:])
    if found != expected:
        raise ValueError(
            f"{data.name}/{data.split} images are {'x'.join(map(str, found))} (C x H x W), but "
            f"the model of checkpoint {path} takes {'x'.join(map(str, expected))}; pick a "
            "dataset of that size (--dataset)"
        )


def say(line: str) -> None:
    """Print ``line`` at once (the evaluate commands' announcements)."""
    print(line, flush=True)


def write_evaluation(result: dict[str, Any], path: Path, summary: str) -> None:
    """What every ``pyro-draw evaluate`` ends with: ``result`` written as JSON to ``path``, then
    ``summary`` and the path printed."""
    write_json(result, path)
    print(summary)
    print(f"wrote {path}")
