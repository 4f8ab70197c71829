"""New exemplars of a character (DooD, Liang et al. 2022, sec. 3.2 "Character-conditioned
generation", Fig. 7; token model of appendix B.3) and ``pyro-draw exemplars CHECKPOINT``.

A target image is parsed into its best *type* (:func:`best_types`): ``type_samples`` guide
parses (:func:`tasks.one_shot.type_token.infer_types`, absolute control points, presence and the
parse's renderer parameters), of which the one with the highest weight is kept (``"joint"``:
``log p(x, ψ)``; or ``"importance"``: ``log p(x, ψ) − log q(ψ | x)``). New *tokens* of that type
are sampled from a Pyro program (:func:`exemplar_model`) and rendered with the type's renderer
parameters (:func:`tasks.one_shot.tokens.render_tokens`):

* ``motor_noise`` ``(B, T, J, 2)``: standard normal, masked to the present strokes; control point
  ``j`` moves by ``std_j · motor_noise`` with ``std`` = ``middle_noise`` on the middle point
  ``J // 2``, ``neighbour_noise`` on points ``J // 2 ± 1`` and 0 elsewhere (the end points stay);
* ``affine`` ``(B, 7)``: one unconstrained affine per token ``u ∼ N(0, I)``, mapped by
  :func:`tasks.one_shot.tokens.token_affine` (``low + (high − low) · sigmoid(u)`` per parameter,
  a logit-normal within the ranges; ``u = 0`` is the identity for symmetric ranges) and applied
  about the image centre to the noisy points (deterministic site ``token_points``).

What the official code does (github.com/yichao-liang/DooD, ``src/dood/plot.py``,
``plot_multi_recon``, reached from ``plot_reconstructions`` with ``recons_per_img > 1``), and
what is chosen here:

* Motor noise: ``z_what[..., 2, :] += randn · 0.1`` and ``z_what[..., 1, :]``,
  ``z_what[..., -2, :] += randn · 0.003`` (``add_motor_noise=True``), i.e. for the default
  ``J = 5`` (``generative.dood_config``) std 0.1 on the middle point, 0.003 on its two neighbours,
  none on the end points, in the official ``[0, 1]`` coordinates. Doubled for our ``[−1, 1]``
  units: ``middle_noise = 0.2``, ``neighbour_noise = 0.006`` (defaults). Difference: the official
  ``z_what`` are *glimpse-frame* points, transformed by the stroke's ``z_where`` (``"4_rotate"``)
  only after the noise is added, so there the image-frame std is these values times the
  glimpse's scale (official layout bounds ``[0.25, 1]``, :data:`generative.layout.OFFICIAL_LAYOUT`:
  0.05–0.2 on the middle point); :class:`~tasks.one_shot.type_token.CharacterTypes` carries
  absolute points only, so here the noise is added in the image frame, as if every glimpse had
  scale 1 (the upper end; for a model whose glimpses sit at scale ``s``, ``--motor-noise
  0.2s 0.006s`` is the official noise). For ``J ≠ 5`` the official indices are 2, 1, −2 whatever
  ``J``; here the middle ``J // 2`` and its neighbours.
* Affine: ``util.get_affines(torch.randn(ps, bs, 1, 7))`` (``add_affine_noise=True``), one per
  character, through ``util.constrain_parameter`` (``sigmoid · (max − min) + min``): shift
  ``±0.1``, scale ``[0.9, 1.1]`` ("good for qd"; ``[0.8, 1.2]`` commented "good for om"),
  rotation ``±0.1π``, shear ``±0.1π``, applied by ``util.transform_z_what(..., "7")`` to points
  first mapped to ``[−1, 1]`` (so the shift is in our units already, not doubled) with the
  ``util.get_affine_matrix_from_param`` ``"7"`` matrix (the one :func:`token_affine` builds). That
  matrix passes the rotation through ``torch.deg2rad``, so the official ±0.1π is ±0.31°; here it
  is in radians (±18°, as in type-token scoring), ``--rotation-in-degrees`` reproduces the
  official. Appendix B.3's uniform ranges (shift ±0.2, scale [0.8, 1.2], rotation and shear
  ±0.25π) are those of one-shot scoring, not of this figure.
* Render noise (``add_render_noise``) is on for QuickDraw only, not for Omniglot: not added.
* Types: the official code parses the target once *per exemplar*
  (``classify.parse(..., crit="likelihood", n_parse=recons_per_img)``: each parse the best of
  ``k_to_choose_from = 20`` guide samples by ``log p(x | ψ)``, ``util.get_top_latents_hiddens``)
  and adds noise to each; here one best type of 20 guide samples (``type_samples``) by the joint
  (``infer_types`` offers the joint or the importance weight, not the likelihood alone) and all
  ``M`` exemplars are tokens of it, the type-token reading of sec. 3.2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from torch import Tensor, nn

from tasks.data import DataError
from tasks.dood.data import load_dood_images
from tasks.families import load_trained
from tasks.figures import MIN_CELL_PX
from tasks.grid import GridLayout
from tasks.one_shot.runs import load_runs
from tasks.one_shot.tokens import (
    AFFINE_SIZE,
    TYPE_WEIGHTS,
    TokenTypes,
    TypeTokenSettings,
    apply_affine,
    render_tokens,
    token_affine,
)
from tasks.one_shot.type_token import check_type_token_model, infer_types
from tasks.options import DataOptions, non_negative, option, positive

__all__ = [
    "EXEMPLARS_DESCRIPTION",
    "EXEMPLARS_HELP",
    "OMNIGLOT_SOURCES",
    "ExemplarSettings",
    "ExemplarsOptions",
    "add_exemplars_arguments",
    "best_types",
    "exemplar_model",
    "motor_noise_std",
    "omniglot_characters",
    "read_character_images",
    "run_exemplars",
    "sample_exemplars",
    "write_exemplars_grid",
]

EXEMPLARS_HELP = "new exemplars of characters from a DooD checkpoint (DooD Fig. 7)"
EXEMPLARS_DESCRIPTION = (
    "Character-conditioned generation (DooD sec. 3.2, Fig. 7): parse each target image into its "
    "best stroke type (the highest-weight of --type-samples guide parses) and draw "
    "--num-exemplars new tokens of it: motor noise on the control points (std 0.2 on the middle "
    "point, 0.006 on its neighbours, [-1, 1] units: the official plot_multi_recon's 0.1 / 0.003 "
    "on [0, 1]) and a logit-normal affine (shift +-0.1, scale 0.9-1.1, rotation and shear "
    "+-0.1 pi). Targets are PNG files (--images; white-background images are inverted) or "
    "Omniglot evaluation characters (--omniglot-characters). Writes <out>/exemplars.png: the "
    "target in the first column, its exemplars after it."
)
OMNIGLOT_SOURCES = ("runs", "evaluation")
TOKEN_CHUNK = 1024  # tokens rendered at once (memory bound)


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ExemplarSettings:
    """The type inference and the token noise of Fig. 7 (module docstring: the official values
    and where these differ)."""

    type_samples: int = 20  # guide parses per target; the best is the type (official 20)
    type_weights: str = "joint"  # which weight picks the best parse (official: likelihood)
    type_rows: int = 1024  # guide rows per pass of type inference (memory bound)
    middle_noise: float = 0.2  # motor-noise std of the middle control point, [−1, 1] units
    neighbour_noise: float = 0.006  # … of its two neighbours
    affine: bool = True  # official add_affine_noise
    affine_shift: float = 0.1
    affine_scale: tuple[float, float] = (0.9, 1.1)
    affine_rotation: float = 0.1 * math.pi
    affine_shear: float = 0.1 * math.pi
    rotation_in_degrees: bool = False  # True: the official deg2rad of a radian range

    def __post_init__(self) -> None:
        for name in ("type_samples", "type_rows"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"exemplars: {name} must be >= 1, found {getattr(self, name)}")
        for name in ("middle_noise", "neighbour_noise"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"exemplars: {name} must be >= 0, found {value}")
        if self.type_weights not in TYPE_WEIGHTS:
            raise ValueError(
                f"exemplars: type_weights must be one of {', '.join(TYPE_WEIGHTS)}, "
                f"found {self.type_weights!r}"
            )
        object.__setattr__(self, "affine_scale", tuple(float(v) for v in self.affine_scale))
        self.type_token_settings()  # checks the affine ranges

    def type_token_settings(self) -> TypeTokenSettings:
        """The :class:`TypeTokenSettings` of the type inference and the affine map."""
        return TypeTokenSettings(
            type_samples=self.type_samples,
            type_selection="sample",
            type_weights=self.type_weights,
            type_rows=self.type_rows,
            affine_shift=self.affine_shift,
            affine_scale=self.affine_scale,
            affine_rotation=self.affine_rotation,
            affine_shear=self.affine_shear,
            rotation_in_degrees=self.rotation_in_degrees,
        )


def motor_noise_std(num_points: int, settings: ExemplarSettings) -> Tensor:
    """``(J,)`` motor-noise std of each control point: ``middle_noise`` at ``J // 2``,
    ``neighbour_noise`` at ``J // 2 ± 1``, 0 elsewhere."""
    std = torch.zeros(num_points)
    middle = num_points // 2
    for j in (middle - 1, middle + 1):
        if 0 <= j < num_points:
            std[j] = settings.neighbour_noise
    std[middle] = settings.middle_noise
    return std


