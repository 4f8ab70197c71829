"""One-shot classification by DooD's type-token scoring (Liang et al. 2022, sec. 3.2, Eqs. 17–20,
appendices B.3 and D.2.3).

A support image ``x_c`` is parsed by the guide into character *types* ψ (the strokes of a parse);
a query ``x_T`` is scored by how well a *token* of each type explains it::

    log p(x_T | x_c) ≈ log Σ_k π_k max_z p(x_T | z) p(z | ψ_k)                   (Eqs. 17–19)

and assigned the support with the highest score (one-way), or with the two-way score
``log p(x_T | x_c) + log p(x_c | x_T) − log p̂(x_c)`` (the paper's Table 1 "2W", not used for
its 73.5%; the official code's default).

This module is DooD's family (:class:`DooDTokens`) and the run loop (:class:`TypeTokenScorer`),
which takes any family of :func:`type_token_family`: DooD here, AIR / Difference-AIR in
:mod:`tasks.one_shot.air_tokens` (type = the guide's part latents, token = noise on ``z_what``
plus the affine on the rendering). The selection of types, the batched fit and the aggregation
are shared (:mod:`tasks.one_shot.scoring`, :mod:`tasks.one_shot.tokens`).

Types (:func:`infer_types`)
    A type ψ is one guide parse of ``x_c``: the present strokes' *absolute* control points
    ``s̃_t = transform_points(z_what_t, z_where_t)`` (layout folded in), the presence mask and the
    renderer parameters ``(σ_t, ω_t0)`` and ``ω1`` of that parse, read from the model replayed on
    the guide trace with ``record=True`` (sites ``control_points_t``, ``sigma_t``, ``omega0_t``,
    ``z_pres_t``). ``K`` types per image, inferred once per image and reused for every query.

    * ``type_selection="sample"`` (paper, D.2.3: "ψ_k ∼ q(ψ | x_c)"): ``K`` guide samples.
    * ``"best-of"`` (official ``classify.parse`` → ``util.get_top_latents_hiddens`` with
      ``crit="joint"``): each type is the best of ``type_candidates`` (20) guide samples by the
      joint ``log p(x_c, ψ)``; the official code runs 4 rounds of 3 such parses (K = 12).

    Weights ``π_k = softmax_k(log π̃_k)``:

    * ``type_weights="importance"`` (default, our reading of Eqs. 18–20: the K samples stand
      for ``p(ψ | x_c)`` in the integral of Eq. 18, which for ``ψ_k ∼ q`` needs the
      self-normalised importance weights ``π̃_k = p(x_c, ψ_k) / q(ψ_k | x_c)``);
    * ``"joint"`` (Eq. 20 as printed, ``π̃_k = p(ψ_k, x_c)``, and the official
      ``classify.averaged_score`` of the best-of-20 joints): the joint alone.

    ``log p̂(x_c)`` (for the two-way score) is the IWAE estimate (:func:`inference.iwae.iwae_bound`)
    over *every* guide sample drawn for the image (``K``, or ``K × type_candidates`` for
    best-of: the official ``ave_elbos``).

Token model (:func:`token_model`, appendix B.3, a Pyro program)
    * ``motor_noise``: the token's control points ``s' ∼ N(ψ's points, σ_m)`` per coordinate,
      present strokes only; ``σ_m = 2e-3`` in our ``[−1, 1]`` units (the paper's and the code's
      ``1e-3`` on ``[0, 1]``). ``motor_reduction="mean"`` (default, the official
      ``ClassifyModel.forward``: the log-density summed within a stroke and *averaged* over the
      present strokes) or ``"sum"`` (the density itself). With σ_m this small every present
      stroke adds ``2J · log(1/(σ_m √2π)) ≈ +53`` nats (J = 5) at zero noise whatever the fit, so
      the sum favours supports parsed into many strokes; the mean makes it one constant.
    * ``affine``: one affine per character on the noisy points, from an unconstrained
      ``u ∈ R⁷`` through ``low + (high − low) · sigmoid(u)``: shift ``±0.2`` (x, y), scale
      ``[0.6, 1.4]`` (x, y), rotation ``±0.25π`` and shear ``±0.3π`` (x, y), the official
      ``ClassifyModel.get_affines`` ranges (appendix B.3 states scale ``[0.8, 1.2]`` and shear
      ``±0.25π``: options). The matrix is the official ``util.get_affine_matrix_from_param``
      ``"7"``: ``p' = Sh · R(θ) · diag(scale) · p + shift`` with ``Sh = [[1 + h_x h_y, h_x],
      [h_y, 1]]`` (shear values used as raw coefficients, as the code does), about the image
      centre. The rotation is in *radians*; the official code passes it through
      ``torch.deg2rad`` (±0.25π read as degrees, ±0.79°: a bug), reproduced by
      ``rotation_in_degrees=True``. Prior on ``u``: ``affine_prior="normal"`` (default, our
      choice: ``N(0, 1)``, a mild pull to the identity at ``u = 0``) or ``"flat"`` (the official
      code: no affine term; the paper's uniform over the ranges adds the same constant to
      every pair, so it too leaves the maximisation and the decision unchanged).
    * ``x``: the token rendered with the *type's* renderer parameters (``render_strokes`` +
      ``compose_canvas``) under the model's likelihood (DooD: ``DooD.likelihood``, a Laplace
      with the model's scale).

Scoring (:func:`fit_scores`, :func:`aggregate_scores`)
    ``max_z`` by Adam (lr ``1e-2``, ``token_steps`` = 100, the official values) on the
    motor-noise offsets and ``u``, from zero noise and the identity affine, *batched* over all
    ``Q × S × K`` (query, support, type) triples of a run as one tensor program (chunked over
    the batch only to bound memory; triples are ordered by stroke count so a chunk renders no
    more strokes than its largest type has). ``token_score="best"`` (default) keeps, per
    triple, the best log-joint seen over the optimisation (the max of Eq. 19);
    ``"final"`` (official) the value after the last step. The lr acts on our ``[−1, 1]``
    coordinates (half the official step in image terms; the code's points are on ``[0, 1]``).
    Then ``score[q, s] = logsumexp_k(log π_sk + fitted[q, s, k])``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import pyro
import torch
from torch import Tensor, nn

from generative.air import Air
from generative.dood import DooD
from tasks.one_shot.air_tokens import AirTokens
from tasks.one_shot.runs import OneShotRun
from tasks.one_shot.scoring import (
    TokenFamily,
    WeightedTypes,
    fit_triples,
    frozen,
    replay_parse,
)
from tasks.one_shot.tokens import (
    Likelihood,
    TokenFit,
    TokenTypes,
    TypeTokenSettings,
    aggregate_scores,
    fit_tokens,
    render_tokens,
    two_way_scores,
)

__all__ = [
    "CharacterTypes",
    "DooDTokens",
    "TypeTokenScorer",
    "check_type_token_model",
    "fit_scores",
    "infer_types",
    "score_types",
    "type_token_family",
]


# ----------------------------------------------------------------------------- types
@dataclass(frozen=True)
class CharacterTypes(WeightedTypes):
    """``K`` weighted types of each of ``N`` images (DooD: strokes)."""

    PART_FIELDS: ClassVar[tuple[str, ...]] = ("points", "present", "sigma", "omega0")
    TYPE_FIELDS: ClassVar[tuple[str, ...]] = ("omega1",)
    ELEMENT: ClassVar[type] = TokenTypes

    points: Tensor  # (N, K, T, J, 2)
    present: Tensor  # (N, K, T) bool
    sigma: Tensor  # (N, K, T)
    omega0: Tensor  # (N, K, T)
    omega1: Tensor  # (N, K)
    log_weights: Tensor  # (N, K) unnormalised log π̃_k
    log_marginal: Tensor | None = None  # (N,) IWAE log p̂(x) (two-way scoring)

    def __post_init__(self) -> None:
        if self.points.dim() != 5 or self.points.shape[-1] != 2:
            raise ValueError(
                f"CharacterTypes: points must be (N, K, T, J, 2), found {tuple(self.points.shape)}"
            )
        self.check_shapes()

    @property
    def num_strokes(self) -> Tensor:
        """``(N, K)`` present strokes per type."""
        return self.num_parts


def check_type_token_model(model: nn.Module) -> DooD:
    """``model`` if it is a DooD with the spline renderer (types need control points)."""
    if not isinstance(model, DooD):
        raise ValueError(
            f"type-token scoring needs a DooD checkpoint, found a {type(model).__name__} model"
        )
    if model.config.renderer != "spline":
        raise ValueError(
            "type-token scoring needs DooD's spline renderer (control points); this checkpoint "
            f"has renderer={model.config.renderer!r} (the DooD-δR ablation)"
        )
    return model


class DooDTokens(TokenFamily):
    """DooD's family: types are stroke parses, tokens motor noise and an affine on the control
    points (module docstring)."""

    name = "dood"

    def __init__(self, model: nn.Module, guide: nn.Module):
        super().__init__(check_type_token_model(model), guide)

    @property
    def num_points(self) -> int:
        return self.model.num_render_points

    def parse(self, images: Tensor, draws: int) -> dict[str, Tensor]:
        """``draws`` guide parses of each image: ``(draws, N, ...)`` control points, presence,
        renderer parameters, ``log_p`` = log p(x, ψ) and ``log_q`` = log q(ψ | x)."""
        sites = {"points": "control_points", "sigma": "sigma", "omega0": "omega0"}
        sites["z_pres"] = "z_pres"
        return replay_parse(self, images, draws, sites, record=True)

    def make_types(
        self, picked: dict[str, Tensor], log_weights: Tensor, log_marginal: Tensor
    ) -> CharacterTypes:
        n, k = log_weights.shape
        omega1 = self.model.omega1().detach().to(log_weights.dtype).expand(n, k)
        return CharacterTypes(
            picked["points"],
            picked["z_pres"] > 0,
            picked["sigma"],
            picked["omega0"],
            omega1.clone(),
            log_weights,
            log_marginal,
        )

    def fit_chunk(
        self, images: Tensor, elements: TokenTypes, settings: TypeTokenSettings
    ) -> tuple[Tensor, Tensor]:
        strokes = self.model.config.max_strokes
        return _fit_padded(images, elements, self.likelihood, settings, self.num_points, strokes)

    def render(self, tokens: Tensor, elements: TokenTypes) -> Tensor:
        return render_tokens(tokens, elements, self.size, self.num_points)


def _fit_padded(
    images: Tensor,
    elements: TokenTypes,
    likelihood: Likelihood,
    settings: TypeTokenSettings,
    num_points: int,
    strokes: int | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`fit_tokens`, the points zero-padded to ``strokes`` (default: the model's)."""
    found, points = fit_tokens(images, elements, likelihood, settings, num_points)
    if strokes is not None and strokes > points.shape[1]:
        pad = points.new_zeros(points.shape[0], strokes - points.shape[1], *points.shape[2:])
        points = torch.cat([points, pad], 1)
    return found, points


