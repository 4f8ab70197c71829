"""DooD's token model for one-shot scoring (Liang et al. 2022, appendix B.3) and the fit of
tokens to images (Eq. 19's max), batched over elements; the settings are
:class:`TypeTokenSettings` (what is the paper's and what the official code's:
:mod:`tasks.one_shot.type_token`).

The pieces every family's token model shares live here too: the bounded per-character affine
(:func:`token_affine`, sampled at ``"affine"`` by :func:`sample_affine`, applied to points by
:func:`apply_affine` or to a rendered canvas by :func:`warp_canvas`), the per-part scale of the
noise term (:func:`part_scale`), the Adam loop of the max over tokens (:func:`maximise_tokens`)
and the aggregation of Eq. 19 (:func:`aggregate_scores`, :func:`two_way_scores`). AIR's token
model is :mod:`tasks.one_shot.air_tokens`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
import torch.nn.functional as F
from pyro.poutine.util import prune_subsample_sites
from torch import Tensor

from generative.bezier import compose_canvas, render_strokes

__all__ = [
    "AFFINE_PRIORS",
    "AFFINE_SIZE",
    "MOTOR_REDUCTIONS",
    "OFFICIAL_CODE",
    "TOKEN_SCORES",
    "TYPE_SELECTIONS",
    "TYPE_WEIGHTS",
    "Likelihood",
    "TokenFit",
    "TokenTypes",
    "TypeTokenSettings",
    "aggregate_scores",
    "apply_affine",
    "fit_tokens",
    "log_density",
    "maximise_tokens",
    "part_scale",
    "render_tokens",
    "sample_affine",
    "token_affine",
    "token_model",
    "two_way_scores",
    "warp_canvas",
]

#: ``likelihood(canvas (B, 1, H, W)) -> distribution`` with batch shape ``(B,)`` over images
Likelihood = Callable[[Tensor], dist.Distribution]
AFFINE_SIZE = 7  # (shift x, y; scale x, y; rotation; shear x, y), the official "7" layout
TYPE_SELECTIONS = ("sample", "best-of")
TYPE_WEIGHTS = ("importance", "joint")
MOTOR_REDUCTIONS = ("mean", "sum")
AFFINE_PRIORS = ("normal", "flat")
TOKEN_SCORES = ("best", "final")


@dataclass(frozen=True)
class TypeTokenSettings:
    """The choices of type-token scoring (module docstring); defaults are the paper's reading
    where it gives one and the official code's values where it is silent."""

    type_samples: int = 12  # K types per image (official: 4 rounds × 3)
    type_selection: str = "sample"  # paper; "best-of": official
    type_candidates: int = 20  # guide samples per type for "best-of" (official 20)
    type_weights: str = "importance"  # our reading of Eqs. 18–20; "joint": Eq. 20 as printed
    type_rows: int = 1024  # guide rows per pass of type inference (memory bound)
    motor_noise: float = 2e-3  # σ_m in [−1, 1] units (paper/code: 1e-3 on [0, 1])
    motor_reduction: str = "mean"  # official; "sum": the density (also AIR's parts)
    what_noise: float = 0.1  # AIR: σ of the token's z_what around the type's (prior N(0, I))
    affine_prior: str = "normal"  # ours; "flat": official (no term)
    affine_shift: float = 0.2
    affine_scale: tuple[float, float] = (0.6, 1.4)  # official; appendix B.3: (0.8, 1.2)
    affine_rotation: float = 0.25 * math.pi
    affine_shear: float = 0.3 * math.pi  # official; appendix B.3: 0.25π
    rotation_in_degrees: bool = False  # True: the official deg2rad of a radian range
    token_steps: int = 100  # Adam steps of max_z (official 100)
    token_lr: float = 1e-2  # official
    token_chunk: int = 256  # triples per optimised batch (memory bound)
    token_score: str = "best"  # running max; "final": official
    two_way: bool = False  # paper's Table 1 (one-way); official default: two-way

    def __post_init__(self) -> None:
        for name in ("type_samples", "type_candidates", "type_rows", "token_chunk"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"type-token: {name} must be >= 1, found {getattr(self, name)}")
        if self.token_steps < 0:
            raise ValueError(f"type-token: token_steps must be >= 0, found {self.token_steps}")
        for name in ("motor_noise", "what_noise", "token_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"type-token: {name} must be > 0, found {getattr(self, name)}")
        for name, allowed in (
            ("type_selection", TYPE_SELECTIONS),
            ("type_weights", TYPE_WEIGHTS),
            ("motor_reduction", MOTOR_REDUCTIONS),
            ("affine_prior", AFFINE_PRIORS),
            ("token_score", TOKEN_SCORES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"type-token: {name} must be one of {', '.join(allowed)}, "
                    f"found {getattr(self, name)!r}"
                )
        low, high = (float(v) for v in self.affine_scale)
        if not 0 < low < high:
            raise ValueError(f"type-token: affine_scale must be 0 < low < high, found {low, high}")
        object.__setattr__(self, "affine_scale", (low, high))
        for name in ("affine_shift", "affine_rotation", "affine_shear"):
            if getattr(self, name) < 0:
                raise ValueError(f"type-token: {name} must be >= 0, found {getattr(self, name)}")

    @property
    def draws_per_type(self) -> int:
        """Guide samples drawn per type: ``type_candidates`` for best-of, else 1."""
        return self.type_candidates if self.type_selection == "best-of" else 1

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["affine_scale"] = list(self.affine_scale)
        return out


#: The official code's choices (``src/dood/classify.py``, ``optimize_and_score`` with
#: ``n_parse_per_ite=3, run_per_eps=4``), to pass as ``TypeTokenSettings(**OFFICIAL_CODE)``; its
#: default ``two_way_clf=True`` is left out (the paper's 73.5% is one-way).
OFFICIAL_CODE: dict[str, Any] = dict(
    type_samples=12,
    type_selection="best-of",
    type_candidates=20,
    type_weights="joint",
    motor_reduction="mean",
    affine_prior="flat",
    rotation_in_degrees=True,
    token_score="final",
)


@dataclass(frozen=True)
class TokenTypes:
    """One type per element of a batch (``B`` elements, ``T`` strokes, ``J`` control points)."""

    points: Tensor  # (B, T, J, 2) absolute control points, normalised [−1, 1] (x, y)
    present: Tensor  # (B, T) bool
    sigma: Tensor  # (B, T) renderer blur σ_t (Eq. 11)
    omega0: Tensor  # (B, T) stroke tanh slope ω_t0 (Eq. 13)
    omega1: Tensor  # (B,) canvas tanh temperature ω1 (Eq. 14)


def _is_deterministic(site: dict) -> bool:
    return bool(site["infer"].get("_deterministic", False))


def log_density(trace: poutine.Trace) -> Tensor:
    """``(B,)`` sum of the (masked, scaled) log-densities of the sample sites of ``trace``
    (``pyro.deterministic`` sites and plates left out), in float64."""
    trace = prune_subsample_sites(trace)
    trace.compute_log_prob(lambda name, site: not _is_deterministic(site))
    total: Tensor | float = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample" and not _is_deterministic(site):
            total = total + site["log_prob"].to(torch.float64)
    if not isinstance(total, Tensor):
        raise ValueError("type-token: the trace has no sample sites")
    return total


# ----------------------------------------------------------------------------- token model
def token_affine(raw: Tensor, settings: TypeTokenSettings) -> Tensor:
    """``(..., 2, 3)`` affine ``[Sh R(θ) diag(scale) | shift]`` from unconstrained
    ``raw (..., 7)`` = (shift x, y; scale x, y; rotation; shear x, y), each mapped into its range
    by ``low + (high − low) · sigmoid`` (official ``util.constrain_parameter``)."""
    if raw.shape[-1] != AFFINE_SIZE:
        raise ValueError(f"token_affine: raw must be (..., {AFFINE_SIZE}), found {raw.shape}")
    s = settings

    def bound(part: Tensor, low: float, high: float) -> Tensor:
        return low + (high - low) * torch.sigmoid(part)

    shift = bound(raw[..., 0:2], -s.affine_shift, s.affine_shift)
    scale = bound(raw[..., 2:4], *s.affine_scale)
    theta = bound(raw[..., 4], -s.affine_rotation, s.affine_rotation)
    if s.rotation_in_degrees:
        theta = torch.deg2rad(theta)
    shear = bound(raw[..., 5:7], -s.affine_shear, s.affine_shear)
    cos, sin = torch.cos(theta), torch.sin(theta)
    hx, hy = shear.unbind(-1)
    sx, sy = scale.unbind(-1)
    # Sh · R with Sh = [[1 + hx hy, hx], [hy, 1]], then the columns scaled by (sx, sy)
    a = 1.0 + hx * hy
    row0 = torch.stack([(a * cos + hx * sin) * sx, (-a * sin + hx * cos) * sy, shift[..., 0]], -1)
    row1 = torch.stack([(hy * cos + sin) * sx, (-hy * sin + cos) * sy, shift[..., 1]], -1)
    return torch.stack([row0, row1], -2)


def apply_affine(matrix: Tensor, points: Tensor) -> Tensor:
    """``points (B, T, J, 2) ↦ A p + t`` with one ``matrix (B, 2, 3)`` per element."""
    linear, shift = matrix[:, None, :, :2], matrix[:, None, None, :, 2]
    return torch.matmul(points, linear.transpose(-1, -2)) + shift


def warp_canvas(canvas: Tensor, matrix: Tensor) -> Tensor:
    """The rendered ``canvas (B, C, H, W)`` moved by one affine ``matrix (B, 2, 3)`` per element,
    the image counterpart of :func:`apply_affine`: ink drawn at ``p`` appears at ``A p + t``,
    ``out(p') = canvas(A⁻¹ (p' − t))`` (bilinear, zeros outside; the coordinates of
    :mod:`generative.stn`: ``(x, y) ∈ [−1, 1]²``, ``y`` down, ``align_corners=True``, so the
    identity returns the canvas itself)."""
    linear, shift = matrix[..., :2], matrix[..., 2:]
    inverse = torch.linalg.inv(linear)
    back = torch.cat([inverse, -torch.matmul(inverse, shift)], -1).to(canvas.dtype)
    grid = F.affine_grid(back, list(canvas.shape), align_corners=True)
    return F.grid_sample(canvas, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def part_scale(present: Tensor, settings: TypeTokenSettings, like: Tensor) -> Tensor | float:
    """The scale of a token's noise term: ``1 / #present parts`` (``(B,)`` in ``like``'s dtype)
    for ``motor_reduction="mean"`` (official: averaged over strokes), else 1; ``present``
    ``(B, T)``."""
    if settings.motor_reduction == "mean":
        return 1.0 / present.sum(-1).clamp_min(1).to(like.dtype)
    return 1.0


def sample_affine(batch: int, settings: TypeTokenSettings, like: Tensor) -> Tensor:
    """The ``"affine"`` site ``(B, 7)``, unconstrained (:func:`token_affine`): ``N(0, 1)``, or
    masked out for ``affine_prior="flat"``; on ``like``'s device and dtype."""
    prior = dist.Normal(like.new_zeros(batch, AFFINE_SIZE), 1.0).to_event(1)
    if settings.affine_prior == "flat":
        prior = prior.mask(False)
    return pyro.sample("affine", prior)


def token_model(
    types: TokenTypes,
    likelihood: Likelihood,
    settings: TypeTokenSettings,
    size: tuple[int, int],
    num_points: int,
    images: Tensor | None = None,
) -> Tensor:
    """The token model ``p(z | ψ)`` and likelihood ``p(x | z)`` (appendix B.3) as a Pyro program
    over a batch of types; ``images`` ``(B, 1, H, W)`` are observed at ``"x"``.

    Sites (inside ``pyro.plate("tokens", B)``): ``"motor_noise"`` ``(B, T, J, 2)``, the token's
    control points ``N(ψ's points, σ_m)`` (masked to the present strokes; scaled by
    ``1 / #strokes`` for ``motor_reduction="mean"``), ``"affine"`` ``(B, 7)`` unconstrained
    (:func:`token_affine`; ``N(0, 1)``, or masked out for ``affine_prior="flat"``),
    deterministic ``"token_points"`` (the transformed points) and ``"x"``. Returns the
    token's canvas ``(B, 1, H, W)``."""
    batch = types.points.shape[0]
    with pyro.plate("tokens", batch):
        noise = dist.Normal(types.points, settings.motor_noise)
        noise = noise.mask(types.present[..., None, None]).to_event(3)
        with poutine.scale(scale=part_scale(types.present, settings, types.points)):
            noisy = pyro.sample("motor_noise", noise)
        raw = sample_affine(batch, settings, types.points)
        points = apply_affine(token_affine(raw, settings), noisy)
        pyro.deterministic("token_points", points, event_dim=3)
        canvas = render_tokens(points, types, size, num_points)
        pyro.sample("x", likelihood(canvas), obs=images)
    return canvas


def render_tokens(
    points: Tensor, types: TokenTypes, size: tuple[int, int], num_points: int
) -> Tensor:
    """``(B, 1, H, W)`` canvases of token control points ``(B, T, J, 2)`` with the types'
    renderer parameters."""
    strokes = render_strokes(points, types.sigma, types.omega0, *size, num_points)
    return compose_canvas(strokes, types.omega1, types.present).unsqueeze(1)


def maximise_tokens(
    program: Callable[[], Any],
    start: Tensor,
    settings: TypeTokenSettings,
    *,
    site: str,
    keep: str,
) -> tuple[Tensor, Tensor]:
    """``max_z log p(x_b | z) + log p(z | ψ_b)`` for each element ``b`` (Eq. 19's max) of a token
    ``program`` (no arguments; a batch ``B`` of elements with the noise site ``site`` around
    ``start`` ``(B, ...)``, the ``"affine"`` site ``(B, 7)`` and the observed ``"x"``) by Adam on
    the offsets of ``site`` from ``start`` and on the unconstrained affine, from zero offsets and
    ``u = 0``, all elements at once (the loss is the sum over elements, so each gets the
    gradient of its own term). Returns the scores ``(B,)`` (float64; the best seen, or the final
    one for ``token_score="final"``) and the value of the site ``keep`` where they were reached."""
    loc = start.detach()
    offsets = torch.zeros_like(loc, requires_grad=True)
    raw = loc.new_zeros(loc.shape[0], AFFINE_SIZE, requires_grad=True)
    optimizer = torch.optim.Adam([offsets, raw], lr=settings.token_lr)
    best = torch.full((loc.shape[0],), -math.inf, dtype=torch.float64, device=loc.device)
    kept: Tensor | None = None
    steps = settings.token_steps
    for step in range(steps + 1):
        with torch.set_grad_enabled(step < steps):
            data = {site: loc + offsets, "affine": raw}
            trace = poutine.trace(poutine.condition(program, data=data)).get_trace()
            score = log_density(trace)
        with torch.no_grad():
            current = torch.nan_to_num(score.detach(), nan=-math.inf)
            value = trace.nodes[keep]["value"].detach()
            if kept is None:
                kept = value.clone()
            if settings.token_score == "best":
                better = current > best
            else:  # "final": the value after the last step
                better = torch.ones_like(current, dtype=torch.bool)
            best = torch.where(better, current, best)
            kept[better] = value[better]
        if step < steps:
            optimizer.zero_grad(set_to_none=True)
            (-score.sum()).backward()
            optimizer.step()
    assert kept is not None
    return best, kept


def fit_tokens(
    images: Tensor,
    types: TokenTypes,
    likelihood: Likelihood,
    settings: TypeTokenSettings,
    num_points: int,
) -> tuple[Tensor, Tensor]:
    """DooD's tokens fitted to ``images`` (:func:`maximise_tokens` of :func:`token_model`: Adam
    on the motor-noise offsets and the affine). Returns the scores ``(B,)`` and the token
    points ``(B, T, J, 2)`` they were reached at."""
    size = (images.shape[-2], images.shape[-1])
    program = partial(token_model, types, likelihood, settings, size, num_points, images)
    return maximise_tokens(program, types.points, settings, site="motor_noise", keep="token_points")


@dataclass(frozen=True)
class TokenFit:
    """Fitted tokens of every (image, type-image, type) triple."""

    scores: Tensor  # (Q, S, K) float64: max_z log p(x_q | z) + log p(z | ψ_sk)
    # (Q, S, K, ...) the fitted tokens: DooD's control points (T, J, 2), AIR's canvas (1, H, W)
    tokens: Tensor


def aggregate_scores(log_weights: Tensor, fitted: Tensor) -> Tensor:
    """Eq. 19: ``score[q, s] = log Σ_k π_sk exp(fitted[q, s, k])`` with
    ``π_s = softmax(log_weights[s])``; ``log_weights`` ``(S, K)``, ``fitted`` ``(Q, S, K)``."""
    log_pi = torch.log_softmax(log_weights.to(fitted.dtype), -1)
    return torch.logsumexp(log_pi.unsqueeze(0) + fitted, -1)


def two_way_scores(forward: Tensor, backward: Tensor, log_marginal: Tensor) -> Tensor:
    """``log p(x_q | x_s) + log p(x_s | x_q) − log p̂(x_s)`` as ``(Q, S)`` from the one-way
    ``forward`` ``(Q, S)``, ``backward`` ``(S, Q)`` (supports fitted by the queries' types) and
    the supports' ``log_marginal`` ``(S,)`` (official ``optimize_and_score``)."""
    return forward + backward.T - log_marginal.to(forward.dtype).unsqueeze(0)