# ----------------------------------------------------------------------------- the model
def exemplar_model(
    types: TokenTypes, settings: ExemplarSettings, size: tuple[int, int], num_points: int
) -> Tensor:
    """The Fig. 7 token model of a batch of ``B`` types as a Pyro program; returns the tokens'
    canvases ``(B, 1, H, W)``.

    Sites (inside ``pyro.plate("exemplars", B)``): ``"motor_noise"`` ``(B, T, J, 2)`` standard
    normal (masked to the present strokes; point ``j`` moves by ``std_j`` times it,
    :func:`motor_noise_std`), ``"affine"`` ``(B, 7)`` ``N(0, I)`` unconstrained
    (:func:`token_affine`; absent with ``settings.affine=False``) and deterministic
    ``"token_points"`` ``(B, T, J, 2)``."""
    batch, _, j, _ = types.points.shape
    std = motor_noise_std(j, settings).to(types.points)[:, None]  # (J, 1)
    with pyro.plate("exemplars", batch):
        standard = dist.Normal(torch.zeros_like(types.points), 1.0)
        standard = standard.mask(types.present[..., None, None]).to_event(3)
        noise = pyro.sample("motor_noise", standard)
        points = types.points + std * noise
        if settings.affine:
            prior = dist.Normal(types.points.new_zeros(batch, AFFINE_SIZE), 1.0).to_event(1)
            raw = pyro.sample("affine", prior)
            points = apply_affine(token_affine(raw, settings.type_token_settings()), points)
        pyro.deterministic("token_points", points, event_dim=3)
    return render_tokens(points, types, size, num_points)


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's generators seeded with ``seed`` inside, restored afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def best_types(
    model: nn.Module, guide: nn.Module, images: Tensor, settings: ExemplarSettings
) -> TokenTypes:
    """The best type of each of ``images`` ``(N, 1, H, W)``: the highest-weight of
    ``settings.type_samples`` guide parses (:func:`infer_types`)."""
    model = check_type_token_model(model)
    with pyro.validation_enabled(False):
        types = infer_types(model, guide, images, settings.type_token_settings())
    best = types.log_weights.argmax(1)
    return types.elements(
        torch.arange(types.num_images, device=best.device) * types.num_types + best
    )


