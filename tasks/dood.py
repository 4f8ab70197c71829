"""DooD (Liang et al. 2022, "Drawing out of Distribution") and its AIR baselines as user tasks.

Models (:data:`MODELS`, registry names):

* ``dood`` — :class:`generative.dood.DooD` with :class:`guides.dood.DooDGuide`. Named
  configurations: ``dood`` (the paper's: 50×50, 6 strokes, β = 4), the ablations of sec. 3.1 /
  Fig. 3 / Fig. 14 ``dood_dR`` (neural renderer), ``dood_EG`` (no execution guidance) and
  ``dood_SP`` (no sequential prior), and ``small`` (not from the paper: 28×28, smaller networks);
* ``air`` — vanilla AIR (Fig. 3d) and ``difference-air`` — Difference-AIR (Fig. 3c; the paper's
  "AIR" everywhere else), :mod:`generative.air` with :mod:`guides.air` (β = 5, appendix C).

Data (:func:`load_dood_images`): ``mnist``, ``omniglot`` and ``quickdraw`` scaled to the
model's image size (50×50 in the paper, appendix A; :mod:`tasks.data.images50`), and the
embedded ``glyphs`` (:mod:`tasks.data.glyphs`) rendered directly at that size. Images are grey
values in ``[0, 1]`` with ink = 1 for every split, because Eq. 5's Laplace likelihood models grey
values: ``load_images("glyphs")`` binarises its valid/test splits once with a fixed seed, so
here those splits are re-rendered (grey) from their ground truth, which also gives the true
number of strokes of every glyph (``extras["num_strokes"]``).

Training (:func:`run_dood_training`, ``pyro-draw train dood|air|difference-air``) maximises the
β-weighted ELBO of sec. 2.3 (Eq. 9; β weights the stop variables' KL) with the stop variables
``o_t`` handled by NVIL (appendix C.1, ``--stop nvil``) or summed out exactly (``--stop enum``),
:mod:`inference.nvil`. Adam uses 1e-3 for "the parameters whose gradients are estimated with
NVIL" — the guide's stop network and the NVIL baseline (the official code's ``pr_net_param`` and
``baseline_params`` groups) — and 1e-4 for the rest (appendix C); with ``--stop enum`` the stop
network keeps its 1e-3 so the two estimators are compared at equal step sizes. Appendix C's
Omniglot initialisation (stop networks output ``σ(8)`` at first) and Fig. 4's Gaussian likelihood
for Omniglot-trained AIR are applied when training on ``omniglot``.

Evaluation (:func:`evaluate_dood`): the IWAE estimate of log p(x) (Fig. 4 uses K = 200) and the
ELBO through the generic :func:`tasks.evaluate.evaluate_split`, the inferred number of strokes
(mean and histogram) and, on glyphs, its accuracy against the truth.

Pictures: step-by-step reconstructions (Fig. 1 / Fig. 3: the target, then the canvas after each
stroke with the stroke's Bézier curve, control points and layout window drawn over it),
unconditional samples at several temperatures (Fig. 6 / Fig. 15, appendix D.2.1) and partial
completion (Fig. 8, :func:`complete_drawings`).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle
from torch import Tensor, nn

from generative.air import AIR_CONFIGS, Air, AirConfig, air_config, where_to_layout
from generative.bezier import bezier_points, to_pixel
from generative.dood import DOOD_CONFIGS, DooD, DooDConfig, dood_config
from generative.stn import transform_points
from guides.air import AirGuide
from guides.dood import DooDGuide
from inference.checkpoint import load_checkpoint
from inference.iwae import importance_log_weights
from inference.nvil import make_stop_objective
from inference.trainer import ImageBatches, SVITrainer, TrainConfig
from tasks.cli_common import add_common_train_arguments, train_config_from_args
from tasks.data import DataError, ImageData, check_split
from tasks.data.glyphs import load_glyphs, render_glyphs
from tasks.data.images50 import load_images50
from tasks.evaluate import evaluate_split, format_summary, write_json
from tasks.figures import MIN_CELL_PX, prepare_path
from tasks.models import ModelEntry

__all__ = [
    "BASE_LR",
    "CHECKPOINT_COMMANDS",
    "DATASETS",
    "DEFAULT_CONFIG",
    "DEFAULT_TEMPERATURES",
    "DooDTrainJob",
    "EXTRA_ARGUMENTS",
    "MODELS",
    "MODEL_NAMES",
    "NVIL_LR",
    "PAPER_IWAE_SAMPLES",
    "PARTIAL_REGIONS",
    "build_air_pair",
    "build_dood",
    "canonical_dataset",
    "cmd_complete",
    "cmd_evaluate",
    "cmd_reconstruct",
    "cmd_sample",
    "complete_drawings",
    "evaluate_dood",
    "format_dood_summary",
    "infer_stroke_counts",
    "load_dood_checkpoint",
    "load_dood_images",
    "max_steps",
    "model_config",
    "nvil_lr_groups",
    "partial_images",
    "reconstruction_steps",
    "register_train",
    "run_dood_training",
    "save_completions",
    "save_sample_rows",
    "save_stroke_steps",
    "stop_objective",
    "stroke_count_summary",
    "validation_metrics",
    "write_completions",
    "write_dood_pictures",
    "write_reconstructions",
    "write_samples",
]

MODEL_NAMES: tuple[str, ...] = ("dood", "air", "difference-air")
DEFAULT_CONFIG: dict[str, str] = {"dood": "dood", "air": "air", "difference-air": "difference_air"}
# The paper's datasets (appendix A) by their names here; emnist/kmnist raise an informative
# DataError (not available in this project, see tasks.data.images50).
_IMAGES50 = {
    "mnist": "mnist50",
    "omniglot": "omniglot50",
    "quickdraw": "quickdraw50",
    "emnist": "emnist50",
    "kmnist": "kmnist50",
}
DATASETS: tuple[str, ...] = ("mnist", "omniglot", "quickdraw", "glyphs", "emnist", "kmnist")
OMNIGLOT_STOP_BIAS = 8.0  # appendix C: "the initial bias is set to a high value (e.g. 8)"
NVIL_LR = 1e-3  # appendix C: the NVIL-estimated parameters
BASE_LR = 1e-4  # appendix C: the rest
PAPER_IWAE_SAMPLES = 200  # Fig. 4: IWAE with 200 samples
DEFAULT_TEMPERATURES: tuple[float, ...] = (1.0, 0.5)
PARTIAL_REGIONS: tuple[str, ...] = ("top", "left", "strokes")
_STOP_SITE = re.compile(r"^z_pres_(\d+)$")
_IWAE_MAX_ROWS = 1024  # particles × examples per model/guide pass (bounds memory at 50×50)


# ----------------------------------------------------------------------------- registry
def build_dood(config: dict) -> tuple[DooD, DooDGuide]:
    """A fresh DooD model/guide pair from a :meth:`DooDConfig.to_dict` dict."""
    model = DooD(DooDConfig.from_dict(config))
    return model, DooDGuide(model)


def build_air_pair(difference: bool) -> Callable[[dict], tuple[Air, AirGuide]]:
    """The builder of ``air`` (``difference=False``) or ``difference-air`` (``True``); it checks
    that the config's ``difference`` flag matches the registry name."""

    def build(config: dict) -> tuple[Air, AirGuide]:
        cfg = AirConfig.from_dict(config)
        if cfg.difference != difference:
            name = "difference-air" if difference else "air"
            raise ValueError(
                f"{name}: model_config has difference={cfg.difference}, expected {difference}"
            )
        model = Air(cfg)
        return model, AirGuide(model)

    return build


