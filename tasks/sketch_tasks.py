"""The creative tasks of sketch-rnn (Ha & Eck 2017, sec. 3.3, 4.1–4.4, appendix sec. 5) and their
pictures and command-line handlers.

Units. Inputs are stroke-3 sketches in the *model's* units — offsets divided by the training
scale factor, as :class:`tasks.data.strokes.StrokeData` holds them (or padded stroke-5 batches of
them from :func:`tasks.data.strokes.pad_batch`). Every output is a list of stroke-3 float32
arrays in *data* units: offsets multiplied back by ``model.config.scale_factor`` (appendix sec. 1;
when the config recorded no factor, outputs stay in model units). Sampling runs for at most
``N_max = config.max_length`` steps and stops at the first ``p_3 = 1`` (sec. 3.2); a sample
that ends at once is an empty ``(0, 3)`` array.

Tasks and the choices made where the paper leaves them open:

* **Conditional reconstruction** (sec. 4.1, Fig. 5) — :func:`reconstruct`: encode with the
  encoder's **mean** ``z = μ`` (Eq. 2) and decode at each temperature τ (Eq. 8). The paper does not
  say whether ``z`` is sampled; the reference demo samples ``z = μ + σ ε``. With ``μ`` the only
  randomness is the decoder's, controlled by τ, so the τ columns are comparable and ``τ = 0``
  gives one deterministic reconstruction. ``use_mean=False`` samples ``z`` instead.
* **Latent interpolation** (sec. 4.2, Fig. 6 left; appendix sec. 5) — :func:`interpolate`:
  spherical interpolation (:func:`slerp`, White 2016, the paper's ref. [24]) between the two
  encodings ``μ_a``, ``μ_b``, decoded at τ = 0.1 (appendix sec. 5: "All samples generated with
  τ = 0.1"). :func:`interpolate_grid` fills a grid between four corners (appendix Figs. 6–8) by
  slerp along the columns of the top and bottom rows and then down each column (the paper does
  not say how it interpolates in 2-D).
* **Drawing analogies** (sec. 4.3, Fig. 6 right) — :func:`analogy`: ``z = z_c + (z_b − z_a)``,
  "a is to b as c is to ?": with a = pig head, b = full pig, c = cat head, ``z_b − z_a`` is "a
  body" and the result a full cat, the paper's example and sign convention.
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

All functions put the modules in eval mode while they run (no recurrent dropout) and restore the
previous mode. Randomness comes only from the ``generator`` argument.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import to_hex
from torch import Tensor, nn

from generative.strokes import START_TOKEN
from tasks.data import DataError, derive_seed
from tasks.data.strokes import StrokeData, load_strokes, pad_batch, to_stroke3, to_stroke5
from tasks.sketch_figures import (
    check_stroke3,
    save_four_way_interpolation,
    save_interpolation_figure,
    save_sketch_grid,
    save_temperature_figure,
)

__all__ = [
    "CHECKPOINT_COMMANDS",
    "COMPLETION_TEMPERATURE",
    "EXTRA_ARGUMENTS",
    "INTERPOLATION_TEMPERATURE",
    "Z_MODES",
    "analogy",
    "complete",
    "decode",
    "encode",
    "incomplete_sketch",
    "interpolate",
    "interpolate_grid",
    "output_scale",
    "prefix_posterior",
    "reconstruct",
    "slerp",
    "unconditional_samples",
    "write_sketch_pictures",
    "write_training_pictures",
]

INTERPOLATION_TEMPERATURE = 0.1  # appendix sec. 5
COMPLETION_TEMPERATURE = 0.8  # sec. 4.4
RECONSTRUCTION_TEMPERATURES = (0.01, 0.25, 0.5, 0.75, 1.0)  # sec. 4.1: 0.01 … 1.0, left to right
SAMPLE_TEMPERATURES = (0.2, 0.5, 0.9)  # sec. 3.3, Fig. 3: τ = 0.2 (top) … 0.9 (bottom)
Z_MODES: tuple[str, ...] = ("posterior", "encoder", "prior")


# ----------------------------------------------------------------------------- helpers


def _device(model: nn.Module) -> torch.device:
    return model.start_token.device


@contextmanager
def _eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Eval mode (no recurrent dropout) and no gradients; restores the previous modes."""
    present = [m for m in modules if m is not None]
    modes = [m.training for m in present]
    try:
        for m in present:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(present, modes, strict=True):
            m.train(mode)