def type_token_family(model: nn.Module, guide: nn.Module) -> TokenFamily:
    """The type-token family of a checkpoint's ``model``: :class:`DooDTokens` (spline
    renderer) or :class:`tasks.one_shot.air_tokens.AirTokens` (AIR, Difference-AIR)."""
    if isinstance(model, Air):
        return AirTokens(model, guide)
    if isinstance(model, DooD):
        return DooDTokens(model, guide)
    raise ValueError(
        f"type-token scoring needs a DooD or AIR checkpoint, found a {type(model).__name__} model"
    )


def infer_types(
    model: DooD, guide: nn.Module, images: Tensor, settings: TypeTokenSettings
) -> CharacterTypes:
    """``settings.type_samples`` weighted types of each of ``images`` (``(N, 1, H, W)``) from
    DooD's guide parses (module docstring: selection, weights and ``log p̂(x)``)."""
    return DooDTokens(model, guide).infer_types(images, settings)  # type: ignore[return-value]


def fit_scores(
    images: Tensor,
    types: CharacterTypes,
    likelihood: Likelihood,
    settings: TypeTokenSettings,
    num_points: int,
    *,
    progress: bool = False,
    desc: str = "tokens",
) -> TokenFit:
    """DooD's tokens (:func:`fit_tokens`) for every triple (image ``q``, type image ``s``, type
    ``k``) of ``images`` ``(Q, 1, H, W)`` and ``types`` (``S`` images × ``K``), batched
    (:func:`tasks.one_shot.scoring.fit_triples`)."""
    strokes = types.points.shape[2]

    def fit(query: Tensor, elements: Any) -> tuple[Tensor, Tensor]:
        return _fit_padded(query, elements, likelihood, settings, num_points, strokes)

    return fit_triples(images, types, fit, settings, progress=progress, desc=desc)


