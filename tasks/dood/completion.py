"""DooD's partial completion (sec. 3.2, Fig. 8): the guide infers the strokes of a partial
drawing, the model's shared RNNs run over them, then the priors draw further strokes onto it."""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor

from generative.dood import DooD
from generative.traces import stack_sites
from guides.dood import DooDGuide

__all__ = ["complete_drawings"]


def _inferred_latents(guide: DooDGuide, partial: Tensor, steps: int) -> dict[str, Tensor]:
    """One guide sample of ``z_pres``, ``z_where``, ``z_what`` per image, stacked over steps."""
    trace = poutine.trace(guide.guide).get_trace(partial)
    return stack_sites(trace, steps, {key: key for key in ("z_pres", "z_where", "z_what")})


def _unroll(
    model: DooD, given: dict[str, Tensor], n: Tensor, target: Tensor, temperature: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Steps ``t < n`` replay the inferred latents, later ones sample the priors; the canvas
    read from step ``n`` on is the partial figure with the new ink composited (Eq. 14).
    Returns the ink sums ``base`` (of the partial figure), ``added``, ``kept`` and the count of
    strokes added per row."""
    omega1 = model.omega1()
    base = omega1 * torch.atanh(target.clamp(0.0, 1.0 - 1e-4))
    added = target.new_zeros(target.shape)
    kept = target.new_zeros(target.shape)
    num_added = target.new_zeros(target.shape[0])
    state = model.initial_state(target.shape[0])
    for t in range(model.config.max_strokes):
        forced = t < n
        stage_l = model.layout_stage(state)
        z_pres = model.stop_prior(state, stage_l, temperature).sample()
        z_pres = torch.where(forced, given["z_pres"][:, t], z_pres)
        z_where = model.layout_prior(stage_l, temperature).sample()
        z_where = torch.where(forced[:, None], given["z_where"][:, t], z_where)
        stage_s = model.stroke_stage(state, z_where)
        z_what = model.stroke_prior(stage_s, z_where, temperature).sample()
        z_what = torch.where(forced[:, None, None], given["z_what"][:, t], z_what)
        render = model.render(stage_s, z_where, z_what)
        ink = z_pres.view(-1, 1, 1, 1) * render.image.unsqueeze(1)
        free = (~forced).view(-1, 1, 1, 1)
        added = added + torch.where(free, ink, torch.zeros_like(ink))
        kept = kept + torch.where(free, torch.zeros_like(ink), ink)
        num_added = num_added + (~forced) * z_pres
        nxt = model.advance(state, stage_l, stage_s, z_pres, z_where, z_what, render)
        composite = torch.tanh((base + added) / omega1)
        switched = (t + 1 >= n).view(-1, 1, 1, 1)
        state = nxt._replace(canvas=torch.where(switched, composite, nxt.canvas))
    return base, added, kept, num_added


def complete_drawings(
    model: DooD,
    guide: DooDGuide,
    partial: Tensor,
    num_samples: int,
    *,
    temperature: float = 1.0,
) -> dict[str, Tensor]:
    """Partial completion (sec. 3.2, Fig. 8): "employ the recognition model over the partial
    figure to compute the hidden states of the shared recurrent networks ... set the
    canvas-so-far x_<t to be the partial figure itself and then unroll the generative model".

    The guide (Eqs. 6–8) infers ``n`` strokes for each partial image; the model's shared RNNs
    are run over those strokes (:meth:`DooD.layout_stage` / :meth:`DooD.stroke_stage`, exactly
    as in the guide), giving ``h^l``, ``h^s`` and the last ``l``, ``s``; from step ``n`` on the
    priors (Eqs. 2–4, at ``temperature``) draw further strokes, ``num_samples`` times per image.
    The canvas-so-far read by the networks from step ``n`` on is the partial figure with the new
    strokes composited onto it by Eq. 14: the partial figure ``p`` is the canvas of an ink sum
    ``ω1 · atanh(p)`` (``p`` clamped below 1), so ``x_≤t = tanh(atanh(p) + Σ_new o_t x_t / ω1)``.

    Returns ``images`` (N, S, 1, H, W: the completed drawings), ``added`` (N, S, 1, H, W: the
    new strokes alone, Eq. 14), ``inferred`` (N, 1, H, W: the canvas of the ``n`` inferred
    strokes), ``num_given`` (N,) and ``num_added`` (N, S).
    """
    if not isinstance(model, DooD) or not isinstance(guide, DooDGuide):
        raise ValueError("complete_drawings needs a DooD model and its DooDGuide")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, found {num_samples}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, found {temperature}")
    model.check_images(partial)
    with torch.no_grad(), pyro.validation_enabled(False):
        given = _inferred_latents(guide, partial, model.config.max_strokes)
        num_given = given["z_pres"].sum(1).round().long()
        given = {k: v.repeat_interleave(num_samples, 0) for k, v in given.items()}
        n = num_given.repeat_interleave(num_samples, 0)
        target = partial.repeat_interleave(num_samples, 0)
        base, added, kept, num_added = _unroll(model, given, n, target, temperature)
        omega1 = model.omega1()
        shape = (partial.shape[0], num_samples, *partial.shape[1:])
        return {
            "images": torch.tanh((base + added) / omega1).reshape(shape),
            "added": torch.tanh(added / omega1).reshape(shape),
            "inferred": torch.tanh(kept / omega1).reshape(shape)[:, 0],
            "num_given": num_given,
            "num_added": num_added.round().long().reshape(shape[:2]),
        }
