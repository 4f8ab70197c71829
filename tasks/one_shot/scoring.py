"""The machinery of type-token scoring shared by every model family (DooD:
:mod:`tasks.one_shot.type_token`; AIR: :mod:`tasks.one_shot.air_tokens`).

A family (:class:`TokenFamily`) says how its guide parses an image (``parse``: the type latents of
``draws`` guide samples with ``log p(x, ψ)`` and ``log q(ψ | x)``), how the parses become weighted
types (``make_types``: a :class:`WeightedTypes`), how a batch of tokens is fitted to images
(``fit_chunk``: :func:`tasks.one_shot.tokens.maximise_tokens` of its token model) and how a fitted
token is drawn (``render``). The rest is the same for all:

* :func:`select_types` — the ``K`` types of each image from guide draws (``type_selection``:
  single samples or the best of ``type_candidates`` by ``log p(x, ψ)``), their weights
  (``type_weights``: importance or joint) and the IWAE ``log p̂(x)`` over every draw;
* :func:`fit_triples` — the max over tokens for every (image, type image, type) triple of a run,
  batched: triples ordered by their type's part count and fitted ``token_chunk`` at a time, each
  chunk rendering only as many parts as its largest type has (presence is a prefix);
* the aggregation of Eq. 19 and the two-way score (:mod:`tasks.one_shot.tokens`) and the run loop
  (:class:`tasks.one_shot.type_token.TypeTokenScorer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import Any, ClassVar

import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from generative.traces import stack_sites
from inference.iwae import iwae_bound
from tasks.one_shot.tokens import TokenFit, TypeTokenSettings, aggregate_scores, log_density

__all__ = [
    "TokenFamily",
    "WeightedTypes",
    "fit_triples",
    "frozen",
    "replay_parse",
    "select_types",
]


class WeightedTypes:
    """``K`` weighted types of each of ``N`` images: a mixin of a frozen dataclass whose fields
    are the per-type tensors, ``log_weights`` ``(N, K)`` (unnormalised ``log π̃_k``) and
    ``log_marginal`` ``(N,)`` or ``None`` (IWAE ``log p̂(x)``, for two-way scoring).

    ``PART_FIELDS`` are ``(N, K, T, ...)`` (one entry per part, ``present`` among them: a prefix
    mask), ``TYPE_FIELDS`` ``(N, K, ...)``; :meth:`elements` folds them into ``ELEMENT`` (a
    dataclass with those field names: one type per element of a batch)."""

    PART_FIELDS: ClassVar[tuple[str, ...]]
    TYPE_FIELDS: ClassVar[tuple[str, ...]] = ()
    ELEMENT: ClassVar[type]
    present: Tensor
    log_weights: Tensor
    log_marginal: Tensor | None

    def check_shapes(self) -> None:
        """Every field's leading dimensions against ``present`` ``(N, K, T)``; ``present`` is
        made boolean."""
        name = type(self).__name__
        if self.present.dim() != 3:
            shape = tuple(self.present.shape)
            raise ValueError(f"{name}: present must be (N, K, T), found {shape}")
        n, k, t = self.present.shape
        expected = {f: (n, k, t) for f in self.PART_FIELDS}
        expected.update({f: (n, k) for f in (*self.TYPE_FIELDS, "log_weights")})
        for field, shape in expected.items():
            found = tuple(getattr(self, field).shape[: len(shape)])
            if found != shape:
                raise ValueError(
                    f"{name}: {field} must have leading shape {shape}, "
                    f"found {tuple(getattr(self, field).shape)}"
                )
        if self.log_marginal is not None and tuple(self.log_marginal.shape) != (n,):
            raise ValueError(
                f"{name}: log_marginal must have shape ({n},), found "
                f"{tuple(self.log_marginal.shape)}"
            )
        object.__setattr__(self, "present", self.present.bool())

    @property
    def num_images(self) -> int:
        return self.present.shape[0]

    @property
    def num_types(self) -> int:
        return self.present.shape[1]

    @property
    def num_parts(self) -> Tensor:
        """``(N, K)`` present parts (strokes, steps) per type."""
        return self.present.sum(-1)

    def log_pi(self) -> Tensor:
        """``(N, K)`` normalised log-weights ``log π_k`` (Eq. 20)."""
        return torch.log_softmax(self.log_weights, -1)

    def take(self, index: Tensor) -> Any:
        """The types of the images ``index`` (e.g. a permutation of the supports)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return replace(
            self,  # type: ignore[type-var]
            **{key: None if value is None else value[index] for key, value in values.items()},
        )

    def elements(self, flat: Tensor, steps: int | None = None) -> Any:
        """The types at flat indices ``n · K + k`` (``(B,)``) as one ``ELEMENT``, their first
        ``steps`` parts."""
        t = slice(None) if steps is None else slice(0, steps)
        fold = lambda x: x.reshape(-1, *x.shape[2:])[flat]  # noqa: E731
        values = {f: fold(getattr(self, f))[:, t] for f in self.PART_FIELDS}
        values.update({f: fold(getattr(self, f)) for f in self.TYPE_FIELDS})
        return self.ELEMENT(**values)


