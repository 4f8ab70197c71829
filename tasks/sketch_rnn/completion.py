"""Completing and sampling sketches with sketch-rnn (Ha & Eck 2017, sec. 3.3, 4.4).

Units and modes as in :mod:`tasks.sketch_rnn.sampling`. The choices made where the paper leaves
them open:

* **Predicting different endings** (sec. 4.4, Fig. 7) — :func:`complete`: the decoder is
  teacher-forced on the incomplete sketch (its hidden state "encodes" it, as in the paper) and
  then samples the rest (τ = 0.8 as in the paper), at most ``N_max − P`` more points so the
  whole sketch fits ``N_max``. The paper shows this for decoder-only models only. For the
  conditional model ``z`` must be chosen; the default ``z_mode="posterior"`` draws it from the
  model's own posterior given the *partial* sketch, ``p(z | S_1 … S_P) ∝ p(z) p(S_1 … S_P | z)``,
  by sampling-importance-resampling: ``num_particles`` draws from the encoder's ``q(z | prefix)``
  (Eq. 2 applied to the incomplete sketch), weights ``p(z) p(S_1 … S_P | z) / q(z | prefix)``
  with the decoder's likelihood of the ``P`` given rows (Eq. 9's terms over steps ``1 … P``, no
  end-of-sketch), one resampled ``z`` per completion. Then an ending is drawn from ``∫ p(ending |
  prefix, z) p(z | prefix) dz``, the model's predictive distribution. The encoder alone is not
  used as the answer because it was trained on complete sketches: ``q(z | prefix)`` describes "a
  sketch that is exactly this prefix" and tends to end the drawing; ``z_mode="encoder"`` (``z =
  μ`` of the prefix) and ``z_mode="prior"`` (``z ~ N(0, I)``, ignoring the prefix except through
  the hidden state) are available for comparison.
* **Unconditional generation** (sec. 3.3, Fig. 3; appendix sec. 2) — :func:`unconditional_samples`:
  the decoder-only model from its zero state; the conditional model with ``z ~ N(0, I)``
  ("we can sample sketches from the decoder using randomly sampled z from N(0, I)").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from generative.strokes import START_TOKEN
from tasks.data.stroke_formats import to_stroke5
from tasks.sketch_rnn.sampling import (
    COMPLETION_TEMPERATURE,
    Z_MODES,
    check_sketches,
    decode,
    encode,
    eval_mode,
    model_device,
    require_conditional,
)
from tasks.sketch_rnn.svg import check_stroke3

__all__ = ["complete", "incomplete_sketch", "prefix_posterior", "unconditional_samples"]


def incomplete_sketch(
    seq3: np.ndarray, num_points: int | None = None, *, whole_strokes: bool = True
) -> np.ndarray:
    """The first points of a sketch, as the given part of an incomplete sketch (sec. 4.4).

    ``num_points`` defaults to half of the points. The cut is at most ``N − 1`` points, so
    something is missing (a 1-point sketch is returned whole), and at least 1. With
    ``whole_strokes`` it moves back to the end of the last stroke that ends within the first
    ``num_points`` points, when there is one (else the cut is mid-stroke, and the continuation
    continues that stroke).
    """
    arr = check_stroke3(seq3).astype(np.float32)
    n = len(arr)
    if n == 0:
        raise ValueError("incomplete_sketch: expected a sketch with at least 1 point, found 0")
    if n == 1:
        return arr.copy()
    if num_points is None:
        num_points = n // 2
    if num_points < 1:
        raise ValueError(f"incomplete_sketch: num_points must be >= 1, found {num_points}")
    cut = min(num_points, n - 1)
    if whole_strokes:
        ends = np.flatnonzero(arr[:cut, 2] == 1)
        if ends.size:
            cut = int(ends[-1]) + 1
    return arr[:cut].copy()


def _prefix_rows(prefix: np.ndarray) -> Tensor:
    """Stroke-5 rows ``S_1 … S_P`` (P, 5) of a stroke-3 prefix (no start token, no end row)."""
    return torch.from_numpy(to_stroke5(prefix, len(prefix))[1:])


def prefix_posterior(
    model: nn.Module,
    guide: nn.Module,
    prefix: np.ndarray,
    num_samples: int,
    *,
    num_particles: int = 64,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, float]:
    """``num_samples`` draws of ``z ~ p(z | S_1 … S_P)`` by sampling-importance-resampling with
    the encoder's ``q(z | prefix)`` as proposal (see the module doc), and the effective sample
    size ``1 / Σ w̄_k²`` of the ``num_particles`` normalised weights.

    ``log w_k = log N(z_k; 0, I) + log p(S_1 … S_P | z_k) − log q(z_k | prefix)``, where the
    likelihood is the decoder's teacher-forced Eq. 9 log-density of the ``P`` given rows (offsets
    and pen states of steps ``1 … P``; no end-of-sketch step)."""
    require_conditional(model, "prefix_posterior")
    if num_samples < 1 or num_particles < 1:
        raise ValueError(
            f"prefix_posterior: num_samples and num_particles must be >= 1, found "
            f"{num_samples}, {num_particles}"
        )
    checked = check_sketches(model, [prefix], "prefix")[0]
    device = model_device(model)
    mu, sigma = encode(model, guide, [checked])
    eps = torch.randn((num_particles, mu.shape[-1]), generator=generator, dtype=mu.dtype)
    z = mu + sigma * eps.to(device)
    rows = _prefix_rows(checked).to(device=device, dtype=mu.dtype)
    start = torch.tensor(START_TOKEN, dtype=mu.dtype, device=device)
    inputs = torch.cat([start[None], rows[:-1]], 0).expand(num_particles, -1, -1)
    targets = rows.expand(num_particles, -1, -1)
    lengths = torch.full((num_particles,), len(checked), dtype=torch.int64, device=device)
    with eval_mode(model, guide):
        log_lik = model.likelihood(inputs, z, lengths).log_prob(targets)
    normal = torch.distributions.Normal
    log_prior = normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
    log_q = normal(mu, sigma).log_prob(z).sum(-1)
    log_w = log_prior + log_lik - log_q
    w = torch.softmax(log_w, 0)
    ess = float(1.0 / (w.square().sum()))
    index = torch.multinomial(w.cpu(), num_samples, replacement=True, generator=generator)
    return z[index.to(device)], ess


def complete(
    model: nn.Module,
    guide: nn.Module | None,
    prefix: np.ndarray,
    num_completions: int,
    temperature: float = COMPLETION_TEMPERATURE,
    *,
    z_mode: str = "posterior",
    num_particles: int = 64,
    generator: torch.Generator | None = None,
) -> list[np.ndarray]:
    """Different endings of an incomplete sketch (sec. 4.4, Fig. 7): ``num_completions`` whole
    sketches (data units) that start with ``prefix`` (stroke-3, model units, ``P < N_max``
    points) and continue with decoder samples at ``temperature``.

    ``z_mode`` (conditional model only; see the module doc): ``"posterior"`` (default,
    :func:`prefix_posterior`), ``"encoder"`` (``μ`` of the prefix) or ``"prior"``.
    """
    if num_completions < 1:
        raise ValueError(f"complete: num_completions must be >= 1, found {num_completions}")
    if z_mode not in Z_MODES:
        raise ValueError(f"complete: z_mode must be one of {Z_MODES}, found {z_mode!r}")
    checked = check_sketches(model, [prefix], "prefix")[0]
    if len(checked) >= model.config.max_length:
        raise ValueError(
            f"complete: the prefix has {len(checked)} points; it must be shorter than N_max = "
            f"{model.config.max_length} to leave room for an ending"
        )
    device = model_device(model)
    rows = _prefix_rows(checked).to(device).expand(num_completions, -1, -1)
    z = None
    if model.config.conditional:
        if guide is None and z_mode != "prior":
            raise ValueError(f"complete: z_mode={z_mode!r} needs the guide (encoder)")
        if z_mode == "posterior":
            z, _ = prefix_posterior(
                model,
                guide,
                checked,
                num_completions,
                num_particles=num_particles,
                generator=generator,
            )
        elif z_mode == "encoder":
            z = encode(model, guide, [checked])[0].expand(num_completions, -1)
        else:
            z = torch.randn((num_completions, model.config.z_dim), generator=generator).to(device)
    return decode(model, z, temperature, prefix=rows, generator=generator)


def unconditional_samples(
    model: nn.Module,
    n: int,
    temperature: float = 1.0,
    *,
    generator: torch.Generator | None = None,
) -> list[np.ndarray]:
    """``n`` sketches generated without input (sec. 3.3, Fig. 3): the decoder-only model from
    its zero state, the conditional model with ``z ~ N(0, I)`` (appendix sec. 2)."""
    if n < 1:
        raise ValueError(f"unconditional_samples: n must be >= 1, found {n}")
    z = None
    if model.config.conditional:
        z = torch.randn((n, model.config.z_dim), generator=generator).to(model_device(model))
    return decode(model, z, temperature, batch_size=n, generator=generator)
