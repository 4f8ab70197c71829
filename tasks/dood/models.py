"""DooD's and AIR's models for the registry: builders, named configurations, training options.

* ``dood`` — :class:`generative.dood.DooD` with :class:`guides.dood.DooDGuide`. Named
  configurations: ``dood`` (the paper's: 50×50, 6 strokes, β = 4), the ablations of sec. 3.1 /
  Fig. 3 / Fig. 14 ``dood_dR`` (neural renderer), ``dood_EG`` (no execution guidance) and
  ``dood_SP`` (no sequential prior), and ``small`` (not from the paper: 28×28, smaller networks);
* ``air`` — vanilla AIR (Fig. 3d) and ``difference-air`` — Difference-AIR (Fig. 3c; the paper's
  "AIR" everywhere else), :mod:`generative.air` with :mod:`guides.air` (β = 5, appendix C).

The training objective is the ELBO with β (sec. 2.3; the config's ``beta_mode`` says how β
enters, the official code's reading by default) and the stop variables ``o_t`` handled by NVIL
(appendix C.1) or summed out exactly, after an optional warm-up with every stroke on
(:mod:`inference.nvil`). Learning rates: the base ``--lr`` (appendix C: 1e-4; the CPU configs
:data:`CONFIG_LR`: 1e-3), the NVIL baseline ``--baseline-lr`` 1e-3, and the guide's stop network
``--stop-lr``: by default the base lr, as in the official code (its 1e-3 group ``pr_net_param``
is empty for DooD); the paper's appendix C puts it at 1e-3 with the baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from generative.air import AIR_CONFIGS, Air, AirConfig, air_config
from generative.dood import DooD
from generative.dood_config import DOOD_CONFIGS, GUIDE_STOP_BIAS, DooDConfig, dood_config
from guides.air import AirGuide
from guides.dood import DooDGuide
from inference.nvil import make_stop_objective
from tasks.dood.data import canonical_dataset
from tasks.options import check_options, non_negative, option, positive

__all__ = [
    "BASE_LR",
    "CONFIGS",
    "CONFIG_LR",
    "DATASET_CONFIG",
    "DEFAULT_CONFIG",
    "MODEL_NAMES",
    "NVIL_LR",
    "OMNIGLOT_STOP_BIAS",
    "PAPER_IWAE_SAMPLES",
    "STOP_MODES",
    "DooDOptions",
    "build_air_pair",
    "build_dood",
    "default_config_name",
    "image_side",
    "max_steps",
    "model_config",
    "nvil_lr_groups",
    "stop_objective",
]

MODEL_NAMES: tuple[str, ...] = ("dood", "air", "difference-air")
DEFAULT_CONFIG: dict[str, str] = {"dood": "dood", "air": "air", "difference-air": "difference_air"}
CONFIGS: dict[str, tuple[str, ...]] = {
    "dood": tuple(sorted(DOOD_CONFIGS)),
    "air": ("air", "small"),
    "difference-air": ("difference_air", "small"),
}
STOP_MODES: tuple[str, ...] = ("nvil", "enum")
# appendix C: "the initial bias is set to a high value (e.g. 8)"; the official code uses 10
OMNIGLOT_STOP_BIAS = GUIDE_STOP_BIAS["omniglot"]
NVIL_LR = 1e-3  # appendix C: the NVIL-estimated parameters (official: the baseline's)
BASE_LR = 1e-4  # appendix C: the rest
# base learning rates of the CPU configurations (runs of minutes to hours, not days)
CONFIG_LR: dict[tuple[str, str], float] = {
    ("dood", "minutes"): 1e-3,
    ("dood", "hours"): 1e-3,
    ("dood", "small"): 1e-3,
    ("air", "small"): 1e-3,
    ("difference-air", "small"): 1e-3,
}
# the default configuration per dataset where it is not the paper's
DATASET_CONFIG: dict[tuple[str, str], str] = {
    ("dood", "glyphs"): "minutes",
    ("air", "glyphs"): "small",
    ("difference-air", "glyphs"): "small",
}
PAPER_IWAE_SAMPLES = 200  # Fig. 4: IWAE with 200 samples


def build_dood(config: dict[str, Any]) -> tuple[DooD, DooDGuide]:
    """A fresh DooD model/guide pair from a :meth:`DooDConfig.to_dict` dict."""
    model = DooD(DooDConfig.from_dict(config))
    return model, DooDGuide(model)


def build_air_pair(difference: bool) -> Callable[[dict[str, Any]], tuple[Air, AirGuide]]:
    """The builder of ``air`` (``difference=False``) or ``difference-air`` (``True``); it checks
    that the config's ``difference`` flag matches the registry name."""

    def build(config: dict[str, Any]) -> tuple[Air, AirGuide]:
        cfg = AirConfig.from_dict(config)
        if cfg.difference != difference:
            name = "difference-air" if difference else "air"
            raise ValueError(
                f"{name}: model_config has difference={cfg.difference}, expected {difference}"
            )
        model = Air(cfg)
        return model, AirGuide(model)

    return build