def _take(types: TokenTypes, index: Tensor) -> TokenTypes:
    """The elements ``index`` of ``types``."""
    return TokenTypes(
        types.points[index],
        types.present[index],
        types.sigma[index],
        types.omega0[index],
        types.omega1[index],
    )


@torch.no_grad()
def sample_exemplars(
    model: nn.Module,
    guide: nn.Module,
    images: Tensor,
    num_exemplars: int,
    *,
    seed: int,
    settings: ExemplarSettings | None = None,
) -> Tensor:
    """``(N, M, 1, H, W)``: ``num_exemplars`` new exemplars of each of ``images``
    ``(N, 1, H, W)``: tokens of its best type (:func:`best_types`) drawn from
    :func:`exemplar_model`. The same ``seed`` gives the same exemplars (torch's global generator
    is left as it was)."""
    settings = settings or ExemplarSettings()
    if num_exemplars < 1:
        raise ValueError(f"exemplars: num_exemplars must be >= 1, found {num_exemplars}")
    model = check_type_token_model(model)
    n, m = images.shape[0], num_exemplars
    size = (model.config.height, model.config.width)
    if tuple(images.shape[1:]) != (1, *size):
        raise ValueError(
            f"exemplars: images must be (N, 1, {size[0]}, {size[1]}) for this model, found "
            f"{tuple(images.shape)}"
        )
    with _seeded(seed, images.device), pyro.validation_enabled(False):
        types = best_types(model, guide, images, settings)
        index = torch.arange(n, device=images.device).repeat_interleave(m)  # target-major
        canvas = torch.cat(
            [
                exemplar_model(_take(types, chunk), settings, size, model.num_render_points)
                for chunk in index.split(TOKEN_CHUNK)
            ]
        )
    return canvas.reshape(n, m, 1, *size)