MODELS: dict[str, ModelEntry] = {
    "dood": ModelEntry(build_dood, sorted(DOOD_CONFIGS)),
    "air": ModelEntry(build_air_pair(False), ["air", "small"]),
    "difference-air": ModelEntry(build_air_pair(True), ["difference_air", "small"]),
}


def _check_model(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown DooD-family model {name!r}; choose one of {MODEL_NAMES}")


def canonical_dataset(name: str) -> str:
    """``mnist`` etc.; the ``*50`` names of :mod:`tasks.data.images50` are accepted too."""
    key = name[:-2] if name.endswith("50") and name[:-2] in _IMAGES50 else name
    if key not in DATASETS:
        raise DataError(f"unknown DooD dataset {name!r}; expected one of {DATASETS}")
    return key


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

    ``dataset="omniglot"`` applies appendix C's Omniglot initialisation (stop networks start at
    ``σ(8)``) and, for AIR, Fig. 4's Gaussian likelihood (explicit ``overrides`` win).
    """
    _check_model(model)
    name = config_name or DEFAULT_CONFIG[model]
    if name not in MODELS[model].configs:
        raise ValueError(
            f"unknown {model} config {name!r}; choose one of {list(MODELS[model].configs)}"
        )
    fields: dict[str, Any] = {}
    if image_size is not None:
        if image_size < 2:
            raise ValueError(f"image_size must be >= 2, found {image_size}")
        fields.update(height=image_size, width=image_size)
    if stop is not None:
        if stop not in ("nvil", "enum"):
            raise ValueError(f"stop must be 'nvil' or 'enum', found {stop!r}")
        fields["stop_mode"] = stop
    if beta is not None:
        fields["beta"] = beta
    if dataset is not None and canonical_dataset(dataset) == "omniglot":
        fields["stop_bias_init"] = OMNIGLOT_STOP_BIAS
        if model != "dood":
            fields["likelihood"] = "normal"
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
    """The training objective of a config: the β-weighted ELBO (Eq. 9) with NVIL (appendix C.1)
    or exact enumeration of the number of strokes, :func:`inference.nvil.make_stop_objective`."""
    return make_stop_objective(config["stop_mode"], float(config["beta"]), max_steps(config))


def nvil_lr_groups(guide: nn.Module, lr: float = NVIL_LR) -> dict[str, float]:
    """Appendix C's learning-rate groups for :class:`inference.trainer.TrainConfig`: ``lr`` for
    the guide's stop network (``guide.pres_net.``) and NVIL baseline (``guide.baseline.``)."""
    groups = {"guide.pres_net.": lr}
    if getattr(guide, "baseline", None) is not None:
        groups["guide.baseline."] = lr
    return groups


def load_dood_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """Rebuild a DooD/AIR model and guide (eval mode) from a checkpoint, and the checkpoint."""
    data = load_checkpoint(path, map_location=device)
    if data["model"] not in MODELS:
        raise ValueError(f"{path} holds a {data['model']!r} model, not one of {MODEL_NAMES}")
    model, guide = MODELS[data["model"]].build(data["model_config"])
    model.load_state_dict(data["model_state"])
    guide.load_state_dict(data["guide_state"])
    model.to(device).eval()
    guide.to(device).eval()
    return model, guide, data


# ----------------------------------------------------------------------------- data
def load_dood_images(
    dataset: str,
    split: str,
    *,
    size: int = 50,
    num_examples: int | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    download: bool = False,
) -> ImageData:
    """Grey ``(N, 1, size, size)`` images in ``[0, 1]`` (``binarization="none"``) of a DooD
    dataset (module docstring). ``num_examples`` is a seeded subset (file datasets) or the
    generated count (glyphs); glyphs keep their ground truth in ``extras``."""
    key = canonical_dataset(dataset)
    check_split(key, split)
    if key != "glyphs":
        return load_images50(
            _IMAGES50[key],
            split,
            data_dir=data_dir,
            download=download,
            num_examples=num_examples,
            size=size,
            seed=seed,
        )
    data = load_glyphs(split, num_examples=num_examples, size=size, seed=seed)
    images = data.images
    if data.binarization != "dynamic":  # valid/test come binarised: re-render the grey images
        with torch.no_grad():
            images = render_glyphs(data.extras, size)
    info = dict(data.info)
    info.pop("binarization_seed", None)
    info["binarization_note"] = "grey values in [0, 1], ink = 1, used directly (Laplace likelihood)"
    return ImageData("glyphs", split, images, None, "none", info, data.extras)


