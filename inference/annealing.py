"""sketch-rnn's training loss with KL annealing and a KL floor (Ha & Eck 2017, sec. 3.4 and
appendix sec. 2, Eqs. 1–4), as a generic objective for any Pyro model/guide pair.

With ``L_R`` the reconstruction loss (Eq. 9 / appendix Eq. 1) and ``L_KL`` the KL loss (Eq. 10 /
appendix Eq. 2), the paper trains on (appendix Eq. 4)::

    η_step = 1 − (1 − η_min) R^step
    Loss_train = L_R + w_KL · η_step · max(L_KL, KL_min)

and evaluates validation/test sets (and early stopping) with the unannealed Eq. 3
(appendix; Eq. 11 of the main text) ``Loss = L_R + w_KL · L_KL``.

Choices (documented and tested):

* **Terms.** ``L_R = −Σ_obs log p(x | z) / N_rec`` and ``L_KL = KL(q(z | x) ‖ p(z)) / N_KL`` per
  example. ``N_rec`` defaults to the ``num_steps`` of the observed sites' distributions when
  they have one (``StrokeSequence``: ``N_max``, Eq. 9; several sites must agree), else 1
  (nats); ``N_KL`` defaults to the total event size of the latent sites (``N_z``, Eq. 10).
  Pass floats to override (1.0 for nats).
* **KL.** Analytic ``kl_divergence(q, p)`` between the guide's and the model's site
  distributions when registered (Normal/Normal here, which equals appendix Eq. 2 exactly:
  ``−½ Σ (1 + σ̂ − μ² − exp σ̂)`` with ``σ = exp(σ̂/2)``; Eq. 10's ``σ̂²`` is a typo), else the
  one-sample Monte-Carlo estimate ``log q(z) − log p(z)`` at the guide's draw. Pyro's
  ``TraceMeanField_ELBO`` is not used because it takes the analytic KL's scale from the guide
  site only; here annealing multiplies the KL explicitly.
* **Floor.** ``max(·, KL_min)`` applies to the batch mean of ``L_KL``, as the reference code
  (``kl_cost = max(reduce_mean(kl), kl_tolerance)``), not per example or per dimension (which
  would be "free bits", the paper's ref. [7]).
* **Models without latents** (the decoder-only model, sec. 3.3): no KL term at all (not a floored
  zero): ``Loss = L_R``.
* Only reparameterised guide sites are supported (no score-function term): ``z = μ + σ ⊙ ε``.
* ``η_step`` uses the 0-based optimisation step, so ``η_0 = η_min`` and ``η → 1``.

Besides the loss, the metrics report ``elbo`` = ``mean(log p(x | z) − KL)`` in nats per example
(per sketch), a one-sample ELBO estimate that ignores the annealing, normalisers and weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pyro.poutine as poutine
import torch
from pyro.distributions.kl import kl_divergence
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import prune_subsample_sites
from torch import Tensor

from inference.distributed import global_sum, world

__all__ = [
    "AnnealedKLObjective",
    "LossTerms",
    "kl_annealing_weight",
    "loss_terms",
    "traced_loss_terms",
    "unannealed_loss",
]


def kl_annealing_weight(step: int, eta_min: float, decay_rate: float) -> float:
    """Appendix Eq. 4: ``η_step = 1 − (1 − η_min) R^step`` (``η_0 = η_min``, ``η → 1``)."""
    if step < 0:
        raise ValueError(f"kl_annealing_weight: step must be >= 0, found {step}")
    return 1.0 - (1.0 - eta_min) * decay_rate**step


class LossTerms(NamedTuple):
    """Per-example pieces of the sketch-rnn loss (leading shape ``(..., B)``, e.g. ``(B,)``).

    ``log_lik`` = ``Σ_obs log p(x | z)`` (nats), ``kl`` = ``KL(q ‖ p)`` (nats; ``None`` without
    latent sites), and the normalisers ``N_rec`` (``N_max``) and ``N_KL`` (``N_z``).
    """

    log_lik: Tensor
    kl: Tensor | None
    recon_normalizer: float
    kl_normalizer: float

    @property
    def reconstruction_loss(self) -> Tensor:
        """``L_R`` (Eq. 9 / appendix Eq. 1) per example."""
        return -self.log_lik / self.recon_normalizer

    @property
    def kl_loss(self) -> Tensor:
        """``L_KL`` (Eq. 10 / appendix Eq. 2) per example; zeros without latents."""
        if self.kl is None:
            return torch.zeros_like(self.log_lik)
        return self.kl / self.kl_normalizer

    @property
    def elbo(self) -> Tensor:
        """``log p(x | z) − KL`` in nats per example."""
        return self.log_lik if self.kl is None else self.log_lik - self.kl


def _callable(obj: Any, attr: str) -> Callable:
    method = getattr(obj, attr, None)
    return method if callable(method) else obj


def _site_value(site: dict, value: Tensor) -> Tensor:
    """Apply the site's scale and mask (as Pyro's ELBOs do)."""
    out = scale_and_mask(value, site["scale"], site["mask"])
    return out if isinstance(out, Tensor) else torch.as_tensor(out)


def _sample_sites(
    guide_trace: Any, model_trace: Any, latent_sites: Sequence[str] | None
) -> tuple[dict, dict, dict]:
    """The guide's latent sites, the model's sample sites and the model's observed sites, after
    checking that the guide's sites are the listed, reparameterisable latents of the model and
    that the model has no latent the guide does not propose."""
    guide_sites = {
        n: s for n, s in guide_trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]
    }
    model_sites = {n: s for n, s in model_trace.nodes.items() if s["type"] == "sample"}
    allowed = set(guide_sites) if latent_sites is None else set(latent_sites)
    for name, site in guide_sites.items():
        if name not in allowed:
            raise ValueError(
                f"guide sample site {name!r} is not among latent_sites {sorted(allowed)}; it would "
                "be ignored by the objective"
            )
        if name not in model_sites:
            raise ValueError(f"guide site {name!r} does not appear in the model")
        if not site["fn"].has_rsample:
            raise ValueError(
                f"guide site {name!r} is not reparameterisable; the annealed objective has no "
                "score-function term"
            )
    observed = {}
    for name, site in model_sites.items():
        if site["infer"].get("_deterministic", False):
            continue
        if site["is_observed"]:
            observed[name] = site
        elif name not in guide_sites:
            raise ValueError(
                f"model latent site {name!r} is not proposed by the guide; the objective needs "
                "every latent in the guide"
            )
    if not observed:
        raise ValueError("the model has no observed sample site (pass the data in args)")
    return guide_sites, model_sites, observed


def _log_likelihood(observed: dict, recon_normalizer: float | None) -> tuple[Tensor, float]:
    """``Σ_obs log p(x | z)`` per example and ``N_rec`` (default: the sites' ``num_steps``)."""
    log_lik: Tensor | float = 0.0
    for site in observed.values():
        log_lik = log_lik + _site_value(site, site["fn"].log_prob(site["value"]))
    if recon_normalizer is None:
        steps = {name: float(getattr(s["fn"], "num_steps", 1)) for name, s in observed.items()}
        if len(set(steps.values())) > 1:
            raise ValueError(
                f"observed sites have different num_steps {steps}; pass recon_normalizer"
            )
        recon_normalizer = next(iter(steps.values()))
    return torch.as_tensor(log_lik), float(recon_normalizer)


def _kl_term(guide_sites: dict, model_sites: dict) -> tuple[Tensor | None, int]:
    """``KL(q ‖ p)`` per example (analytic where registered, else one sample; ``None`` without
    latent sites) and the total event size of the latent sites."""
    kl: Tensor | None = None
    dims = 0
    for name, q_site in guide_sites.items():
        p_site = model_sites[name]
        q, p = q_site["fn"], p_site["fn"]
        try:
            value = kl_divergence(q, p)
        except NotImplementedError:
            value = q.log_prob(q_site["value"]) - p.log_prob(p_site["value"])
        else:  # the analytic KL has the guide's batch shape; broadcast to the site's draws
            value = value.expand(torch.broadcast_shapes(value.shape, q.batch_shape))
        value = _site_value(q_site, value)
        kl = value if kl is None else kl + value
        dims += math.prod(q.event_shape)
    return kl, dims


def loss_terms(model: Any, guide: Any, args: tuple, **options: Any) -> LossTerms:
    """:func:`traced_loss_terms` without the trace (``options``: its keyword arguments)."""
    return traced_loss_terms(model, guide, args, **options)[0]


def traced_loss_terms(
    model: Any,
    guide: Any,
    args: tuple,
    *,
    latent_sites: Sequence[str] | None = ("z",),
    recon_normalizer: float | None = None,
    kl_normalizer: float | None = None,
    kwargs: dict | None = None,
) -> tuple[LossTerms, Any]:
    """Run ``guide`` then ``model`` (replayed on the guide's draws) on ``args`` and return the
    per-example terms (module doc) and the model's trace they were computed from (its observed
    sites' distributions give other readings of the same draw, e.g. a masked reconstruction
    loss). ``model``/``guide`` are callables or objects with ``.model`` / ``.guide`` methods
    (``nn.Module`` s as in :mod:`inference.trainer`). ``latent_sites`` are the guide sites forming
    the KL term (``None``: every guide sample site); a guide sample site not listed is an error, a
    listed site absent from the trace is skipped.
    """
    kwargs = kwargs or {}
    model_fn, guide_fn = _callable(model, "model"), _callable(guide, "guide")
    guide_trace = prune_subsample_sites(poutine.trace(guide_fn).get_trace(*args, **kwargs))
    model_trace = prune_subsample_sites(
        poutine.trace(poutine.replay(model_fn, trace=guide_trace)).get_trace(*args, **kwargs)
    )
    guide_sites, model_sites, observed = _sample_sites(guide_trace, model_trace, latent_sites)
    log_lik, recon_normalizer = _log_likelihood(observed, recon_normalizer)
    kl, dims = _kl_term(guide_sites, model_sites)
    if kl_normalizer is None:
        kl_normalizer = float(max(dims, 1))
    terms = LossTerms(log_lik, kl, recon_normalizer, float(kl_normalizer))
    return terms, model_trace


class AnnealedKLObjective:
    """``Loss_train = L_R + w_KL η_step max(L_KL, KL_min)`` (appendix Eq. 4) as a trainer
    objective ``(model, guide, args, step) -> (loss, metrics)``; see the module doc.

    Defaults are the paper's: ``w_KL = 1`` (appendix sec. 3, "unless mentioned otherwise"),
    ``KL_min = 0.2``, ``R = 0.99999`` (appendix sec. 3), ``η_min = 0.01`` (appendix sec. 2,
    "typically 0 or 0.01"). ``loss`` is the batch mean (per example); ``metrics`` are floats:
    ``L_R``, ``L_KL`` (batch means, ``L_KL`` before the floor), ``eta`` and ``elbo`` (nats per
    example).
    """

    def __init__(
        self,
        w_kl: float = 1.0,
        kl_min: float = 0.2,
        eta_min: float = 0.01,
        decay_rate: float = 0.99999,
        latent_sites: Sequence[str] | None = ("z",),
        recon_normalizer: float | None = None,
        kl_normalizer: float | None = None,
    ):
        if w_kl < 0:
            raise ValueError(f"AnnealedKLObjective.w_kl: expected >= 0, found {w_kl}")
        if kl_min < 0:
            raise ValueError(f"AnnealedKLObjective.kl_min: expected >= 0, found {kl_min}")
        if not 0.0 <= eta_min <= 1.0:
            raise ValueError(f"AnnealedKLObjective.eta_min: expected in [0, 1], found {eta_min}")
        if not 0.0 < decay_rate <= 1.0:
            raise ValueError(
                f"AnnealedKLObjective.decay_rate: expected R in (0, 1], found {decay_rate}"
            )
        self.w_kl, self.kl_min, self.eta_min, self.decay_rate = w_kl, kl_min, eta_min, decay_rate
        self.latent_sites = None if latent_sites is None else tuple(latent_sites)
        self.recon_normalizer, self.kl_normalizer = recon_normalizer, kl_normalizer

    def config(self) -> dict[str, Any]:
        """The settings, JSON-ready (for checkpoints and results)."""
        return {
            "w_kl": self.w_kl,
            "kl_min": self.kl_min,
            "eta_min": self.eta_min,
            "decay_rate": self.decay_rate,
            "latent_sites": None if self.latent_sites is None else list(self.latent_sites),
            "recon_normalizer": self.recon_normalizer,
            "kl_normalizer": self.kl_normalizer,
        }

    def eta(self, step: int) -> float:
        """``η_step`` (appendix Eq. 4)."""
        return kl_annealing_weight(step, self.eta_min, self.decay_rate)

    def terms(self, model: Any, guide: Any, args: tuple) -> LossTerms:
        return loss_terms(
            model,
            guide,
            tuple(args),
            latent_sites=self.latent_sites,
            recon_normalizer=self.recon_normalizer,
            kl_normalizer=self.kl_normalizer,
        )

    def loss_from_terms(self, terms: LossTerms, step: int | None) -> tuple[Tensor, dict]:
        """Appendix Eq. 4 (``step`` given) or Eq. 3 (``step=None``: no annealing, no floor)."""
        l_r = terms.reconstruction_loss.mean()
        metrics = {"L_R": l_r.item(), "elbo": terms.elbo.mean().item()}
        if terms.kl is None:
            metrics.update(L_KL=0.0, eta=1.0 if step is None else self.eta(step))
            return l_r, metrics
        l_kl = terms.kl_loss.mean()
        if step is None:
            loss = l_r + self.w_kl * l_kl
            eta = 1.0
        else:
            eta = self.eta(step)
            loss = l_r + self.w_kl * eta * self.floored(l_kl)
        metrics.update(L_KL=l_kl.item(), eta=eta)
        return loss, metrics

    def floored(self, l_kl: Tensor) -> Tensor:
        """``max(L_KL, KL_min)`` of the batch mean ``l_kl``, the floor decided on the mean over
        all ranks' batches (:func:`inference.distributed.global_sum`), so that a data-parallel
        run floors exactly when the single-process run does."""
        batch_mean = global_sum(l_kl) / world().size
        return l_kl if batch_mean >= self.kl_min else l_kl.new_tensor(self.kl_min)

    def __call__(self, model: Any, guide: Any, args: tuple, step: int) -> tuple[Tensor, dict]:
        """The training loss of appendix Eq. 4 at optimisation ``step`` and its metrics."""
        return self.loss_from_terms(self.terms(model, guide, args), step)

    def unannealed(self, model: Any, guide: Any, args: tuple) -> tuple[Tensor, dict]:
        """Appendix Eq. 3 ``L_R + w_KL L_KL`` (validation, test, early stopping)."""
        return self.loss_from_terms(self.terms(model, guide, args), None)


def unannealed_loss(
    model: Any,
    guide: Any,
    args: tuple,
    *,
    w_kl: float = 1.0,
    latent_sites: Sequence[str] | None = ("z",),
    recon_normalizer: float | None = None,
    kl_normalizer: float | None = None,
) -> tuple[Tensor, dict]:
    """Appendix Eq. 3 (Eq. 11): ``L_R + w_KL · L_KL`` (batch mean) and its metrics."""
    objective = AnnealedKLObjective(
        w_kl=w_kl,
        latent_sites=latent_sites,
        recon_normalizer=recon_normalizer,
        kl_normalizer=kl_normalizer,
    )
    return objective.unannealed(model, guide, args)