class TokenFamily:
    """What type-token scoring needs of a model family (module docstring); subclasses define
    :meth:`parse`, :meth:`make_types`, :meth:`fit_chunk` and :meth:`render`."""

    #: the model's name in messages and results
    name: ClassVar[str]

    def __init__(self, model: nn.Module, guide: nn.Module):
        self.model = model
        self.guide = guide

    @property
    def size(self) -> tuple[int, int]:
        return (self.model.config.height, self.model.config.width)

    @property
    def max_steps(self) -> int:
        """``T``: the model's steps (strokes, parts)."""
        config = self.model.config
        return int(getattr(config, "max_strokes", getattr(config, "max_steps", 0)))

    @property
    def num_points(self) -> int | None:
        """Curve points per rendered stroke (DooD), ``None`` for other renderers."""
        return None

    def likelihood(self, canvas: Tensor) -> dist.Distribution:
        return self.model.likelihood(canvas)

    def parse(self, images: Tensor, draws: int) -> dict[str, Tensor]:
        """``draws`` guide parses of each of ``images`` ``(N, 1, H, W)``: ``(draws, N, ...)``
        type latents, ``log_p`` = log p(x, ψ) and ``log_q`` = log q(ψ | x)."""
        raise NotImplementedError

    def make_types(
        self, picked: dict[str, Tensor], log_weights: Tensor, log_marginal: Tensor
    ) -> WeightedTypes:
        """The types from the chosen parses (``picked``: ``(N, K, ...)`` of :meth:`parse`)."""
        raise NotImplementedError

    def fit_chunk(
        self, images: Tensor, elements: Any, settings: TypeTokenSettings
    ) -> tuple[Tensor, Tensor]:
        """Tokens of the element types fitted to ``images`` ``(B, 1, H, W)``: scores ``(B,)``
        and the tokens ``(B, ...)`` of :attr:`TokenFit.tokens` (full-size: padded to every
        part)."""
        raise NotImplementedError

    def render(self, tokens: Tensor, elements: Any) -> Tensor:
        """``(B, 1, H, W)`` canvases of fitted ``tokens`` of the element types."""
        raise NotImplementedError

    def fit(
        self,
        images: Tensor,
        types: WeightedTypes,
        settings: TypeTokenSettings,
        *,
        progress: bool = False,
        desc: str = "tokens",
    ) -> TokenFit:
        """The tokens of every (image, type image, type) triple (:func:`fit_triples`)."""
        fit = lambda x, elements: self.fit_chunk(x, elements, settings)  # noqa: E731
        return fit_triples(images, types, fit, settings, progress=progress, desc=desc)

    def score(self, images: Tensor, types: WeightedTypes, settings: TypeTokenSettings) -> Tensor:
        """One-way ``(Q, S)`` type-token scores of ``images`` against ``types`` (Eq. 19)."""
        return aggregate_scores(types.log_weights, self.fit(images, types, settings).scores)

    def infer_types(self, images: Tensor, settings: TypeTokenSettings) -> WeightedTypes:
        """``settings.type_samples`` weighted types of each of ``images`` (:func:`select_types`)."""
        with torch.no_grad():
            picked, log_weights, log_marginal = select_types(self.parse, images, settings)
            return self.make_types(picked, log_weights, log_marginal)


def replay_parse(
    family: TokenFamily, images: Tensor, draws: int, sites: dict[str, str], **model_kwargs: Any
) -> dict[str, Tensor]:
    """``draws`` guide samples of each of ``images`` ``(N, 1, H, W)`` for a family's
    :meth:`TokenFamily.parse`: the model (``model_kwargs``, e.g. ``record=True``) replayed on the
    guide trace, its per-step sites ``{key: "name"}`` (``"name_{t}"``, ``t < max_steps``) stacked
    as ``(draws, N, T, ...)``, with ``log_p`` = log p(x, ψ) and ``log_q`` = log q(ψ | x)
    ``(draws, N)``."""
    n = images.shape[0]
    x = images.repeat(draws, 1, 1, 1)  # particle-major: row i·N + b is draw i of image b
    guide_trace = poutine.trace(family.guide.guide).get_trace(x)
    replayed = poutine.replay(family.model.model, trace=guide_trace)
    model_trace = poutine.trace(replayed).get_trace(x, **model_kwargs)
    out = stack_sites(model_trace, family.max_steps, sites)
    out["log_p"] = log_density(model_trace)
    out["log_q"] = log_density(guide_trace)
    return {key: value.reshape(draws, n, *value.shape[1:]) for key, value in out.items()}