def _check_model(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown DooD-family model {name!r}; choose one of {MODEL_NAMES}")


def _fields(
    model: str,
    dataset: str | None,
    image_size: int | None,
    stop: str | None,
    beta: float | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if image_size is not None:
        if image_size < 2:
            raise ValueError(f"image_size must be >= 2, found {image_size}")
        fields.update(height=image_size, width=image_size)
    if stop is not None:
        if stop not in STOP_MODES:
            raise ValueError(f"stop must be 'nvil' or 'enum', found {stop!r}")
        fields["stop_mode"] = stop
    if beta is not None:
        fields["beta"] = beta
    if dataset is not None and canonical_dataset(dataset) == "omniglot":
        fields["stop_bias_init"] = OMNIGLOT_STOP_BIAS
        if model != "dood":
            fields["likelihood"] = "normal"
    return fields


def default_config_name(model: str, dataset: str | None) -> str:
    """The configuration used without ``--config``: :data:`DATASET_CONFIG` (the CPU ``minutes``
    one on glyphs), else the paper's."""
    key = (model, canonical_dataset(dataset)) if dataset is not None else None
    return DATASET_CONFIG.get(key, DEFAULT_CONFIG[model]) if key else DEFAULT_CONFIG[model]


def model_config(
    model: str,
    config_name: str | None = None,
    *,
    dataset: str | None = None,
    image_size: int | None = None,
    stop: str | None = None,
    beta: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The config dict of ``model`` (``config_name`` default :data:`DEFAULT_CONFIG`), with the
    image side, stop estimator (``"nvil"``/``"enum"``), β and any other fields overridden.

    ``dataset="omniglot"`` applies the Omniglot initialisation (the guide's stop network starts at
    ``σ(10)``, official; appendix C: "e.g. 8") except for DooD configs with a stroke warm-up,
    and, for AIR, Fig. 4's Gaussian likelihood (explicit ``overrides`` win).
    """
    _check_model(model)
    name = config_name or default_config_name(model, dataset)
    if name not in CONFIGS[model]:
        raise ValueError(f"unknown {model} config {name!r}; choose one of {list(CONFIGS[model])}")
    fields = _fields(model, dataset, image_size, stop, beta)
    if model == "dood" and DOOD_CONFIGS[name].warmup_steps > 0:
        # a warm-up trains the strokes before the count, which the Omniglot "on" start stands
        # in for: keep the config's bias (with 10, 1700 steps of `hours` stayed at 5.97 strokes)
        fields.pop("stop_bias_init", None)
    fields.update(overrides or {})
    if model == "dood":
        return dood_config(name, **fields).to_dict()
    difference = model == "difference-air"
    if fields.setdefault("difference", difference) != difference:
        raise ValueError(f"{model}: overrides set difference={fields['difference']}")
    if name not in AIR_CONFIGS:
        raise ValueError(f"unknown AIR config {name!r}")
    return air_config(name, **fields).to_dict()


def max_steps(config: dict[str, Any]) -> int:
    """``T``: DooD's ``max_strokes`` or AIR's ``max_steps``."""
    return int(config["max_strokes"] if "max_strokes" in config else config["max_steps"])


def stop_objective(config: dict[str, Any]) -> Callable:
    """The training objective of a config: the ELBO with β read as ``config["beta_mode"]`` and
    NVIL (appendix C.1) or the enumerated number of strokes after ``config["warmup_steps"]``
    steps with every stroke on, :func:`inference.nvil.make_stop_objective`. Configs stored
    before these fields existed read as the paper's β ("kl") without warm-up."""
    return make_stop_objective(
        config["stop_mode"],
        float(config["beta"]),
        max_steps(config),
        beta_mode=config.get("beta_mode", "kl"),
        warmup_steps=int(config.get("warmup_steps", 0)),
    )


def nvil_lr_groups(
    guide: nn.Module, stop_lr: float | None = None, baseline_lr: float = NVIL_LR
) -> dict[str, float]:
    """Learning-rate groups for :class:`inference.trainer.TrainConfig`: ``stop_lr`` for the
    guide's stop network (``guide.pres_net.``; ``None`` = the base lr, the official code) and
    ``baseline_lr`` for the NVIL baseline (``guide.baseline.``)."""
    groups = {} if stop_lr is None else {"guide.pres_net.": stop_lr}
    if getattr(guide, "baseline", None) is not None:
        groups["guide.baseline."] = baseline_lr
    return groups


def image_side(value: int | None) -> None:
    """An image side of at least 2 pixels."""
    if value is not None and value < 2:
        raise ValueError(f"expected an image side >= 2, found {value!r}")


@dataclass
class DooDOptions:
    """Options of ``pyro-draw train dood|air|difference-air``."""

    stop: str | None = option(
        None,
        "stop variables: NVIL (appendix C.1) or the number of strokes summed out exactly",
        choices=STOP_MODES,
        default_text="the config's, nvil",
    )
    beta: float | None = option(
        None,
        "KL weight of the stop variables",
        check=non_negative,
        default_text="the config's; DooD 4, AIR 5",
    )
    stop_lr: float | None = option(
        None,
        "learning rate of the guide's stop network (paper, appendix C: 1e-3)",
        check=positive,
        default_text="the base --lr, as the official code",
        aliases=("--nvil-lr",),
    )
    baseline_lr: float = option(NVIL_LR, "learning rate of the NVIL baseline", check=positive)
    image_size: int | None = option(
        None, "image side", check=image_side, default_text="the config's, 50"
    )
    num_train: int | None = option(
        None, "use only this many training images", check=positive, default_text="all"
    )
    num_valid: int = option(500, "validation images", check=positive)
    iwae_samples: int = option(50, "K of the final test IWAE (paper: 200)", check=positive)
    eval_examples: int = option(
        200, "test images for the final evaluation (a seeded random subset)", check=positive
    )
    eval_batch_size: int = option(50, "images per batch of the final evaluation", check=positive)
    #: other model-config fields (Python only, e.g. tiny networks in tests)
    config_overrides: dict[str, Any] = option({}, cli=False)

    def __post_init__(self) -> None:
        check_options(self)