def _require_conditional(model: nn.Module, task: str) -> None:
    if not model.config.conditional:
        raise ValueError(
            f"{task} needs the conditional sketch-rnn (a latent z); this is the decoder-only "
            "model (sec. 3.3)"
        )


def output_scale(model: nn.Module) -> float:
    """The factor from model units back to data units: ``config.scale_factor`` (1 if unset)."""
    factor = model.config.scale_factor
    return 1.0 if factor is None else float(factor)


def _to_data_units(seq3: np.ndarray, scale: float) -> np.ndarray:
    out = np.array(seq3, dtype=np.float32)
    out[:, :2] *= np.float32(scale)
    return out


def _check_sketches(model: nn.Module, sketches: Sequence[np.ndarray], name: str) -> list:
    n_max = model.config.max_length
    out = []
    for i, s in enumerate(sketches):
        arr = check_stroke3(s, f"{name}[{i}]")
        if not 1 <= len(arr) <= n_max:
            raise ValueError(
                f"{name}[{i}]: expected 1 … N_max = {n_max} points (config.max_length), "
                f"found {len(arr)}"
            )
        out.append(arr.astype(np.float32))
    if not out:
        raise ValueError(f"{name}: expected at least one sketch, found none")
    return out


def _check_temperature(tau: float, name: str = "temperature") -> float:
    tau = float(tau)
    if not (math.isfinite(tau) and tau >= 0):
        raise ValueError(f"{name}: expected a finite temperature >= 0, found {tau}")
    return tau


def decode(
    model: nn.Module,
    z: Tensor | None,
    temperature: float,
    *,
    batch_size: int | None = None,
    prefix: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> list[np.ndarray]:
    """Sample sketches from the decoder (sec. 3.2, Eq. 8) and return them as stroke-3 in data
    units. ``z`` (B, N_z) or ``None`` (decoder-only model, or a prior draw by the model).
    ``prefix`` (B, P, 5) stroke-5 rows are teacher-forced first and included in the result; the
    model then samples ``N_max − P`` steps at most."""
    tau = _check_temperature(temperature)
    num_prefix = 0 if prefix is None else prefix.shape[1]
    steps = model.config.max_length - num_prefix
    with _eval_mode(model):
        rows = model.sample(
            z, steps, temperature=tau, prefix=prefix, batch_size=batch_size, generator=generator
        )
    if prefix is not None:
        rows = torch.cat([prefix.to(rows), rows], 1)
    scale = output_scale(model)
    return [_to_data_units(to_stroke3(r, start_token=False), scale) for r in rows.cpu()]


def encode(
    model: nn.Module, guide: nn.Module, sketches: Sequence[np.ndarray]
) -> tuple[Tensor, Tensor]:
    """``(μ, σ)`` (B, N_z) of the encoder's ``q(z | S)`` (Eqs. 1–2) for stroke-3 sketches in
    model units (padded with :func:`tasks.data.strokes.pad_batch`)."""
    _require_conditional(model, "encode")
    checked = _check_sketches(model, sketches, "sketches")
    x5, lengths = pad_batch(checked, model.config.max_length)
    device = _device(model)
    with _eval_mode(model, guide):
        return guide.encode(x5.to(device), lengths.to(device))


# ----------------------------------------------------------------------------- tasks


def reconstruct(
    model: nn.Module,
    guide: nn.Module,
    x5: Tensor,
    lengths: Tensor,
    temperatures: Sequence[float],
    *,
    generator: torch.Generator | None = None,
    use_mean: bool = True,
) -> dict[float, list[np.ndarray]]:
    """Conditional reconstructions (sec. 4.1, Fig. 5): ``{τ: [sketch per input]}``.

    ``x5`` (B, N_max + 1, 5) and ``lengths`` (B,) as from :func:`tasks.data.strokes.pad_batch`.
    ``z = μ`` of the encoder (Eq. 2; see the module doc), or ``z = μ + σ ε`` with
    ``use_mean=False``; the same ``z`` is decoded at every τ (Eq. 8).
    """
    _require_conditional(model, "reconstruct")
    taus = [_check_temperature(t, "temperatures") for t in temperatures]
    if not taus:
        raise ValueError("reconstruct: expected at least one temperature, found none")
    device = _device(model)
    with _eval_mode(model, guide):
        mu, sigma = guide.encode(x5.to(device), lengths.to(device))
    z = mu
    if not use_mean:
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(device)
        z = mu + sigma * eps
    return {tau: decode(model, z, tau, generator=generator) for tau in taus}


def slerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """Spherical linear interpolation (Shoemake 1985; White 2016, the paper's ref. [24], sec. 4.2):

        Ω = ∠(z0, z1),
        slerp(z0, z1; t) = sin((1 − t) Ω)/sin Ω · z0 + sin(t Ω)/sin Ω · z1.

    ``z0``, ``z1`` (..., D) and ``t`` (a float or a tensor broadcasting with the leading dims)
    broadcast together; ``t = 0`` gives ``z0`` and ``t = 1`` gives ``z1``. Between vectors of
    equal norm the norm is kept (the path stays on the sphere, where most Gaussian mass lies).
    The angle is computed as ``Ω = 2 atan2(|â − b̂|, |â + b̂|)`` of the unit vectors (accurate for
    all angles, unlike ``arccos`` of the cosine near 0 and π). When ``sin Ω < √ε`` of the dtype
    (parallel or opposite vectors, where slerp is degenerate or undefined) or a vector is zero,
    the linear interpolation ``(1 − t) z0 + t z1`` is used.
    """
    z0, z1 = torch.broadcast_tensors(z0, z1)
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).unsqueeze(-1)
    finfo = torch.finfo(z0.dtype)
    n0 = z0.norm(dim=-1, keepdim=True)
    n1 = z1.norm(dim=-1, keepdim=True)
    u0, u1 = z0 / n0.clamp_min(finfo.tiny), z1 / n1.clamp_min(finfo.tiny)
    omega = 2 * torch.atan2(
        (u0 - u1).norm(dim=-1, keepdim=True), (u0 + u1).norm(dim=-1, keepdim=True)
    )
    sin = torch.sin(omega)
    ok = (sin > math.sqrt(finfo.eps)) & (n0 > 0) & (n1 > 0)
    safe = torch.where(ok, sin, torch.ones_like(sin))
    spherical = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / safe
    linear = (1 - t) * z0 + t * z1
    return torch.where(ok, spherical, linear)


