"""Type-token scoring with AIR and Difference-AIR (:mod:`generative.air`, :mod:`guides.air`): the
AIR row of DooD's Table 1 (Liang et al. 2022, sec. 3.2: "an equivalent token model for AIR by
(i) adding a Gaussian noise to the uninterpretable feature vector representing each part and
(ii) applying a Gaussian affine transformation to the rendered image").

Types (:meth:`AirTokens.parse`)
    A type ψ is one guide sample of the image's part latents: ``z_pres_t``, ``z_where_t`` and
    ``z_what_t`` of every step (:class:`AirTypes`), with ``log p(x, ψ)`` of the model replayed on
    the guide trace and ``log q(ψ | x)``. The ``K`` types per image, their selection
    (``type_selection``: single samples, or each the best of ``type_candidates`` by
    ``log p(x, ψ)``), their weights (``type_weights``) and ``log p̂(x)`` for two-way scoring are
    DooD's (:func:`tasks.one_shot.scoring.select_types`).

Token model (:func:`air_token_model`, a Pyro program)
    * ``"what_noise"`` ``(B, T, D)``: the token's part vectors ``z'_t ∼ N(z_what_t, σ_what² I)``
      for the present parts; the log-density summed within a part and averaged over the present
      parts (``motor_reduction="mean"``, as DooD's strokes) or summed.
      ``σ_what = settings.what_noise``, default **0.1**: a tenth of the ``N(0, I)`` prior's
      standard deviation. The paper gives no value for AIR ("set to a sensible value"); ours is
      chosen so that a token stays a variant of its type (the whole prior range of one
      coordinate is ±10 σ away) while Adam (lr 1e-2, 100 steps: at most ~1 per coordinate) can
      still use it. The guide gives no better reference: on Omniglot the MNIST-trained small
      Difference-AIR's ``q(z_what | x)`` has a median standard deviation of 0.95, i.e. most
      coordinates are at the prior. DooD's own motor noise (2e-3 of a [−1, 1] canvas) is a
      sub-pixel jitter, under which only the affine moves a token; σ_what = 0.1 is larger in
      that sense, a choice (``--what-noise``), not the paper's.
    * ``"affine"`` ``(B, 7)``: the same bounded per-character affine as DooD's
      (:func:`tasks.one_shot.tokens.token_affine`; prior
      :func:`~tasks.one_shot.tokens.sample_affine`).
    * The rendering: each present part decoded and placed exactly as the model draws it
      (``Air.render``: ``place(decode(z'_t), where_to_layout(z_where_t))``), summed into the
      canvas (deterministic ``"canvas"``), and the affine then applied *to that rendering*
      (:func:`tasks.one_shot.tokens.warp_canvas`: ink at ``p`` moves to ``A p + t``,
      deterministic ``"token_canvas"``); ``"x"`` scores the warped canvas under the model's
      likelihood. (The official code computes the affine and then scores the untransformed
      image; not copied.)

Scoring
    As DooD's: Adam on the ``z_what`` offsets and the unconstrained affine
    (:func:`tasks.one_shot.tokens.maximise_tokens`), batched over all ``Q × S × K`` triples of a
    run (:func:`tasks.one_shot.scoring.fit_triples`, ordered by part count), then Eq. 19.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
from torch import Tensor, nn

from generative.air import Air
from tasks.one_shot.scoring import TokenFamily, WeightedTypes, replay_parse
from tasks.one_shot.tokens import (
    Likelihood,
    TypeTokenSettings,
    maximise_tokens,
    part_scale,
    sample_affine,
    token_affine,
    warp_canvas,
)

__all__ = ["AirTokenTypes", "AirTokens", "AirTypes", "air_token_model", "render_parts"]


@dataclass(frozen=True)
class AirTokenTypes:
    """One AIR type per element of a batch (``B`` elements, ``T`` steps, ``D = z_what`` size)."""

    z_what: Tensor  # (B, T, D)
    z_where: Tensor  # (B, T, 4) (s, t_x, t_y, θ)
    present: Tensor  # (B, T) bool


@dataclass(frozen=True)
class AirTypes(WeightedTypes):
    """``K`` weighted AIR types (guide samples of the part latents) of each of ``N`` images."""

    PART_FIELDS: ClassVar[tuple[str, ...]] = ("z_what", "z_where", "present")
    ELEMENT: ClassVar[type] = AirTokenTypes

    z_what: Tensor  # (N, K, T, D)
    z_where: Tensor  # (N, K, T, 4)
    present: Tensor  # (N, K, T) bool
    log_weights: Tensor  # (N, K) unnormalised log π̃_k
    log_marginal: Tensor | None = None  # (N,) IWAE log p̂(x) (two-way scoring)

    def __post_init__(self) -> None:
        self.check_shapes()


def render_parts(model: Air, z_what: Tensor, z_where: Tensor, present: Tensor) -> Tensor:
    """``(B, 1, H, W)``: the present parts ``(B, T, ·)`` decoded and placed by ``model``
    (:meth:`generative.air.Air.render`) and summed, as :meth:`Air.model` draws its canvas."""
    batch, steps = present.shape
    c = model.config
    parts = model.render(z_what.reshape(batch * steps, -1), z_where.reshape(batch * steps, -1))
    parts = parts.view(batch, steps, 1, c.height, c.width)
    return (parts * present.to(parts.dtype)[..., None, None, None]).sum(1)


def air_token_model(
    types: AirTokenTypes,
    model: Air,
    likelihood: Likelihood,
    settings: TypeTokenSettings,
    images: Tensor | None = None,
) -> Tensor:
    """AIR's token model ``p(z | ψ)`` and likelihood ``p(x | z)`` (module docstring) as a Pyro
    program over a batch of types; ``images`` ``(B, 1, H, W)`` are observed at ``"x"``.

    Sites (inside ``pyro.plate("tokens", B)``): ``"what_noise"`` ``(B, T, D)`` (the token's
    ``z_what``, ``N(ψ's z_what, σ_what)`` masked to the present parts, scaled by ``1 / #parts``
    for ``motor_reduction="mean"``), ``"affine"`` ``(B, 7)``, deterministic ``"canvas"`` (the
    rendering) and ``"token_canvas"`` (the rendering moved by the affine), and ``"x"`` on the
    latter. Returns the token's canvas ``(B, 1, H, W)``."""
    batch = types.present.shape[0]
    with pyro.plate("tokens", batch):
        noise = dist.Normal(types.z_what, settings.what_noise)
        noise = noise.mask(types.present[..., None]).to_event(2)
        with poutine.scale(scale=part_scale(types.present, settings, types.z_what)):
            z_what = pyro.sample("what_noise", noise)
        raw = sample_affine(batch, settings, types.z_what)
        canvas = render_parts(model, z_what, types.z_where, types.present)
        pyro.deterministic("canvas", canvas, event_dim=3)
        token = warp_canvas(canvas, token_affine(raw, settings))
        pyro.deterministic("token_canvas", token, event_dim=3)
        pyro.sample("x", likelihood(token), obs=images)
    return token


class AirTokens(TokenFamily):
    """AIR's and Difference-AIR's family (module docstring)."""

    name = "air"

    def __init__(self, model: nn.Module, guide: nn.Module):
        if not isinstance(model, Air):
            raise ValueError(f"AirTokens needs an AIR model, found a {type(model).__name__}")
        super().__init__(model, guide)

    def parse(self, images: Tensor, draws: int) -> dict[str, Tensor]:
        """``draws`` guide samples of each image: ``(draws, N, ...)`` ``z_pres``, ``z_where``,
        ``z_what``, ``log_p`` = log p(x, ψ) and ``log_q`` = log q(ψ | x)."""
        return replay_parse(self, images, draws, {k: k for k in ("z_pres", "z_where", "z_what")})

    def make_types(
        self, picked: dict[str, Tensor], log_weights: Tensor, log_marginal: Tensor
    ) -> AirTypes:
        present = picked["z_pres"] > 0
        return AirTypes(picked["z_what"], picked["z_where"], present, log_weights, log_marginal)

    def fit_chunk(
        self, images: Tensor, elements: AirTokenTypes, settings: TypeTokenSettings
    ) -> tuple[Tensor, Tensor]:
        """Scores ``(B,)`` and the fitted tokens' warped canvases ``(B, 1, H, W)``."""
        program = partial(air_token_model, elements, self.model, self.likelihood, settings, images)
        return maximise_tokens(
            program, elements.z_what, settings, site="what_noise", keep="token_canvas"
        )

    def render(self, tokens: Tensor, elements: AirTokenTypes) -> Tensor:
        return tokens  # the fitted tokens are kept as their (warped) canvases
