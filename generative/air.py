"""Attend-Infer-Repeat (Eslami et al. 2016) as the AIR baselines of DooD (Liang et al. 2022).

DooD compares against vanilla AIR and Difference-AIR (sec. 3.1, footnote 2, Fig. 3), built from
the same components as DooD (appendix B.2) with "an MLP ... as the decoder (i.e., renderer)".
The generative model is the same for both (they differ in the guide, :mod:`guides.air`). For
steps ``t = 0 … T−1`` (``T = max_steps``, 6 as in DooD sec. 3.1)::

    z_pres_t  ~ z_pres_{t−1} · Bernoulli(ρ)                      "z_pres_{t}"  (B,)
    z_where_t ~ N(μ_where, σ_where² I)                           "z_where_{t}" (B, 4)
    z_what_t  ~ N(0, I)                                          "z_what_{t}"  (B, D)
    y_t = softplus(MLP_dec(z_what_t) − 2)          (a G × G glimpse, the neural renderer)
    x_t = STN⁻¹(y_t, z_where_t)                    (placed on the H × W canvas)
    x ~ Laplace(Σ_t z_pres_t · x_t, b)                           "x"           (B, 1, H, W)

AIR has no sequential prior (sec. 3.2: "AIR doesn't have a sequential prior"): the priors are
fixed and the same at every step, as in the official code's ``prior_dist="Independent"``:
``ρ = 0.5``, ``μ_where = (0.8, 0, 0, 0)`` and ``σ_where = (0.2, 0.2, 0.2, 0.4)`` (official
``init_z_where("4_rotate")``, `util.py`; an early commit had ``(1, 0, 0, 0)``, 0.2), ``D = 10``
(the official ``--z_dim`` default used by its AIR runs). ``z_where = (s, t_x, t_y, θ)`` is the
official ``"4_rotate"`` layout (one scale, translation, rotation), used with :mod:`generative.stn`
as the layout ``(s, s, t_x, t_y, θ)``. The decoder's ``softplus(· − 2)`` output and the plain sum
of the placed glimpses follow the official ``air_mlp.Decoder`` / ``renders_imgs``.

Likelihood (Fig. 4 caption): Laplace, "standard across all other model-dataset combination",
with a learned per-pixel scale ``b ∈ [0.01, 1]`` (official ``imgs_dist_std``); a Gaussian for
Omniglot-trained AIR (``likelihood="normal"``).

Stopping is exact: once ``z_pres_t = 0`` every later ``z_pres`` is 0 with probability one
(:class:`generative.distributions.AbsorbingBernoulli`, shared with DooD) and ``z_where``/``z_what``
of absent steps are masked out of every density and of the canvas. The KL weight ``β = 5`` of the
``z_pres`` terms (appendix C: "β = 5 is used on AIR") is carried by ``AirConfig.beta`` for the
training objective, ``inference.nvil.make_stop_objective(c.stop_mode, c.beta, c.max_steps)`` (NVIL
as in the paper, or the exact sum over the number of steps); the model's densities are unweighted,
so IWAE estimates are of the true model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.checks import check_image_batch
from generative.config import ConfigDict, named_config
from generative.distributions import AbsorbingBernoulli
from generative.dood_config import BETA_MODES
from generative.layout import LIKELIHOOD_SCALE_BOUNDS, bounded
from generative.networks import MLP
from generative.stn import place
from generative.traces import collect_drawing

__all__ = [
    "AIR_CONFIGS",
    "WHERE_SIZE",
    "Air",
    "AirConfig",
    "AirState",
    "air_config",
    "air_model_config",
    "collect_air_steps",
    "where_to_layout",
]

WHERE_SIZE = 4  # z_where = (s, t_x, t_y, θ), the official "4_rotate"
LIKELIHOODS = ("laplace", "normal")
STOP_MODES = ("nvil", "enum")


def where_to_layout(z_where: Tensor) -> Tensor:
    """``(..., 4) = (s, t_x, t_y, θ)`` → the STN layout ``(..., 5) = (s, s, t_x, t_y, θ)``."""
    if z_where.shape[-1] != WHERE_SIZE:
        raise ValueError(
            f"z_where: expected shape (..., {WHERE_SIZE}) = (s, t_x, t_y, θ), "
            f"found {tuple(z_where.shape)}"
        )
    scale = z_where[..., 0:1]
    return torch.cat([scale, scale, z_where[..., 1:]], -1)


@dataclass(frozen=True)
class AirConfig(ConfigDict):
    """Hyper-parameters of the AIR baselines (the official DooD code's values where the paper is
    silent)."""

    label = "AIR config"

    height: int = 50  # DooD appendix A: 50×50 images
    width: int = 50
    max_steps: int = 6  # DooD sec. 3.1: at most 6 steps
    z_what_size: int = 10  # D (official --z_dim default of the AIR runs)
    glimpse_size: int = 50  # G: the official AIR reads and decodes glimpses at full resolution
    feature_size: int = 256  # CNN features (appendix B.2)
    hidden_size: int = 256  # GRU hidden state (appendix B.2)
    mlp_hidden: int = 256  # 2 hidden tanh layers (appendix B.2)
    difference: bool = False  # False = vanilla AIR, True = Difference-AIR (guide reads x − canvas)
    beta: float = 5.0  # KL weight of z_pres (appendix C: β = 5 for AIR)
    likelihood: str = "laplace"  # "laplace" | "normal" (Fig. 4: Gaussian for Omniglot AIR)
    pres_prior: float = 0.5  # ρ of the fixed z_pres prior (official)
    # official `util.py` init_z_where("4_rotate"): scale mean 0.8, std 0.2 (0.4 for the rotation)
    where_prior_loc: tuple[float, ...] = (0.8, 0.0, 0.0, 0.0)
    where_prior_scale: float | tuple[float, ...] = (0.2, 0.2, 0.2, 0.4)
    decoder_bias: float = -2.0  # softplus(MLP(z_what) + bias), official air_mlp.Decoder
    stop_bias_init: float | None = None  # appendix C (Omniglot): zero z_pres weights, bias 8
    # "nvil": REINFORCE with a neural baseline b(z_<t, x) on the z_pres sites (appendix C.1);
    # "enum": the number of steps summed out exactly (inference.nvil.EnumeratedObjective).
    stop_mode: str = "nvil"
    # β's reading and the stroke warm-up, as DooD's (generative.dood_config.DooDConfig)
    beta_mode: str = "signal"
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        positive = (
            "height",
            "width",
            "max_steps",
            "z_what_size",
            "glimpse_size",
            "feature_size",
            "hidden_size",
            "mlp_hidden",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"AirConfig.{name} must be >= 1, found {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"AirConfig.beta must be >= 0, found {self.beta}")
        if self.stop_mode not in STOP_MODES:
            raise ValueError(
                f"AirConfig.stop_mode must be one of {STOP_MODES}, found {self.stop_mode!r}"
            )
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(
                f"AirConfig.likelihood must be one of {LIKELIHOODS}, found {self.likelihood!r}"
            )
        if not 0.0 < self.pres_prior < 1.0:
            raise ValueError(f"AirConfig.pres_prior must be in (0, 1), found {self.pres_prior}")
        if len(self.where_prior_loc) != WHERE_SIZE:
            raise ValueError(
                f"AirConfig.where_prior_loc must have {WHERE_SIZE} entries (s, t_x, t_y, θ), "
                f"found {len(self.where_prior_loc)}"
            )
        scale = self.where_prior_scale
        scales = (scale,) if isinstance(scale, int | float) else tuple(scale)
        if len(scales) not in (1, WHERE_SIZE) or min(scales) <= 0:
            raise ValueError(
                f"AirConfig.where_prior_scale must be > 0 (one value or {WHERE_SIZE}), "
                f"found {self.where_prior_scale}"
            )
        if self.beta_mode not in BETA_MODES:
            raise ValueError(
                f"AirConfig.beta_mode must be one of {BETA_MODES}, found {self.beta_mode!r}"
            )
        if self.warmup_steps < 0:
            raise ValueError(f"AirConfig.warmup_steps must be >= 0, found {self.warmup_steps}")

    @classmethod
    def from_dict(cls, data: dict) -> AirConfig:
        data = dict(data)
        for name in ("where_prior_loc", "where_prior_scale"):  # JSON round trips give lists
            if isinstance(data.get(name), list):
                data[name] = tuple(data[name])
        return super().from_dict(data)


AIR_CONFIGS: dict[str, AirConfig] = {
    # Vanilla AIR (Fig. 3d): the guide reads the target image.
    "air": AirConfig(),
    # Difference-AIR (Fig. 3c, the paper's "AIR" elsewhere): the guide reads x − canvas-so-far.
    "difference_air": AirConfig(difference=True),
    # Not from the paper: small networks for quick CPU runs (Difference-AIR). It starts with
    # z_pres "on" (zero weights, bias 6: the official code's PresMLP value for MNIST); without
    # it a 280-s run on mnist50 (batch 32, lr 1e-3) stopped drawing (0 steps) by step 60.
    "small": AirConfig(
        difference=True,
        stop_bias_init=6.0,
        # with the official β reading and the stop net at the base lr, 930 steps on MNIST
        # fell to 0.06 steps per image without a warm-up
        warmup_steps=300,
        glimpse_size=14,
        feature_size=64,
        hidden_size=64,
        mlp_hidden=64,
    ),
}


def air_config(name: str, **overrides) -> AirConfig:
    """A named configuration with fields overridden (e.g. the image size of a dataset)."""
    return named_config(AIR_CONFIGS, "AIR", name, overrides)


def air_model_config(name: str, image_shape: tuple[int, int, int]) -> dict:
    """The named configuration fitted to images of shape ``(C, H, W)`` (``C`` must be 1)."""
    channels, height, width = image_shape
    if channels != 1:
        raise ValueError(f"AIR: expected grey images (1 channel), found {channels} channels")
    return air_config(name, height=height, width=width).to_dict()


class AirState(NamedTuple):
    """What the next step of the model or guide depends on."""

    z_pres: Tensor  # (B,) previous z_pres (1 = still drawing)
    z_where: Tensor  # (B, 4) previous z_where (zeros before the first step)
    z_what: Tensor  # (B, D) previous z_what
    canvas: Tensor  # (B, 1, H, W) canvas so far (Σ of the placed glimpses of present steps)


class Air(nn.Module):
    """AIR's generative model (fixed priors, MLP decoder, inverse STN, Laplace likelihood)."""

    def __init__(self, config: AirConfig):
        super().__init__()
        self.config = c = config
        G = c.glimpse_size
        # The neural renderer (appendix B.2: "An MLP is used as the decoder ... for AIR").
        self.decoder = MLP(c.z_what_size, G * G, (c.mlp_hidden, c.mlp_hidden))
        # Official imgs_dist_std: raw 0 → b = 0.01 + 0.99 · σ(0) ≈ 0.5.
        self.likelihood_scale_raw = nn.Parameter(torch.zeros(1, c.height, c.width))
        self.register_buffer("_where_loc", torch.tensor(c.where_prior_loc), persistent=False)
        scale = torch.as_tensor(c.where_prior_scale, dtype=torch.float32).expand(WHERE_SIZE)
        self.register_buffer("_where_scale", scale.clone(), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    # -- deterministic pieces ----------------------------------------------------------------
    def initial_state(self, batch_size: int) -> AirState:
        c = self.config
        zeros = self._one.new_zeros
        return AirState(
            self._one.expand(batch_size),
            zeros(batch_size, WHERE_SIZE),
            zeros(batch_size, c.z_what_size),
            zeros(batch_size, 1, c.height, c.width),
        )

    def initial_canvas(self, batch_size: int) -> Tensor:
        """The empty canvas ``(B, 1, H, W)`` (the likelihood's location when no step is drawn)."""
        return self.initial_state(batch_size).canvas

    def decode(self, z_what: Tensor) -> Tensor:
        """The neural renderer: ``y_t = softplus(MLP_dec(z_what_t) − 2)``, ``(B, 1, G, G)``."""
        G = self.config.glimpse_size
        out = self.decoder(z_what) + self.config.decoder_bias
        return F.softplus(out).view(-1, 1, G, G)

    def render(self, z_what: Tensor, z_where: Tensor) -> Tensor:
        """``x_t = STN⁻¹(y_t, z_where_t)``: the decoded glimpse placed on the canvas,
        ``(B, 1, H, W)``."""
        c = self.config
        return place(self.decode(z_what), where_to_layout(z_where), c.height, c.width)

    def advance(
        self, state: AirState, z_pres: Tensor, z_where: Tensor, z_what: Tensor, stroke: Tensor
    ) -> AirState:
        """Add the placed glimpse of a present step to the canvas (absent steps add nothing)."""
        canvas = state.canvas + z_pres.view(-1, 1, 1, 1) * stroke
        return AirState(z_pres, z_where, z_what, canvas)

    # -- distributions -----------------------------------------------------------------------
    def stop_prior(self, state: AirState) -> AbsorbingBernoulli:
        """``p(z_pres_t | z_pres_{t−1}) = z_pres_{t−1} · Bernoulli(ρ)`` (exactly absorbing)."""
        rho = self.config.pres_prior
        logits = state.canvas.new_full(state.z_pres.shape, math.log(rho / (1.0 - rho)))
        return AbsorbingBernoulli(logits, state.z_pres)

    def where_prior(self, batch_size: int) -> dist.Distribution:
        """``N(μ_where, σ_where² I)`` over ``(s, t_x, t_y, θ)``."""
        loc = self._where_loc.expand(batch_size, WHERE_SIZE)
        return dist.Normal(loc, self._where_scale.expand(batch_size, WHERE_SIZE)).to_event(1)

    def what_prior(self, batch_size: int) -> dist.Distribution:
        """``N(0, I_D)``."""
        zero = self._one.new_zeros(batch_size, self.config.z_what_size)
        return dist.Normal(zero, zero + 1).to_event(1)

    def likelihood_scale(self) -> Tensor:
        """The learned per-pixel scale ``b ∈ [0.01, 1]``, ``(1, H, W)``."""
        return bounded(self.likelihood_scale_raw, *LIKELIHOOD_SCALE_BOUNDS)

    def likelihood(self, canvas: Tensor) -> dist.Distribution:
        """``Laplace(canvas, b)`` (or ``Normal`` for ``likelihood="normal"``) over all pixels."""
        scale = self.likelihood_scale().expand_as(canvas)
        if self.config.likelihood == "normal":
            return dist.Normal(canvas, scale).to_event(3)
        return dist.Laplace(canvas, scale).to_event(3)

    # -- Pyro model --------------------------------------------------------------------------
    def check_images(self, images: Tensor) -> None:
        check_image_batch(images, (1, self.config.height, self.config.width), "AIR")

    def model(
        self, images: Tensor | None = None, *, batch_size: int | None = None, record: bool = False
    ) -> Tensor:
        """Pyro model. ``images`` ``(B, 1, H, W)`` are observed at ``"x"``; with ``images=None``
        it samples ``batch_size`` images from the prior. Sites per step ``t``: ``"z_pres_{t}"``
        (B,), ``"z_where_{t}"`` (B, 4), ``"z_what_{t}"`` (B, D). With ``record=True`` the
        deterministic sites ``"canvas_{t}"`` (B, 1, H, W) and ``"glimpse_{t}"`` (B, 1, G, G)
        are added. Returns the final canvas (the likelihood's location)."""
        pyro.module("air_model", self)
        if images is not None:
            self.check_images(images)
            batch_size = images.shape[0]
        if batch_size is None:
            raise ValueError("Air.model needs images or batch_size")
        state = self.initial_state(batch_size)
        with pyro.plate("data", batch_size):
            for t in pyro.markov(range(self.config.max_steps)):
                z_pres = pyro.sample(f"z_pres_{t}", self.stop_prior(state))
                present = z_pres > 0
                z_where = pyro.sample(f"z_where_{t}", self.where_prior(batch_size).mask(present))
                z_what = pyro.sample(f"z_what_{t}", self.what_prior(batch_size).mask(present))
                stroke = self.render(z_what, z_where)
                state = self.advance(state, z_pres, z_where, z_what, stroke)
                if record:
                    pyro.deterministic(f"canvas_{t}", state.canvas, event_dim=3)
                    pyro.deterministic(f"glimpse_{t}", self.decode(z_what), event_dim=3)
            pyro.sample("x", self.likelihood(state.canvas), obs=images)
        return state.canvas

    def forward(self, images: Tensor | None = None, **kwargs) -> Tensor:
        return self.model(images, **kwargs)

    @torch.no_grad()
    def generate(self, num_samples: int) -> dict[str, Tensor]:
        """Samples from the (fixed) prior with every step recorded (:func:`collect_air_steps`)."""
        trace = pyro.poutine.trace(self.model).get_trace(batch_size=num_samples, record=True)
        return collect_air_steps(trace, self.config)


def collect_air_steps(trace: pyro.poutine.Trace, config: AirConfig) -> dict[str, Tensor]:
    """Stack a recorded model trace: ``canvases`` (B, T, 1, H, W), ``glimpses`` (B, T, 1, G, G),
    ``z_pres`` (B, T), ``z_where`` (B, T, 4), ``z_what`` (B, T, D), ``images`` (B, 1, H, W: the
    final canvas) and ``num_steps`` (B,)."""
    return collect_drawing(trace, config.max_steps, {"glimpses": "glimpse"}, "num_steps")