def interpolate(
    model: nn.Module,
    guide: nn.Module,
    a: np.ndarray,
    b: np.ndarray,
    num_steps: int,
    *,
    temperature: float = INTERPOLATION_TEMPERATURE,
    generator: torch.Generator | None = None,
) -> list[np.ndarray]:
    """Latent interpolation (sec. 4.2): decode ``slerp(μ_a, μ_b, t)`` for ``num_steps`` evenly
    spaced ``t`` in ``[0, 1]`` (both ends included) at ``temperature``. ``a``, ``b`` stroke-3 in
    model units."""
    _require_conditional(model, "interpolate")
    if num_steps < 2:
        raise ValueError(f"interpolate: num_steps must be >= 2, found {num_steps}")
    mu, _ = encode(model, guide, [a, b])
    t = torch.linspace(0.0, 1.0, num_steps, dtype=mu.dtype, device=mu.device)
    z = slerp(mu[0], mu[1], t)  # (num_steps, N_z)
    return decode(model, z, temperature, generator=generator)


def interpolate_grid(
    model: nn.Module,
    guide: nn.Module,
    corners: Sequence[np.ndarray],
    rows: int,
    cols: int,
    *,
    temperature: float = INTERPOLATION_TEMPERATURE,
    generator: torch.Generator | None = None,
) -> list[list[np.ndarray]]:
    """Four-way latent interpolation (appendix sec. 5, Figs. 6–8): ``corners`` = (top-left,
    top-right, bottom-left, bottom-right) sketches; cell ``(r, c)`` decodes
    ``slerp(slerp(z_tl, z_tr, v), slerp(z_bl, z_br, v), u)`` with ``u = r/(rows−1)``,
    ``v = c/(cols−1)`` (``z`` = encoder means). The corner cells are reconstructions."""
    _require_conditional(model, "interpolate_grid")
    if len(corners) != 4:
        raise ValueError(f"interpolate_grid: expected 4 corner sketches, found {len(corners)}")
    if rows < 2 or cols < 2:
        raise ValueError(f"interpolate_grid: rows and cols must be >= 2, found {rows}, {cols}")
    mu, _ = encode(model, guide, corners)
    u = torch.linspace(0.0, 1.0, rows, dtype=mu.dtype, device=mu.device)
    v = torch.linspace(0.0, 1.0, cols, dtype=mu.dtype, device=mu.device)
    top = slerp(mu[0], mu[1], v)  # (cols, N_z)
    bottom = slerp(mu[2], mu[3], v)
    z = slerp(top, bottom, u.unsqueeze(-1))  # (rows, cols, N_z)
    flat = decode(model, z.reshape(rows * cols, -1), temperature, generator=generator)
    return [flat[r * cols : (r + 1) * cols] for r in range(rows)]


