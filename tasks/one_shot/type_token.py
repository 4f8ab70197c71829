"""One-shot classification by DooD's type-token scoring (Liang et al. 2022, sec. 3.2, Eqs. 17–20,
appendices B.3 and D.2.3).

A support image ``x_c`` is parsed by the guide into character *types* ψ (the strokes of a parse);
a query ``x_T`` is scored by how well a *token* of each type explains it::

    log p(x_T | x_c) ≈ log Σ_k π_k max_z p(x_T | z) p(z | ψ_k)                   (Eqs. 17–19)

and assigned the support with the highest score (one-way), or with the two-way score
``log p(x_T | x_c) + log p(x_c | x_T) − log p̂(x_c)`` (the paper's Table 1 "2W", not used for
its 73.5%; the official code's default).

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from generative.dood import DooD
from generative.traces import stack_sites
from inference.iwae import iwae_bound
from tasks.one_shot.runs import OneShotRun
from tasks.one_shot.tokens import (
    Likelihood,
    TokenFit,
    TokenTypes,
    TypeTokenSettings,
    aggregate_scores,
    fit_tokens,
    log_density,
    render_tokens,
    two_way_scores,
)

__all__ = [
    "CharacterTypes",
    "TypeTokenScorer",
    "check_type_token_model",
    "fit_scores",
    "infer_types",
    "score_types",
]


# ----------------------------------------------------------------------------- types
@dataclass(frozen=True)
class CharacterTypes:
    """``K`` weighted types of each of ``N`` images."""

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
        n, k, t = self.points.shape[:3]
        for name, shape in (
            ("present", (n, k, t)),
            ("sigma", (n, k, t)),
            ("omega0", (n, k, t)),
            ("omega1", (n, k)),
            ("log_weights", (n, k)),
        ):
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(
                    f"CharacterTypes: {name} must have shape {shape}, "
                    f"found {tuple(getattr(self, name).shape)}"
                )
        object.__setattr__(self, "present", self.present.bool())

    @property
    def num_images(self) -> int:
        return self.points.shape[0]

    @property
    def num_types(self) -> int:
        return self.points.shape[1]

    @property
    def num_strokes(self) -> Tensor:
        """``(N, K)`` present strokes per type."""
        return self.present.sum(-1)

    def log_pi(self) -> Tensor:
        """``(N, K)`` normalised log-weights ``log π_k`` (Eq. 20)."""
        return torch.log_softmax(self.log_weights, -1)

    def take(self, index: Tensor) -> CharacterTypes:
        """The types of the images ``index`` (e.g. a permutation of the supports)."""
        marginal = None if self.log_marginal is None else self.log_marginal[index]
        return CharacterTypes(
            self.points[index],
            self.present[index],
            self.sigma[index],
            self.omega0[index],
            self.omega1[index],
            self.log_weights[index],
            marginal,
        )

    def elements(self, flat: Tensor, steps: int | None = None) -> TokenTypes:
        """The types at flat indices ``n · K + k`` (``(B,)``), their first ``steps`` strokes."""
        t = slice(None) if steps is None else slice(0, steps)
        fold = lambda x: x.reshape(-1, *x.shape[2:])[flat]  # noqa: E731
        return TokenTypes(
            fold(self.points)[:, t],
            fold(self.present)[:, t],
            fold(self.sigma)[:, t],
            fold(self.omega0)[:, t],
            fold(self.omega1),
        )


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


def _parse(model: DooD, guide: nn.Module, images: Tensor, draws: int) -> dict[str, Tensor]:
    """``draws`` guide parses of each image: ``(draws, N, ...)`` control points, presence,
    renderer parameters, ``log_p`` = log p(x, ψ) and ``log_q`` = log q(ψ | x)."""
    n = images.shape[0]
    x = images.repeat(draws, 1, 1, 1)  # particle-major: row i·N + b is draw i of image b
    guide_trace = poutine.trace(guide.guide).get_trace(x)
    replayed = poutine.replay(model.model, trace=guide_trace)
    model_trace = poutine.trace(replayed).get_trace(x, record=True)
    sites = {"points": "control_points", "sigma": "sigma", "omega0": "omega0", "z_pres": "z_pres"}
    out = stack_sites(model_trace, model.config.max_strokes, sites)
    out["log_p"] = log_density(model_trace)
    out["log_q"] = log_density(guide_trace)
    return {key: value.reshape(draws, n, *value.shape[1:]) for key, value in out.items()}


@torch.no_grad()
def infer_types(
    model: DooD, guide: nn.Module, images: Tensor, settings: TypeTokenSettings
) -> CharacterTypes:
    """``settings.type_samples`` weighted types of each of ``images`` (``(N, 1, H, W)``) from
    guide parses (module docstring: selection, weights and ``log p̂(x)``)."""
    check_type_token_model(model)
    n = images.shape[0]
    per_type = settings.draws_per_type
    draws = settings.type_samples * per_type
    chunk = max(1, settings.type_rows // n)
    parts = [
        _parse(model, guide, images, min(chunk, draws - start)) for start in range(0, draws, chunk)
    ]
    found = {key: torch.cat([p[key] for p in parts], 0) for key in parts[0]}
    log_p, log_q = found["log_p"], found["log_q"]  # (draws, N)
    log_marginal = iwae_bound(log_p - log_q).to(images.dtype)
    k = settings.type_samples
    # (K, per_type, N, ...): type k is chosen among draws k·per_type … (k+1)·per_type − 1
    grouped = {key: v.reshape(k, per_type, *v.shape[1:]) for key, v in found.items()}
    best = grouped["log_p"].argmax(1)  # (K, N); 0 when per_type == 1

    def pick(value: Tensor) -> Tensor:  # (K, per_type, N, ...) -> (N, K, ...)
        index = best.reshape(k, 1, n, *([1] * (value.dim() - 3)))
        chosen = value.gather(1, index.expand(k, 1, *value.shape[2:])).squeeze(1)
        return chosen.movedim(0, 1)

    log_p_k, log_q_k = pick(grouped["log_p"]), pick(grouped["log_q"])
    log_weights = log_p_k if settings.type_weights == "joint" else log_p_k - log_q_k
    present = pick(grouped["z_pres"]) > 0
    omega1 = model.omega1().detach().to(images.dtype).expand(n, k)
    return CharacterTypes(
        pick(grouped["points"]),
        present,
        pick(grouped["sigma"]),
        pick(grouped["omega0"]),
        omega1.clone(),
        log_weights.to(images.dtype),
        log_marginal,
    )


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
    """:func:`fit_tokens` for every triple (image ``q``, type image ``s``, type ``k``) of
    ``images`` ``(Q, 1, H, W)`` and ``types`` (``S`` images × ``K``), batched: triples are
    ordered by their type's stroke count and optimised ``settings.token_chunk`` at a time, each
    chunk rendering only as many strokes as its largest type has (presence is a prefix)."""
    q_count, s_count, k_count = images.shape[0], types.num_images, types.num_types
    per_image = s_count * k_count
    counts = types.num_strokes.reshape(-1)  # (S·K,)
    total = q_count * per_image
    order = torch.argsort(counts.repeat(q_count), stable=True).to(images.device)
    scores = torch.empty(total, dtype=torch.float64, device=images.device)
    points = types.points.new_zeros(total, *types.points.shape[2:])
    chunks = order.split(settings.token_chunk)
    with torch.enable_grad():
        for chunk in tqdm(chunks, desc=desc, unit="chunk", leave=False, disable=not progress):
            query, flat = chunk // per_image, chunk % per_image
            steps = max(1, int(counts[flat].max()))
            elements = types.elements(flat, steps)
            found, fitted = fit_tokens(images[query], elements, likelihood, settings, num_points)
            scores[chunk] = found
            points[chunk, :steps] = fitted
    shape = (q_count, s_count, k_count)
    return TokenFit(scores.reshape(shape), points.reshape(*shape, *points.shape[1:]))


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
@contextmanager
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """The modules' parameters without gradients (restored afterwards): token fitting
    differentiates through the likelihood scale and ``ω1`` but must not touch the model."""
    params = [p for m in modules for p in m.parameters()]
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


class TypeTokenScorer:
    """``scorer(run) -> (Q, S)`` type-token scores of a DooD model and guide (a
    :data:`tasks.one_shot.baselines.Scorer`). Per run it keeps, by run name, the fitted token of
    each query's chosen support (:attr:`tokens`, ``(Q, 1, H, W)``) and the seconds of its stages
    (:attr:`timings`). Pyro's argument validation is off while it runs (as in training)."""

    def __init__(
        self,
        model: nn.Module,
        guide: nn.Module,
        settings: TypeTokenSettings,
        *,
        progress: bool = False,
    ):
        self.model = check_type_token_model(model)
        self.guide = guide
        self.settings = settings
        self.progress = progress
        self.tokens: dict[str, Tensor] = {}
        self.timings: dict[str, dict[str, float]] = {}

    @property
    def num_points(self) -> int:
        return self.model.num_render_points

    def likelihood(self, canvas: Tensor) -> dist.Distribution:
        return self.model.likelihood(canvas)

    def __call__(self, run: OneShotRun) -> Tensor:
        model, s = self.model, self.settings
        device = next(model.parameters()).device
        supports, queries = run.supports.to(device), run.queries.to(device)
        timing: dict[str, float] = {}
        with _frozen(model, self.guide), pyro.validation_enabled(False):
            began = time.perf_counter()
            support_types = infer_types(model, self.guide, supports, s)
            timing["types_seconds"] = time.perf_counter() - began
            began = time.perf_counter()
            forward = fit_scores(
                queries,
                support_types,
                self.likelihood,
                s,
                self.num_points,
                progress=self.progress,
                desc=f"{run.name} q|s",
            )
            scores = aggregate_scores(support_types.log_weights, forward.scores)
            timing["tokens_seconds"] = time.perf_counter() - began
            if s.two_way:
                began = time.perf_counter()
                query_types = infer_types(model, self.guide, queries, s)
                timing["types_seconds"] += time.perf_counter() - began
                began = time.perf_counter()
                backward = fit_scores(
                    supports,
                    query_types,
                    self.likelihood,
                    s,
                    self.num_points,
                    progress=self.progress,
                    desc=f"{run.name} s|q",
                )
                timing["tokens_seconds"] += time.perf_counter() - began
                assert support_types.log_marginal is not None
                backward_scores = aggregate_scores(query_types.log_weights, backward.scores)
                scores = two_way_scores(scores, backward_scores, support_types.log_marginal)
            with torch.no_grad():
                self.tokens[run.name] = self._chosen_tokens(forward, support_types, scores)
        self.timings[run.name] = timing
        return scores.detach().cpu()

    def _chosen_tokens(self, fit: TokenFit, types: CharacterTypes, scores: Tensor) -> Tensor:
        """The fitted token of each query for its chosen support: the type ``k`` with the
        largest term ``log π_k + fitted`` of Eq. 19, ``(Q, 1, H, W)`` on the CPU."""
        chosen = scores.argmax(1)  # (Q,)
        queries = torch.arange(fit.scores.shape[0], device=chosen.device)
        terms = types.log_pi()[chosen].to(fit.scores.dtype) + fit.scores[queries, chosen]
        k = terms.argmax(1)
        elements = types.elements(chosen * types.num_types + k)
        size = (self.model.config.height, self.model.config.width)
        points = fit.points[queries, chosen, k]
        return render_tokens(points, elements, size, self.num_points).cpu()
