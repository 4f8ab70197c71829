"""Classification with attention (RAM, Mnih et al. 2014; DRAM, DRAW sec. 4.1) and its baselines.

Models (``MODELS``, registry names): ``ram`` (:class:`generative.ram.RAM` with the location
policy as guide), ``dram`` (:class:`generative.ram.DRAM`), ``fc`` and ``convnet``
(:mod:`generative.classifiers`); the last three have no latents and an empty guide.

Datasets (``CLASSIFICATION_DATASETS``): ``mnist`` (28×28 grey digits), ``mnist_translated_60``,
``mnist_cluttered_60`` and ``mnist_cluttered_100`` (:mod:`tasks.data.cluttered`). Training images
are generated on the fly (:class:`tasks.data.cluttered.ClutteredBatches`, a deterministic function
of the step; plain ``mnist`` is the degenerate 28×28 canvas without clutter, i.e. shuffled digits),
validation and test images are fixed sets. MNIST pixels are grey values in ``[0, 1]`` for every
split (no binarisation: these are classification tasks).

Objectives: ``ram`` trains with :class:`inference.reinforce.RAMObjective` (``hybrid``: RAM's
cross-entropy + REINFORCE loss, or ``tracegraph``: the variational reading with
``TraceGraph_ELBO``); the others minimise ``−log p(y | x)`` with the trainer's default ELBO.

Test error: :func:`evaluate_classifier`. For RAM it is reported three ways: with one sampled
glimpse path per image (the headline ``error``: the agent as it acts, first glimpse random — the
reading of the paper's "1 Random Glimpse" row), along the policy mean (``error_mean_path``,
first glimpse at the centre) and with the class probabilities averaged over ``mc_samples``
sampled paths (``error_mc``, an ensemble over paths).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from generative.classifiers import (
    CLASSIFIER_CONFIGS,
    ConvClassifier,
    ConvConfig,
    FCClassifier,
    FCConfig,
)
from generative.glimpse import clip_locations, glimpse_centres
from generative.ram import (
    DRAM,
    DRAM_CONFIGS,
    RAM,
    RAM_CONFIGS,
    DRAMConfig,
    RAMConfig,
    RAMGuide,
)
from guides.empty import EmptyGuide
from inference.checkpoint import load_checkpoint
from inference.reinforce import OBJECTIVE_MODES, RAMObjective
from inference.trainer import SVITrainer, TrainConfig
from tasks.cli_common import add_common_train_arguments, train_config_from_args
from tasks.data import DataError, ImageData, check_split
from tasks.data.cluttered import CLUTTERED_NAMES, CLUTTERED_SPECS, ClutteredBatches, load_cluttered
from tasks.data.mnist import mnist_split_arrays, subset_indices
from tasks.evaluate import write_json
from tasks.figures import save_generation_sequences
from tasks.models import ModelEntry

__all__ = [
    "CHECKPOINT_COMMANDS",
    "CLASSIFICATION_DATASETS",
    "ClassifierJob",
    "EXTRA_ARGUMENTS",
    "MODELS",
    "classification_batches",
    "classification_errors",
    "classifier_config",
    "default_config_name",
    "evaluate_classifier",
    "load_classification_split",
    "load_classifier",
    "register_train",
    "retina_composite",
    "run_classification",
    "save_glimpse_paths",
    "write_attention_figure",
]

CLASSIFICATION_DATASETS: tuple[str, ...] = ("mnist", *CLUTTERED_NAMES)


# ----------------------------------------------------------------------------- registry
def _build_ram(config: dict) -> tuple[nn.Module, nn.Module]:
    ram = RAM(RAMConfig.from_dict(config))
    return ram, RAMGuide(ram)


def _build_dram(config: dict) -> tuple[nn.Module, nn.Module]:
    return DRAM(DRAMConfig.from_dict(config)), EmptyGuide()


def _build_fc(config: dict) -> tuple[nn.Module, nn.Module]:
    return FCClassifier(FCConfig.from_dict(config)), EmptyGuide()


def _build_convnet(config: dict) -> tuple[nn.Module, nn.Module]:
    return ConvClassifier(ConvConfig.from_dict(config)), EmptyGuide()


_NAMED_CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "ram": RAM_CONFIGS,
    "dram": DRAM_CONFIGS,
    "fc": CLASSIFIER_CONFIGS["fc"],
    "convnet": CLASSIFIER_CONFIGS["convnet"],
}
_CONFIG_CLASSES: dict[str, type] = {
    "ram": RAMConfig,
    "dram": DRAMConfig,
    "fc": FCConfig,
    "convnet": ConvConfig,
}

MODELS: dict[str, ModelEntry] = {
    "ram": ModelEntry(_build_ram, sorted(RAM_CONFIGS)),
    "dram": ModelEntry(_build_dram, sorted(DRAM_CONFIGS)),
    "fc": ModelEntry(_build_fc, sorted(CLASSIFIER_CONFIGS["fc"])),
    "convnet": ModelEntry(_build_convnet, sorted(CLASSIFIER_CONFIGS["convnet"])),
}


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown classifier {model!r}; expected one of {sorted(MODELS)}")


def default_config_name(model: str, dataset: str) -> str:
    """The paper's configuration of ``model`` for ``dataset`` (RAM Tables 1–2, DRAW Table 1)."""
    _check_model(model)
    _check_dataset(dataset)
    if model == "ram":
        return {
            "mnist": "mnist_28",
            "mnist_translated_60": "translated_60",
            "mnist_cluttered_60": "cluttered_60",
            "mnist_cluttered_100": "cluttered_100",
        }[dataset]
    if model == "dram":
        return "cluttered_100"
    if model == "fc":
        return "fc_256"
    return "conv_86" if dataset == "mnist_cluttered_100" else "conv_256"