def select_types(
    parse: Callable[[Tensor, int], dict[str, Tensor]], images: Tensor, settings: TypeTokenSettings
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """``K = settings.type_samples`` parses of each of ``images`` ``(N, 1, H, W)`` from ``parse``
    (``(images, draws) -> {key: (draws, N, ...)}`` with ``log_p`` and ``log_q``), drawn
    ``type_rows`` rows at a time: type ``k`` is the draw with the largest ``log_p`` among draws
    ``k · c … (k + 1) · c − 1`` (``c = settings.draws_per_type``: 1, or ``type_candidates`` for
    best-of). Returns the chosen ``{key: (N, K, ...)}``, ``log π̃`` ``(N, K)`` (``log_p`` for
    ``type_weights="joint"``, ``log_p − log_q`` for importance) and ``log p̂(x)`` ``(N,)``, the
    IWAE estimate over every draw."""
    n = images.shape[0]
    per_type = settings.draws_per_type
    k = settings.type_samples
    draws = k * per_type
    chunk = max(1, settings.type_rows // n)
    parts = [parse(images, min(chunk, draws - start)) for start in range(0, draws, chunk)]
    found = {key: torch.cat([p[key] for p in parts], 0) for key in parts[0]}
    log_marginal = iwae_bound(found["log_p"] - found["log_q"]).to(images.dtype)
    # (K, per_type, N, ...): type k is chosen among draws k·per_type … (k+1)·per_type − 1
    grouped = {key: v.reshape(k, per_type, *v.shape[1:]) for key, v in found.items()}
    best = grouped["log_p"].argmax(1)  # (K, N); 0 when per_type == 1

    def pick(value: Tensor) -> Tensor:  # (K, per_type, N, ...) -> (N, K, ...)
        index = best.reshape(k, 1, n, *([1] * (value.dim() - 3)))
        chosen = value.gather(1, index.expand(k, 1, *value.shape[2:])).squeeze(1)
        return chosen.movedim(0, 1)

    picked = {key: pick(value) for key, value in grouped.items()}
    log_p, log_q = picked["log_p"], picked["log_q"]
    log_weights = log_p if settings.type_weights == "joint" else log_p - log_q
    return picked, log_weights.to(images.dtype), log_marginal


def fit_triples(
    images: Tensor,
    types: WeightedTypes,
    fit_chunk: Callable[[Tensor, Any], tuple[Tensor, Tensor]],
    settings: TypeTokenSettings,
    *,
    progress: bool = False,
    desc: str = "tokens",
) -> TokenFit:
    """``fit_chunk(images, elements) -> (scores, tokens)`` for every triple (image ``q``, type
    image ``s``, type ``k``) of ``images`` ``(Q, 1, H, W)`` and ``types`` (``S`` images × ``K``),
    batched: triples are ordered by their type's part count and fitted ``settings.token_chunk``
    at a time, each chunk's elements cut to as many parts as its largest type has."""
    q_count, s_count, k_count = images.shape[0], types.num_images, types.num_types
    per_image = s_count * k_count
    counts = types.num_parts.reshape(-1)  # (S·K,)
    total = q_count * per_image
    order = torch.argsort(counts.repeat(q_count), stable=True).to(images.device)
    scores = torch.empty(total, dtype=torch.float64, device=images.device)
    tokens: Tensor | None = None
    chunks = order.split(settings.token_chunk)
    with torch.enable_grad():
        for chunk in tqdm(chunks, desc=desc, unit="chunk", leave=False, disable=not progress):
            query, flat = chunk // per_image, chunk % per_image
            steps = max(1, int(counts[flat].max()))
            found, fitted = fit_chunk(images[query], types.elements(flat, steps))
            if tokens is None:
                tokens = fitted.new_zeros(total, *fitted.shape[1:])
            scores[chunk] = found
            tokens[chunk] = fitted.detach()
    assert tokens is not None
    shape = (q_count, s_count, k_count)
    return TokenFit(scores.reshape(shape), tokens.reshape(*shape, *tokens.shape[1:]))


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """The modules' parameters without gradients (restored afterwards): token fitting
    differentiates through the likelihood (and DooD's ``ω1``) but must not touch the model."""
    params = [p for m in modules for p in m.parameters()]
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)