# ----------------------------------------------------------------------------- the figure
_GAP_GREY, _TEXT_PX, _FONT_PX = 0.35, 16, 11


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: float) -> str:
    """``text`` shortened with "…" to at most ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def write_exemplars_grid(
    targets: Tensor,
    exemplars: Tensor,
    path: str | Path,
    *,
    names: Sequence[str] | None = None,
) -> Path:
    """Fig. 7 as a PNG: per row a target ``(N, 1, H, W)`` in the first column and its exemplars
    ``(N, M, 1, H, W)`` in the following ones, white ink on black as DooD's other pictures
    (:mod:`tasks.dood.mosaic`), grey gaps, the column labels above and ``names`` (one per row)
    above the rows. Cells are upscaled by an integer factor to at least
    :data:`tasks.figures.MIN_CELL_PX` pixels."""
    tgt = targets.detach().cpu().double().numpy()
    ex = exemplars.detach().cpu().double().numpy()
    if tgt.ndim != 4 or tgt.shape[1] != 1:
        raise ValueError(f"targets: expected (N, 1, H, W), found {tgt.shape}")
    n, _, h, w = tgt.shape
    if ex.ndim != 5 or ex.shape[0] != n or ex.shape[2:] != (1, h, w):
        raise ValueError(f"exemplars: expected ({n}, M, 1, {h}, {w}), found {ex.shape}")
    if names is not None and len(names) != n:
        raise ValueError(f"names: expected {n} (one per target), found {len(names)}")
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValueError(f"write_exemplars_grid writes a .png, found {out.name!r}")
    m = ex.shape[1]
    scale = max(1, math.ceil(MIN_CELL_PX / max(h, w)))
    layout = GridLayout(
        n,
        m + 1,
        w * scale,
        h * scale,
        scale,
        header=_TEXT_PX,
        row_title=_TEXT_PX if names is not None else 0,
        col_extra_gap={1: 2 * scale},
    )
    pixels = np.full((int(layout.height), int(layout.width)), _GAP_GREY)
    pixels[: int(layout.gap + layout.header)] = 0.0
    for r in range(n):
        y = int(layout.row_y[r])
        pixels[y - int(layout.row_title) : y] = 0.0
        for c, image in enumerate([tgt[r, 0], *ex[r, :, 0]]):
            x = int(layout.col_x[c])
            block = np.kron(np.clip(np.nan_to_num(image), 0.0, 1.0), np.ones((scale, scale)))
            pixels[y : y + h * scale, x : x + w * scale] = block
    picture = Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=_FONT_PX)
    label_y = layout.header_line_y(0, layout.header)
    draw.text((layout.centre_x(0), label_y), "target", fill=255, font=font, anchor="mm")
    middle = 0.5 * (layout.col_x[1] + layout.col_x[m] + layout.cell_w)
    label = f"{m} new exemplar{'s' if m > 1 else ''}"
    draw.text((middle, label_y), label, fill=255, font=font, anchor="mm")
    if names is not None:
        for r, name in enumerate(names):
            text = _fit(draw, str(name), font, layout.width - 2 * layout.gap)
            draw.text(
                (layout.col_x[0], layout.row_title_y(r)), text, fill=255, font=font, anchor="lm"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)
    return out


# ----------------------------------------------------------------------------- targets
def _read_png(path: Path) -> np.ndarray:
    """``(h, w)`` grey values in ``[0, 1]`` (transparency composited over white)."""
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                grey = Image.alpha_composite(white, rgba).convert("L")
            else:
                grey = image.convert("L")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    return np.asarray(grey, dtype=np.float32) / 255.0


def _ink_up(grey: np.ndarray) -> np.ndarray:
    """Ink = 1: inverted when the border (the background) is light."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 1.0 - grey if np.median(border) > 0.5 else grey


