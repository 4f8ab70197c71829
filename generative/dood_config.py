"""DooD's configuration (Liang et al. 2022, appendices A–C): the ranges of the constrained
quantities of the model, initial values, :class:`DooDConfig` and the named configurations
(the paper's model, its sec. 3.1 ablations and a small CPU network).

The layout ranges shared with the AIR baselines live in :mod:`generative.layout`.
"""

from __future__ import annotations

from dataclasses import dataclass

from generative.config import ConfigDict, named_config

__all__ = [
    "CONTROL_BOUND",
    "DOOD_CONFIGS",
    "OMEGA_BOUNDS",
    "PRIOR_STD_BOUNDS",
    "SIGMA_BOUNDS",
    "DooDConfig",
    "dood_config",
]

# Ranges of the constrained quantities (the paper constrains them without giving values).
CONTROL_BOUND = 1.5  # canonical control-point means in (−1.5, 1.5)² ("not too far from the frame")
PRIOR_STD_BOUNDS = (0.01, 1.0)  # every prior GMM component standard deviation
SIGMA_BOUNDS = (0.01, 0.3)  # renderer blur σ_t, normalised units (Eq. 11)
OMEGA_BOUNDS = (0.1, 1.0)  # tanh temperatures ω_t0 (Eq. 13) and ω1 (Eq. 14)
SIGMA_INIT_PIXELS = 1.0  # initial σ_t: one pixel (2 / (W − 1) normalised units)
OMEGA0_INIT, OMEGA1_INIT, LIKELIHOOD_SCALE_INIT = 0.5, 0.5, 0.2


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
    return named_config(DOOD_CONFIGS, "DooD", name, overrides)
