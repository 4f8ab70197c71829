"""The latent-space tasks of sketch-rnn (Ha & Eck 2017, sec. 4.1–4.3, appendix sec. 5).

Units and modes as in :mod:`tasks.sketch_rnn.sampling`. The choices made where the paper leaves
them open:

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from tasks.sketch_rnn.sampling import (
    INTERPOLATION_TEMPERATURE,
    check_temperature,
    decode,
    encode,
    eval_mode,
    model_device,
    require_conditional,
)

__all__ = ["analogy", "interpolate", "interpolate_grid", "reconstruct", "slerp"]


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

    ``x5`` (B, N_max + 1, 5) and ``lengths`` (B,) as from
    :func:`tasks.data.stroke_formats.pad_batch`. ``z = μ`` of the encoder (Eq. 2; see the
    module doc), or ``z = μ + σ ε`` with ``use_mean=False``; the same ``z`` is decoded at every
    τ (Eq. 8).
    """
    require_conditional(model, "reconstruct")
    taus = [check_temperature(t, "temperatures") for t in temperatures]
    if not taus:
        raise ValueError("reconstruct: expected at least one temperature, found none")
    device = model_device(model)
    with eval_mode(model, guide):
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
    require_conditional(model, "interpolate")
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
    require_conditional(model, "interpolate_grid")
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
    require_conditional(model, "analogy")
    if num_samples < 1:
        raise ValueError(f"analogy: num_samples must be >= 1, found {num_samples}")
    mu, _ = encode(model, guide, [a, b, c])
    z = (mu[2] + mu[1] - mu[0]).expand(num_samples, -1)
    return decode(model, z, temperature, generator=generator)