def score_types(
    images: Tensor,
    types: CharacterTypes,
    likelihood: Likelihood,
    settings: TypeTokenSettings,
    num_points: int,
) -> Tensor:
    """One-way ``(Q, S)`` type-token scores of ``images`` against given ``types``."""
    fit = fit_scores(images, types, likelihood, settings, num_points)
    return aggregate_scores(types.log_weights, fit.scores)


# ----------------------------------------------------------------------------- the scorer
class TypeTokenScorer:
    """``scorer(run) -> (Q, S)`` type-token scores of a DooD or AIR model and guide (a
    :data:`tasks.one_shot.baselines.Scorer`; the family from :func:`type_token_family`). Per
    run it keeps, by run name, the fitted token of each query's chosen support (:attr:`tokens`,
    ``(Q, 1, H, W)``) and the seconds of its stages (:attr:`timings`). Pyro's argument
    validation is off while it runs (as in training)."""

    def __init__(
        self,
        model: nn.Module,
        guide: nn.Module,
        settings: TypeTokenSettings,
        *,
        progress: bool = False,
    ):
        self.family = type_token_family(model, guide)
        self.model = self.family.model
        self.guide = guide
        self.settings = settings
        self.progress = progress
        self.tokens: dict[str, Tensor] = {}
        self.timings: dict[str, dict[str, float]] = {}

    @property
    def num_points(self) -> int | None:
        return self.family.num_points

    def likelihood(self, canvas: Tensor) -> Any:
        return self.family.likelihood(canvas)

    def _direction(
        self, targets: Tensor, sources: Tensor, timing: dict[str, float], desc: str
    ) -> tuple[WeightedTypes, TokenFit, Tensor]:
        """Types of ``sources`` and the one-way ``(targets, sources)`` scores of ``targets``."""
        began = time.perf_counter()
        types = self.family.infer_types(sources, self.settings)
        timing["types_seconds"] = timing.get("types_seconds", 0.0) + time.perf_counter() - began
        began = time.perf_counter()
        fit = self.family.fit(targets, types, self.settings, progress=self.progress, desc=desc)
        scores = aggregate_scores(types.log_weights, fit.scores)
        timing["tokens_seconds"] = timing.get("tokens_seconds", 0.0) + time.perf_counter() - began
        return types, fit, scores

    def __call__(self, run: OneShotRun) -> Tensor:
        model, s = self.model, self.settings
        device = next(model.parameters()).device
        supports, queries = run.supports.to(device), run.queries.to(device)
        timing: dict[str, float] = {}
        with frozen(model, self.guide), pyro.validation_enabled(False):
            support_types, forward, scores = self._direction(
                queries, supports, timing, f"{run.name} q|s"
            )
            if s.two_way:
                _, _, backward = self._direction(supports, queries, timing, f"{run.name} s|q")
                assert support_types.log_marginal is not None
                scores = two_way_scores(scores, backward, support_types.log_marginal)
            with torch.no_grad():
                self.tokens[run.name] = self._chosen_tokens(forward, support_types, scores)
        self.timings[run.name] = timing
        return scores.detach().cpu()

    def _chosen_tokens(self, fit: TokenFit, types: WeightedTypes, scores: Tensor) -> Tensor:
        """The fitted token of each query for its chosen support: the type ``k`` with the
        largest term ``log π_k + fitted`` of Eq. 19, ``(Q, 1, H, W)`` on the CPU."""
        chosen = scores.argmax(1)  # (Q,)
        queries = torch.arange(fit.scores.shape[0], device=chosen.device)
        terms = types.log_pi()[chosen].to(fit.scores.dtype) + fit.scores[queries, chosen]
        k = terms.argmax(1)
        elements = types.elements(chosen * types.num_types + k)
        return self.family.render(fit.tokens[queries, chosen, k], elements).cpu()
