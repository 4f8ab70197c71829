"""DooD's generative model (Liang et al. 2022, "Drawing out of Distribution", sec. 2.1, Eqs. 1–5,
appendices B.1–B.2, C).

For steps ``t = 0 … T−1`` (``T = max_strokes``, 6 in the paper) the model draws::

    o_t ~ p_on(o_t | o_{t−1}, x_<t) = o_{t−1} · Bernoulli(σ(MLP_o(·)))        (Eq. 4)  "z_pres_t"
    l_t ~ p_layout(l_t | x_<t, h^l_t) = Σ_m α_m N(l_t; μ_m, σ_m)              (Eq. 2)  "z_where_t"
    x̃_<t = STN(l_t, x_<t)                                                     (Eq. 2)
    s_t ~ p_stroke(s_t | l_t, x̃_<t, h^s_t) = Π_d Σ_k π_dk N(s_dt; μ_dk, σ_dk) (Eq. 3)  "z_what_t"
    x_t = δR(l_t ⊙ s_t; σ_t, ω_t0)                                            (Eqs. 10–13)
    x_≤t = tanh(Σ_{t' ≤ t} o_t' x_t' / ω1)                                    (Eq. 14)
    x ~ Laplace(x_≤T, b)                                                      (Eq. 5)   "x"

(Eq. 1 is the product of these factors.) ``l_t = (s_x, s_y, t_x, t_y, θ)`` is an affine layout
(:mod:`generative.stn`); ``s_t`` are ``J`` Bézier control points in the canonical frame; the
renderer parameters ``(σ_t, ω_t0)`` come from an MLP (appendix B.2: "not modelled as latent").
Once ``o_t = 0`` every later ``o`` is 0 *exactly* (:class:`AbsorbingBernoulli`: a 1 after a 0
has log-probability ``−inf``, not the ``−15.9`` of ``Bernoulli(probs=0)``), and the layout and
stroke of an absent step are masked out of every density and of the canvas.

Networks (appendix B.2): a layout GRU ``h^l_t`` and a stroke GRU ``h^s_t`` (256 units), shared
with the guide (Fig. 2: "two (shared) RNNs"; :class:`guides.dood.DooDGuide` runs them through
:meth:`DooD.layout_stage` / :meth:`DooD.stroke_stage`); :class:`generative.networks.FeatureCNN`
for the canvas-so-far and its glimpse; 2×256 tanh MLPs for the priors and the renderer
parameters. The canvas-so-far fed to the networks is detached (appendix C); the final canvas in
the likelihood is not, so gradients reach every stroke.

Conditioning (our reading of Eqs. 2–4, documented choices):

* RNN inputs: ``h^l_t = GRU_l([l_{t−1}, s_{t−1}, CNN(x_<t)], h^l_{t−1})`` and
  ``h^s_t = GRU_s([l_t, s_{t−1}, CNN(x̃_<t)], h^s_{t−1})`` (the model can compute both, so the
  guide can share them).
* ``p_on`` sees ``[CNN(x_<t), h^l_t]``; ``p_layout`` sees ``[h^l_t, CNN(x_<t)]``; ``p_stroke``
  sees ``[h^s_t, l_t, CNN(x̃_<t)]``; the renderer MLP sees ``[h^s_t, l_t, s_t]``.
* ``ω1`` ("per character", appendix B.1) is one learned scalar; the Laplace scale ``b`` of Eq. 5
  is not given in the paper: by default a learned per-pixel scale in ``[0.01, 1]``
  (``likelihood_scale=None``), or a fixed float.

Ablations (sec. 3.1): ``renderer="neural"`` (DooD-δR) replaces δR by an MLP decoder of ``s_t`` to a
``G × G`` glimpse placed with the inverse STN (same latents and priors);
``execution_guidance=False`` (DooD-EG) removes every dependence on the canvas-so-far (no CNN
inputs; the guide reads the target ``x`` instead of the residual); ``sequential_prior=False``
(DooD-SP) makes the layout and stroke priors unconditional learned GMMs (the same at every step;
``p_on`` still sees the canvas when execution guidance is on).

Initialisation: the layout networks predict identity transforms (appendix C); with
``stop_bias_init`` the stop networks' last layers are zeroed with that bias (appendix C, Omniglot:
8); the renderer MLP starts at ``σ_t`` = one pixel and ``ω_t0 = 0.5``. Learning rates (appendix
C): 1e-3 for the parameters whose gradients NVIL estimates (the guide's ``pres_net`` and
``baseline``), 1e-4 for the rest.

Sampling temperature ``τ`` (appendix D.2.1, "low-temperature sampling" as in sketch-rnn) divides
every mixture and stop logit by ``τ`` and multiplies every component standard deviation by
``√τ``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from pyro.distributions.util import broadcast_shape
from torch import Tensor, nn

from generative.bezier import compose_canvas, render_strokes
from generative.config import ConfigDict
from generative.networks import MLP, FeatureCNN, RecurrentCore
from generative.stn import LAYOUT_SIZE, glimpse, place, transform_points

__all__ = [
    "CONTROL_BOUND",
    "DOOD_CONFIGS",
    "AbsorbingBernoulli",
    "DooD",
    "DooDConfig",
    "DooDState",
    "LayoutStage",
    "MemoEntry",
    "Render",
    "StepMemo",
    "StrokeStage",
    "bounded",
    "bounded_inverse",
    "collect_steps",
    "dood_config",
    "identity_layout_raw",
    "layout_means",
]

# Ranges of the constrained quantities (the paper constrains them without giving values).
SCALE_BOUNDS = (0.05, 1.2)  # layout scale means; 1 = the whole canvas (identity transform)
TRANSLATION_BOUND = 1.0  # layout translation means in (−1, 1)
ROTATION_BOUND = math.pi  # layout rotation means in (−π, π)
CONTROL_BOUND = 1.5  # canonical control-point means in (−1.5, 1.5)² ("not too far from the frame")
PRIOR_STD_BOUNDS = (0.01, 1.0)  # every prior GMM component standard deviation
SIGMA_BOUNDS = (0.01, 0.3)  # renderer blur σ_t, normalised units (Eq. 11)
OMEGA_BOUNDS = (0.1, 1.0)  # tanh temperatures ω_t0 (Eq. 13) and ω1 (Eq. 14)
LIKELIHOOD_SCALE_BOUNDS = (0.01, 1.0)  # learned Laplace scale b (Eq. 5)
SIGMA_INIT_PIXELS = 1.0  # initial σ_t: one pixel (2 / (W − 1) normalised units)
OMEGA0_INIT, OMEGA1_INIT, LIKELIHOOD_SCALE_INIT = 0.5, 0.5, 0.2


def bounded(raw: Tensor, low: float, high: float) -> Tensor:
    """``low + (high − low) · sigmoid(raw)``: maps an unconstrained output into ``(low, high)``."""
    return low + (high - low) * torch.sigmoid(raw)


def bounded_inverse(value: float, low: float, high: float) -> float:
    """The raw value that :func:`bounded` maps to ``value`` (``low < value < high``)."""
    if not low < value < high:
        raise ValueError(f"bounded_inverse: value {value} is not inside ({low}, {high})")
    u = (value - low) / (high - low)
    return math.log(u / (1.0 - u))


def _inside(value: float, bounds: tuple[float, float]) -> float:
    """``value`` moved strictly inside ``bounds`` (margin ``0.1 · min(low, high − low)``), so
    :func:`bounded` reaches it with a finite raw output (an initial value)."""
    low, high = bounds
    margin = 0.1 * min(low, high - low)
    return min(max(value, low + margin), high - margin)


def layout_means(raw: Tensor) -> Tensor:
    """Constrained layout means (Eq. 2 / Eq. 7) from raw outputs ``(..., 5)``: scales in
    :data:`SCALE_BOUNDS`, translations in ``(−1, 1)``, rotation in ``(−π, π)``."""
    scale = bounded(raw[..., 0:2], *SCALE_BOUNDS)
    shift = TRANSLATION_BOUND * torch.tanh(raw[..., 2:4])
    theta = ROTATION_BOUND * torch.tanh(raw[..., 4:5])
    return torch.cat([scale, shift, theta], -1)


def identity_layout_raw() -> list[float]:
    """Raw outputs for which :func:`layout_means` is the identity transform (appendix C)."""
    s = bounded_inverse(1.0, *SCALE_BOUNDS)
    return [s, s, 0.0, 0.0, 0.0]


class AbsorbingBernoulli(TorchDistribution):
    """Eq. 4 exactly: ``p(o_t | o_{t−1}) = o_{t−1} · Bernoulli(o_t; σ(logits))``.

    ``alive`` (0/1, the previous ``o``) broadcasts with ``logits``. Where ``alive = 0`` the value
    is 0 with probability one: ``log_prob(0) = 0`` and ``log_prob(1) = −inf`` (a Pyro
    ``Bernoulli(probs=0)`` would give ``log_prob(1) ≈ −15.9`` because its logits are clamped).
    Samples are exactly 0 there. Supports enumeration (values 0, 1).
    """

    arg_constraints = {"logits": constraints.real, "alive": constraints.boolean}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, logits: Tensor, alive: Tensor, validate_args: bool | None = None):
        shape = broadcast_shape(logits.shape, alive.shape)
        self.logits = logits.expand(shape)
        self.alive = alive.to(logits.dtype).expand(shape)
        super().__init__(torch.Size(shape), validate_args=validate_args)

    @property
    def probs(self) -> Tensor:
        """``P(o_t = 1) = alive · σ(logits)``."""
        return self.alive * torch.sigmoid(self.logits)

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def variance(self) -> Tensor:
        p = self.probs
        return p * (1 - p)

    def expand(self, batch_shape, _instance=None) -> AbsorbingBernoulli:
        new = self._get_checked_instance(AbsorbingBernoulli, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape)
        new.alive = self.alive.expand(batch_shape)
        super(AbsorbingBernoulli, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape: torch.Size | tuple = ()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            return torch.bernoulli(self.probs.expand(shape))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = value.to(self.logits.dtype)
        live = value * F.logsigmoid(self.logits) + (1 - value) * F.logsigmoid(-self.logits)
        dead = torch.where(value == 0, torch.zeros_like(live), torch.full_like(live, -math.inf))
        return torch.where(self.alive > 0, live, dead)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        values = torch.arange(2, dtype=self.logits.dtype, device=self.logits.device)
        values = values.reshape((2,) + (1,) * len(self.batch_shape))
        return values.expand((2,) + self.batch_shape) if expand else values


@dataclass(frozen=True)
class DooDConfig(ConfigDict):
    """Hyper-parameters of DooD (paper values where given: appendices A–C)."""

    label = "DooD config"

    height: int = 50  # appendix A: every image is scaled to 50×50
    width: int = 50
    max_strokes: int = 6  # T (sec. 3.1: "at most 6 strokes throughout")
    control_points: int = 4  # J per Bézier stroke (not given; 4 = cubic, like the glyph data)
    glimpse_size: int = 25  # G of the STN glimpses (not given)
    hidden_size: int = 256  # GRU hidden state (appendix B.2)
    feature_size: int = 256  # CNN output features (appendix B.2)
    mlp_hidden: int = 256  # 2 hidden tanh layers of this width (appendix B.2)
    layout_components: int = 4  # M of the layout GMM, Eq. 2 (not given)
    stroke_components: int = 4  # K per control point, Eq. 3 (not given)
    beta: float = 4.0  # weight of the stop variable's KL (sec. 2.3, appendix C: β = 4)
    render_points: int = 100  # S of Eq. 10 in training mode (paper: 100)
    eval_render_points: int = 100  # S in eval mode (``model.eval()``)
    likelihood_scale: float | None = None  # Laplace b of Eq. 5; None = learned per pixel
    stop_mode: str = "nvil"  # "nvil" (REINFORCE + neural baseline) | "enum" (exact over N)
    renderer: str = "spline"  # "spline" (δR) | "neural" (DooD-δR ablation)
    execution_guidance: bool = True  # False = DooD-EG ablation
    sequential_prior: bool = True  # False = DooD-SP ablation
    stop_bias_init: float | None = None  # appendix C (Omniglot): zero o-MLP weights, bias 8
    # Ranges of the MLP-predicted renderer parameters (appendix B.1–B.2 give none): σ_t of Eq. 11
    # (normalised units) and ω_t0 of Eq. 13. Narrow them when the stroke width of the data is
    # known, so that one stroke cannot fatten (large σ, small ω0) to cover several strokes.
    sigma_bounds: tuple[float, float] = SIGMA_BOUNDS
    omega0_bounds: tuple[float, float] = OMEGA_BOUNDS

    def __post_init__(self) -> None:
        positive = (
            "height",
            "width",
            "max_strokes",
            "control_points",
            "glimpse_size",
            "hidden_size",
            "feature_size",
            "mlp_hidden",
            "layout_components",
            "stroke_components",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"DooDConfig.{name} must be >= 1, found {getattr(self, name)}")
        if self.height < 2 or self.width < 2:
            raise ValueError(f"DooDConfig: image must be >= 2x2, found {self.height}x{self.width}")
        if self.control_points < 2:
            raise ValueError(f"DooDConfig.control_points must be >= 2, found {self.control_points}")
        for name in ("render_points", "eval_render_points"):
            if getattr(self, name) < 2:
                raise ValueError(f"DooDConfig.{name} must be >= 2, found {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"DooDConfig.beta must be >= 0, found {self.beta}")
        if self.likelihood_scale is not None and self.likelihood_scale <= 0:
            raise ValueError(
                f"DooDConfig.likelihood_scale must be > 0 or None, found {self.likelihood_scale}"
            )
        if self.stop_mode not in ("nvil", "enum"):
            raise ValueError(
                f"DooDConfig.stop_mode must be 'nvil' or 'enum', found {self.stop_mode!r}"
            )
        for name in ("sigma_bounds", "omega0_bounds"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or not 0 < value[0] < value[1]:
                raise ValueError(
                    f"DooDConfig.{name} must be (low, high) with 0 < low < high, "
                    f"found {getattr(self, name)!r}"
                )
            object.__setattr__(self, name, value)  # lists (e.g. from JSON) become tuples
        if self.renderer not in ("spline", "neural"):
            raise ValueError(
                f"DooDConfig.renderer must be 'spline' or 'neural', found {self.renderer!r}"
            )


DOOD_CONFIGS: dict[str, DooDConfig] = {
    # The paper's model (50×50, 6 strokes, β = 4, NVIL for the stop variable).
    "dood": DooDConfig(),
    # Ablations of sec. 3.1 / Fig. 3 / Fig. 14.
    "dood_dR": DooDConfig(renderer="neural"),
    "dood_EG": DooDConfig(execution_guidance=False),
    "dood_SP": DooDConfig(sequential_prior=False),
    # Not from the paper: a small network for quick CPU runs on 28×28 glyphs/MNIST.
    "small": DooDConfig(
        height=28,
        width=28,
        glimpse_size=14,
        hidden_size=128,
        feature_size=128,
        mlp_hidden=128,
        render_points=50,
    ),
}


def dood_config(name: str, **overrides) -> DooDConfig:
    """A named configuration with fields overridden (e.g. the image size of a dataset)."""
    if name not in DOOD_CONFIGS:
        raise ValueError(f"unknown DooD config {name!r}; choose one of {sorted(DOOD_CONFIGS)}")
    return replace(DOOD_CONFIGS[name], **overrides)


class DooDState(NamedTuple):
    """Everything the next step depends on (shared by model and guide)."""

    h_layout: Tensor  # h^l_{t−1}, (B, hidden)
    h_stroke: Tensor  # h^s_{t−1}, (B, hidden)
    z_pres: Tensor  # o_{t−1}, (B,) 0/1
    z_where: Tensor  # l_{t−1}, (B, 5)
    z_what: Tensor  # s_{t−1}, (B, J, 2)
    strokes: tuple[Tensor, ...]  # rendered x_t' for t' < t, each (B, H, W), not detached
    masks: tuple[Tensor, ...]  # o_t' for t' < t, each (B,)
    canvas: Tensor  # detached canvas-so-far x_<t, (B, 1, H, W) (appendix C)


class LayoutStage(NamedTuple):
    """Step ``t`` before ``o_t``, ``l_t``: layout RNN state and canvas features."""

    h_layout: Tensor  # h^l_t
    canvas_features: Tensor | None  # CNN(x_<t) (None without execution guidance)


class StrokeStage(NamedTuple):
    """Step ``t`` after ``l_t``: stroke RNN state and glimpse features."""

    h_stroke: Tensor  # h^s_t
    glimpse_features: Tensor | None  # CNN(STN(l_t, x_<t)) (None without execution guidance)


class Render(NamedTuple):
    """The rendered stroke ``x_t`` and, for δR, its canvas control points and parameters."""

    image: Tensor  # (B, H, W) in [0, 1]
    control_points: Tensor | None  # s̃_t = l_t ⊙ s_t, (B, J, 2)
    sigma: Tensor | None  # (B,)
    omega0: Tensor | None  # (B,)


class MemoEntry(NamedTuple):
    """What the guide computed at one step (see :class:`StepMemo`)."""

    layout: LayoutStage
    z_pres: Tensor
    z_where: Tensor
    stroke: StrokeStage
    z_what: Tensor
    render: Render
    state: DooDState


class StepMemo:
    """Per-step computations of the guide, reused by the model when it is replayed on the very
    same latent tensors under unchanged parameters (a pure cache: identical values/gradients)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._entries: list[MemoEntry] = []
        self._versions: tuple[int, ...] = ()
        self._grad = False

    def start(self, versions: tuple[int, ...]) -> None:
        self.clear()
        self._versions, self._grad = versions, torch.is_grad_enabled()

    def record(self, entry: MemoEntry) -> None:
        self._entries.append(entry)

    def entry(self, t: int, versions: tuple[int, ...]) -> MemoEntry | None:
        if t >= len(self._entries) or versions != self._versions:
            return None
        if torch.is_grad_enabled() and not self._grad:
            return None
        return self._entries[t]


