"""DooD's and AIR's evaluation: IWAE log-likelihood, ELBO and the inferred number of strokes.

The IWAE estimate of log p(x) (Fig. 4 uses K = 200) and the ELBO come from the generic
:func:`tasks.evaluate.evaluate_split`; the inferred number of strokes (mean and histogram) and,
on glyphs, its accuracy against the truth are added here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from inference.iwae import importance_log_weights
from tasks.data.core import ImageData
from tasks.dood.models import PAPER_IWAE_SAMPLES, max_steps
from tasks.evaluate import evaluate_split, format_summary, say

__all__ = [
    "evaluate_dood",
    "format_dood_summary",
    "infer_stroke_counts",
    "stroke_count_summary",
    "validation_metrics",
]

_STOP_SITE = re.compile(r"^z_pres_(\d+)$")


def infer_stroke_counts(
    guide: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 100,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Number of strokes ``Σ_t o_t`` the guide infers for each image (one sample of
    ``q(o_{1:T} | x)`` per image, Eq. 6; seeded, the global RNG is left untouched), ``(N,)``."""
    counts = []
    with torch.random.fork_rng(), torch.no_grad(), pyro.validation_enabled(False):
        torch.manual_seed(seed)
        for chunk in images.split(batch_size):
            trace = poutine.trace(guide.guide).get_trace(chunk.to(device))
            stops = [
                site["value"]
                for name, site in trace.nodes.items()
                if site["type"] == "sample" and _STOP_SITE.match(name)
            ]
            if not stops:
                raise ValueError("the guide has no 'z_pres_<t>' sites to count strokes with")
            counts.append(torch.stack(stops, 0).sum(0).cpu())
    return torch.cat(counts).round().long()


def stroke_count_summary(
    counts: Tensor, max_strokes: int, truth: Tensor | None = None
) -> dict[str, Any]:
    """Mean, standard deviation and histogram (counts ``0 … T``) of inferred stroke counts; with
    ``truth`` also the accuracy, that of always answering the most frequent true count
    (``majority_accuracy``), the mean absolute error and the confusion matrix (rows: true count
    ``0 … max(T, max truth)``, columns: inferred count ``0 … T``)."""
    counts = counts.long()
    values = counts.double()
    out: dict[str, Any] = {
        "num_examples": int(counts.numel()),
        "mean": float(values.mean()),
        "std": float(values.std()) if counts.numel() > 1 else math.nan,
        "histogram": torch.bincount(counts, minlength=max_strokes + 1).tolist(),
    }
    if truth is not None:
        truth = truth.long()
        if truth.shape != counts.shape:
            raise ValueError(
                f"truth: expected shape {tuple(counts.shape)}, found {tuple(truth.shape)}"
            )
        rows = max(max_strokes, int(truth.max())) + 1
        confusion = torch.zeros(rows, max_strokes + 1, dtype=torch.long)
        confusion.index_put_((truth, counts), torch.ones_like(counts), accumulate=True)
        out.update(
            accuracy=float((counts == truth).double().mean()),
            majority_accuracy=float(torch.bincount(truth).max() / truth.numel()),
            mean_abs_error=float((counts - truth).abs().double().mean()),
            true_mean=float(truth.double().mean()),
            confusion_true_by_inferred=confusion.tolist(),
        )
    return out


def evaluate_dood(
    model: nn.Module,
    guide: nn.Module,
    data: ImageData,
    *,
    iwae_samples: int = PAPER_IWAE_SAMPLES,
    batch_size: int = 50,
    chunk_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """IWAE log-likelihood and ELBO of every image of ``data`` (:func:`evaluate_split`, K =
    ``iwae_samples``) plus ``stroke_counts`` (:func:`stroke_count_summary`; against the truth on
    glyphs). Particles are drawn in chunks of ``chunk_size`` (default: sized by memory,
    :func:`inference.iwae.auto_chunk_size`);
    ``announce`` is told the plan and the estimated time (:func:`evaluate_log_likelihood`)."""
    was = model.training, guide.training
    model.eval()
    guide.eval()
    try:
        with pyro.validation_enabled(False):
            result = evaluate_split(
                model.model,
                guide.guide,
                data,
                seed=seed,
                num_particles=iwae_samples,
                batch_size=batch_size,
                chunk_size=chunk_size,
                device=device,
                progress=progress,
                announce=announce,
            )
        counts = infer_stroke_counts(guide, data.images, seed=seed, device=device)
    finally:
        model.train(was[0])
        guide.train(was[1])
    truth = data.extras.get("num_strokes")
    result["stroke_counts"] = stroke_count_summary(counts, max_steps(model.config.to_dict()), truth)
    return result


def evaluate_with_options(
    model: nn.Module, guide: nn.Module, data: ImageData, options: Any
) -> dict[str, Any]:
    """:func:`evaluate_dood` with a command's evaluation options (``iwae_samples``,
    ``batch_size``, ``chunk_size``, ``seed``, ``device``, ``progress``), printing its plan and
    ETA (``pyro-draw evaluate`` and ``pyro-draw transfer``)."""
    return evaluate_dood(
        model,
        guide,
        data,
        iwae_samples=options.iwae_samples,
        batch_size=options.batch_size,
        chunk_size=options.chunk_size,
        seed=options.seed,
        device=options.device,
        progress=options.progress,
        announce=say,
    )


def validation_metrics(
    model: nn.Module, guide: nn.Module, images: Tensor, *, batch_size: int = 100, seed: int = 0
) -> dict[str, float]:
    """``valid_elbo`` (the ELBO, β = 1, one sample per image: Eq. 9 / Eq. 15) and
    ``valid_num_strokes`` (mean inferred count) of ``images``."""
    device = next(model.parameters()).device
    total = 0.0
    with torch.random.fork_rng(), torch.no_grad(), pyro.validation_enabled(False):
        torch.manual_seed(seed)
        for chunk in images.split(batch_size):
            log_w = importance_log_weights(
                model.model, guide.guide, chunk.to(device), num_particles=1
            )
            total += float(log_w.sum())
    counts = infer_stroke_counts(guide, images, batch_size=batch_size, seed=seed, device=device)
    return {"valid_elbo": total / len(images), "valid_num_strokes": float(counts.double().mean())}


def format_dood_summary(result: dict[str, Any]) -> str:
    """The IWAE summary line plus the stroke-count line."""
    sc = result["stroke_counts"]
    line = f"inferred strokes: mean {sc['mean']:.2f}, histogram (0…T) {sc['histogram']}"
    if "accuracy" in sc:
        line += (
            f"; vs truth: accuracy {100 * sc['accuracy']:.1f}% (always the most frequent "
            f"count: {100 * sc['majority_accuracy']:.1f}%), mean |error| "
            f"{sc['mean_abs_error']:.2f} (true mean {sc['true_mean']:.2f})"
        )
    return f"{format_summary(result)}\n{line}"
