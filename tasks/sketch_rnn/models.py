"""sketch-rnn's models for the registry: the builders, named configurations and training options.

``sketch-rnn`` is the conditional VAE (sec. 3.2), ``sketch-rnn-decoder`` the decoder-only
unconditional model (sec. 3.3); each builder refuses a configuration of the other kind.

Optimisation defaults (the family's ``run_defaults``): batch 100, Adam, gradient clipping 1.0
(appendix sec. 3, which does not say of what). Two readings: the default is the reference code's,
each gradient element clipped (magenta ``sketch_rnn/model.py``, ``Model.build_model``:
``tf.clip_by_value(grad, -g, g)`` with ``grad_clip = 1.0``; ``--clip-value 1 --clip-norm 0``);
``--clip-norm 1 --clip-value 0`` clips the global norm, as the trainer does for other families
(and sketch-rnn did before 2026-12-03). Measured on ``medium``/``aaron_sheep``: over the first 40
steps the global norms are 0.7–9 and no element exceeds 1, so the element clip hardly acts while
the norm clip rescales most steps, and validation L_R at 4,500 steps was 0.24 with the element
clip against 0.44–0.51 with the norm clip (README "Gradient clipping, two readings").
The appendix gives a constant learning rate of 1e-4 and no decay; the defaults are the reference
code's schedule (1e-3 decaying by 0.9999 per step to 1e-5, ``--lr-decay``/``--min-lr``), which
learns much faster in short CPU runs; ``--lr 1e-4 --lr-decay 1`` gives the paper's. KL
annealing defaults are the paper's: ``KL_min = 0.2``, ``R = 0.99999``, ``η_min = 0.01``,
``w_KL = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from generative.sketch_rnn import SketchRNN
from generative.sketch_rnn_config import SKETCH_RNN_CONFIGS, SketchRNNConfig
from guides.sketch_rnn import SketchRNNGuide
from inference.annealing import AnnealedKLObjective
from tasks.data.stroke_formats import MAGENTA_DROP_PROB, MAGENTA_RANDOM_SCALE
from tasks.data.strokes import DEFAULT_MAX_LENGTH
from tasks.options import check_options, fraction, non_negative, option, positive, probability

__all__ = [
    "CONDITIONAL_CONFIGS",
    "DECODER_CONFIGS",
    "SketchDecoderOptions",
    "SketchRNNOptions",
    "build_conditional",
    "build_decoder",
    "build_sketch_rnn",
    "decay_rate",
]

CONDITIONAL_CONFIGS: tuple[str, ...] = tuple(
    sorted(k for k, v in SKETCH_RNN_CONFIGS.items() if v.conditional)
)
DECODER_CONFIGS: tuple[str, ...] = tuple(
    sorted(k for k, v in SKETCH_RNN_CONFIGS.items() if not v.conditional)
)


def decay_rate(value: Any) -> None:
    """A per-step decay factor: a number in (0, 1]."""
    if value is not None and not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"expected a number in (0, 1], found {value!r}")


def build_sketch_rnn(config: dict[str, Any]) -> tuple[SketchRNN, SketchRNNGuide]:
    """A fresh (model, guide) pair from a :class:`SketchRNNConfig` dict (checkpoint rebuild)."""
    model = SketchRNN(SketchRNNConfig.from_dict(config))
    return model, SketchRNNGuide(model)


def _builder(conditional: bool) -> Callable[[dict[str, Any]], tuple[nn.Module, nn.Module]]:
    def build(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
        if bool(config.get("conditional", True)) != conditional:
            kind = "conditional" if conditional else "decoder-only"
            raise ValueError(f"expected a {kind} sketch-rnn config, found {config}")
        return build_sketch_rnn(config)

    return build


build_conditional = _builder(True)
build_decoder = _builder(False)


@dataclass
class SketchDecoderOptions:
    """Options of ``pyro-draw train sketch-rnn-decoder`` (and of ``sketch-rnn`` before its KL
    settings)."""

    classes: list[str] | None = option(
        None, "QuickDraw categories (with --dataset quickdraw)", default_text="all"
    )
    max_length: int = option(
        DEFAULT_MAX_LENGTH,
        "drop longer sketches; N_max = the longest sketch kept in train/valid/test",
        check=positive,
    )
    lr_decay: float = option(
        0.9999,
        "lr_t = max(min_lr, lr · decay^t) (reference code; the paper: 1e-4, no decay)",
        check=decay_rate,
    )
    min_lr: float = option(1e-5, "floor of the decayed learning rate", check=non_negative)
    augment: bool = option(True, "no augmentation (offset scaling, point dropping)")
    random_scale: float = option(
        MAGENTA_RANDOM_SCALE,
        "offsets x U(1 ± s) per axis and sketch (magenta's default; the paper: 0.1)",
        check=fraction,
    )
    drop_points: float = option(
        MAGENTA_DROP_PROB,
        "drop a stroke's 4th+ pen-down points with this probability (magenta; the paper: 0)",
        check=fraction,
    )
    valid_examples: int = option(500, "validation sketches (a fixed subset)", check=positive)
    iwae_samples: int = option(
        100, "K for the final test IWAE estimate (0: skip it)", check=non_negative
    )
    eval_examples: int | None = option(
        500, "test sketches for the final evaluation (a fixed subset)", check=positive
    )
    #: Python only: fields of the named configuration to override (e.g. small sizes in tests)
    config_overrides: dict = option({}, cli=False)

    def __post_init__(self) -> None:
        check_options(self)

    def objective(self, saved: dict[str, Any] | None = None) -> AnnealedKLObjective:
        """The decoder-only model has no KL term, so the annealing settings are unused: the
        paper's defaults, or those ``saved`` in a checkpoint being resumed (so that any
        decoder-only checkpoint resumes)."""
        saved = saved or {}
        return AnnealedKLObjective(
            w_kl=saved.get("w_kl", 1.0),
            kl_min=saved.get("kl_min", 0.2),
            eta_min=saved.get("eta_min", 0.01),
            decay_rate=saved.get("decay_rate", 0.99999),
        )


@dataclass
class SketchRNNOptions(SketchDecoderOptions):
    """Options of ``pyro-draw train sketch-rnn``: the decoder's and the KL annealing of
    appendix Eq. 4."""

    w_kl: float = option(1.0, "w_KL (Eq. 11)", check=non_negative)
    kl_min: float = option(0.2, "KL_min (appendix Eq. 4)", check=non_negative)
    eta_min: float = option(0.01, "η_min (appendix Eq. 4)", check=probability)
    kl_decay: float = option(0.99999, "R of η_step (appendix Eq. 4)", check=decay_rate)

    def objective(self, saved: dict[str, Any] | None = None) -> AnnealedKLObjective:
        """Appendix Eq. 4 with these options' settings (``saved`` is not used: a resumed run
        must ask for the settings it was trained with)."""
        return AnnealedKLObjective(
            w_kl=self.w_kl, kl_min=self.kl_min, eta_min=self.eta_min, decay_rate=self.kl_decay
        )