def partial_images(data: ImageData, region: str | None, num: int) -> tuple[Tensor, str]:
    """Partial drawings for completion (Fig. 8): ``top``/``left`` keep the top/left half of the
    first ``num`` images; ``strokes`` (glyphs only) renders the first ⌈K/2⌉ true strokes of the
    first ``num`` glyphs with K ≥ 2 strokes. ``region=None`` picks ``strokes`` for glyphs and
    ``top`` otherwise. Returns ``(images (num, 1, H, W), region)``."""
    if region is None:
        region = "strokes" if "num_strokes" in data.extras else "top"
    if region not in PARTIAL_REGIONS:
        raise ValueError(f"partial region must be one of {PARTIAL_REGIONS}, found {region!r}")
    if num < 1:
        raise ValueError(f"number of partial examples must be >= 1, found {num}")
    h, w = data.images.shape[-2:]
    if region in ("top", "left"):
        images = data.images[:num].clone()
        if region == "top":
            images[..., h // 2 :, :] = 0.0
        else:
            images[..., :, w // 2 :] = 0.0
        return images, region
    if "num_strokes" not in data.extras:
        raise ValueError(
            f"partial region 'strokes' needs ground-truth strokes (the glyphs dataset); "
            f"{data.name} has none — use 'top' or 'left'"
        )
    counts = data.extras["num_strokes"]
    rows = (counts >= 2).nonzero().squeeze(-1)[:num]
    if len(rows) == 0:
        raise ValueError(f"{data.name}/{data.split}: no glyph with at least 2 strokes")
    truth = {k: v[rows] for k, v in data.extras.items() if isinstance(v, Tensor)}
    keep = (counts[rows] + 1) // 2
    truth["stroke_mask"] = truth["stroke_mask"] & (
        torch.arange(truth["stroke_mask"].shape[1]) < keep[:, None]
    )
    with torch.no_grad():
        return render_glyphs(truth, h), region


# ----------------------------------------------------------------------------- evaluation
def infer_stroke_counts(
    guide: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 100,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Number of strokes ``Σ_t o_t`` the guide infers for each image (one sample of
    ``q(o_{1:T} | x)`` per image, Eq. 6; seeded, the global RNG is left untouched), ``(N,)``."""
    counts = []
    with torch.random.fork_rng(), torch.no_grad(), pyro.validation_enabled(False):
        torch.manual_seed(seed)
        for chunk in images.split(batch_size):
            trace = poutine.trace(guide.guide).get_trace(chunk.to(device))
            stops = [
                site["value"]
                for name, site in trace.nodes.items()
                if site["type"] == "sample" and _STOP_SITE.match(name)
            ]
            if not stops:
                raise ValueError("the guide has no 'z_pres_<t>' sites to count strokes with")
            counts.append(torch.stack(stops, 0).sum(0).cpu())
    return torch.cat(counts).round().long()


def stroke_count_summary(
    counts: Tensor, max_strokes: int, truth: Tensor | None = None
) -> dict[str, Any]:
    """Mean, standard deviation and histogram (counts ``0 … T``) of inferred stroke counts; with
    ``truth`` also the accuracy, mean absolute error and confusion matrix (rows: true count
    ``0 … max(T, max truth)``, columns: inferred count ``0 … T``)."""
    counts = counts.long()
    values = counts.double()
    out: dict[str, Any] = {
        "num_examples": int(counts.numel()),
        "mean": float(values.mean()),
        "std": float(values.std()) if counts.numel() > 1 else math.nan,
        "histogram": torch.bincount(counts, minlength=max_strokes + 1).tolist(),
    }
    if truth is not None:
        truth = truth.long()
        if truth.shape != counts.shape:
            raise ValueError(
                f"truth: expected shape {tuple(counts.shape)}, found {tuple(truth.shape)}"
            )
        rows = max(max_strokes, int(truth.max())) + 1
        confusion = torch.zeros(rows, max_strokes + 1, dtype=torch.long)
        confusion.index_put_((truth, counts), torch.ones_like(counts), accumulate=True)
        out.update(
            accuracy=float((counts == truth).double().mean()),
            mean_abs_error=float((counts - truth).abs().double().mean()),
            true_mean=float(truth.double().mean()),
            confusion_true_by_inferred=confusion.tolist(),
        )
    return out


def _chunk_size(batch_size: int) -> int:
    return max(1, _IWAE_MAX_ROWS // max(1, batch_size))


def evaluate_dood(
    model: nn.Module,
    guide: nn.Module,
    data: ImageData,
    *,
    iwae_samples: int = PAPER_IWAE_SAMPLES,
    batch_size: int = 50,
    chunk_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """IWAE log-likelihood and ELBO of every image of ``data`` (:func:`evaluate_split`, K =
    ``iwae_samples``) plus ``stroke_counts`` (:func:`stroke_count_summary`; against the truth on
    glyphs). Particles are drawn in chunks of ``chunk_size`` (default: ≤ 1024 rows per pass)."""
    was = model.training, guide.training
    model.eval()
    guide.eval()
    try:
        with pyro.validation_enabled(False):
            result = evaluate_split(
                model.model,
                guide.guide,
                data,
                seed=seed,
                num_particles=iwae_samples,
                batch_size=batch_size,
                chunk_size=chunk_size or _chunk_size(batch_size),
                device=device,
                progress=progress,
            )
        counts = infer_stroke_counts(guide, data.images, seed=seed, device=device)
    finally:
        model.train(was[0])
        guide.train(was[1])
    truth = data.extras.get("num_strokes")
    result["stroke_counts"] = stroke_count_summary(counts, max_steps(model.config.to_dict()), truth)
    return result


def validation_metrics(
    model: nn.Module, guide: nn.Module, images: Tensor, *, batch_size: int = 100, seed: int = 0
) -> dict[str, float]:
    """``valid_elbo`` (the ELBO, β = 1, one sample per image: Eq. 9 / Eq. 15) and
    ``valid_num_strokes`` (mean inferred count) of ``images``."""
    device = next(model.parameters()).device
    total = 0.0
    with torch.random.fork_rng(), torch.no_grad(), pyro.validation_enabled(False):
        torch.manual_seed(seed)
        for chunk in images.split(batch_size):
            log_w = importance_log_weights(
                model.model, guide.guide, chunk.to(device), num_particles=1
            )
            total += float(log_w.sum())
    counts = infer_stroke_counts(guide, images, batch_size=batch_size, seed=seed, device=device)
    return {"valid_elbo": total / len(images), "valid_num_strokes": float(counts.double().mean())}


def format_dood_summary(result: dict[str, Any]) -> str:
    """The IWAE summary line plus the stroke-count line."""
    sc = result["stroke_counts"]
    line = f"inferred strokes: mean {sc['mean']:.2f}, histogram (0…T) {sc['histogram']}"
    if "accuracy" in sc:
        line += (
            f"; vs truth: accuracy {100 * sc['accuracy']:.1f}%, mean |error| "
            f"{sc['mean_abs_error']:.2f} (true mean {sc['true_mean']:.2f})"
        )
    return f"{format_summary(result)}\n{line}"


# ----------------------------------------------------------------------------- pictures
_CORNERS = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
_CURVE_POINTS = 64
_CURVE_COLOR = "orange"
_POINT_COLOR = "deepskyblue"
_WINDOW_COLOR = "lime"
_PARTIAL_TINT = (1.0, 0.55, 0.1)


def reconstruction_steps(guide: nn.Module, images: Tensor) -> dict[str, Tensor]:
    """Step-by-step reconstructions (Fig. 1 / Fig. 3) of a DooD or AIR guide, with overlays in
    pixel ``(column, row)`` coordinates: ``canvases`` (N, T, 1, H, W), ``present`` (N, T),
    ``windows`` (N, T, 4, 2: the layout's glimpse window, the canonical square ``[−1, 1]²``
    mapped by Eq. 2's affine transform) and, for the spline renderer, ``control_points``
    (N, T, J, 2: ``s̃_t = l_t ⊙ s_t``) and ``curves`` (N, T, 64, 2: Eq. 10)."""
    with torch.no_grad(), pyro.validation_enabled(False):
        out = guide.reconstruct(images)
        h, w = images.shape[-2:]
        layout = out["z_where"]
        if isinstance(guide, AirGuide):
            layout = where_to_layout(layout)
        corners = _CORNERS.to(layout)
        windows = transform_points(corners.expand(*layout.shape[:2], 4, 2), layout)
        steps = {
            "canvases": out["canvases"],
            "present": out["z_pres"],
            "windows": to_pixel(windows, h, w),
        }
        if "control_points" in out:
            steps["control_points"] = to_pixel(out["control_points"], h, w)
            steps["curves"] = to_pixel(bezier_points(out["control_points"], _CURVE_POINTS), h, w)
    return steps


def _np(x: Tensor | None) -> np.ndarray | None:
    return None if x is None else x.detach().cpu().double().numpy()


class _Mosaic:
    """A grid of equally sized image cells drawn as *one* image on one axes (fast: no axes per
    cell), separated by grey gaps, with text bands above the grid and/or above every row.

    Data coordinates are mosaic pixels (pixel centres at integers); :meth:`origin` gives the
    offset to add to a cell's pixel ``(column, row)`` coordinates for overlays. Each image pixel
    is drawn as an integer block of output pixels at ``dpi`` (as :mod:`tasks.figures` does).
    """

    GAP, GAP_VALUE, TEXT_PX = 1, 0.35, 18  # gap in image pixels, its grey, text band height

    def __init__(
        self, nrows: int, ncols: int, h: int, w: int, *, header: int = 0, row_titles: bool = False
    ):
        self.h, self.w = h, w
        self.scale = max(1, math.ceil(MIN_CELL_PX / max(h, w)))
        self.band = band = math.ceil(self.TEXT_PX / self.scale)
        self.header = header * band
        self.row_band = band if row_titles else 0
        g = self.GAP
        self.height = self.header + nrows * (self.row_band + h + g) + g
        self.width = ncols * (w + g) + g
        self.pixels = np.full((self.height, self.width, 3), self.GAP_VALUE)
        self.pixels[: self.header] = 0.0
        for r in range(nrows):
            y = self.header + r * (self.row_band + h + g) + g
            self.pixels[y : y + self.row_band] = 0.0
        self.fig = Figure(
            figsize=(self.width * self.scale / 100, self.height * self.scale / 100), dpi=100
        )
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0.0, 0.0, 1.0, 1.0))
        self.ax.set_axis_off()

    def origin(self, r: int, c: int) -> tuple[int, int]:
        """Mosaic ``(x, y)`` of the top-left pixel centre of cell ``(r, c)``."""
        g = self.GAP
        x = c * (self.w + g) + g
        y = self.header + r * (self.row_band + self.h + g) + g + self.row_band
        return x, y

    def put(self, r: int, c: int, image: np.ndarray, *, dim: bool = False) -> None:
        """Place a ``(1 | 3, H, W)`` image (values clipped to ``[0, 1]``) in cell ``(r, c)``."""
        x, y = self.origin(r, c)
        rgb = np.clip(np.nan_to_num(image), 0.0, 1.0)
        rgb = np.repeat(rgb, 3, 0) if rgb.shape[0] == 1 else rgb
        self.pixels[y : y + self.h, x : x + self.w] = rgb.transpose(1, 2, 0) * (0.4 if dim else 1)

    def text(self, x: float, y: float, label: str) -> None:
        self.ax.text(x, y, label, color="white", ha="center", va="center", fontsize=7)

    def column_label(self, c: int, label: str, line: int = 0) -> None:
        """Text in header line ``line`` centred above column ``c``."""
        self.text(self.origin(0, c)[0] + (self.w - 1) / 2, (line + 0.5) * self.band - 0.5, label)

    def row_label(self, r: int, c: int, label: str) -> None:
        x, y = self.origin(r, c)
        self.text(x + (self.w - 1) / 2, y - self.row_band / 2 - 0.5, label)

    def save(self, path: str | Path) -> Path:
        out = prepare_path(path)
        self.ax.imshow(self.pixels, interpolation="nearest", aspect="auto")
        self.ax.set_xlim(-0.5, self.width - 0.5)
        self.ax.set_ylim(self.height - 0.5, -0.5)
        try:
            self.fig.savefig(out, dpi=100, facecolor="black")
        finally:
            self.fig.clear()
        return out


def save_stroke_steps(
    canvases: Tensor,
    present: Tensor,
    path: str | Path,
    *,
    targets: Tensor | None = None,
    curves: Tensor | None = None,
    control_points: Tensor | None = None,
    windows: Tensor | None = None,
    title: str | None = None,
) -> Path:
    """One row per drawing: the target (if given), then the canvas after each step ``t`` with
    step ``t``'s curve (orange), control points (blue) and layout window (green) drawn over it.
    Steps after the drawing stopped (``present = 0``) are dimmed. Overlays are pixel
    ``(column, row)`` coordinates: ``curves`` (N, T, S, 2), ``control_points`` (N, T, J, 2),
    ``windows`` (N, T, 4, 2)."""
    canv = _np(canvases)
    if canv is None or canv.ndim != 5 or canv.shape[2] != 1:
        raise ValueError(f"canvases: expected (N, T, 1, H, W), found {tuple(canvases.shape)}")
    n, t, _, h, w = canv.shape
    pres = _np(present)
    if pres.shape != (n, t):
        raise ValueError(f"present: expected shape {(n, t)}, found {pres.shape}")
    tgt, cur, cps, win = _np(targets), _np(curves), _np(control_points), _np(windows)
    if tgt is not None and tgt.shape != (n, 1, h, w):
        raise ValueError(f"targets: expected shape {(n, 1, h, w)}, found {tgt.shape}")
    for name, arr in (("curves", cur), ("control_points", cps), ("windows", win)):
        if arr is not None and (arr.ndim != 4 or arr.shape[:2] != (n, t) or arr.shape[-1] != 2):
            raise ValueError(f"{name}: expected shape ({n}, {t}, P, 2), found {arr.shape}")
    offset = 0 if tgt is None else 1
    grid = _Mosaic(n, t + offset, h, w, header=2 if title else 1)
    ax = grid.ax
    for i in range(n):
        if tgt is not None:
            grid.put(i, 0, tgt[i])
        for k in range(t):
            present_k = pres[i, k] > 0
            grid.put(i, k + offset, canv[i, k], dim=not present_k)
            if not present_k:
                continue
            x0, y0 = grid.origin(i, k + offset)
            clip = Rectangle((x0 - 0.5, y0 - 0.5), w, h, transform=ax.transData)
            artists = []
            if win is not None:
                artists.append(
                    ax.add_patch(
                        Polygon(win[i, k] + (x0, y0), fill=False, ec=_WINDOW_COLOR, lw=0.8)
                    )
                )
            if cps is not None:
                xs, ys = cps[i, k, :, 0] + x0, cps[i, k, :, 1] + y0
                artists += ax.plot(xs, ys, "--", color=_POINT_COLOR, lw=0.6)
                artists += ax.plot(xs, ys, "o", color=_POINT_COLOR, ms=2.0)
            if cur is not None:
                xs, ys = cur[i, k, :, 0] + x0, cur[i, k, :, 1] + y0
                artists += ax.plot(xs, ys, "-", color=_CURVE_COLOR, lw=1.2)
            for artist in artists:
                artist.set_clip_path(clip)
    labels = (["target"] if tgt is not None else []) + [f"step {k + 1}" for k in range(t)]
    for j, label in enumerate(labels):
        grid.column_label(j, label, line=1 if title else 0)
    if title:
        grid.text((grid.width - 1) / 2, grid.band / 2 - 0.5, title)
    return grid.save(path)


def save_sample_rows(
    groups: Sequence[tuple[str, Tensor]], path: str | Path, *, ncols: int = 10
) -> Path:
    """Groups of images ``(label, (n, C, H, W))`` (e.g. one per temperature), each wrapped into
    rows of ``ncols`` with the label above its first row."""
    if not groups:
        raise ValueError("save_sample_rows: no image groups")
    arrays = [(label, _np(images)) for label, images in groups]
    _, c, h, w = arrays[0][1].shape
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, found {ncols}")
    ncols = min(ncols, max(len(a) for _, a in arrays))
    placed: list[tuple[str, np.ndarray]] = []
    for label, arr in arrays:
        if arr.ndim != 4 or arr.shape[1:] != (c, h, w):
            raise ValueError(f"group {label!r}: expected (n, {c}, {h}, {w}), found {arr.shape}")
        for start in range(0, len(arr), ncols):
            placed.append((label if start == 0 else "", arr[start : start + ncols]))
    grid = _Mosaic(len(placed), ncols, h, w, row_titles=True)
    for r, (label, row) in enumerate(placed):
        for k, image in enumerate(row):
            grid.put(r, k, image)
        if label:
            grid.row_label(r, 0, label)
    return grid.save(path)


def save_completions(partial: Tensor, inferred: Tensor, added: Tensor, path: str | Path) -> Path:
    """Fig. 8: per row the partial drawing, the guide's reconstruction of it, then the
    completions — the partial drawing in orange and the strokes the model added in white.
    ``partial``/``inferred`` (N, 1, H, W), ``added`` (N, S, 1, H, W) (ink of the new strokes)."""
    part, inf, add = _np(partial), _np(inferred), _np(added)
    if part.ndim != 4 or inf.shape != part.shape or add.ndim != 5 or add.shape[0] != len(part):
        raise ValueError(
            f"expected partial/inferred (N, 1, H, W) and added (N, S, 1, H, W), found "
            f"{part.shape}, {inf.shape}, {add.shape}"
        )
    n, s = add.shape[:2]
    h, w = part.shape[-2:]
    tint = np.asarray(_PARTIAL_TINT)[:, None, None]
    grid = _Mosaic(n, s + 2, h, w, header=1)
    for i in range(n):
        grid.put(i, 0, part[i])
        grid.put(i, 1, inf[i])
        for k in range(s):
            grid.put(i, k + 2, np.maximum(part[i] * tint, add[i, k]))  # (3, H, W)
    for j, label in enumerate(["partial", "inferred"] + ["completions"] * min(1, s)):
        grid.column_label(j, label)
    return grid.save(path)


# ----------------------------------------------------------------------------- completion
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
    model._check_images(partial)
    c = model.config
    steps = c.max_strokes
    with torch.no_grad(), pyro.validation_enabled(False):
        trace = poutine.trace(guide.guide).get_trace(partial)
        given = {
            key: torch.stack([trace.nodes[f"{key}_{t}"]["value"] for t in range(steps)], 1)
            for key in ("z_pres", "z_where", "z_what")
        }
        num_given = given["z_pres"].sum(1).round().long()
        rows = partial.shape[0] * num_samples
        given = {k: v.repeat_interleave(num_samples, 0) for k, v in given.items()}
        n = num_given.repeat_interleave(num_samples, 0)
        target = partial.repeat_interleave(num_samples, 0)
        omega1 = model.omega1()
        base = omega1 * torch.atanh(target.clamp(0.0, 1.0 - 1e-4))
        added = target.new_zeros(target.shape)
        kept = target.new_zeros(target.shape)
        num_added = target.new_zeros(rows)
        state = model.initial_state(rows)
        for t in range(steps):
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
        shape = (partial.shape[0], num_samples, *partial.shape[1:])
        return {
            "images": torch.tanh((base + added) / omega1).reshape(shape),
            "added": torch.tanh(added / omega1).reshape(shape),
            "inferred": torch.tanh(kept / omega1).reshape(shape)[:, 0],
            "num_given": num_given,
            "num_added": num_added.round().long().reshape(shape[:2]),
        }


# ----------------------------------------------------------------------------- sampling
def _generate(model: nn.Module, num: int, temperature: float) -> dict[str, Tensor]:
    with pyro.validation_enabled(False):
        if isinstance(model, DooD):
            return model.generate(num, temperature=temperature)
        if temperature != 1.0:
            raise ValueError(
                "AIR has a fixed prior (sec. 3.2: no sequential prior), so it has no sampling "
                f"temperature; found temperature {temperature}"
            )
        return model.generate(num)


def _generation_overlays(model: nn.Module, out: dict[str, Tensor]) -> dict[str, Tensor]:
    h, w = out["canvases"].shape[-2:]
    layout = out["z_where"] if isinstance(model, DooD) else where_to_layout(out["z_where"])
    windows = transform_points(_CORNERS.to(layout).expand(*layout.shape[:2], 4, 2), layout)
    extra = {"windows": to_pixel(windows, h, w)}
    if "control_points" in out:
        extra["control_points"] = to_pixel(out["control_points"], h, w)
        extra["curves"] = to_pixel(bezier_points(out["control_points"], _CURVE_POINTS), h, w)
    return extra


def write_samples(
    model: nn.Module,
    out_dir: str | Path,
    *,
    num_samples: int = 20,
    num_sequences: int = 6,
    temperatures: Sequence[float] | None = None,
    seed: int = 0,
    prefix: str = "",
) -> list[Path]:
    """``samples.png`` (rows of unconditional samples per temperature; AIR: its fixed prior)
    and ``generation.png`` (step by step, at the lowest temperature)."""
    out_dir = Path(out_dir)
    if temperatures is None:
        temperatures = DEFAULT_TEMPERATURES if isinstance(model, DooD) else (1.0,)
    if not temperatures:
        raise ValueError("no sampling temperature given")
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            groups = [
                (f"τ = {tau:g}", _generate(model, num_samples, tau)["images"])
                for tau in temperatures
            ]
            tau = min(temperatures)
            seq = _generate(model, num_sequences, tau)
    finally:
        model.train(was)
    if not isinstance(model, DooD):
        groups = [("prior", groups[0][1])]
    paths = [save_sample_rows(groups, out_dir / f"{prefix}samples.png")]
    paths.append(
        save_stroke_steps(
            seq["canvases"],
            seq["z_pres"],
            out_dir / f"{prefix}generation.png",
            title=f"samples, τ = {tau:g}" if isinstance(model, DooD) else "prior samples",
            **_generation_overlays(model, seq),
        )
    )
    return paths


def write_reconstructions(
    guide: nn.Module, images: Tensor, path: str | Path, *, seed: int = 0, title: str | None = None
) -> Path:
    """Fig. 1 / Fig. 3: step-by-step reconstructions of ``images`` (one guide sample each)."""
    was = guide.training
    guide.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            steps = reconstruction_steps(guide, images)
    finally:
        guide.train(was)
    return save_stroke_steps(
        steps.pop("canvases"), steps.pop("present"), path, targets=images, title=title, **steps
    )


def write_completions(
    model: DooD,
    guide: DooDGuide,
    data: ImageData,
    path: str | Path,
    *,
    region: str | None = None,
    num_examples: int = 6,
    num_samples: int = 6,
    temperature: float = 1.0,
    seed: int = 0,
) -> tuple[Path, dict[str, Any]]:
    """Fig. 8 for ``num_examples`` partial drawings of ``data`` (:func:`partial_images`);
    returns the figure path and a summary (region, strokes given and added)."""
    partial, region = partial_images(data, region, num_examples)
    device = next(model.parameters()).device
    was = model.training, guide.training
    model.eval()
    guide.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            out = complete_drawings(
                model, guide, partial.to(device), num_samples, temperature=temperature
            )
    finally:
        model.train(was[0])
        guide.train(was[1])
    figure = save_completions(partial, out["inferred"], out["added"], path)
    summary = {
        "region": region,
        "temperature": temperature,
        "strokes_inferred_from_partial": out["num_given"].tolist(),
        "mean_strokes_added": float(out["num_added"].double().mean()),
    }
    return figure, summary


def write_dood_pictures(
    model: nn.Module,
    guide: nn.Module,
    data: ImageData,
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_examples: int = 8,
) -> list[Path]:
    """All pictures of a trained model: ``reconstruction.png`` (first ``num_examples`` images of
    ``data``), ``samples.png``, ``generation.png`` and, for DooD, ``completion.png``."""
    out_dir = Path(out_dir)
    device = next(model.parameters()).device
    images = data.images[:num_examples].to(device)
    paths = [write_reconstructions(guide, images, out_dir / "reconstruction.png", seed=seed)]
    paths += write_samples(model, out_dir, seed=seed)
    if isinstance(model, DooD):
        num = min(6, len(data))
        path, _ = write_completions(
            model, guide, data, out_dir / "completion.png", num_examples=num, seed=seed
        )
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- training
@dataclass
class DooDTrainJob:
    """What :func:`run_dood_training` trains, on which data, and how it is evaluated."""

    model: str = "dood"
    config: str | None = None  # named config (default DEFAULT_CONFIG[model])
    dataset: str = "mnist"
    out: str = "runs/dood"
    stop: str | None = None  # "nvil" | "enum" (default: the config's)
    beta: float | None = None  # default: the config's (DooD 4, AIR 5)
    image_size: int | None = None  # default: the config's (50)
    config_overrides: dict[str, Any] = field(default_factory=dict)
    nvil_lr: float = NVIL_LR
    num_train: int | None = None
    num_valid: int = 500
    eval_examples: int = 200
    iwae_samples: int = 50
    eval_batch_size: int = 50
    resume: str | None = None
    device: str = "cpu"
    data_dir: str | None = None
    download: bool = False
    pictures: bool = True
    progress: bool = True


def run_dood_training(job: DooDTrainJob, train_config: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a DooD/AIR model, then evaluate it on the test split (IWAE, ELBO,
    stroke counts) and draw its pictures; returns the result (also written to ``eval.json``).

    ``train_config.lr`` is the base learning rate (appendix C: 1e-4); :func:`nvil_lr_groups`
    adds ``job.nvil_lr`` (1e-3) for the stop network and NVIL baseline unless
    ``train_config.lr_groups`` sets those prefixes itself.
    """
    _check_model(job.model)
    dataset = canonical_dataset(job.dataset)
    out = Path(job.out)
    if job.resume:
        ckpt = load_checkpoint(job.resume, expected_model=job.model)
        config, config_name = ckpt["model_config"], ckpt.get("config_name", job.config)
    else:
        config_name = job.config or DEFAULT_CONFIG[job.model]
        config = model_config(
            job.model,
            config_name,
            dataset=dataset,
            image_size=job.image_size,
            stop=job.stop,
            beta=job.beta,
            overrides=job.config_overrides,
        )
    size = int(config["height"])
    load = dict(size=size, seed=train_config.seed, data_dir=job.data_dir, download=job.download)
    train = load_dood_images(dataset, "train", num_examples=job.num_train, **load)
    valid = load_dood_images(dataset, "valid", num_examples=job.num_valid, **load)
    model, guide = MODELS[job.model].build(config)
    model.to(job.device)
    guide.to(job.device)
    objective = stop_objective(config)
    train_config = replace(
        train_config, lr_groups={**nvil_lr_groups(guide, job.nvil_lr), **train_config.lr_groups}
    )
    batches = ImageBatches(train.images, train_config.batch_size, seed=train_config.seed)

    def validate() -> dict[str, float]:
        return validation_metrics(model, guide, valid.images, seed=train_config.seed)

    extra = {
        "model": job.model,
        "model_config": config,
        "config_name": config_name,
        "objective": {"stop": config["stop_mode"], "beta": config["beta"]},
        "data": {"dataset": dataset, "size": size, "num_train": len(train), "info": train.info},
    }
    trainer = SVITrainer(
        model,
        guide,
        batches,
        train_config,
        out_dir=out,
        checkpoint_extra=extra,
        validate=validate,
        device=job.device,
        progress=job.progress,
        objective=objective,
    )
    run = trainer.run(job.resume)

    test = load_dood_images(dataset, "test", num_examples=job.eval_examples, **load)
    result = evaluate_dood(
        model,
        guide,
        test,
        iwae_samples=job.iwae_samples,
        batch_size=job.eval_batch_size,
        seed=train_config.seed,
        device=job.device,
        progress=job.progress,
    )
    model.eval()
    guide.eval()
    result.update(
        model=job.model,
        config_name=config_name,
        model_config=config,
        stop=config["stop_mode"],
        beta=config["beta"],
        learning_rates={"base": train_config.lr, **train_config.lr_groups},
        steps=trainer.state.step,
        steps_this_run=run.steps,
        batch_size=train_config.batch_size,
        train_seconds=run.seconds,
        threads=torch.get_num_threads(),
        parameters=sum(p.numel() for p in [*model.parameters(), *guide.parameters()]),
        checkpoint=str(trainer.checkpoint_path),
        **validation_metrics(model, guide, valid.images, seed=train_config.seed),
    )
    write_json(result, out / "eval.json")
    print(format_dood_summary(result))
    if job.pictures:
        for path in write_dood_pictures(model, guide, test, out, seed=train_config.seed):
            print(f"wrote {path}")
    return result


# ----------------------------------------------------------------------------- CLI
_TRAIN_HELP = {
    "dood": "DooD (Liang et al. 2022): Bézier strokes, layout GMMs, NVIL (paper config: 50x50)",
    "air": "vanilla AIR baseline of DooD (Fig. 3d)",
    "difference-air": "Difference-AIR, DooD's AIR baseline (Fig. 3c, guide reads x - canvas)",
}


def _train_handler(name: str) -> Callable[[argparse.Namespace], None]:
    def handler(args: argparse.Namespace) -> None:
        job = DooDTrainJob(
            model=name,
            config=args.config,
            dataset=args.dataset,
            out=args.out,
            stop=args.stop,
            beta=args.beta,
            image_size=args.image_size,
            nvil_lr=args.nvil_lr,
            num_train=args.num_train,
            num_valid=args.num_valid,
            eval_examples=args.eval_examples,
            iwae_samples=args.iwae_samples,
            resume=args.resume,
            device=args.device,
            data_dir=args.data_dir,
            download=args.download,
            pictures=not args.no_pictures,
            progress=not args.no_progress,
        )
        run_dood_training(job, train_config_from_args(args))

    return handler


def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``pyro-draw train dood|air|difference-air``."""
    for name in MODEL_NAMES:
        p = train_subparsers.add_parser(
            name, help=_TRAIN_HELP[name], formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        add_common_train_arguments(
            p,
            steps=2000,
            batch_size=64,
            lr=BASE_LR,
            out=f"runs/{name}",
            validate_every=200,
            checkpoint_every=200,
        )
        p.add_argument(
            "--config",
            default=DEFAULT_CONFIG[name],
            choices=list(MODELS[name].configs),
            help="named configuration"
            + (" (ablations: dood_dR, dood_EG, dood_SP)" * (name == "dood")),
        )
        p.add_argument("--dataset", default="mnist", choices=DATASETS)
        p.add_argument(
            "--stop",
            default=None,
            choices=("nvil", "enum"),
            help="stop variables: NVIL (appendix C.1) or the number of strokes summed out "
            "exactly (None: the config's, nvil)",
        )
        p.add_argument(
            "--beta",
            type=float,
            default=None,
            help="KL weight of the stop variables (None: the config's; DooD 4, AIR 5)",
        )
        p.add_argument(
            "--nvil-lr",
            type=float,
            default=NVIL_LR,
            help="learning rate of the stop network and NVIL baseline (appendix C)",
        )
        p.add_argument(
            "--image-size", type=int, default=None, help="image side (None: the config's, 50)"
        )
        p.add_argument(
            "--num-train", type=int, default=None, help="use only this many training images"
        )
        p.add_argument("--num-valid", type=int, default=500, help="validation images")
        p.add_argument(
            "--iwae-samples", type=int, default=50, help="K of the final test IWAE (paper: 200)"
        )
        p.add_argument(
            "--eval-examples",
            type=int,
            default=200,
            help="test images for the final evaluation (a seeded random subset)",
        )
        p.add_argument("--no-pictures", action="store_true")
        p.set_defaults(handler=_train_handler(name))


def _out_dir(args: argparse.Namespace) -> Path:
    return Path(args.out) if getattr(args, "out", None) else Path(args.checkpoint).parent


def _checkpoint_data(args: argparse.Namespace, ckpt: dict, num: int | None) -> ImageData:
    dataset = args.dataset or ckpt["data"]["dataset"]
    return load_dood_images(
        dataset,
        args.split,
        size=int(ckpt["model_config"]["height"]),
        num_examples=num,
        seed=args.seed,
        data_dir=args.data_dir,
        download=args.download,
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``pyro-draw evaluate CHECKPOINT``: IWAE log p(x), ELBO and stroke counts on a split of the
    training dataset or, with ``--dataset``, another one (zero-shot transfer, Fig. 4)."""
    model, guide, ckpt = load_dood_checkpoint(args.checkpoint, device=args.device)
    data = _checkpoint_data(args, ckpt, args.num_examples)
    result = evaluate_dood(
        model,
        guide,
        data,
        iwae_samples=args.iwae_samples,
        batch_size=args.batch_size,
        chunk_size=getattr(args, "chunk_size", None),
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    result.update(
        model=ckpt["model"],
        config_name=ckpt.get("config_name"),
        trained_on=ckpt["data"]["dataset"],
        checkpoint=str(args.checkpoint),
        step=ckpt["step"],
    )
    path = (
        Path(args.json)
        if getattr(args, "json", None)
        else Path(args.checkpoint).with_name(
            f"eval_{data.name}_{args.split}_K{args.iwae_samples}.json"
        )
    )
    write_json(result, path)
    print(format_dood_summary(result))
    print(f"wrote {path}")


def cmd_sample(args: argparse.Namespace) -> None:
    """``pyro-draw sample CHECKPOINT``: unconditional samples per ``--temperature`` (DooD
    default 1.0 0.5) and a step-by-step generation figure."""
    model, _, _ = load_dood_checkpoint(args.checkpoint, device=args.device)
    for path in write_samples(
        model,
        _out_dir(args),
        num_samples=args.num_samples or 50,
        num_sequences=getattr(args, "num_sequences", 6),
        temperatures=args.temperature,
        seed=args.seed,
    ):
        print(f"wrote {path}")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    """``pyro-draw reconstruct CHECKPOINT``: step-by-step reconstructions (Fig. 1 / Fig. 3) of
    ``--num-examples`` (default 8) images of a split, of any DooD dataset (``--dataset``)."""
    model, guide, ckpt = load_dood_checkpoint(args.checkpoint, device=args.device)
    num = args.num_examples or 8
    data = _checkpoint_data(args, ckpt, num)
    path = write_reconstructions(
        guide,
        data.images[:num].to(args.device),
        _out_dir(args) / f"reconstruction_{data.name}_{args.split}.png",
        seed=args.seed,
        title=f"{ckpt['model']} trained on {ckpt['data']['dataset']}",
    )
    print(f"wrote {path}")


def cmd_complete(args: argparse.Namespace) -> None:
    """``pyro-draw complete CHECKPOINT`` (DooD): completions of partial drawings (Fig. 8),
    ``--num-samples`` per example for ``--num-examples`` (default 6) examples."""
    model, guide, ckpt = load_dood_checkpoint(args.checkpoint, device=args.device)
    num = args.num_examples or 6
    region = getattr(args, "partial_region", None)
    pool = _checkpoint_data(args, ckpt, 4 * num)  # glyphs with >= 2 strokes are picked from it
    temperatures = args.temperature or [1.0]
    for tau in temperatures:
        path, summary = write_completions(
            model,
            guide,
            pool,
            _out_dir(args) / f"completion_{pool.name}_{args.split}_T{tau:g}.png",
            region=region,
            num_examples=num,
            num_samples=args.num_samples or 8,
            temperature=tau,
            seed=args.seed,
        )
        print(
            f"wrote {path} (partial: {summary['region']}, strokes inferred "
            f"{summary['strokes_inferred_from_partial']}, mean added "
            f"{summary['mean_strokes_added']:.2f})"
        )


def _extra_complete(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--partial-region",
        choices=PARTIAL_REGIONS,
        default=None,
        help="DooD: the partial drawing — top/left half of the image, or the first half of the "
        "true strokes (glyphs; the default there, 'top' elsewhere)",
    )


CHECKPOINT_COMMANDS: dict[str, dict[str, Callable[[argparse.Namespace], None]]] = {
    "evaluate": {name: cmd_evaluate for name in MODEL_NAMES},
    "sample": {name: cmd_sample for name in MODEL_NAMES},
    "reconstruct": {name: cmd_reconstruct for name in MODEL_NAMES},
    "complete": {"dood": cmd_complete},
}
EXTRA_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "complete": _extra_complete,
}