def _pad_to_aspect(image: Tensor, height: int, width: int) -> Tensor:
    """``(1, h, w)`` padded symmetrically with its border's median to the aspect ``height:width``
    (no stretching)."""
    _, h, w = image.shape
    target_w = max(w, math.ceil(h * width / height))
    target_h = max(h, math.ceil(w * height / width))
    if (target_h, target_w) == (h, w):
        return image
    border = torch.cat([image[0, 0], image[0, -1], image[0, :, 0], image[0, :, -1]])
    left, top = (target_w - w) // 2, (target_h - h) // 2
    padded = image.new_full((1, target_h, target_w), float(border.median()))
    padded[:, top : top + h, left : left + w] = image
    return padded


def read_character_images(paths: Sequence[str | Path], size: tuple[int, int]) -> Tensor:
    """``(N, 1, H, W)`` DooD inputs from image files of any size: grey, ink = 1 (a light
    background is inverted), padded to the model's aspect ratio and resized by antialiased
    bilinear interpolation (DooD's preprocessing, :mod:`tasks.one_shot.runs`). An unreadable
    file raises :class:`~tasks.data.DataError` naming it."""
    height, width = size
    images = []
    for path in paths:
        grey = torch.from_numpy(_ink_up(_read_png(Path(path))).copy())[None]
        padded = _pad_to_aspect(grey, height, width)[None]
        shrink = padded.shape[-2] > height or padded.shape[-1] > width
        resized = F.interpolate(
            padded, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink
        )
        images.append(resized[0].clamp(0.0, 1.0))
    return torch.stack(images)


def omniglot_characters(
    num: int,
    size: int,
    *,
    source: str = "runs",
    runs: str | Path | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
) -> tuple[Tensor, list[str]]:
    """``num`` Omniglot evaluation-set characters at ``size`` (DooD's preprocessing) and their
    names. ``source="runs"``: supports of the one-shot runs (:func:`load_runs`) taken
    round-robin over the runs (class01 of every run, then class02, …: different alphabets
    first); ``"evaluation"``: drawer 1 of ``num`` characters evenly spread over
    ``images_evaluation.npz`` (:func:`load_dood_images` ``("omniglot", "test")``)."""
    if source == "runs":
        found = load_runs(runs, data_dir=data_dir, download=download, size=size, metadata=False)
        order = [
            (run, s)
            for s in range(max(len(r.support_names) for r in found.runs))
            for run in found.runs
            if s < len(run.support_names)
        ]
        if num > len(order):
            raise ValueError(f"--omniglot-characters {num}: the runs have {len(order)} supports")
        chosen = order[:num]
        images = torch.stack([run.supports[s] for run, s in chosen])
        names = [f"{run.name} {Path(run.support_names[s]).stem}" for run, s in chosen]
        return images, names
    if source == "evaluation":
        data = load_dood_images("omniglot", "test", size=size, data_dir=data_dir, download=download)
        first = (data.extras["drawer"] == 0).nonzero().squeeze(1)  # one image per character
        if num > len(first):
            raise ValueError(f"--omniglot-characters {num}: the set has {len(first)} characters")
        picks = first[np.linspace(0, len(first) - 1, num).round().astype(np.int64)]
        names = [f"character {int(data.labels[i]) + 1}" for i in picks]
        return data.images[picks], names
    raise ValueError(
        f"omniglot source must be one of {', '.join(OMNIGLOT_SOURCES)}, found {source}"
    )


