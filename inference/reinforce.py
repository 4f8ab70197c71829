"""REINFORCE (Williams 1992) for Pyro models whose latent sites are actions (RAM, sec. 3.2).

Generic pieces, usable with any traced Pyro program:

* :func:`site_log_probs` / :func:`site_baselines` collect ``log π(u_t | s_{1:t})`` and the learned
  baselines ``b_t`` of named sample sites of a ``poutine.Trace`` as ``(T, B)`` tensors;
* :func:`reinforce_surrogate` is the surrogate whose gradient is RAM's Eq. 2,
  ``(1/M) Σ_i Σ_t ∇ log π(u^i_t | s^i_{1:t}) (R^i − b^i_t)``;
* :func:`baseline_loss` trains ``b_t`` towards ``E[R | s_{1:t}]`` by squared error (sec. 3.2,
  "We use this type of baseline and learn it by reducing the squared error between R^i_t's and
  b_t").

Conventions: ``T`` actions per episode, ``B`` episodes (the batch, Pyro's ``plate("data", B)``);
the reward is a single return ``R`` per episode, which is also the return ``R_t`` following every
action when only the final step is rewarded (RAM's classification reward). The baseline must not
depend on the action it baselines (Eq. 2): compute it from a *detached* state (``b_t =
Linear(h_t.detach())``) so its squared-error gradient trains only the baseline network, and keep
sampled actions detached (non-reparameterised sites, :class:`generative.distributions.ScoreNormal`)
so no pathwise gradient flows through them.

:class:`RAMObjective` is the training objective of the attention models, in two readings:

* ``mode="hybrid"`` — RAM's hybrid supervised loss (sec. 3.2): cross-entropy of the label site
  (gradient through the action, core and glimpse networks) + REINFORCE for the location sites
  with reward 1 for a correct final classification, 0 otherwise, minus the learned baseline.
* ``mode="tracegraph"`` — the variational reading (Ba et al. 2015): maximise
  ``E_{π(l|x)}[log p(y | l, x)] ≤ log p(y | x)`` with Pyro's ``TraceGraph_ELBO``, the location
  policy as the guide and the same neural baseline (``infer={"baseline": {"baseline_value": b_t}}``
  on each location site of the guide). Its score-function reward is ``log p(y | l, x)``; its
  pathwise part is the same cross-entropy gradient as the hybrid loss. The model's copy of the
  policy is detached (:class:`DetachedPrior`): prior and guide are the same network, so their
  log-ratio is identically zero and so is its exact gradient, while ``TraceGraph_ELBO`` would
  otherwise add the zero-mean noise ``Σ_t ∇ log π(l_t)`` (verified in ``tests/test_ram.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask, sum_rightmost
from pyro.infer import TraceGraph_ELBO
from pyro.ops.provenance import detach_provenance
from pyro.poutine.messenger import Messenger
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample
from torch import Tensor

from generative.distributions import ScoreNormal

__all__ = [
    "DetachedPrior",
    "OBJECTIVE_MODES",
    "RAMObjective",
    "action_sites",
    "baseline_loss",
    "classification_reward",
    "detach_distribution",
    "reinforce_surrogate",
    "site_baselines",
    "site_log_probs",
]

OBJECTIVE_MODES = ("hybrid", "tracegraph")


def _stack(values: Tensor | Sequence[Tensor], what: str) -> Tensor:
    if isinstance(values, Tensor):
        out = values
    else:
        if len(values) == 0:
            raise ValueError(f"{what}: expected at least one step, found none")
        out = torch.stack(list(values), 0)
    if out.dim() != 2:
        raise ValueError(f"{what}: expected shape (T, B), found {tuple(out.shape)}")
    return out


def reinforce_surrogate(
    log_probs: Tensor | Sequence[Tensor], reward: Tensor, baselines: Tensor | None = None
) -> Tensor:
    """The REINFORCE surrogate of RAM's Eqs. 1–2: ``−mean_b Σ_t (R_b − b_tb)·log π_tb``.

    ``log_probs`` is ``(T, B)`` (or a list of ``T`` ``(B,)`` tensors) of ``log π(u_t | s_{1:t})``,
    ``reward`` is the return ``R`` ``(B,)`` and ``baselines`` ``(T, B)`` or ``None`` (Eq. 1).
    The advantage ``R − b_t`` is detached, so the gradient of the returned scalar is minus the
    Eq. 2 estimate of ``∇J`` averaged over the ``B`` episodes (its value is not meaningful).
    """
    lp = _stack(log_probs, "log_probs")
    if reward.shape != lp.shape[1:]:
        raise ValueError(
            f"reward: expected shape {tuple(lp.shape[1:])} (one per episode), "
            f"found {tuple(reward.shape)}"
        )
    advantage = reward.detach().to(lp.dtype).expand_as(lp)
    if baselines is not None:
        if baselines.shape != lp.shape:
            raise ValueError(
                f"baselines: expected shape {tuple(lp.shape)} like log_probs, "
                f"found {tuple(baselines.shape)}"
            )
        advantage = advantage - baselines.detach()
    return -(advantage * lp).sum(0).mean()


def baseline_loss(reward: Tensor, baselines: Tensor) -> Tensor:
    """Sec. 3.2: squared error between the return and the baseline, ``mean_b Σ_t (R_b − b_tb)²``.

    ``reward`` ``(B,)`` is detached, so only the baseline network learns from this term.
    ``baselines`` is ``(T, B)`` (or ``(B,)`` for a single step).
    """
    b = baselines if baselines.dim() == 2 else baselines.unsqueeze(0)
    if b.dim() != 2 or b.shape[1:] != reward.shape:
        raise ValueError(
            f"baselines: expected shape (T, {reward.shape[0] if reward.dim() else '?'}), "
            f"found {tuple(baselines.shape)} for reward {tuple(reward.shape)}"
        )
    return (reward.detach().to(b.dtype) - b).pow(2).sum(0).mean()


def action_sites(trace: Trace) -> list[str]:
    """Names of the latent (not observed, not plate-subsample) sample sites of ``trace``, in
    execution order."""
    return [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    ]


def _site(trace: Trace, name: str) -> dict[str, Any]:
    if name not in trace.nodes or trace.nodes[name]["type"] != "sample":
        found = [n for n, s in trace.nodes.items() if s["type"] == "sample"]
        raise ValueError(f"trace has no sample site {name!r}; its sample sites are {found}")
    return trace.nodes[name]


def _normal_parts(fn: Any) -> tuple[torch.distributions.Normal, int] | None:
    """``(base, event_dims)`` when ``fn`` is a ``Normal`` (or a subclass keeping its ``log_prob``,
    e.g. :class:`generative.distributions.ScoreNormal`), possibly wrapped in ``Independent``
    layers that fold ``event_dims`` batch dims into the event; else ``None``."""
    event_dims = 0
    while (
        isinstance(fn, torch.distributions.Independent)
        and type(fn).log_prob is torch.distributions.Independent.log_prob
    ):
        event_dims += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    if (
        isinstance(fn, torch.distributions.Normal)
        and type(fn).log_prob is torch.distributions.Normal.log_prob
    ):
        return fn, event_dims
    return None


_NormalParts = tuple[torch.distributions.Normal, int]


def _stacked_normal_log_probs(parts: Sequence[_NormalParts], values: Sequence[Tensor]) -> Tensor:
    """``(N, *batch)`` log-densities of ``N`` Normal sites of one structure (same subclass, event
    dims, shapes and dtype) in one vectorised ``Normal.log_prob`` call on the stacked parameters:
    the same elementwise formula as calling each site's ``log_prob``, without ``N`` copies of its
    forward ops and backward graph nodes (the policy sites of RAM and Catch)."""
    base, event_dims = parts[0]
    stacked = ScoreNormal(  # Normal's log_prob; same-shape parameters skip ``broadcast_all``
        torch.stack([p[0].loc for p in parts]),
        torch.stack([p[0].scale for p in parts]),
        validate_args=base._validate_args,
    )
    return sum_rightmost(stacked.log_prob(torch.stack(list(values))), event_dims)


def _group_key(site: dict[str, Any], parts: _NormalParts | None) -> tuple | None:
    if parts is None or site.get("log_prob") is not None:
        return None
    base, event_dims = parts
    value = site["value"]
    if base.loc.shape != value.shape or base.scale.shape != value.shape:
        return None
    return type(base), event_dims, tuple(value.shape), value.dtype, value.device


def _unscaled(site: dict[str, Any]) -> bool:
    """No mask and a scale of exactly 1 (the plain number Pyro leaves outside ``poutine.scale``)."""
    scale = site["scale"]
    return site["mask"] is None and (scale == 1.0 if isinstance(scale, float | int) else False)


def site_log_probs(trace: Trace, names: Sequence[str]) -> Tensor:
    """``(T, B)`` log-probabilities of the sample sites ``names`` (each ``(B,)`` inside the data
    plate, event dims summed), with site scales and masks applied (as ``Trace.compute_log_prob``
    would, without computing the other sites). Log-probabilities already stored on a site are
    reused; ``Normal`` sites of one structure (e.g. the location policy at every step) are scored
    together in one vectorised call (:func:`_stacked_normal_log_probs`), other sites one by one.
    A group of consecutive unscaled sites stays one ``(k, B)`` block of the result (one ``cat``
    of the blocks, no per-row split and restack)."""
    if not names:
        raise ValueError("site_log_probs: expected at least one site name, found none")
    sites = [_site(trace, name) for name in names]
    parts = [_normal_parts(site["fn"]) for site in sites]
    groups: dict[tuple, list[int]] = {}
    for i, site in enumerate(sites):
        key = _group_key(site, parts[i])
        if key is not None:
            groups.setdefault(key, []).append(i)
    rows: list[Tensor | None] = [None] * len(sites)  # (B,) per site, scaled and masked
    blocks: dict[int, Tensor] = {}  # first index -> (k, B) of k consecutive unscaled sites
    for members in groups.values():
        if len(members) < 2:
            continue
        group = [sites[i] for i in members]
        stacked = _stacked_normal_log_probs(
            [parts[i] for i in members],  # type: ignore[misc]
            [site["value"] for site in group],
        )
        first = members[0]
        if members == list(range(first, first + len(members))) and all(map(_unscaled, group)):
            blocks[first] = stacked
            continue
        for row, i, site in zip(stacked.unbind(0), members, group, strict=True):
            rows[i] = scale_and_mask(row, site["scale"], site["mask"])
    pieces: list[Tensor] = []
    i = 0
    while i < len(sites):
        block = blocks.get(i)
        if block is None:
            lp = rows[i]
            if lp is None:
                lp = sites[i].get("log_prob")  # stored by Trace.compute_log_prob: scaled, masked
            if lp is None:
                site = sites[i]
                lp = site["fn"].log_prob(site["value"])
                if not _unscaled(site):
                    lp = scale_and_mask(lp, site["scale"], site["mask"])
            block = lp.unsqueeze(0)
        if block.dim() != 2:
            raise ValueError(
                f"site {names[i]!r}: expected a (B,) log-probability (one per episode, event dims "
                f"folded with .to_event), found shape {tuple(block.shape[1:])}"
            )
        pieces.append(block)
        i += block.shape[0]
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, 0)


def site_baselines(trace: Trace, names: Sequence[str]) -> Tensor | None:
    """``(T, B)`` baselines stored on the sites ``names`` as
    ``infer={"baseline": {"baseline_value": b}}`` (the ``TraceGraph_ELBO`` convention), or
    ``None`` when no site has one. Either all sites carry a baseline or none does."""
    values = [_site(trace, n)["infer"].get("baseline", {}).get("baseline_value") for n in names]
    if all(v is None for v in values):
        return None
    missing = [n for n, v in zip(names, values, strict=True) if v is None]
    if missing:
        raise ValueError(f"sites {missing} have no baseline_value while the others do")
    return torch.stack([v if isinstance(v, Tensor) else torch.as_tensor(v) for v in values], 0)


def _label_distribution(site: dict[str, Any]) -> Any:
    fn = site["fn"]
    while not hasattr(fn, "logits") and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    if not hasattr(fn, "logits"):
        raise ValueError(
            f"label site {site['name']!r}: expected a Categorical distribution, found "
            f"{type(site['fn']).__name__}"
        )
    return fn


def classification_reward(trace: Trace, label_site: str = "y") -> tuple[Tensor, Tensor]:
    """RAM sec. 4.1 reward: ``r_T = 1`` if the most probable class of the observed label site
    equals the label, else 0. Returns ``(reward (B,), predictions (B,))``, both detached."""
    site = _site(trace, label_site)
    if not site["is_observed"]:
        raise ValueError(f"label site {label_site!r} is not observed; pass labels to the model")
    logits = detach_provenance(_label_distribution(site).logits).detach()
    predictions = logits.argmax(-1)
    labels = detach_provenance(site["value"]).detach()
    return (predictions == labels).to(logits.dtype), predictions


def detach_distribution(fn: Any) -> Any:
    """A shallow copy of the distribution ``fn`` whose tensor attributes (and those of nested
    base distributions) are detached: same values and log-densities, no parameter gradient.
    Pyro's provenance tracking survives (``detach`` is a torch function)."""
    new = copy.copy(fn)
    for key, value in list(vars(new).items()):
        if isinstance(value, Tensor):
            setattr(new, key, value.detach())
        elif isinstance(value, torch.distributions.Distribution):
            setattr(new, key, detach_distribution(value))
    return new