def classifier_config(
    model: str, config_name: str, image_shape: tuple[int, int, int], **overrides: Any
) -> dict[str, Any]:
    """The named configuration of ``model`` fitted to images ``(C, H, W)``, with ``overrides``
    (e.g. ``location_std``), as a plain dict."""
    _check_model(model)
    named = _NAMED_CONFIGS[model]
    if config_name not in named:
        raise ValueError(f"unknown {model} config {config_name!r}; expected one of {sorted(named)}")
    channels, height, width = image_shape
    values = {**named[config_name], "channels": channels, "height": height, "width": width}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _CONFIG_CLASSES[model](**values).to_dict()


def load_classifier(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """Rebuild a classifier (model, guide) from a checkpoint of this family, in eval mode."""
    data = load_checkpoint(path, map_location=device)
    name = data["model"]
    if name not in MODELS:
        raise ValueError(f"{path}: checkpoint of model {name!r}, expected one of {sorted(MODELS)}")
    model, guide = MODELS[name].build(data["model_config"])
    model.load_state_dict(data["model_state"])
    guide.load_state_dict(data["guide_state"])
    model.to(device).eval()
    guide.to(device).eval()
    return model, guide, data


# ----------------------------------------------------------------------------- data
def _check_dataset(dataset: str) -> None:
    if dataset not in CLASSIFICATION_DATASETS:
        raise DataError(
            f"unknown classification dataset {dataset!r}; expected one of {CLASSIFICATION_DATASETS}"
        )


def _canvas(dataset: str) -> tuple[int, int, int]:
    """``(canvas side, clutter pieces, clutter side)``; plain MNIST is a bare 28×28 canvas."""
    if dataset == "mnist":
        return 28, 0, 8
    spec = CLUTTERED_SPECS[dataset]
    return spec.canvas, spec.num_clutter, spec.clutter_size


def classification_batches(
    dataset: str,
    batch_size: int,
    *,
    seed: int = 0,
    num_train: int | None = None,
    data_dir: str | None = None,
    download: bool = False,
) -> ClutteredBatches:
    """On-the-fly ``(images (B, 1, S, S), labels (B,))`` training batches of ``dataset`` from the
    MNIST train split (``num_train``: a seeded subset of its digits)."""
    _check_dataset(dataset)
    digits, labels, _ = mnist_split_arrays("train", data_dir, download)
    index = subset_indices(digits.shape[0], num_train, seed, f"{dataset}/train")
    if index is not None:
        digits, labels = digits[index.numpy()], labels[index.numpy()]
    canvas, clutter, clutter_size = _canvas(dataset)
    return ClutteredBatches(
        digits,
        labels,
        batch_size,
        canvas=canvas,
        num_clutter=clutter,
        clutter_size=clutter_size,
        seed=seed,
    )


def load_classification_split(
    dataset: str,
    split: str,
    *,
    num_examples: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    download: bool = False,
) -> ImageData:
    """A fixed labelled split (``num_examples``: a seeded sorted subset; default all of it for
    ``mnist``, ``tasks.data.cluttered.DEFAULT_NUM_EXAMPLES`` for the generated sets)."""
    _check_dataset(dataset)
    check_split(dataset, split)
    if dataset != "mnist":
        return load_cluttered(
            dataset,
            split,
            data_dir=data_dir,
            download=download,
            num_examples=num_examples,
            seed=seed,
        )
    digits, labels, files = mnist_split_arrays(split, data_dir, download)
    total = digits.shape[0]
    index = subset_indices(total, num_examples, seed, f"mnist/{split}")
    rows = slice(None) if index is None else index.numpy()
    images = torch.from_numpy(np.array(digits[rows])).float().div_(255.0).unsqueeze(1)
    info = {
        "dataset": "mnist",
        "split": split,
        "files": files,
        "total_in_split": total,
        "num_examples": images.shape[0],
        "subset": "all" if index is None else f"seeded random subset (seed={seed}), sorted",
        "seed": seed,
        "size": 28,
        "binarization_note": "grey values in [0, 1], used directly",
    }
    extras = {"index": torch.arange(total) if index is None else index}
    label_t = torch.from_numpy(labels[rows].astype(np.int64))
    return ImageData("mnist", split, images, label_t, "none", info, extras)


# ----------------------------------------------------------------------------- evaluation
def _is_stochastic(model: nn.Module) -> bool:
    return isinstance(model, RAM)


def evaluate_classifier(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    mc_samples: int = 1,
    deterministic: bool = False,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Test error of ``model`` (any of ``MODELS``) on ``images``/``labels``.

    RAM's prediction is the argmax of the class probabilities averaged over ``mc_samples``
    sampled glimpse paths (``deterministic=True``: one path along the policy mean); the other
    models are deterministic and ignore both options. Returns ``error`` (fraction),
    ``error_stderr`` (binomial), ``errors``, ``num_examples`` and the options used.
    """
    if mc_samples < 1:
        raise ValueError(f"mc_samples: expected >= 1, found {mc_samples}")
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"labels: expected shape ({images.shape[0]},), found {tuple(labels.shape)}"
        )
    stochastic = _is_stochastic(model) and not deterministic
    samples = mc_samples if stochastic else 1
    was_training = model.training
    model.eval()
    wrong = 0
    try:
        with torch.no_grad():
            for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True):
                x = x.to(device)
                probs = sum(
                    torch.softmax(model.logits(x, deterministic=not stochastic), -1)
                    for _ in range(samples)
                )
                wrong += int((probs.argmax(-1).cpu() != y).sum())
    finally:
        model.train(was_training)
    n = int(labels.shape[0])
    error = wrong / n if n else math.nan
    return {
        "error": error,
        "error_stderr": math.sqrt(error * (1 - error) / n) if n else math.nan,
        "errors": wrong,
        "num_examples": n,
        "mc_samples": samples,
        "deterministic": not stochastic,
    }


def classification_errors(
    model: nn.Module,
    data: ImageData,
    *,
    mc_samples: int = 10,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """``error`` (headline; for RAM one sampled glimpse path) with its binomial stderr and, for
    RAM, ``error_mean_path`` (policy mean) and ``error_mc`` (``mc_samples`` paths averaged)."""
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    common = dict(batch_size=batch_size, device=device)
    head = evaluate_classifier(model, data.images, data.labels, **common)
    out = {
        "error": head["error"],
        "error_stderr": head["error_stderr"],
        "num_examples": head["num_examples"],
    }
    if _is_stochastic(model):
        out["error_policy"] = "one sampled glimpse path per image (first location random)"
        mean = evaluate_classifier(model, data.images, data.labels, deterministic=True, **common)
        mc = evaluate_classifier(model, data.images, data.labels, mc_samples=mc_samples, **common)
        out.update(
            error_mean_path=mean["error"],
            error_mean_path_stderr=mean["error_stderr"],
            error_mc=mc["error"],
            error_mc_stderr=mc["error_stderr"],
            mc_samples=mc_samples,
        )
    return out


# ----------------------------------------------------------------------------- figures
def retina_composite(glimpses: Tensor) -> Tensor:
    """RAM Fig. 3's view of one glimpse: ``(scales, C, s, s)`` → ``(C, s·2^(k−1), s·2^(k−1))``.

    Each scale ``k`` is upsampled by ``2^k`` (nearest) back to its size in image pixels and pasted
    centred, coarsest first, so the centre shows the full-resolution patch and the surround the
    low-resolution ones.
    """
    if glimpses.dim() != 4 or glimpses.shape[-1] != glimpses.shape[-2]:
        raise ValueError(
            f"glimpses: expected (scales, C, size, size), found {tuple(glimpses.shape)}"
        )
    scales, channels, size, _ = glimpses.shape
    side = size * 2 ** (scales - 1)
    out = glimpses.new_zeros(channels, side, side)
    for k in reversed(range(scales)):
        width = size * 2**k
        start = (side - width) // 2
        up = glimpses[k].repeat_interleave(2**k, -1).repeat_interleave(2**k, -2)
        out[:, start : start + width, start : start + width] = up
    return out


def _imshow(ax: Any, image: np.ndarray) -> None:
    image = np.clip(image, 0.0, 1.0)
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
    ax.set_axis_off()


def save_glimpse_paths(
    images: Tensor,
    locations: Tensor,
    glimpses: Tensor,
    path: str | Path,
    *,
    titles: list[str] | None = None,
    dpi: int = 100,
) -> Path:
    """RAM Fig. 3: per row, the input with the glimpse path in green (first location a filled
    circle, last an empty one, straight lines between) and then the glimpse of every step
    (:func:`retina_composite`).

    ``images`` ``(S, C, H, W)``, ``locations`` ``(S, T, 2)`` (as sensed, in ``[−1, 1]²``),
    ``glimpses`` ``(S, T, scales, C, size, size)``; writes ``path`` (PNG unless another suffix).
    """
    if images.dim() != 4:
        raise ValueError(f"images: expected (S, C, H, W), found {tuple(images.shape)}")
    s, _, height, width = images.shape
    if locations.dim() != 3 or locations.shape[0] != s or locations.shape[2] != 2:
        raise ValueError(f"locations: expected ({s}, T, 2), found {tuple(locations.shape)}")
    t = locations.shape[1]
    if glimpses.dim() != 6 or glimpses.shape[:2] != (s, t):
        raise ValueError(
            f"glimpses: expected ({s}, {t}, scales, C, size, size), found {tuple(glimpses.shape)}"
        )
    if titles is not None and len(titles) != s:
        raise ValueError(f"titles: expected {s} titles (one per row), found {len(titles)}")
    out = Path(path)
    if not out.suffix:
        out = out.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    cell = 1.2
    fig = Figure(figsize=(cell * (t + 1), cell * s * 1.15), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    axes = fig.subplots(s, t + 1, squeeze=False)
    for i in range(s):
        ax = axes[i, 0]
        _imshow(ax, images[i].detach().cpu().numpy())
        centres = glimpse_centres(locations[i].detach().cpu(), height, width).numpy()
        ax.plot(centres[:, 0], centres[:, 1], "-", color="lime", linewidth=1.0)
        ax.plot(*centres[0], "o", color="lime", markersize=4)
        ax.plot(*centres[-1], "o", markerfacecolor="none", markeredgecolor="lime", markersize=6)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        if titles is not None:
            ax.set_title(titles[i], color="white", fontsize=7)
        for j in range(t):
            composite = retina_composite(glimpses[i, j].detach().cpu())
            _imshow(axes[i, j + 1], composite.numpy())
            if i == 0:
                axes[i, j + 1].set_title(f"t={j + 1}", color="white", fontsize=7)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.3)
    fig.savefig(out, dpi=dpi, facecolor="black")
    return out


def write_attention_figure(
    model: nn.Module, images: Tensor, labels: Tensor, path: str | Path, *, seed: int = 0
) -> Path:
    """The glimpse-path figure of a RAM (Fig. 3; mean policy) or the attention windows of a DRAM
    (DRAW Fig. 5: the read window of every step in green, line width ∝ filter σ)."""
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(model, RAM):
                out = model.model(images, deterministic=True, record=True)
                preds = out.logits.argmax(-1)
                titles = [
                    f"label {int(y)}, predicted {int(p)}"
                    for y, p in zip(labels, preds, strict=True)
                ]
                return save_glimpse_paths(
                    images, clip_locations(out.locations), out.glimpses, path, titles=titles
                )
            if isinstance(model, DRAM):
                out = model.run(images, record=True)
                n = model.config.read_size
                boxes = torch.stack([w.box(n) for w in out.windows], 1)
                sigmas = torch.stack([w.sigma2.sqrt() for w in out.windows], 1)
                steps = boxes.shape[1]
                canvases = images.unsqueeze(1).expand(-1, steps, -1, -1, -1)
                return save_generation_sequences(
                    canvases,
                    path,
                    boxes=boxes,
                    box_widths=sigmas,
                    box_color="lime",
                    label_steps=True,
                )
    finally:
        model.train(was_training)
    raise ValueError(f"no attention figure for {type(model).__name__} (RAM and DRAM only)")


# ----------------------------------------------------------------------------- training
@dataclass
class ClassifierJob:
    model: str = "ram"
    config: str | None = None  # default: default_config_name(model, dataset)
    dataset: str = "mnist"
    out: str = "runs/ram"
    objective: str = "hybrid"  # RAM only: "hybrid" | "tracegraph"
    reinforce_weight: float = 1.0  # RAM hybrid only
    location_std: float | None = None  # RAM only: override the config's σ
    num_train: int | None = None  # use a seeded subset of the training digits
    num_valid: int = 1000
    eval_examples: int | None = None  # test images (None: the whole fixed test set)
    mc_samples: int = 10
    resume: str | None = None
    device: str = "cpu"
    data_dir: str | None = None
    download: bool = False
    pictures: bool = True
    progress: bool = True


def run_classification(job: ClassifierJob, train_config: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a classifier; returns the result dict (also in ``eval.json``)."""
    _check_model(job.model)
    _check_dataset(job.dataset)
    if job.objective not in OBJECTIVE_MODES:
        raise ValueError(f"objective: expected one of {OBJECTIVE_MODES}, found {job.objective!r}")
    out = Path(job.out)
    data_opts = dict(data_dir=job.data_dir, download=job.download)
    batches = classification_batches(
        job.dataset,
        train_config.batch_size,
        seed=train_config.seed,
        num_train=job.num_train,
        **data_opts,
    )
    valid = load_classification_split(
        job.dataset, "valid", num_examples=job.num_valid, seed=train_config.seed, **data_opts
    )
    shape = tuple(valid.images.shape[1:])
    config_name = job.config or default_config_name(job.model, job.dataset)
    if job.resume:
        config = load_checkpoint(job.resume, expected_model=job.model)["model_config"]
    else:
        overrides = {"location_std": job.location_std} if job.model == "ram" else {}
        config = classifier_config(job.model, config_name, shape, **overrides)
    model, guide = MODELS[job.model].build(config)
    model.to(job.device)
    guide.to(job.device)
    objective = (
        RAMObjective(job.objective, reinforce_weight=job.reinforce_weight)
        if job.model == "ram"
        else None
    )

    def validate() -> dict[str, float]:
        result = evaluate_classifier(model, valid.images, valid.labels, device=job.device)
        return {"valid_error": result["error"]}

    extra = {
        "model": job.model,
        "model_config": config,
        "config_name": config_name,
        "objective": job.objective if job.model == "ram" else "elbo (−log p(y|x))",
        "reinforce_weight": job.reinforce_weight,
        "data": {
            "dataset": job.dataset,
            "num_train": job.num_train,
            "train": "generated on the fly from MNIST train[:50000] (ClutteredBatches)",
            "valid_info": valid.info,
        },
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

    test = load_classification_split(
        job.dataset, "test", num_examples=job.eval_examples, seed=train_config.seed, **data_opts
    )
    errors = classification_errors(
        model, test, mc_samples=job.mc_samples, device=job.device, seed=train_config.seed
    )
    result = {
        "model": job.model,
        "config_name": config_name,
        "model_config": config,
        "dataset": job.dataset,
        "objective": extra["objective"],
        "steps": trainer.state.step,
        "steps_this_run": run.steps,
        "batch_size": train_config.batch_size,
        "train_seconds": run.seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
        "valid_error": validate()["valid_error"],
        "test": errors,
        "checkpoint": str(trainer.checkpoint_path),
    }
    write_json(result, out / "eval.json")
    print(_summary(result))
    if job.pictures and job.model in ("ram", "dram"):
        n = min(6, len(test))
        path = write_attention_figure(
            model, test.images[:n].to(job.device), test.labels[:n], out / "glimpses.png"
        )
        print(f"wrote {path}")
    return result


def _summary(result: dict[str, Any]) -> str:
    t = result["test"]
    line = (
        f"{result['model']} ({result['config_name']}) on {result['dataset']}: error "
        f"{100 * t['error']:.2f}% ± {100 * t['error_stderr']:.2f} (N={t['num_examples']})"
    )
    if "error_mc" in t:
        line += (
            f"; mean path {100 * t['error_mean_path']:.2f}%, "
            f"{t['mc_samples']}-path average {100 * t['error_mc']:.2f}%"
        )
    return line


# ----------------------------------------------------------------------------- CLI
_TRAIN_HELP = {
    "ram": "Recurrent Attention Model (Mnih et al. 2014), hybrid REINFORCE loss",
    "dram": "Differentiable RAM: LSTM + DRAW selective read (DRAW sec. 4.1)",
    "fc": "fully connected baseline of RAM Tables 1-2 (2 ReLU layers)",
    "convnet": "convolutional baseline of RAM Tables 1-2 (8 10x10 filters, stride 5)",
}
_DEFAULT_DATASET = {
    "ram": "mnist",
    "dram": "mnist_cluttered_100",
    "fc": "mnist",
    "convnet": "mnist_translated_60",
}


def _train_handler(name: str) -> Callable[[argparse.Namespace], None]:
    def handler(args: argparse.Namespace) -> None:
        job = ClassifierJob(
            model=name,
            config=args.config,
            dataset=args.dataset,
            out=args.out,
            objective=getattr(args, "objective", "hybrid"),
            reinforce_weight=getattr(args, "reinforce_weight", 1.0),
            location_std=getattr(args, "location_std", None),
            num_train=args.num_train,
            num_valid=args.num_valid,
            eval_examples=args.eval_examples,
            mc_samples=getattr(args, "mc_samples", 10),
            resume=args.resume,
            device=args.device,
            data_dir=args.data_dir,
            download=args.download,
            pictures=not args.no_pictures,
            progress=not args.no_progress,
        )
        run_classification(job, train_config_from_args(args))

    return handler


def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``pyro-draw train ram|dram|fc|convnet``."""
    for name in MODELS:
        p = train_subparsers.add_parser(
            name, help=_TRAIN_HELP[name], formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        add_common_train_arguments(
            p,
            steps=2000,
            batch_size=100,
            lr=1e-3,
            out=f"runs/{name}",
            validate_every=500,
            checkpoint_every=500,
        )
        p.add_argument(
            "--config",
            default=None,
            choices=sorted(_NAMED_CONFIGS[name]),
            help="named configuration (default: the paper's for the dataset)",
        )
        p.add_argument("--dataset", default=_DEFAULT_DATASET[name], choices=CLASSIFICATION_DATASETS)
        p.add_argument(
            "--num-train", type=int, default=None, help="use only this many training digits"
        )
        p.add_argument("--num-valid", type=int, default=1000, help="validation images")
        p.add_argument(
            "--eval-examples",
            type=int,
            default=None,
            help="test images for the final evaluation (default: the whole test set)",
        )
        p.add_argument("--no-pictures", action="store_true")
        if name == "ram":
            p.add_argument(
                "--objective",
                default="hybrid",
                choices=OBJECTIVE_MODES,
                help="hybrid: RAM's CE + REINFORCE (0/1 reward); tracegraph: TraceGraph_ELBO "
                "with the policy as guide (reward log p(y|l,x))",
            )
            p.add_argument(
                "--reinforce-weight",
                type=float,
                default=1.0,
                help="weight of the REINFORCE term in the hybrid loss",
            )
            p.add_argument("--location-std", type=float, default=None, help="location policy std σ")
            p.add_argument(
                "--mc-samples",
                type=int,
                default=10,
                help="glimpse paths averaged for the Monte-Carlo test error",
            )
        p.set_defaults(handler=_train_handler(name))


def _checkpoint_out(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else Path(args.checkpoint).parent


def _evaluate_checkpoint(args: argparse.Namespace) -> None:
    model, _, ckpt = load_classifier(args.checkpoint, device=args.device)
    dataset = args.dataset or ckpt["data"]["dataset"]
    data = load_classification_split(
        dataset,
        args.split,
        num_examples=args.num_examples,
        seed=args.seed,
        data_dir=args.data_dir,
        download=args.download,
    )
    result = {
        "model": ckpt["model"],
        "config_name": ckpt.get("config_name"),
        "dataset": dataset,
        "split": args.split,
        "step": ckpt["step"],
        "checkpoint": str(args.checkpoint),
        "test": classification_errors(
            model,
            data,
            mc_samples=getattr(args, "location_samples", 10),
            batch_size=args.batch_size,
            device=args.device,
            seed=args.seed,
        ),
    }
    path = (
        Path(args.json)
        if getattr(args, "json", None)
        else Path(args.checkpoint).with_name(f"eval_{dataset}_{args.split}.json")
    )
    write_json(result, path)
    print(_summary(result))
    print(f"wrote {path}")


def _sample_attention(args: argparse.Namespace) -> None:
    model, _, ckpt = load_classifier(args.checkpoint, device=args.device)
    dataset = args.dataset or ckpt["data"]["dataset"]
    rows = max(1, getattr(args, "num_sequences", 6) or 6)
    data = load_classification_split(
        dataset,
        args.split,
        num_examples=rows,
        seed=args.seed,
        data_dir=args.data_dir,
        download=args.download,
    )
    path = write_attention_figure(
        model,
        data.images.to(args.device),
        data.labels,
        _checkpoint_out(args) / f"glimpses_{dataset}_{args.split}.png",
        seed=args.seed,
    )
    print(f"wrote {path}")


def _add_evaluate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--location-samples",
        type=int,
        default=10,
        help="RAM: glimpse paths averaged for the Monte-Carlo test error",
    )


CHECKPOINT_COMMANDS: dict[str, dict[str, Callable[[argparse.Namespace], None]]] = {
    "evaluate": {name: _evaluate_checkpoint for name in MODELS},
    "sample": {"ram": _sample_attention, "dram": _sample_attention},
}
EXTRA_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "evaluate": _add_evaluate_options,
}
