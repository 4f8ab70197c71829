"""DooD's configuration (Liang et al. 2022, appendices A–C): the ranges of the constrained
quantities of the model, initial values, :class:`DooDConfig` and the named configurations
(the paper's model, its sec. 3.1 ablations and a small CPU network).

The layout ranges shared with the AIR baselines live in :mod:`generative.layout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from generative.config import ConfigDict, named_config
from generative.layout import OFFICIAL_LAYOUT, LayoutRanges

__all__ = [
    "BETA_MODES",
    "CONTROL_BOUND",
    "DOOD_CONFIGS",
    "FREE_SIGMA_BOUNDS",
    "GUIDE_STOP_BIAS",
    "OFFICIAL_SIGMA_BOUNDS",
    "OMEGA0_BOUNDS",
    "OMEGA_BOUNDS",
    "PRIOR_STD_BOUNDS",
    "SIGMA_BOUNDS",
    "DooDConfig",
    "dood_config",
]

# Ranges of the constrained quantities (the paper constrains them without giving values).
CONTROL_BOUND = 1.5  # canonical control-point means in (−1.5, 1.5)² ("not too far from the frame")
PRIOR_STD_BOUNDS = (0.01, 1.0)  # every prior GMM component standard deviation
# Renderer blur σ_t (Eq. 11) in our units (normalised [−1, 1] coordinates, exp(−d²/σ²)). The
# official code bounds σ to [0.01, 0.04] in [0, 1] units with exp(−d²/2σ²) (`models/ssp.py`,
# ``get_sigma``), i.e. σ_ours = 2√2 σ_official: (0.028, 0.113). Our first free range was
# (0.01, 0.3), in which one stroke can fatten into a blob that covers a whole glyph.
OFFICIAL_SIGMA_BOUNDS = (2 * math.sqrt(2) * 0.01, 2 * math.sqrt(2) * 0.04)
FREE_SIGMA_BOUNDS = (0.01, 0.3)
SIGMA_BOUNDS = OFFICIAL_SIGMA_BOUNDS
# Stroke tanh slope ω_t0 (Eq. 13): official (0.1, 0.9) started at ≈ 0.8; ours was (0.1, 1.0) at 0.5.
OMEGA0_BOUNDS = (0.1, 0.9)
OMEGA_BOUNDS = (0.1, 1.0)  # the canvas tanh temperature ω1 (Eq. 14)
SIGMA_INIT_PIXELS = 1.0  # initial σ_t: one pixel (2 / (W − 1) normalised units)
OMEGA1_INIT, LIKELIHOOD_SCALE_INIT = 0.5, 0.2
BETA_MODES = ("signal", "kl")
GUIDE_STOP_BIAS = {"mnist": 2.0, "omniglot": 10.0}  # official `models/ssp.py` init, per dataset


@dataclass(frozen=True)
class DooDConfig(ConfigDict):
    """Hyper-parameters of DooD (paper values where given: appendices A–C; where the paper is
    silent, the official code's, `yichao-liang/DooD` ``src/dood/``, with the file named)."""

    label = "DooD config"

    height: int = 50  # appendix A: every image is scaled to 50×50
    width: int = 50
    max_strokes: int = 6  # T (sec. 3.1: "at most 6 strokes throughout")
    control_points: int = 5  # J per Bézier stroke (not given; official `run.py` default 5)
    glimpse_size: int = 25  # G of the STN glimpses (not given)
    hidden_size: int = 256  # GRU hidden state (appendix B.2)
    feature_size: int = 256  # CNN output features (appendix B.2)
    cnn_stride: int = 1  # stride of both convolutions of the feature CNNs (appendix B.2: 1)
    mlp_hidden: int = 256  # 2 hidden tanh layers of this width (appendix B.2)
    layout_components: int = 40  # M of the layout GMM, Eq. 2 (official `exp_dict.py`: 40)
    stroke_components: int = 40  # K per control point, Eq. 3 (official: 40)
    beta: float = 4.0  # sec. 2.3, appendix C: β = 4
    # "kl" (the paper, sec. 2.3): β multiplies the stop variables' KL in the objective and in its
    # REINFORCE signal; "signal" (the official `losses.py`: ``reinforce_ll = log_likelihood /
    # beta``): the objective is the plain ELBO and β divides only the log-likelihood inside the
    # stop variables' learning signal. Default "signal": with "kl" the counts collapse.
    beta_mode: str = "signal"
    render_points: int = 100  # S of Eq. 10 in training mode (paper: 100)
    eval_render_points: int = 100  # S in eval mode (``model.eval()``)
    likelihood_scale: float | None = None  # Laplace b of Eq. 5; None = learned per pixel
    stop_mode: str = "nvil"  # "nvil" (REINFORCE + neural baseline) | "enum" (exact over N)
    # Training steps with every stroke forced on (the ELBO given N = T) before the count is
    # learned (not in the paper or code: without it the exact count gradient drives N to 0
    # before the strokes have learned anything). 0 = off (the paper).
    warmup_steps: int = 0
    renderer: str = "spline"  # "spline" (δR) | "neural" (DooD-δR ablation)
    execution_guidance: bool = True  # False = DooD-EG ablation
    sequential_prior: bool = True  # False = DooD-SP ablation
    # Stop networks start with zero last-layer weights and these biases (None: random init).
    # Guide: official 2 (MNIST), 10 (Omniglot; the paper's appendix C says "e.g. 8"); prior:
    # official 1 (`models/ssp.py`, ``PresPriorMLP``).
    stop_bias_init: float | None = GUIDE_STOP_BIAS["mnist"]
    prior_stop_bias_init: float | None = 1.0
    # The guide's stop network also reads the residual-ink ratio Σ(x − x_<t)⁺ / Σx (official
    # `models/ssp.py`, ``residual_pixel_count``); False = the paper's inputs only (Eq. 6).
    stop_ink_ratio: bool = True
    # Initial standard deviation of q_stroke (Eq. 8), our units. Official ≈ 1 (σ ≈ 0.5 on
    # [0, 1]); 0.05 = near-deterministic strokes at first (our earlier choice).
    guide_stroke_std_init: float = 0.05
    # Ranges of the MLP-predicted renderer parameters (appendix B.1–B.2 give none): σ_t of Eq. 11
    # and ω_t0 of Eq. 13 (defaults: the official bounds, above), and the initial ω_t0 (moved
    # just inside omega0_bounds when outside them).
    sigma_bounds: tuple[float, float] = SIGMA_BOUNDS
    omega0_bounds: tuple[float, float] = OMEGA0_BOUNDS
    omega0_init: float = 0.8
    # Ranges of the layout means (generative.layout.LayoutRanges); default the official
    # (`util.py`, "4_rotate": shift ±0.8, scale [0.25, 1], rotation ±π/4; the official layout has
    # one scale, ours one per axis). generative.layout.FREE_LAYOUT was our first reading.
    layout_scale_bounds: tuple[float, float] = OFFICIAL_LAYOUT.scale
    layout_shift_bound: float = OFFICIAL_LAYOUT.shift
    layout_rotation_bound: float = OFFICIAL_LAYOUT.rotation

    @property
    def layout_ranges(self) -> LayoutRanges:
        return LayoutRanges.of(
            self.layout_scale_bounds, self.layout_shift_bound, self.layout_rotation_bound
        )

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
            "cnn_stride",
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
        if self.beta_mode not in BETA_MODES:
            raise ValueError(
                f"DooDConfig.beta_mode must be one of {BETA_MODES}, found {self.beta_mode!r}"
            )
        if self.warmup_steps < 0:
            raise ValueError(f"DooDConfig.warmup_steps must be >= 0, found {self.warmup_steps}")
        if not self.guide_stroke_std_init > 0:
            raise ValueError(
                f"DooDConfig.guide_stroke_std_init must be > 0, found {self.guide_stroke_std_init}"
            )
        object.__setattr__(self, "layout_scale_bounds", self.layout_ranges.scale)
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


_CPU_28 = dict(
    height=28,
    width=28,
    glimpse_size=14,
    hidden_size=128,
    feature_size=128,
    mlp_hidden=128,
    render_points=50,
)

DOOD_CONFIGS: dict[str, DooDConfig] = {
    # The paper's model (50×50, 6 strokes, β = 4, NVIL for the stop variable), official defaults
    # where the paper is silent.
    "dood": DooDConfig(),
    # Ablations of sec. 3.1 / Fig. 3 / Fig. 14.
    "dood_dR": DooDConfig(renderer="neural"),
    "dood_EG": DooDConfig(execution_guidance=False),
    "dood_SP": DooDConfig(sequential_prior=False),
    # Not from the paper: a small network on 28×28 (tests and benchmarks).
    "small": DooDConfig(**_CPU_28, control_points=4, layout_components=4, stroke_components=4),
    # Not from the paper: learns strokes and counts on 28×28 glyphs in minutes of one CPU core
    # (the default on glyphs): the small network with stride-2 feature CNNs (as ``hours``: half
    # the step time), a 400-step warm-up with every stroke on, the count summed out, and β = 1
    # (the glyphs' strokes are the model's own pen strokes, so there is no over-segmentation to
    # discourage; with β = 4 a 360-s run collapsed to ~1.3 strokes per glyph, true mean 3.5).
    # Warm-ups of 200 steps left strokes too rough to keep (1–2 strokes per glyph).
    "minutes": DooDConfig(
        **_CPU_28,
        cnn_stride=2,
        control_points=4,
        layout_components=4,
        stroke_components=4,
        stop_mode="enum",
        warmup_steps=400,
        beta=1.0,
    ),
    # Not from the paper: 50×50 (Omniglot, MNIST at the paper's size) in hours of one core:
    # stride-2 feature CNNs (16·13·13 → 256 instead of the paper's 16·50·50 = 40000 → 256).
    "hours": DooDConfig(
        cnn_stride=2,
        hidden_size=256,
        feature_size=256,
        mlp_hidden=256,
        layout_components=10,
        stroke_components=10,
        warmup_steps=1000,
    ),
}


def dood_config(name: str, **overrides) -> DooDConfig:
    """A named configuration with fields overridden (e.g. the image size of a dataset)."""
    return named_config(DOOD_CONFIGS, "DooD", name, overrides)