class DooD(nn.Module):
    """DooD's generative model (Eqs. 1–5) and its Pyro :meth:`model`."""

    def __init__(self, config: DooDConfig):
        super().__init__()
        self.config = c = config
        J, G, hid, feat = c.control_points, c.glimpse_size, c.hidden_size, c.feature_size
        mlp_hidden = (c.mlp_hidden, c.mlp_hidden)
        eg = c.execution_guidance
        what_size = 2 * J
        if eg:
            self.canvas_cnn = FeatureCNN(c.height, c.width, 1, feat)
            self.glimpse_cnn = FeatureCNN(G, G, 1, feat)
        extra = feat if eg else 0
        self.layout_rnn = RecurrentCore(LAYOUT_SIZE + what_size + extra, hid)
        self.stroke_rnn = RecurrentCore(LAYOUT_SIZE + what_size + extra, hid)
        # Eq. 4 prior on o_t.
        self.pres_net = MLP(self._pres_input_size(), 1, mlp_hidden)
        if c.stop_bias_init is not None:
            self.pres_net.init_output(c.stop_bias_init)
        # Eq. 2 layout GMM: M logits, M×5 means, M×5 standard deviations.
        M, K = c.layout_components, c.stroke_components
        self.layout_net = MLP(self._layout_input_size(), M + 2 * M * LAYOUT_SIZE, mlp_hidden)
        with torch.no_grad():  # appendix C: predict identity transforms initially
            rows = slice(M, M + M * LAYOUT_SIZE)
            self.layout_net.output.weight[rows] = 0.0
            self.layout_net.output.bias[rows] = torch.tensor(identity_layout_raw()).repeat(M)
        # Eq. 3 per-control-point GMM: J×K logits, J×K×2 means, J×K×2 standard deviations.
        self.stroke_net = MLP(self._stroke_input_size(), J * K + 4 * J * K, mlp_hidden)
        if c.renderer == "spline":  # renderer parameters (σ_t, ω_t0), appendix B.1–B.2
            self.render_net = MLP(hid + LAYOUT_SIZE + what_size, 2, mlp_hidden)
            sigma = _inside(SIGMA_INIT_PIXELS * 2.0 / (max(c.height, c.width) - 1), c.sigma_bounds)
            omega0 = _inside(OMEGA0_INIT, c.omega0_bounds)
            self.render_net.init_output(
                [
                    bounded_inverse(sigma, *c.sigma_bounds),
                    bounded_inverse(omega0, *c.omega0_bounds),
                ],
                weight_scale=1.0,
            )
        else:  # DooD-δR: an MLP decoder to a G×G glimpse (like AIR's)
            self.decoder = MLP(what_size, G * G, mlp_hidden)
        self.omega1_raw = nn.Parameter(torch.tensor(bounded_inverse(OMEGA1_INIT, *OMEGA_BOUNDS)))
        if c.likelihood_scale is None:
            init = bounded_inverse(LIKELIHOOD_SCALE_INIT, *LIKELIHOOD_SCALE_BOUNDS)
            self.likelihood_scale_raw = nn.Parameter(torch.full((1, c.height, c.width), init))
        self.register_buffer("_one", torch.ones(()), persistent=False)
        self.memo = StepMemo()

    # -- sizes --------------------------------------------------------------------------------
    def _pres_input_size(self) -> int:
        c = self.config
        size = (c.feature_size if c.execution_guidance else 0) + (
            c.hidden_size if c.sequential_prior else 0
        )
        return size or 1

    def _layout_input_size(self) -> int:
        c = self.config
        if not c.sequential_prior:
            return 1
        return c.hidden_size + (c.feature_size if c.execution_guidance else 0)

    def _stroke_input_size(self) -> int:
        c = self.config
        if not c.sequential_prior:
            return 1
        return c.hidden_size + LAYOUT_SIZE + (c.feature_size if c.execution_guidance else 0)

    def _constant(self, batch_size: int) -> Tensor:
        return self._one.expand(batch_size, 1)

    def param_versions(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.parameters())

    @property
    def num_render_points(self) -> int:
        """S of Eq. 10: ``render_points`` in training mode, ``eval_render_points`` in eval mode."""
        c = self.config
        return c.render_points if self.training else c.eval_render_points

    # -- deterministic pieces shared with the guide -------------------------------------------
    def initial_state(self, batch_size: int) -> DooDState:
        """State before step 0: learned RNN states, empty canvas, ``o_{−1} = 1``."""
        c = self.config
        ref = self._one
        return DooDState(
            h_layout=self.layout_rnn.initial(batch_size),
            h_stroke=self.stroke_rnn.initial(batch_size),
            z_pres=ref.expand(batch_size),
            z_where=ref.new_zeros(batch_size, LAYOUT_SIZE),
            z_what=ref.new_zeros(batch_size, c.control_points, 2),
            strokes=(),
            masks=(),
            canvas=self.initial_canvas(batch_size),
        )

    def initial_canvas(self, batch_size: int) -> Tensor:
        """The empty canvas ``x_<0`` (Eq. 14 with no strokes: ``tanh(0) = 0``), (B, 1, H, W)."""
        c = self.config
        return self._one.new_zeros(batch_size, 1, c.height, c.width)

    def layout_stage(self, state: DooDState) -> LayoutStage:
        """``h^l_t = GRU_l([l_{t−1}, s_{t−1}, CNN(x_<t)], h^l_{t−1})`` (canvas detached)."""
        parts = [state.z_where, state.z_what.flatten(1)]
        features = None
        if self.config.execution_guidance:
            features = self.canvas_cnn(state.canvas)
            parts.append(features)
        return LayoutStage(self.layout_rnn(torch.cat(parts, -1), state.h_layout), features)

    def stroke_stage(self, state: DooDState, z_where: Tensor) -> StrokeStage:
        """``x̃_<t = STN(l_t, x_<t)`` (Eq. 2) and ``h^s_t = GRU_s([l_t, s_{t−1}, CNN(x̃_<t)], ·)``."""
        parts = [z_where, state.z_what.flatten(1)]
        features = None
        if self.config.execution_guidance:
            window = glimpse(state.canvas, z_where, self.config.glimpse_size)
            features = self.glimpse_cnn(window)
            parts.append(features)
        return StrokeStage(self.stroke_rnn(torch.cat(parts, -1), state.h_stroke), features)

    def render_parameters(
        self, stage: StrokeStage, z_where: Tensor, z_what: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Renderer parameters ``(σ_t, ω_t0)`` predicted by an MLP (appendix B.2), bounded to
        ``config.sigma_bounds`` / ``config.omega0_bounds`` (default :data:`SIGMA_BOUNDS` /
        :data:`OMEGA_BOUNDS`)."""
        raw = self.render_net(torch.cat([stage.h_stroke, z_where, z_what.flatten(1)], -1))
        c = self.config
        return bounded(raw[:, 0], *c.sigma_bounds), bounded(raw[:, 1], *c.omega0_bounds)

    def omega1(self) -> Tensor:
        """The canvas tanh temperature ``ω1`` of Eq. 14 (one learned scalar)."""
        return bounded(self.omega1_raw, *OMEGA_BOUNDS)

    def render(self, stage: StrokeStage, z_where: Tensor, z_what: Tensor) -> Render:
        """Rendering module: ``x_t = δR(l_t ⊙ s_t)`` (sec. 2.1, Eqs. 10–13), or for DooD-δR an MLP
        glimpse placed with the inverse STN."""
        c = self.config
        if c.renderer == "neural":
            size = c.glimpse_size
            patch = torch.sigmoid(self.decoder(z_what.flatten(1))).view(-1, 1, size, size)
            return Render(place(patch, z_where, c.height, c.width)[:, 0], None, None, None)
        sigma, omega0 = self.render_parameters(stage, z_where, z_what)
        points = transform_points(z_what, z_where)  # s̃_t = l_t ⊙ s_t
        image = render_strokes(points, sigma, omega0, c.height, c.width, self.num_render_points)
        return Render(image, points, sigma, omega0)

    def canvas_of(self, strokes: tuple[Tensor, ...], masks: tuple[Tensor, ...]) -> Tensor:
        """Eq. 14: ``tanh(Σ_t o_t x_t / ω1)`` as ``(B, 1, H, W)`` (not detached)."""
        if not strokes:
            raise ValueError("canvas_of: need at least one stroke")
        canvas = compose_canvas(torch.stack(strokes, 1), self.omega1(), torch.stack(masks, 1))
        return canvas.unsqueeze(1)

    def advance(
        self,
        state: DooDState,
        stage_l: LayoutStage,
        stage_s: StrokeStage,
        z_pres: Tensor,
        z_where: Tensor,
        z_what: Tensor,
        render: Render,
    ) -> DooDState:
        """Compositing module (Eq. 14): add ``o_t x_t`` to the canvas; the canvas kept for
        conditioning is detached (appendix C)."""
        strokes = (*state.strokes, render.image)
        masks = (*state.masks, z_pres)
        canvas = self.canvas_of(strokes, masks).detach()
        return DooDState(
            stage_l.h_layout, stage_s.h_stroke, z_pres, z_where, z_what, strokes, masks, canvas
        )

    # -- distributions ------------------------------------------------------------------------
    def stop_prior(
        self, state: DooDState, stage: LayoutStage, temperature: float = 1.0
    ) -> AbsorbingBernoulli:
        """Eq. 4: ``p_on(o_t | o_{t−1}, x_<t) = o_{t−1} · Bernoulli(σ(MLP_o(·)))`` with inputs
        ``[CNN(x_<t), h^l_t]`` (what the ablation keeps of them; a constant if nothing)."""
        parts = []
        if self.config.execution_guidance:
            parts.append(stage.canvas_features)
        if self.config.sequential_prior:
            parts.append(stage.h_layout)
        inputs = torch.cat(parts, -1) if parts else self._constant(state.z_pres.shape[0])
        logits = self.pres_net(inputs).squeeze(-1) / temperature
        return AbsorbingBernoulli(logits, state.z_pres)

    def layout_prior(self, stage: LayoutStage, temperature: float = 1.0) -> dist.Distribution:
        """Eq. 2: GMM over ``l_t = (scale, translation, rotation)`` with diagonal components."""
        c = self.config
        batch = stage.h_layout.shape[0]
        if c.sequential_prior:
            parts = [stage.h_layout]
            if c.execution_guidance:
                parts.append(stage.canvas_features)
            inputs = torch.cat(parts, -1)
        else:
            inputs = self._constant(batch)
        M = c.layout_components
        out = self.layout_net(inputs)
        logits = out[:, :M] / temperature
        loc = layout_means(out[:, M : M + M * LAYOUT_SIZE].reshape(batch, M, LAYOUT_SIZE))
        raw_std = out[:, M + M * LAYOUT_SIZE :].reshape(batch, M, LAYOUT_SIZE)
        scale = bounded(raw_std, *PRIOR_STD_BOUNDS) * math.sqrt(temperature)
        components = dist.Normal(loc, scale).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), components)

    def stroke_prior(
        self, stage: StrokeStage, z_where: Tensor, temperature: float = 1.0
    ) -> dist.Distribution:
        """Eq. 3: an independent GMM per control point ``d`` (K components, diagonal)."""
        c = self.config
        batch = z_where.shape[0]
        if c.sequential_prior:
            parts = [stage.h_stroke, z_where]
            if c.execution_guidance:
                parts.append(stage.glimpse_features)
            inputs = torch.cat(parts, -1)
        else:
            inputs = self._constant(batch)
        J, K = c.control_points, c.stroke_components
        out = self.stroke_net(inputs)
        logits = out[:, : J * K].reshape(batch, J, K) / temperature
        loc = CONTROL_BOUND * torch.tanh(out[:, J * K : 3 * J * K].reshape(batch, J, K, 2))
        raw_std = out[:, 3 * J * K :].reshape(batch, J, K, 2)
        scale = bounded(raw_std, *PRIOR_STD_BOUNDS) * math.sqrt(temperature)
        components = dist.Normal(loc, scale).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), components).to_event(1)

    def likelihood_scale(self) -> Tensor:
        """Laplace scale ``b`` of Eq. 5, ``(1, H, W)`` (learned) or a scalar (fixed)."""
        if self.config.likelihood_scale is None:
            return bounded(self.likelihood_scale_raw, *LIKELIHOOD_SCALE_BOUNDS)
        return self._one * self.config.likelihood_scale

    def likelihood(self, canvas: Tensor) -> dist.Distribution:
        """Eq. 5: ``Laplace(x | x_≤T, b)`` over all pixels; ``canvas`` is ``(B, 1, H, W)``."""
        return dist.Laplace(canvas, self.likelihood_scale().expand_as(canvas)).to_event(3)

    # -- Pyro model ---------------------------------------------------------------------------
    def _check_images(self, images: Tensor) -> None:
        c = self.config
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, c.height, c.width):
            raise ValueError(
                f"DooD: images must have shape (B, 1, {c.height}, {c.width}), "
                f"found {tuple(images.shape)}"
            )

    def model(
        self,
        images: Tensor | None = None,
        *,
        batch_size: int | None = None,
        temperature: float = 1.0,
        record: bool = False,
    ) -> Tensor:
        """Pyro model (Eq. 1). ``images`` ``(B, 1, H, W)`` are observed at site ``"x"``; with
        ``images=None`` it generates ``batch_size`` drawings. Sites per step ``t``:
        ``"z_pres_{t}"`` (B,), ``"z_where_{t}"`` (B, 5), ``"z_what_{t}"`` (B, J, 2). With
        ``record=True`` deterministic sites ``"canvas_{t}"`` (B, 1, H, W; canvas after step t,
        not detached), ``"stroke_{t}"`` (B, H, W) and, for δR, ``"control_points_{t}"``
        (B, J, 2, canvas coordinates), ``"sigma_{t}"``, ``"omega0_{t}"`` (B,) are added.
        Returns the final canvas ``x_≤T`` (B, 1, H, W)."""
        pyro.module("dood_model", self)
        if images is not None:
            self._check_images(images)
            batch_size = images.shape[0]
        if batch_size is None:
            raise ValueError("DooD.model needs images or batch_size")
        if not temperature > 0:
            raise ValueError(f"DooD.model: temperature must be > 0, found {temperature}")
        c = self.config
        state = self.initial_state(batch_size)
        versions = self.param_versions()
        reuse = True
        with pyro.plate("data", batch_size):
            for t in pyro.markov(range(c.max_strokes)):
                entry = self.memo.entry(t, versions) if reuse else None
                reuse = entry is not None
                stage_l = entry.layout if entry is not None else self.layout_stage(state)
                z_pres = pyro.sample(f"z_pres_{t}", self.stop_prior(state, stage_l, temperature))
                present = z_pres > 0
                z_where = pyro.sample(
                    f"z_where_{t}", self.layout_prior(stage_l, temperature).mask(present)
                )
                if entry is None or entry.z_pres is not z_pres or entry.z_where is not z_where:
                    entry, reuse = None, False
                    stage_s = self.stroke_stage(state, z_where)
                else:
                    stage_s = entry.stroke
                z_what = pyro.sample(
                    f"z_what_{t}", self.stroke_prior(stage_s, z_where, temperature).mask(present)
                )
                if entry is None or entry.z_what is not z_what:
                    reuse = False
                    render = self.render(stage_s, z_where, z_what)
                    state = self.advance(state, stage_l, stage_s, z_pres, z_where, z_what, render)
                else:
                    render, state = entry.render, entry.state
                if record:
                    self._record(t, state, render)
            self.memo.clear()
            canvas = self.canvas_of(state.strokes, state.masks)
            pyro.sample("x", self.likelihood(canvas), obs=images)
        return canvas

    def _record(self, t: int, state: DooDState, render: Render) -> None:
        pyro.deterministic(f"canvas_{t}", self.canvas_of(state.strokes, state.masks), event_dim=3)
        pyro.deterministic(f"stroke_{t}", render.image, event_dim=2)
        if render.control_points is not None:
            pyro.deterministic(f"control_points_{t}", render.control_points, event_dim=2)
            pyro.deterministic(f"sigma_{t}", render.sigma, event_dim=0)
            pyro.deterministic(f"omega0_{t}", render.omega0, event_dim=0)

    def forward(self, images: Tensor | None = None, **kwargs) -> Tensor:
        return self.model(images, **kwargs)

    @torch.no_grad()
    def generate(self, num_samples: int, temperature: float = 1.0) -> dict[str, Tensor]:
        """Unconditional samples (appendix D.2.1) with every step recorded; see
        :func:`collect_steps` for the keys."""
        trace = pyro.poutine.trace(self.model).get_trace(
            batch_size=num_samples, temperature=temperature, record=True
        )
        return collect_steps(trace, self.config)


def collect_steps(trace: pyro.poutine.Trace, config: DooDConfig) -> dict[str, Tensor]:
    """Stack a recorded model trace into ``images`` (B, 1, H, W: the final canvas), ``canvases``
    (B, T, 1, H, W), ``strokes`` (B, T, H, W), ``z_pres`` (B, T), ``num_strokes`` (B,),
    ``z_where`` (B, T, 5), ``z_what`` (B, T, J, 2) and for δR ``control_points`` (B, T, J, 2),
    ``sigma``/``omega0`` (B, T)."""
    steps = range(config.max_strokes)

    def stack(name: str) -> Tensor:
        return torch.stack([trace.nodes[f"{name}_{t}"]["value"] for t in steps], 1)

    out = {
        "canvases": stack("canvas"),
        "strokes": stack("stroke"),
        "z_pres": stack("z_pres"),
        "z_where": stack("z_where"),
        "z_what": stack("z_what"),
    }
    out["images"] = out["canvases"][:, -1]
    out["num_strokes"] = out["z_pres"].sum(1)
    if f"control_points_{config.max_strokes - 1}" in trace.nodes:
        out["control_points"] = stack("control_points")
        out["sigma"] = stack("sigma")
        out["omega0"] = stack("omega0")
    return out
