"""DooD's data: the paper's datasets at the model's image size, grey, and partial drawings.

``mnist``, ``omniglot`` and ``quickdraw`` are scaled to the model's image size (50×50 in the
paper, appendix A; :mod:`tasks.data.images50`), and the embedded ``glyphs``
(:mod:`tasks.data.glyphs`) are rendered directly at that size. Images are grey values in
``[0, 1]`` with ink = 1 for every split, because Eq. 5's Laplace likelihood models grey values:
``load_images("glyphs")`` binarises its valid/test splits once with a fixed seed, so here those
splits are re-rendered (grey) from their ground truth, which also gives the true number of
strokes of every glyph (``extras["num_strokes"]``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from inference.checkpoint import Checkpoint
from tasks.data.core import DataError, ImageData, check_split
from tasks.data.glyphs import load_glyphs, render_glyphs
from tasks.data.images50 import load_images50
from tasks.options import DataOptions

__all__ = [
    "DATASETS",
    "PARTIAL_REGIONS",
    "canonical_dataset",
    "checkpoint_images",
    "load_dood_images",
    "partial_images",
]

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
PARTIAL_REGIONS: tuple[str, ...] = ("top", "left", "strokes")


def canonical_dataset(name: str) -> str:
    """``mnist`` etc.; the ``*50`` names of :mod:`tasks.data.images50` are accepted too."""
    key = name[:-2] if name.endswith("50") and name[:-2] in _IMAGES50 else name
    if key not in DATASETS:
        raise DataError(f"unknown DooD dataset {name!r}; expected one of {DATASETS}")
    return key


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


def checkpoint_images(
    checkpoint: Checkpoint,
    options: DataOptions,
    *,
    dataset: str | None,
    split: str,
    num_examples: int | None,
) -> ImageData:
    """The images a checkpoint's command reads, at the model's image size: ``dataset`` or the
    dataset the checkpoint was trained on, ``num_examples`` of it (seeded by ``options.seed``),
    files found through ``options``."""
    return load_dood_images(
        dataset or checkpoint.record.dataset,
        split,
        size=int(checkpoint.model_config["height"]),
        num_examples=num_examples,
        seed=options.seed,
        data_dir=options.data_dir,
        download=options.download,
    )


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