def analogy(
    model: nn.Module,
    guide: nn.Module,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    *,
    num_samples: int = 1,
    temperature: float = INTERPOLATION_TEMPERATURE,
    generator: torch.Generator | None = None,
) -> list[np.ndarray]:
    """Sketch drawing analogy (sec. 4.3): decode ``z_c + (z_b − z_a)`` (encoder means),
    "a is to b as c is to ?" — e.g. a = pig head, b = full pig, c = cat head → a full cat.
    Returns ``num_samples`` decodings at ``temperature``."""
    _require_conditional(model, "analogy")
    if num_samples < 1:
        raise ValueError(f"analogy: num_samples must be >= 1, found {num_samples}")
    mu, _ = encode(model, guide, [a, b, c])
    z = (mu[2] + mu[1] - mu[0]).expand(num_samples, -1)
    return decode(model, z, temperature, generator=generator)


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
    _require_conditional(model, "prefix_posterior")
    if num_samples < 1 or num_particles < 1:
        raise ValueError(
            f"prefix_posterior: num_samples and num_particles must be >= 1, found "
            f"{num_samples}, {num_particles}"
        )
    checked = _check_sketches(model, [prefix], "prefix")[0]
    device = _device(model)
    mu, sigma = encode(model, guide, [checked])
    eps = torch.randn((num_particles, mu.shape[-1]), generator=generator, dtype=mu.dtype)
    z = mu + sigma * eps.to(device)
    rows = _prefix_rows(checked).to(device=device, dtype=mu.dtype)
    start = torch.tensor(START_TOKEN, dtype=mu.dtype, device=device)
    inputs = torch.cat([start[None], rows[:-1]], 0).expand(num_particles, -1, -1)
    targets = rows.expand(num_particles, -1, -1)
    lengths = torch.full((num_particles,), len(checked), dtype=torch.int64, device=device)
    with _eval_mode(model, guide):
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
    checked = _check_sketches(model, [prefix], "prefix")[0]
    if len(checked) >= model.config.max_length:
        raise ValueError(
            f"complete: the prefix has {len(checked)} points; it must be shorter than N_max = "
            f"{model.config.max_length} to leave room for an ending"
        )
    device = _device(model)
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
        z = torch.randn((n, model.config.z_dim), generator=generator).to(_device(model))
    return decode(model, z, temperature, batch_size=n, generator=generator)


# ----------------------------------------------------------------------------- pictures


def _save_both(save: Callable[..., Path], stem: Path, *args: Any, **kwargs: Any) -> list[Path]:
    """Write a figure as ``<stem>.png`` and ``<stem>.svg``."""
    return [save(stem.with_name(stem.name + ext), *args, **kwargs) for ext in (".png", ".svg")]


def _data_units(data: StrokeData, index: int) -> np.ndarray:
    return _to_data_units(data.sequences[index], data.scale_factor)


def _check_data(model: nn.Module, data: StrokeData) -> None:
    factor = model.config.scale_factor
    if factor is not None and not math.isclose(factor, data.scale_factor, rel_tol=1e-5):
        raise ValueError(
            f"data {data.name}/{data.split}: scale_factor {data.scale_factor} differs from the "
            f"model's config.scale_factor {factor}; load the data with "
            "scale_factor=model.config.scale_factor"
        )
    too_long = [i for i, s in enumerate(data.sequences) if len(s) > model.config.max_length]
    if too_long:
        raise ValueError(
            f"data {data.name}/{data.split}: sequence {too_long[0]} is longer than N_max = "
            f"{model.config.max_length}; load the data with max_length=model.config.max_length"
        )


def _pick(data: StrokeData, num: int, seed: int, tag: str) -> list[int]:
    """``num`` distinct example indices (fewer if the split is smaller), fixed by the seed."""
    rng = np.random.default_rng(derive_seed("sketch_tasks", tag, seed))
    return [int(i) for i in rng.permutation(len(data))[:num]]


def _temperature_colors(taus: Sequence[float], cols: int) -> list[list[str]]:
    """Row colours from blue (lowest τ) to red (highest), as the paper's Fig. 3."""
    cmap = colormaps["coolwarm"]
    n = len(taus)
    return [[to_hex(cmap(0.05 + 0.9 * (k / (n - 1) if n > 1 else 0.0)))] * cols for k in range(n)]