# ----------------------------------------------------------------------------- the command
@dataclass
class ExemplarsOptions(DataOptions):
    """Options of ``pyro-draw exemplars CHECKPOINT``: the targets (``images`` or
    ``omniglot_characters``, exactly one) and the :class:`ExemplarSettings`."""

    checkpoint: str | None = option(None, "a DooD checkpoint", cli=False)
    images: list[str] | None = option(
        None, "target images (PNG, any size; white backgrounds are inverted)", metavar="PNG"
    )
    omniglot_characters: int | None = option(
        None, "targets: N Omniglot evaluation characters", check=positive, metavar="N"
    )
    omniglot_source: str = option(
        "runs",
        "where --omniglot-characters come from: the one-shot runs' supports (round-robin over "
        "runs) or evaluation (images_evaluation.npz, evenly spread characters)",
        choices=OMNIGLOT_SOURCES,
    )
    runs: str | None = option(
        None,
        "the one-shot runs for --omniglot-source runs",
        metavar="PATH",
        default_text="<data dir>/omniglot/all_runs.zip",
    )
    num_exemplars: int = option(9, "new exemplars per target", check=positive, metavar="M")
    out: str | None = option(None, "output folder", default_text="the checkpoint's folder")
    type_samples: int = option(
        20, "guide parses per target; the best is the type (official 20)", check=positive
    )
    type_weights: str = option(
        "joint",
        "the best parse by joint log p(x, type) or importance log p(x, type) - log q(type | x)",
        choices=TYPE_WEIGHTS,
    )
    motor_noise: list[float] = option(
        [0.2, 0.006],
        "motor-noise std of the middle control point and of its neighbours, [-1, 1] units "
        "(official 0.1 0.003 on [0, 1])",
        check=non_negative,
        nargs=2,
        metavar=("MIDDLE", "NEIGHBOURS"),
    )
    affine: bool = option(True, "no affine noise")
    affine_shift: float = option(0.1, "affine shift range +-", check=non_negative)
    affine_scale: list[float] = option(
        [0.9, 1.1], "affine scale range", check=positive, nargs=2, metavar=("LOW", "HIGH")
    )
    affine_rotation: float = option(
        0.1 * math.pi,
        "affine rotation range +-, radians",
        check=non_negative,
        default_text="0.1 pi",
    )
    affine_shear: float = option(
        0.1 * math.pi,
        "affine shear range +-, raw coefficients",
        check=non_negative,
        default_text="0.1 pi",
    )
    rotation_in_degrees: bool = option(
        False, "read the rotation range in degrees (the official code's deg2rad)"
    )
    type_rows: int = option(1024, "guide rows per batch of type inference (memory)", check=positive)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.checkpoint is None:
            raise ValueError("give a DooD CHECKPOINT")
        if (self.images is None) == (self.omniglot_characters is None):
            raise ValueError(
                "give the targets as either --images PNG [PNG ...] or --omniglot-characters N"
                + (", not both" if self.images is not None else "")
            )
        self.settings()  # checks the combination (e.g. the scale range)

    def settings(self) -> ExemplarSettings:
        """The :class:`ExemplarSettings` of these options."""
        middle, neighbours = self.motor_noise
        return ExemplarSettings(
            type_samples=self.type_samples,
            type_weights=self.type_weights,
            type_rows=self.type_rows,
            middle_noise=middle,
            neighbour_noise=neighbours,
            affine=self.affine,
            affine_shift=self.affine_shift,
            affine_scale=tuple(self.affine_scale),
            affine_rotation=self.affine_rotation,
            affine_shear=self.affine_shear,
            rotation_in_degrees=self.rotation_in_degrees,
        )


def add_exemplars_arguments(parser: argparse.ArgumentParser) -> None:
    """The positional ``CHECKPOINT`` of ``pyro-draw exemplars``."""
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a DooD checkpoint.pt (spline renderer)"
    )


def run_exemplars(options: ExemplarsOptions) -> Path:
    """``pyro-draw exemplars``: read the targets (every image file first), parse and sample
    them with the checkpoint's model and guide, write ``<out>/exemplars.png`` and print it."""
    assert options.checkpoint is not None
    for image in options.images or ():  # a wrong path is reported before the model is read
        if not Path(image).is_file():
            raise DataError(f"{image}: no such image file")
    model, guide, checkpoint = load_trained(options.checkpoint, device=options.device)
    try:
        model = check_type_token_model(model)
    except ValueError as exc:
        raise ValueError(f"{checkpoint.path}: new exemplars: {exc}") from None
    size = (model.config.height, model.config.width)
    if options.images is not None:
        targets = read_character_images(options.images, size)
        names = [Path(p).stem for p in options.images]
    else:
        if size[0] != size[1]:
            raise ValueError(
                f"{checkpoint.path}: Omniglot targets need a square model, found "
                f"{size[0]}x{size[1]}"
            )
        assert options.omniglot_characters is not None
        targets, names = omniglot_characters(
            options.omniglot_characters,
            size[0],
            source=options.omniglot_source,
            runs=options.runs,
            data_dir=options.data_dir,
            download=options.download,
        )
    device = torch.device(options.device)
    exemplars = sample_exemplars(
        model,
        guide,
        targets.to(device),
        options.num_exemplars,
        seed=options.seed,
        settings=options.settings(),
    )
    out = Path(options.out) if options.out is not None else Path(checkpoint.path).parent
    path = write_exemplars_grid(targets, exemplars, out / "exemplars.png", names=names)
    print(
        f"exemplars: {len(targets)} target{'s' if len(targets) > 1 else ''} x "
        f"{options.num_exemplars} new exemplars -> {path}"
    )
    return path