class DetachedPrior(Messenger):
    """Detach the parameters of the latent sites ``names`` (default: every latent site).

    In the variational reading the model's prior over locations *is* the guide's policy, so
    ``log p(l | x) − log q(l | x) ≡ 0`` for every parameter value and its gradient is exactly
    zero. ``TraceGraph_ELBO`` would still differentiate the model's copy, adding the zero-mean
    noise ``Σ_t ∇ log π(l_t)`` to its estimate; detaching the model's copy removes it, leaving
    ``∇ log p(y | l, x) + Σ_t ∇ log π(l_t) (log p(y | l, x) − b_t)`` (Ba et al. 2015, Eq. 6).
    """

    def __init__(self, names: Sequence[str] | None = None):
        super().__init__()
        self.names = None if names is None else set(names)

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["is_observed"] or site_is_subsample(msg):
            return
        if self.names is None or msg["name"] in self.names:
            msg["fn"] = detach_distribution(msg["fn"])


class RAMObjective:
    """The objective ``(model, guide, args=(images, labels), step) -> (loss, metrics)`` of
    :class:`inference.trainer.SVITrainer` for attention classifiers with latent locations.

    The model is an ``nn.Module`` whose ``.model(images, labels)`` samples the locations (latent
    sites, non-reparameterised, each carrying ``infer={"baseline": {"baseline_value": b_t}}``
    computed from a detached state) and observes the label at ``label_site`` from a
    ``Categorical``; for ``mode="tracegraph"`` the guide's ``.guide(images, labels)`` samples the
    same location sites from the same policy. ``location_sites=None`` takes every latent site of
    the model trace. The loss is per example (averaged over the batch).

    * ``hybrid`` (RAM sec. 3.2): ``CE + λ·surrogate(reward 0/1 − b_t) + baseline MSE``.
    * ``tracegraph``: ``TraceGraph_ELBO`` surrogate loss / B (reward ``log p(y | l, x)``; Pyro adds
      the baselines' squared error itself). ``metrics["elbo"]`` is the bound per example. With
      ``detach_prior`` (default) the model's copy of the policy is detached
      (:class:`DetachedPrior`), so the gradient is exactly the hybrid form with reward
      ``log p(y | l, x)``; without it Pyro adds the zero-mean term ``Σ_t ∇ log π(l_t)``.

    Metrics: ``accuracy``, ``reward`` (mean of the 0/1 reward), ``cross_entropy`` (nats),
    ``baseline_mse`` (hybrid) or ``elbo`` (tracegraph).
    """

    def __init__(
        self,
        mode: str = "hybrid",
        *,
        label_site: str = "y",
        location_sites: Sequence[str] | None = None,
        reinforce_weight: float = 1.0,
        detach_prior: bool = True,
    ):
        if mode not in OBJECTIVE_MODES:
            raise ValueError(f"objective mode: expected one of {OBJECTIVE_MODES}, found {mode!r}")
        self.mode, self.label_site = mode, label_site
        self.location_sites = None if location_sites is None else list(location_sites)
        self.reinforce_weight = float(reinforce_weight)
        self.detach_prior = bool(detach_prior)
        self._tracegraph = TraceGraph_ELBO() if mode == "tracegraph" else None

    def _names(self, trace: Trace) -> list[str]:
        if self.location_sites is not None:
            return self.location_sites
        return [n for n in action_sites(trace) if n != self.label_site]

    def __call__(
        self, model: Any, guide: Any, args: tuple[Tensor, ...], step: int = 0
    ) -> tuple[Tensor, dict[str, float]]:
        if len(args) != 2:
            raise ValueError(f"RAMObjective: expected args (images, labels), found {len(args)}")
        if self.mode == "hybrid":
            return self.hybrid(model.model, args)
        return self.tracegraph(model.model, guide.guide, args)

    def hybrid(self, model_fn: Callable, args: tuple[Tensor, ...]) -> tuple[Tensor, dict]:
        """RAM's hybrid supervised loss on one trace of ``model_fn(*args)``."""
        trace = poutine.trace(model_fn).get_trace(*args)
        names = self._names(trace)
        reward, _ = classification_reward(trace, self.label_site)
        all_log_probs = site_log_probs(trace, [*names, self.label_site])  # one pass over sites
        cross_entropy = -all_log_probs[-1].mean()
        loss = cross_entropy
        accuracy = reward.mean().item()
        metrics = {"accuracy": accuracy, "reward": accuracy, "cross_entropy": cross_entropy.item()}
        if names:
            log_probs = all_log_probs[:-1]
            baselines = site_baselines(trace, names)
            surrogate = reinforce_surrogate(log_probs, reward, baselines)
            w = self.reinforce_weight
            loss = loss + (surrogate if w == 1.0 else w * surrogate)  # x · 1.0 is x: no extra op
            if baselines is not None:
                b_loss = baseline_loss(reward, baselines)
                loss = loss + b_loss
                metrics["baseline_mse"] = b_loss.item() / len(names)
        return loss, metrics

    def tracegraph(
        self, model_fn: Callable, guide_fn: Callable, args: tuple[Tensor, ...]
    ) -> tuple[Tensor, dict]:
        """``TraceGraph_ELBO`` with the location policy as guide (the variational reading)."""
        elbo = self._tracegraph
        batch = args[0].shape[0]
        if self.detach_prior:
            model_fn = DetachedPrior(self.location_sites)(model_fn)
        ((model_trace, guide_trace),) = list(elbo._get_traces(model_fn, guide_fn, args, {}))
        elbo_value, surrogate = elbo._loss_and_surrogate_loss_particle(model_trace, guide_trace)
        reward, _ = classification_reward(model_trace, self.label_site)
        label_lp = detach_provenance(model_trace.nodes[self.label_site]["log_prob"])
        metrics = {
            "accuracy": reward.mean().item(),
            "reward": reward.mean().item(),
            "cross_entropy": -label_lp.mean().item(),
            "elbo": float(detach_provenance(elbo_value).detach()) / batch,
        }
        return surrogate / batch, metrics