def reconstruction_figure(
    model: nn.Module,
    guide: nn.Module,
    data: StrokeData,
    indices: Sequence[int],
    temperatures: Sequence[float],
    stem: Path,
    *,
    generator: torch.Generator | None = None,
) -> list[Path]:
    """Inputs and their reconstructions at each τ (sec. 4.1, Fig. 5) as PNG + SVG."""
    x5, lengths = pad_batch([data.sequences[i] for i in indices], model.config.max_length)
    recs = reconstruct(model, guide, x5, lengths, temperatures, generator=generator)
    inputs = [_data_units(data, i) for i in indices]
    labels = [f"#{i}" for i in indices]
    return _save_both(save_temperature_figure, stem, inputs, recs, row_labels=labels)


def interpolation_figure(
    model: nn.Module,
    guide: nn.Module,
    data: StrokeData,
    pairs: Sequence[tuple[int, int]],
    num_steps: int,
    stem: Path,
    *,
    temperature: float = INTERPOLATION_TEMPERATURE,
    generator: torch.Generator | None = None,
) -> list[Path]:
    """One row of interpolated decodings per pair of inputs (sec. 4.2, Fig. 6 left)."""
    rows = [
        interpolate(
            model,
            guide,
            data.sequences[a],
            data.sequences[b],
            num_steps,
            temperature=temperature,
            generator=generator,
        )
        for a, b in pairs
    ]
    inputs = [(_data_units(data, a), _data_units(data, b)) for a, b in pairs]
    ts = np.linspace(0.0, 1.0, num_steps).tolist()
    return _save_both(
        save_interpolation_figure,
        stem,
        rows,
        t_values=ts,
        inputs=inputs,
        row_labels=[f"#{a}→#{b}" for a, b in pairs],
        title=f"slerp between encodings, τ={temperature:g}",
    )


def interpolation_grid_figure(
    model: nn.Module,
    guide: nn.Module,
    data: StrokeData,
    corners: Sequence[int],
    size: int,
    stem: Path,
    *,
    temperature: float = INTERPOLATION_TEMPERATURE,
    generator: torch.Generator | None = None,
) -> list[Path]:
    """The four-way interpolation grid (appendix Figs. 6–8) and, beside it, the corner inputs."""
    grid = interpolate_grid(
        model,
        guide,
        [data.sequences[i] for i in corners],
        size,
        size,
        temperature=temperature,
        generator=generator,
    )
    paths = _save_both(save_four_way_interpolation, stem, grid)
    inputs = [[_data_units(data, corners[0]), _data_units(data, corners[1])]]
    inputs.append([_data_units(data, corners[2]), _data_units(data, corners[3])])
    paths += _save_both(
        save_sketch_grid,
        stem.with_name(stem.name + "_inputs"),
        inputs,
        title="corner inputs",
    )
    return paths


def completion_figure(
    model: nn.Module,
    guide: nn.Module | None,
    data: StrokeData,
    indices: Sequence[int],
    num_completions: int,
    stem: Path,
    *,
    prefix_points: int | None = None,
    temperature: float = COMPLETION_TEMPERATURE,
    z_mode: str = "posterior",
    generator: torch.Generator | None = None,
) -> list[Path]:
    """Incomplete sketches (red) and ``num_completions`` predicted endings each (sec. 4.4,
    Fig. 7): one row per sketch, first column the given part alone, then the full original."""
    grid, prefix_len = [], []
    for i in indices:
        prefix = incomplete_sketch(data.sequences[i], prefix_points)
        endings = complete(
            model, guide, prefix, num_completions, temperature, z_mode=z_mode, generator=generator
        )
        scale = output_scale(model)
        grid.append([_to_data_units(prefix, scale), _data_units(data, i), *endings])
        prefix_len.append([len(prefix), len(prefix), *[len(prefix)] * num_completions])
    labels = ["given", "original", *(f"ending {k + 1}" for k in range(num_completions))]
    z_text = f", z: {z_mode}" if model.config.conditional else ""
    return _save_both(
        save_sketch_grid,
        stem,
        grid,
        col_labels=labels,
        row_labels=[f"#{i}" for i in indices],
        prefix_points=prefix_len,
        title=f"predicted endings (red: given), τ={temperature:g}{z_text}",
    )


