"""Importance-weighted (IWAE) estimates of log p(x) for any Pyro model/guide pair.

For each example ``x_b`` the guide proposes ``z^(1..K) ~ q(z | x_b)`` and the estimator is

    log p̂(x_b) = logsumexp_k log w_kb − log K,   log w_kb = log p(x_b, z^(k)) − log q(z^(k) | x_b),

a stochastic lower bound (Burda et al., 2016) that is non-decreasing in K in expectation and
converges to log p(x_b) as K → ∞. The mean of the same log-weights is the ELBO.

Conventions the models and guides must follow (checked; violations raise ``ValueError``):

* ``model(x, *args, **kwargs)`` and ``guide(x, *args, **kwargs)``: dim 0 of ``x`` is the data
  batch ``B``. Every per-example sample site lives inside ``pyro.plate("data", B, dim=-1)`` with
  its event dims folded by ``.to_event``, so its ``log_prob`` has shape ``(B,)``. Sites outside
  the plate (global latents, scalar factors) are rejected: a per-example estimate is undefined.
* Sequential models name latent sites per step (``"z_0"``, ``"z_1"``, ...) under
  ``pyro.markov``; site names must match between model and guide.
* Every guide sample site is latent and also appears in the model; every latent model site is
  proposed by the guide (a latent model site missing from the guide would be drawn from its prior
  by ``replay`` and silently bias the weights, so it is an error). ``pyro.deterministic`` sites
  are ignored.

Particles are drawn by repeating the batch, not by ``vectorize_particles`` or an extra plate:
models may contain ``LSTMCell``s that only accept 2-D input. A chunk of ``k`` particles runs the
guide and the model once on ``x.repeat(k, 1, ..., 1)`` (particle-major: row ``i * B + b`` is
particle ``i`` of example ``b``); other tensor arguments whose dim 0 equals ``B`` are repeated
the same way. ``RenyiELBO(alpha=0)`` is not a substitute: it gives discrete guide sites zero
gradient and relies on ``vectorize_particles``.

Masks and scales: site masks (``.mask(...)``, ``poutine.mask``) are respected, masked terms
contribute 0. Scales (``poutine.scale``, plate subsampling, KL annealing) are *ignored*: IWAE needs
the unscaled per-example log-densities, so the estimate is always of the unscaled model. Use a
mask, not a zero scale, to drop terms.

Everything runs under ``torch.no_grad()``; the per-site log-probs are summed in float64.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import prune_subsample_sites
from torch import Tensor

__all__ = [
    "CPU_MAX_ROWS",
    "auto_chunk_size",
    "importance_log_weights",
    "iwae_bound",
    "elbo_from_log_weights",
    "pareto_k",
    "MIN_PARETO_SAMPLES",
]

#: Fewest importance samples for which arviz can fit a Pareto tail (it needs > 4 tail draws).
MIN_PARETO_SAMPLES = 21
#: Log-weights spread (max − min, nats) below which weights count as constant (see ``pareto_k``).
_CONSTANT_LOG_WEIGHT_TOL = 1e-4

_CONVENTION = (
    'every per-example site must be inside pyro.plate("data", B, dim=-1) with event dims folded '
    "by .to_event(), so that its log_prob has shape (B,)"
)


#: Rows (particles × examples) per pass on a CPU, where larger passes are slower once a step's
#: tensors leave the caches. One thread, K = 200 (``benchmarks/iwae_throughput.py``): DRAW MNIST
#: 2.8 / 3.6 / 3.6 / 3.6 / 3.6 img/s at 128 / 256 / 512 / 1024 / 2048 rows; DooD ``hours``
#: (50×50) 3.8 / 4.3 / 4.0 / 3.4 / 2.9.
CPU_MAX_ROWS = 512
#: Rows per pass on an accelerator are bounded by memory only, and by this.
DEVICE_MAX_ROWS = 1 << 16
#: The share of the free memory one pass may take.
MEMORY_FRACTION = 0.5


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (CUDA: ``mem_get_info``; CPU: ``MemAvailable`` of
    ``/proc/meminfo``), or None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _trace_bytes(*traces: Trace) -> int:
    """Bytes of the distinct tensors the traces hold (site values, log-probs)."""
    seen: dict[int, int] = {}
    for trace in traces:
        for site in trace.nodes.values():
            for key in ("value", "unscaled_log_prob", "log_prob"):
                value = site.get(key)
                if isinstance(value, Tensor):
                    seen[value.data_ptr()] = value.numel() * value.element_size()
    return sum(seen.values())


def auto_chunk_size(
    batch_size: int, bytes_per_row: int, device: torch.device, num_particles: int
) -> int:
    """Particles per pass for a batch of ``batch_size`` examples: as many rows as
    ``MEMORY_FRACTION`` of the free memory holds at ``bytes_per_row`` (measured on the first
    pass), at most ``CPU_MAX_ROWS`` on a CPU (where larger passes are slower) and
    ``DEVICE_MAX_ROWS`` elsewhere."""
    cap = CPU_MAX_ROWS if device.type == "cpu" else DEVICE_MAX_ROWS
    free = free_memory_bytes(device)
    if free is not None and bytes_per_row > 0:
        cap = min(cap, int(MEMORY_FRACTION * free // bytes_per_row))
    return max(1, min(num_particles, cap // batch_size))


def _repeat_batch(value: Any, k: int, batch_size: int) -> Any:
    """Repeat ``value`` particle-major ``k`` times along dim 0 if it is a per-example tensor."""
    if k == 1 or not isinstance(value, Tensor) or value.dim() == 0:
        return value
    if value.shape[0] != batch_size:
        return value
    return value.repeat(k, *([1] * (value.dim() - 1)))


def _is_deterministic(site: dict) -> bool:
    return bool(site["infer"].get("_deterministic", False))


def _site_log_prob(name: str, site: dict, rows: int, role: str) -> Tensor:
    """Unscaled, masked log_prob of a site, checked to have shape ``(rows,)``, as float64."""
    log_p = site["unscaled_log_prob"]
    log_p = scale_and_mask(log_p, 1.0, site["mask"])
    if not isinstance(log_p, Tensor):  # identically-zero log_prob may be a Python number
        log_p = torch.full((rows,), float(log_p), dtype=torch.float64)
    if tuple(log_p.shape) != (rows,):
        raise ValueError(
            f"{role} site '{name}' has log_prob shape {tuple(log_p.shape)}, expected ({rows},) "
            f"(batch rows = particles x examples); {_CONVENTION}."
        )
    return log_p.to(torch.float64)


def _chunk_log_weights(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    x: Tensor,
    args: tuple,
    kwargs: dict,
    k: int,
    sizes: list[int] | None = None,
) -> Tensor:
    """Log-weights ``(k, B)`` for one chunk of ``k`` particles per example; with ``sizes`` given,
    appends the bytes the pass held per row (CUDA: its peak allocation; elsewhere twice the
    traces' tensors, for the transients beside them)."""
    cuda = x.device.type == "cuda"
    if sizes is not None and cuda:
        torch.cuda.reset_peak_memory_stats(x.device)
        before = torch.cuda.memory_allocated(x.device)
    batch_size = x.shape[0]
    rows = k * batch_size
    xr = _repeat_batch(x, k, batch_size)
    args_r = tuple(_repeat_batch(a, k, batch_size) for a in args)
    kwargs_r = {key: _repeat_batch(v, k, batch_size) for key, v in kwargs.items()}

    guide_trace: Trace = poutine.trace(guide).get_trace(xr, *args_r, **kwargs_r)
    model_trace: Trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
        xr, *args_r, **kwargs_r
    )
    guide_trace = prune_subsample_sites(guide_trace)  # drop the plates' own "sample" sites
    model_trace = prune_subsample_sites(model_trace)

    guide_sites = {
        name: site
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and not _is_deterministic(site)
    }
    model_sites = {
        name: site
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample" and not _is_deterministic(site)
    }

    for name, site in guide_sites.items():
        if site["is_observed"]:
            raise ValueError(
                f"guide site '{name}' is observed; a guide may only contain latent sample sites"
            )
        if name not in model_sites:
            raise ValueError(
                f"guide site '{name}' does not appear in the model; model and guide must use the "
                "same latent site names (e.g. 'z_0', 'z_1', ... per step)"
            )
    for name, site in model_sites.items():
        if not site["is_observed"] and name not in guide_sites:
            raise ValueError(
                f"model latent site '{name}' is not proposed by the guide; it would be drawn "
                "from its prior and bias the importance weights"
            )

    def keep(name: str, site: dict) -> bool:
        return not _is_deterministic(site)

    guide_trace.compute_log_prob(keep)
    model_trace.compute_log_prob(keep)
    log_w = torch.zeros(rows, dtype=torch.float64, device=x.device)
    for name, site in model_sites.items():
        log_w = log_w + _site_log_prob(name, site, rows, "model")
    for name, site in guide_sites.items():
        log_w = log_w - _site_log_prob(name, site, rows, "guide")
    if sizes is not None:
        if cuda:
            held = torch.cuda.max_memory_allocated(x.device) - before
        else:
            held = 2 * _trace_bytes(guide_trace, model_trace)
        sizes.append(max(1, held // rows))
    return log_w.reshape(k, batch_size)


def importance_log_weights(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    x: Tensor,
    *args: Any,
    num_particles: int = 200,
    chunk_size: int | None = None,
    max_rows: int | None = None,
    **kwargs: Any,
) -> Tensor:
    """Importance log-weights ``log p(x, z) − log q(z | x)`` of shape ``(num_particles, B)``.

    ``x`` (dim 0 = batch ``B``) and the extra ``args``/``kwargs`` are passed to both ``model`` and
    ``guide``; tensors whose dim 0 equals ``B`` are repeated with ``x`` (so a shared tensor that
    happens to have dim 0 = ``B`` must be captured in a closure instead). Particles are evaluated
    ``chunk_size`` at a time, or ``max(1, max_rows // B)`` with ``max_rows`` given; with neither,
    the first pass draws one particle per example, measures the memory a row takes and sizes the
    rest by :func:`auto_chunk_size`. Returns a float64 tensor on ``x``'s device; entry
    ``[k, b]`` is particle ``k`` of example ``b``.
    """
    if not isinstance(x, Tensor) or x.dim() == 0:
        raise ValueError("x must be a tensor whose dim 0 is the data batch")
    batch_size = x.shape[0]
    if batch_size == 0:
        raise ValueError("x has an empty batch (dim 0 is 0)")
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be >= 1 or None, got {max_rows}")
    if chunk_size is None and max_rows is not None:
        chunk_size = max(1, max_rows // batch_size)
    elif chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")

    chunks = []
    with torch.no_grad():
        done = 0
        if chunk_size is None:  # a first pass of one particle measures a row's memory
            sizes: list[int] = []
            chunks.append(_chunk_log_weights(model, guide, x, args, kwargs, 1, sizes))
            done = 1
            chunk_size = auto_chunk_size(batch_size, sizes[0], x.device, num_particles)
        chunk_size = min(chunk_size, num_particles)
        while done < num_particles:
            k = min(chunk_size, num_particles - done)
            chunks.append(_chunk_log_weights(model, guide, x, args, kwargs, k))
            done += k
    log_w = torch.cat(chunks, dim=0)
    bad = torch.isnan(log_w) | (log_w == math.inf)
    if bad.any():
        examples = sorted({int(b) for b in bad.nonzero()[:, 1].tolist()})[:10]
        raise ValueError(
            f"{int(bad.sum())} importance log-weights are NaN or +inf (examples {examples}); "
            "check the model/guide densities (e.g. a guide sample where q has zero density)"
        )
    return log_w


def _check_log_weights(log_weights: Tensor) -> Tensor:
    if not isinstance(log_weights, Tensor) or log_weights.dim() != 2:
        shape = tuple(log_weights.shape) if isinstance(log_weights, Tensor) else type(log_weights)
        raise ValueError(f"log_weights must be a (K, B) tensor, got {shape}")
    if log_weights.shape[0] < 1:
        raise ValueError("log_weights has no particles (K = 0)")
    return log_weights.to(torch.float64)


def iwae_bound(log_weights: Tensor) -> Tensor:
    """IWAE estimate ``logsumexp_k log w_kb − log K`` per example: ``(K, B)`` → ``(B,)``."""
    lw = _check_log_weights(log_weights)
    return torch.logsumexp(lw, dim=0) - math.log(lw.shape[0])


def elbo_from_log_weights(log_weights: Tensor) -> Tensor:
    """Monte-Carlo ELBO ``mean_k log w_kb`` per example: ``(K, B)`` → ``(B,)``."""
    return _check_log_weights(log_weights).mean(dim=0)


def pareto_k(log_weights: Tensor) -> np.ndarray:
    """PSIS Pareto shape k̂ of the importance weights per example: ``(K, B)`` → ``(B,)``.

    k̂ < 0.5: weights have finite variance, the estimate is reliable; 0.5–0.7: reliable but
    converging slowly; > 0.7: the IWAE estimate may be badly biased low (Vehtari et al., 2024).
    Returns NaN (with a warning) when ``K < MIN_PARETO_SAMPLES`` (too few draws for the tail fit).
    Examples whose log-weights are constant to within 1e-4 nats (guide ≈ exact posterior) get
    k̂ = 0 instead of arviz's ``inf`` for a degenerate tail.
    """
    lw = _check_log_weights(log_weights).detach().cpu().numpy().T.copy()  # (B, K)
    num_examples, num_samples = lw.shape
    if num_samples < MIN_PARETO_SAMPLES:
        warnings.warn(
            f"pareto_k needs at least {MIN_PARETO_SAMPLES} importance samples, got "
            f"{num_samples}; returning NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return np.full(num_examples, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

        finite_max = np.max(lw, axis=1)
        constant = np.isfinite(finite_max) & (
            (finite_max - np.min(lw, axis=1)) <= _CONSTANT_LOG_WEIGHT_TOL
        )
        k_hat = np.zeros(num_examples)
        fit = ~constant & np.isfinite(finite_max)
        k_hat[~np.isfinite(finite_max)] = np.nan  # every weight is zero: nothing to fit
        if fit.any():
            _, k_fit = arviz.psislw(lw[fit])
            k_hat[fit] = np.asarray(k_fit, dtype=np.float64)
    return k_hat