def samples_figure(
    model: nn.Module,
    num_samples: int,
    temperatures: Sequence[float],
    stem: Path,
    *,
    generator: torch.Generator | None = None,
) -> list[Path]:
    """Unconditional samples, one row per τ coloured blue → red (sec. 3.3, Fig. 3)."""
    rows = [unconditional_samples(model, num_samples, t, generator=generator) for t in temperatures]
    source = "z ~ N(0, I)" if model.config.conditional else "decoder only"
    return _save_both(
        save_sketch_grid,
        stem,
        rows,
        row_labels=[f"τ={t:g}" for t in temperatures],
        colors=_temperature_colors(temperatures, num_samples),
        title=f"unconditional samples ({source})",
    )


def write_sketch_pictures(
    model: nn.Module,
    guide: nn.Module | None,
    out_dir: str | Path,
    data: StrokeData,
    *,
    temperatures: Sequence[float] = (0.1, 0.5, 1.0),
    seed: int = 0,
    num_examples: int = 6,
    interp_steps: int = 8,
    grid_size: int = 5,
    num_samples: int = 8,
    num_completions: int = 4,
) -> list[Path]:
    """The standard sketch-rnn pictures after training, each as PNG and SVG in ``out_dir``:

    * ``reconstructions`` — ``num_examples`` inputs of ``data`` and their reconstructions at each
      of ``temperatures`` (sec. 4.1), conditional model only;
    * ``interpolation`` — 3 pairs, ``interp_steps`` slerp steps at τ = 0.1 (sec. 4.2), and
      ``interpolation_grid`` (+ ``_inputs``) — ``grid_size`` × ``grid_size`` between 4 inputs
      (appendix sec. 5), conditional model only;
    * ``completions`` — 4 incomplete sketches (first half, whole strokes) with
      ``num_completions`` endings at τ = 0.8 (sec. 4.4);
    * ``samples`` — ``num_samples`` unconditional samples per τ in ``temperatures`` (sec. 3.3).

    ``data`` must be normalised with the model's scale factor (model units) and hold sketches of
    at most ``N_max`` points. Examples are a fixed random choice given ``seed``.
    """
    _check_data(model, data)
    out = Path(out_dir)
    generator = torch.Generator().manual_seed(seed)
    taus = [_check_temperature(t, "temperatures") for t in temperatures]
    paths: list[Path] = []
    if model.config.conditional:
        if guide is None:
            raise ValueError("write_sketch_pictures: the conditional model needs its guide")
        idx = _pick(data, num_examples, seed, "reconstructions")
        paths += reconstruction_figure(
            model, guide, data, idx, taus, out / "reconstructions", generator=generator
        )
        if len(data) >= 2:
            pick = _pick(data, 6, seed, "interpolation")
            pairs = [(pick[k], pick[(k + 1) % len(pick)]) for k in range(0, len(pick), 2)]
            pairs = pairs[: max(1, len(pick) // 2)]
            paths += interpolation_figure(
                model, guide, data, pairs, interp_steps, out / "interpolation", generator=generator
            )
            corners = _pick(data, 4, seed, "interpolation_grid")
            corners = [corners[k % len(corners)] for k in range(4)]
            paths += interpolation_grid_figure(
                model,
                guide,
                data,
                corners,
                grid_size,
                out / "interpolation_grid",
                generator=generator,
            )
    idx = _pick(data, 4, seed, "completions")
    paths += completion_figure(
        model, guide, data, idx, num_completions, out / "completions", generator=generator
    )
    paths += samples_figure(model, num_samples, taus, out / "samples", generator=generator)
    return paths


def write_training_pictures(
    model: nn.Module, guide: nn.Module | None, data: StrokeData, out: str | Path, *, seed: int = 0
) -> list[Path]:
    """The hook :mod:`tasks.sketch_rnn` calls after training: :func:`write_sketch_pictures` of
    the test split ``data`` into ``<out>/pictures``."""
    return write_sketch_pictures(model, guide, Path(out) / "pictures", data, seed=seed)


# ----------------------------------------------------------------------------- CLI


def _load_for_command(args: argparse.Namespace):
    """Model, guide, checkpoint and the requested split in the model's units."""
    from tasks.models import load_trained

    model, guide, ckpt = load_trained(args.checkpoint, device=getattr(args, "device", "cpu"))
    config = model.config
    info = ckpt.get("data") or {}
    dataset = getattr(args, "dataset", None) or info.get("dataset")
    if dataset is None:
        raise ValueError(f"{args.checkpoint}: the checkpoint records no dataset; pass --dataset")
    if isinstance(dataset, str) and "+" in dataset:
        dataset = dataset.split("+")  # StrokeData.name of concatenated npz datasets
    # the training categories (QuickDraw) unless another dataset is asked for
    classes = info.get("classes") if getattr(args, "dataset", None) is None else None
    data = load_strokes(
        dataset,
        getattr(args, "split", None) or "test",
        data_dir=getattr(args, "data_dir", None),
        download=bool(getattr(args, "download", False)),
        max_length=config.max_length,
        scale_factor=config.scale_factor,
        classes=classes,
    )
    return model, guide, ckpt, data


def _out_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "out", None):
        return Path(args.out)
    return Path(args.checkpoint).parent / "pictures"


def _temperatures(args: argparse.Namespace, default: Sequence[float]) -> list[float]:
    taus = getattr(args, "temperature", None)
    values = list(default) if not taus else [float(t) for t in taus]
    return [_check_temperature(t, "--temperature") for t in values]


def _indices(args: argparse.Namespace, data: StrokeData, num: int, tag: str) -> list[int]:
    chosen = getattr(args, "sketch_indices", None)
    if chosen:
        for i in chosen:
            if not 0 <= i < len(data):
                raise ValueError(
                    f"--sketch-indices: {i} is out of range for {data.name}/{data.split} with "
                    f"{len(data)} sketches"
                )
        return list(chosen)
    return _pick(data, num, getattr(args, "seed", 0), tag)


def _count(args: argparse.Namespace, name: str, default: int) -> int:
    value = getattr(args, name, None)
    value = default if value is None else int(value)
    if value < 1:
        raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, found {value}")
    return value


def _report(paths: Sequence[Path]) -> None:
    for p in paths:
        print(f"wrote {p}")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    """``pyro-draw reconstruct CHECKPOINT``: inputs and reconstructions at each ``--temperature``
    (default 0.01 0.25 0.5 0.75 1.0, the paper's range, sec. 4.1)."""
    model, guide, _, data = _load_for_command(args)
    generator = torch.Generator().manual_seed(getattr(args, "seed", 0))
    idx = _indices(args, data, _count(args, "num_examples", 8), "reconstructions")
    taus = _temperatures(args, RECONSTRUCTION_TEMPERATURES)
    _report(
        reconstruction_figure(
            model, guide, data, idx, taus, _out_dir(args) / "reconstructions", generator=generator
        )
    )


def cmd_interpolate(args: argparse.Namespace) -> None:
    """``pyro-draw interpolate CHECKPOINT``: slerp rows between pairs of sketches, a four-way
    grid and, with ``--analogy-indices A B C``, the analogy ``z_C + z_B − z_A`` (sec. 4.2–4.3).
    One set of figures per ``--temperature`` (default 0.1, appendix sec. 5)."""
    model, guide, _, data = _load_for_command(args)
    seed = getattr(args, "seed", 0)
    generator = torch.Generator().manual_seed(seed)
    steps = getattr(args, "interp_steps", None) or 8
    grid = getattr(args, "interp_grid_size", None) or 5
    if steps < 2 or grid < 2:
        raise ValueError(
            f"--interp-steps and --interp-grid-size must be >= 2, found {steps}, {grid}"
        )
    if len(data) < 2:
        raise DataError(f"{data.name}/{data.split}: interpolation needs at least 2 sketches")
    num_pairs = _count(args, "num_examples", 3)
    idx = _indices(args, data, 2 * num_pairs, "interpolation")
    if len(idx) % 2:
        idx = idx + idx[:1]
    pairs = [(idx[k], idx[k + 1]) for k in range(0, len(idx), 2)]
    corners = idx[:4] if len(idx) >= 4 else _pick(data, 4, seed, "interpolation_grid")
    corners = [corners[k % len(corners)] for k in range(4)]
    out = _out_dir(args)
    paths: list[Path] = []
    for tau in _temperatures(args, (INTERPOLATION_TEMPERATURE,)):
        tag = f"_tau{tau:g}"
        paths += interpolation_figure(
            model,
            guide,
            data,
            pairs,
            steps,
            out / f"interpolation{tag}",
            temperature=tau,
            generator=generator,
        )
        paths += interpolation_grid_figure(
            model,
            guide,
            data,
            corners,
            grid,
            out / f"interpolation_grid{tag}",
            temperature=tau,
            generator=generator,
        )
        trio = getattr(args, "analogy_indices", None)
        if trio:
            for i in trio:
                if not 0 <= i < len(data):
                    raise ValueError(f"--analogy-indices: {i} out of range (0 … {len(data) - 1})")
            a, b, c = (data.sequences[i] for i in trio)
            results = analogy(
                model,
                guide,
                a,
                b,
                c,
                num_samples=_count(args, "num_samples", 4),
                temperature=tau,
                generator=generator,
            )
            row = [*(_data_units(data, i) for i in trio), *results]
            labels = ["a", "b", "c", *(f"c+b−a ({k + 1})" for k in range(len(results)))]
            paths += _save_both(
                save_sketch_grid,
                out / f"analogy{tag}",
                [row],
                col_labels=labels,
                title=f"analogy #{trio[0]} : #{trio[1]} :: #{trio[2]} : ?, τ={tau:g}",
            )
    _report(paths)


def cmd_complete(args: argparse.Namespace) -> None:
    """``pyro-draw complete CHECKPOINT``: incomplete sketches (the first ``--prefix-points``
    points, default half, cut at a stroke end) and ``--num-samples`` endings each, per
    ``--temperature`` (default 0.8, sec. 4.4)."""
    model, guide, _, data = _load_for_command(args)
    generator = torch.Generator().manual_seed(getattr(args, "seed", 0))
    idx = _indices(args, data, _count(args, "num_examples", 4), "completions")
    num = _count(args, "num_samples", 5)
    z_mode = getattr(args, "completion_z", None) or "posterior"
    prefix_points = getattr(args, "prefix_points", None)
    paths: list[Path] = []
    for tau in _temperatures(args, (COMPLETION_TEMPERATURE,)):
        paths += completion_figure(
            model,
            guide,
            data,
            idx,
            num,
            _out_dir(args) / f"completions_tau{tau:g}",
            prefix_points=prefix_points,
            temperature=tau,
            z_mode=z_mode,
            generator=generator,
        )
    _report(paths)


def cmd_sample(args: argparse.Namespace) -> None:
    """``pyro-draw sample CHECKPOINT``: ``--num-samples`` unconditional sketches per
    ``--temperature`` row (default 0.2 0.5 0.9; sec. 3.3, Fig. 3). Needs no data."""
    from tasks.models import load_trained

    model, _, _ = load_trained(args.checkpoint, device=getattr(args, "device", "cpu"))
    generator = torch.Generator().manual_seed(getattr(args, "seed", 0))
    num = _count(args, "num_samples", 10)
    taus = _temperatures(args, SAMPLE_TEMPERATURES)
    _report(samples_figure(model, num, taus, _out_dir(args) / "samples", generator=generator))


def _add_index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sketch-indices",
        type=int,
        nargs="+",
        default=None,
        metavar="I",
        help="sketch-rnn: use these sketches of the split (default: a random choice by --seed)",
    )


def _extra_interpolate(p: argparse.ArgumentParser) -> None:
    _add_index_option(p)
    p.add_argument("--interp-steps", type=int, default=8, help="sketch-rnn: points per slerp row")
    p.add_argument(
        "--interp-grid-size", type=int, default=5, help="sketch-rnn: side of the four-way grid"
    )
    p.add_argument(
        "--analogy-indices",
        type=int,
        nargs=3,
        default=None,
        metavar=("A", "B", "C"),
        help="sketch-rnn: also draw the analogy z_C + z_B - z_A (A : B :: C : ?)",
    )


def _extra_complete(p: argparse.ArgumentParser) -> None:
    _add_index_option(p)
    p.add_argument(
        "--prefix-points",
        type=int,
        default=None,
        help="sketch-rnn: given points of each sketch (cut back to a stroke end; default half)",
    )
    p.add_argument(
        "--completion-z",
        choices=Z_MODES,
        default="posterior",
        help="sketch-rnn (conditional): z for the endings: posterior given the partial sketch "
        "(importance resampling), encoder mean of the partial sketch, or prior",
    )


#: command → {registry model name → handler} (see :mod:`tasks.cli_common`).
CHECKPOINT_COMMANDS: dict[str, dict[str, Callable[[argparse.Namespace], None]]] = {
    "reconstruct": {"sketch-rnn": cmd_reconstruct},
    "interpolate": {"sketch-rnn": cmd_interpolate},
    "complete": {"sketch-rnn": cmd_complete, "sketch-rnn-decoder": cmd_complete},
    "sample": {"sketch-rnn": cmd_sample, "sketch-rnn-decoder": cmd_sample},
}

#: command → adds the sketch-rnn specific options to the generic parser.
EXTRA_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "reconstruct": _add_index_option,
    "interpolate": _extra_interpolate,
    "complete": _extra_complete,
}
