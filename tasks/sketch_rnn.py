"""sketch-rnn tasks: build from a config dict, train with KL annealing, evaluate a checkpoint.

* :func:`build_sketch_rnn` and :data:`MODELS` (``"sketch-rnn"`` conditional VAE, sec. 3.2;
  ``"sketch-rnn-decoder"`` decoder-only, sec. 3.3) for the model registry.
* :func:`run_sketch_training` — data by name (:func:`tasks.data.strokes.load_strokes`), padded to
  ``N_max`` = the longest sketch of the train/valid/test splits (as the reference code; sketches
  longer than ``--max-length`` are dropped first), offsets divided by the training split's scale
  factor (stored in the model config), the paper's augmentation (appendix sec. 3), the annealed
  loss of appendix Eq. 4 (:class:`inference.annealing.AnnealedKLObjective`), validation with the
  unannealed Eq. 3 (keeping the best checkpoint as ``best.pt``), and a final test evaluation
  (:func:`evaluate_sketch_split`) written to ``eval.json``.
* :func:`evaluate_sketch_split` — ``L_R`` and ``L_KL`` (Eqs. 9–10, one ``z ~ q`` per sketch, the
  paper's Table 1 numbers) and the IWAE estimate of ``log p(S)`` in nats per sketch through the
  generic :func:`tasks.evaluate.evaluate_log_likelihood` (the model derives ``N_s`` from the
  padded batch, so it needs no adapter). Offsets are in units of the training scale factor: a
  density over pixel offsets is ``log p − 2 N_s log(scale_factor)``. The decoder-only model has no
  latent, so its "IWAE" is the exact log-likelihood (``K = 1``).
* ``pyro-draw train sketch-rnn|sketch-rnn-decoder`` (:func:`register_train`) and
  ``pyro-draw evaluate CHECKPOINT`` (:data:`CHECKPOINT_COMMANDS`).

Optimisation defaults: batch 100, Adam, gradient clipping 1.0 (appendix sec. 3; the reference code
clips each gradient value, we clip the global norm as the trainer does). The appendix gives a
constant learning rate of 1e-4 and no decay; the CLI defaults to the reference code's schedule
(1e-3 decaying by 0.9999 per step to 1e-5, ``--lr-decay``/``--min-lr``) which learns much faster
in short CPU runs; ``--lr 1e-4 --lr-decay 1`` gives the paper's. KL annealing defaults are the
paper's: ``KL_min = 0.2``, ``R = 0.99999``, ``η_min = 0.01``, ``w_KL = 1``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from generative.sketch_rnn import SKETCH_RNN_CONFIGS, SketchRNN, SketchRNNConfig, sketch_rnn_config
from guides.sketch_rnn import SketchRNNGuide
from inference.annealing import AnnealedKLObjective, loss_terms
from inference.checkpoint import load_checkpoint, save_checkpoint
from inference.trainer import SVITrainer, TrainConfig
from tasks.data.strokes import (
    DEFAULT_MAX_LENGTH,
    StrokeBatches,
    StrokeData,
    load_strokes,
    pad_batch,
)
from tasks.models import ModelEntry

__all__ = [
    "CHECKPOINT_COMMANDS",
    "MODELS",
    "SketchTrainJob",
    "build_sketch_rnn",
    "evaluate_sketch_split",
    "load_sketch_rnn",
    "register_train",
    "run_sketch_training",
]

CONDITIONAL_CONFIGS = sorted(k for k, v in SKETCH_RNN_CONFIGS.items() if v.conditional)
DECODER_CONFIGS = sorted(k for k, v in SKETCH_RNN_CONFIGS.items() if not v.conditional)
#: floats held by one evaluation chunk (decoder activations), bounding IWAE memory (~200 MB)
_EVAL_FLOATS = 50_000_000


def build_sketch_rnn(config: dict) -> tuple[SketchRNN, SketchRNNGuide]:
    """A fresh (model, guide) pair from a :class:`SketchRNNConfig` dict (checkpoint rebuild)."""
    model = SketchRNN(SketchRNNConfig.from_dict(config))
    return model, SketchRNNGuide(model)


def _builder(conditional: bool):
    def build(config: dict) -> tuple[nn.Module, nn.Module]:
        if bool(config.get("conditional", True)) != conditional:
            kind = "conditional" if conditional else "decoder-only"
            raise ValueError(f"expected a {kind} sketch-rnn config, found {config}")
        return build_sketch_rnn(config)

    return build


MODELS: dict[str, ModelEntry] = {
    "sketch-rnn": ModelEntry(_builder(True), CONDITIONAL_CONFIGS),
    "sketch-rnn-decoder": ModelEntry(_builder(False), DECODER_CONFIGS),
}


def load_sketch_rnn(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[SketchRNN, SketchRNNGuide, dict[str, Any]]:
    """Model and guide of a sketch-rnn checkpoint, in eval mode, and the checkpoint dict."""
    data = load_checkpoint(path, map_location=device)
    if data["model"] not in MODELS:
        raise ValueError(f"{path} holds a {data['model']!r} model, not one of {sorted(MODELS)}")
    model, guide = MODELS[data["model"]].build(data["model_config"])
    model.load_state_dict(data["model_state"])
    guide.load_state_dict(data["guide_state"])
    model.to(device).eval()
    guide.to(device).eval()
    return model, guide, data


# ------------------------------------------------------------------------------ evaluation
def _subset(data: StrokeData, num_examples: int | None, seed: int) -> list[np.ndarray]:
    """A fixed random subset of the sequences, in their original order."""
    n = len(data)
    if num_examples is None or num_examples >= n:
        return list(data.sequences)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [data.sequences[i] for i in perm[:num_examples].sort().values.tolist()]


def _stderr(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def sketch_losses(
    model: SketchRNN,
    guide: SketchRNNGuide,
    sequences: Sequence[np.ndarray],
    *,
    batch_size: int = 100,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Per-sketch ``L_R``, ``L_KL`` (Eqs. 9–10, one ``z ~ q(z | S)`` each) and the one-sample
    ELBO in nats, without gradients, in the modules' current mode."""
    out: dict[str, list] = {"L_R": [], "L_KL": [], "elbo": []}
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            x5, lengths = pad_batch(sequences[start : start + batch_size], model.config.max_length)
            terms = loss_terms(model, guide, (x5.to(device), lengths.to(device)))
            out["L_R"].append(terms.reconstruction_loss.cpu().numpy())
            out["L_KL"].append(terms.kl_loss.cpu().numpy())
            out["elbo"].append(terms.elbo.cpu().numpy())
    return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}


def evaluate_sketch_split(
    model: SketchRNN,
    guide: SketchRNNGuide,
    data: StrokeData,
    *,
    w_kl: float = 1.0,
    num_examples: int | None = None,
    iwae_samples: int = 100,
    batch_size: int = 100,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Test-set numbers of a trained sketch-rnn on a fixed random subset of ``data``:
    ``L_R``, ``L_KL`` and ``loss = L_R + w_KL L_KL`` (appendix Eq. 3), the ELBO and the IWAE
    ``log p(S)`` (``iwae_samples`` = K; 0 skips it), both in nats per sketch. JSON-ready."""
    from tasks.evaluate import evaluate_log_likelihood

    c = model.config
    if data.scale_factor != c.scale_factor and c.scale_factor is not None:
        raise ValueError(
            f"evaluate_sketch_split: data normalised by {data.scale_factor}, the model was "
            f"trained with scale_factor {c.scale_factor}; load it with scale_factor=that value"
        )
    model.eval()
    guide.eval()
    sequences = _subset(data, num_examples, seed)
    torch.manual_seed(seed)
    losses = sketch_losses(model, guide, sequences, batch_size=batch_size, device=device)
    result: dict[str, Any] = {
        "dataset": data.name,
        "split": data.split,
        "num_examples": len(sequences),
        "max_length": c.max_length,
        "scale_factor": c.scale_factor,
        "w_kl": w_kl,
        "L_R": float(losses["L_R"].mean()),
        "L_R_stderr": _stderr(losses["L_R"]),
        "L_KL": float(losses["L_KL"].mean()),
        "L_KL_stderr": _stderr(losses["L_KL"]),
        "loss": float((losses["L_R"] + w_kl * losses["L_KL"]).mean()),
        "elbo_nats_per_sketch": float(losses["elbo"].mean()),
        "units": "offsets divided by scale_factor; L_R, L_KL per N_max and N_z (Eqs. 9-10)",
    }
    if iwae_samples > 0:
        k = iwae_samples if c.conditional else 1
        width = c.dec_hidden + 6 * c.num_mixtures + 3 + c.hyper_hidden * (c.cell == "hyper")
        rows = max(1, _EVAL_FLOATS // (c.max_length * width))
        eval_batch = min(batch_size, rows)
        x5, _ = pad_batch(sequences, c.max_length)
        iwae = evaluate_log_likelihood(
            model.model,
            guide.guide,
            x5,
            num_particles=k,
            batch_size=eval_batch,
            chunk_size=max(1, rows // eval_batch),
            device=device,
            progress=progress,
            seed=seed,
        )
        iwae.pop("per_example")
        result["iwae"] = iwae
        result["log_likelihood_nats_per_sketch"] = iwae["log_likelihood"]
        result["iwae_samples"] = k
    return result


def format_sketch_summary(result: dict[str, Any]) -> str:
    line = (
        f"{result['dataset']}/{result['split']} (N={result['num_examples']}): "
        f"L_R {result['L_R']:.3f}, L_KL {result['L_KL']:.3f}, loss {result['loss']:.3f} "
        f"(w_KL {result['w_kl']}); ELBO {result['elbo_nats_per_sketch']:.2f} nats/sketch"
    )
    if "iwae" in result:
        line += (
            f"; log p(S) ≥ {result['log_likelihood_nats_per_sketch']:.2f} nats/sketch "
            f"(IWAE K={result['iwae_samples']})"
        )
    return line


# ------------------------------------------------------------------------------ training
@dataclass
class SketchTrainJob:
    """What to train (the optimisation settings are a :class:`TrainConfig`)."""

    model: str = "sketch-rnn"  # or "sketch-rnn-decoder"
    config: str = "small"
    dataset: list[str] = field(default_factory=lambda: ["aaron_sheep"])
    classes: list[str] | None = None  # QuickDraw categories (dataset "quickdraw")
    max_length: int = DEFAULT_MAX_LENGTH  # drop longer sketches; N_max = longest kept
    config_overrides: dict = field(default_factory=dict)
    w_kl: float = 1.0
    kl_min: float = 0.2
    eta_min: float = 0.01
    kl_decay: float = 0.99999  # R
    augment: bool = True
    out: str = "runs/sketch_rnn"
    data_dir: str | None = None
    download: bool = False
    resume: str | None = None
    device: str = "cpu"
    valid_examples: int | None = 500
    eval_examples: int | None = 500
    iwae_samples: int = 100
    pictures: bool = True
    progress: bool = True


def _dataset_name(dataset: str | Sequence[str]) -> str | list[str]:
    if isinstance(dataset, str):
        return dataset
    names = list(dataset)
    return names[0] if len(names) == 1 else names


def load_sketch_splits(
    dataset: str | Sequence[str],
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    classes: Sequence[str] | None = None,
    scale_factor: float | None = None,
    data_dir: str | None = None,
    download: bool = False,
) -> dict[str, StrokeData]:
    """Train/valid/test splits normalised by the training split's scale factor (or the given
    one), sketches longer than ``max_length`` dropped."""
    name = _dataset_name(dataset)
    common = dict(data_dir=data_dir, download=download, max_length=max_length, classes=classes)
    train = load_strokes(name, "train", scale_factor=scale_factor, **common)
    splits = {"train": train}
    for split in ("valid", "test"):
        splits[split] = load_strokes(name, split, scale_factor=train.scale_factor, **common)
    return splits


def _check_model_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown sketch-rnn model {name!r}; choose one of {sorted(MODELS)}")


def run_sketch_training(job: SketchTrainJob, train_config: TrainConfig) -> dict[str, Any]:
    """Train (or resume) sketch-rnn; returns the test evaluation (also in ``eval.json``)."""
    _check_model_name(job.model)
    out = Path(job.out)
    load = dict(data_dir=job.data_dir, download=job.download)
    if job.resume:
        ckpt = load_checkpoint(job.resume, expected_model=job.model)
        config = ckpt["model_config"]
        data_info = ckpt["data"]
        splits = load_sketch_splits(
            data_info["dataset"],
            max_length=config["max_length"],
            classes=data_info.get("classes"),
            scale_factor=config["scale_factor"],
            **load,
        )
    else:
        configs = MODELS[job.model].configs
        if job.config not in configs:
            raise ValueError(
                f"--config: {job.model} configs are {list(configs)}, found {job.config!r}"
            )
        splits = load_sketch_splits(
            job.dataset, max_length=job.max_length, classes=job.classes, **load
        )
        n_max = max(int(d.lengths.max()) for d in splits.values())
        config = sketch_rnn_config(
            job.config,
            **{**job.config_overrides, "max_length": n_max},
            scale_factor=splits["train"].scale_factor,
        ).to_dict()
        data_info = {
            "dataset": _dataset_name(job.dataset),
            "classes": job.classes,
            "max_length_cap": job.max_length,
            "info": {s: d.info for s, d in splits.items()},
        }
    model, guide = MODELS[job.model].build(config)
    model.to(job.device)
    guide.to(job.device)
    n_max = model.config.max_length
    batches = StrokeBatches(
        splits["train"],
        train_config.batch_size,
        max_length=n_max,
        seed=train_config.seed,
        augment=job.augment,
    )
    objective = AnnealedKLObjective(
        w_kl=job.w_kl, kl_min=job.kl_min, eta_min=job.eta_min, decay_rate=job.kl_decay
    )
    valid = _subset(splits["valid"], job.valid_examples, train_config.seed)
    best = {"loss": math.inf}
    trainer: SVITrainer | None = None

    def validate() -> dict[str, float]:
        torch.manual_seed(train_config.seed)  # the same z noise at every validation
        losses = sketch_losses(model, guide, valid, device=job.device)
        metrics = {
            "valid_L_R": float(losses["L_R"].mean()),
            "valid_L_KL": float(losses["L_KL"].mean()),
            "valid_loss": float((losses["L_R"] + job.w_kl * losses["L_KL"]).mean()),
        }
        if metrics["valid_loss"] < best["loss"] and trainer is not None:
            best["loss"] = metrics["valid_loss"]
            save_checkpoint(trainer.checkpoint(), out / "best.pt")
        return metrics

    extra = {
        "model": job.model,
        "model_config": config,
        "config_name": job.config,
        "data": data_info,
        "objective": objective.config(),
        "augment": job.augment,
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
    if job.resume:
        saved = ckpt.get("objective")
        if saved is not None and saved != objective.config():
            raise ValueError(
                f"--resume: the checkpoint was trained with the objective {saved}, this run asks "
                f"for {objective.config()}; resume with the same --w-kl/--kl-min/--eta-min/"
                "--kl-decay"
            )
    run = trainer.run(job.resume)

    result = evaluate_sketch_split(
        model,
        guide,
        splits["test"],
        w_kl=job.w_kl,
        num_examples=job.eval_examples,
        iwae_samples=job.iwae_samples,
        seed=train_config.seed,
        device=job.device,
        progress=job.progress,
    )
    result.update(
        model=job.model,
        config_name=extra["config_name"],
        checkpoint=str(trainer.checkpoint_path),
        step=trainer.state.step,
        train_seconds=run.seconds,
        objective=objective.config(),
        best_valid_loss=best["loss"],
    )
    from tasks.evaluate import write_json

    write_json(result, out / "eval.json")
    print(format_sketch_summary(result))
    if job.pictures:
        for path in _pictures(model, guide, splits["test"], out, train_config.seed):
            print(f"wrote {path}")
    return result


def _pictures(
    model: SketchRNN, guide: SketchRNNGuide, data: StrokeData, out: Path, seed: int
) -> list[Path]:
    """Samples/reconstructions through :mod:`tasks.sketch_tasks` when it is available."""
    try:
        from tasks import sketch_tasks
    except ImportError:
        print("pictures skipped: tasks.sketch_tasks is not available")
        return []
    writer = getattr(sketch_tasks, "write_training_pictures", None)
    if writer is None:
        print("pictures skipped: tasks.sketch_tasks has no write_training_pictures")
        return []
    return list(writer(model, guide, data, out, seed=seed))


# ------------------------------------------------------------------------------------ CLI
def _add_sketch_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        nargs="+",
        default=["aaron_sheep"],
        help="stroke dataset(s): omniglot, aaron_sheep, kanji.rdp100 (several npz names are "
        "concatenated), quickdraw (with --classes) or glyphs",
    )
    p.add_argument("--classes", nargs="+", default=None, help="QuickDraw categories")
    p.add_argument(
        "--max-length",
        type=int,
        default=DEFAULT_MAX_LENGTH,
        help="drop longer sketches; N_max = the longest sketch kept in train/valid/test",
    )


def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    """``pyro-draw train sketch-rnn`` and ``pyro-draw train sketch-rnn-decoder``."""
    from tasks.cli_common import add_common_train_arguments

    helps = {
        "sketch-rnn": "sketch-rnn VAE (bidirectional encoder, autoregressive GMM decoder)",
        "sketch-rnn-decoder": "sketch-rnn decoder-only unconditional model (sec. 3.3)",
    }
    for name, entry in MODELS.items():
        p = train_subparsers.add_parser(
            name, help=helps[name], formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        add_common_train_arguments(
            p,
            steps=3000,
            batch_size=100,
            lr=1e-3,
            clip_norm=1.0,
            out=f"runs/{name}",
            validate_every=500,
            checkpoint_every=500,
        )
        default = "small" if name == "sketch-rnn" else "small_decoder"
        p.add_argument(
            "--config",
            default=default,
            choices=list(entry.configs),
            help="named configuration (paper: appendix sec. 3)",
        )
        _add_sketch_data_options(p)
        if name == "sketch-rnn":
            p.add_argument("--w-kl", type=float, default=1.0, help="w_KL (Eq. 11)")
            p.add_argument("--kl-min", type=float, default=0.2, help="KL_min (appendix Eq. 4)")
            p.add_argument("--eta-min", type=float, default=0.01, help="η_min (appendix Eq. 4)")
            p.add_argument(
                "--kl-decay", type=float, default=0.99999, help="R of η_step (appendix Eq. 4)"
            )
        p.add_argument(
            "--lr-decay",
            type=float,
            default=0.9999,
            help="lr_t = max(min_lr, lr · decay^t) (reference code; the paper: 1e-4, no decay)",
        )
        p.add_argument("--min-lr", type=float, default=1e-5)
        p.add_argument("--no-augment", action="store_true", help="no random offset scaling")
        p.add_argument(
            "--valid-examples", type=int, default=500, help="validation sketches (subset)"
        )
        p.add_argument(
            "--iwae-samples", type=int, default=100, help="K for the final test IWAE estimate"
        )
        p.add_argument(
            "--eval-examples", type=int, default=500, help="test sketches for the final evaluation"
        )
        p.add_argument("--no-pictures", action="store_true")
        p.set_defaults(handler=_train_handler, sketch_model=name)


def _train_handler(args: argparse.Namespace) -> None:
    from tasks.cli_common import train_config_from_args

    for option in ("max_length", "valid_examples", "eval_examples"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')}: expected >= 1")
    job = SketchTrainJob(
        model=args.sketch_model,
        config=args.config,
        dataset=list(args.dataset),
        classes=args.classes,
        max_length=args.max_length,
        w_kl=getattr(args, "w_kl", 1.0),
        kl_min=getattr(args, "kl_min", 0.2),
        eta_min=getattr(args, "eta_min", 0.01),
        kl_decay=getattr(args, "kl_decay", 0.99999),
        augment=not args.no_augment,
        out=args.out,
        data_dir=args.data_dir,
        download=args.download,
        resume=args.resume,
        device=args.device,
        valid_examples=args.valid_examples,
        eval_examples=args.eval_examples,
        iwae_samples=args.iwae_samples,
        pictures=not args.no_pictures,
        progress=not args.no_progress,
    )
    config = train_config_from_args(args, lr_decay=args.lr_decay, min_lr=args.min_lr)
    run_sketch_training(job, config)


def _evaluate_handler(args: argparse.Namespace) -> None:
    """``pyro-draw evaluate CHECKPOINT`` for sketch-rnn: L_R, L_KL, IWAE nats per sketch."""
    import pyro

    from tasks.evaluate import write_json

    pyro.enable_validation(False)
    model, guide, ckpt = load_sketch_rnn(args.checkpoint, device=args.device)
    c = model.config
    data_info = ckpt.get("data", {})
    dataset = args.dataset or data_info.get("dataset")
    if dataset is None:
        raise ValueError(f"{args.checkpoint}: no dataset recorded; pass --dataset")
    classes = data_info.get("classes") if args.dataset is None else None
    data = load_strokes(
        dataset,
        args.split,
        data_dir=args.data_dir,
        download=args.download,
        max_length=c.max_length,
        scale_factor=c.scale_factor,
        classes=classes,
    )
    w_kl = float(ckpt.get("objective", {}).get("w_kl", 1.0))
    result = evaluate_sketch_split(
        model,
        guide,
        data,
        w_kl=w_kl,
        num_examples=args.num_examples,
        iwae_samples=args.iwae_samples,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )
    result.update(checkpoint=str(args.checkpoint), step=ckpt["step"], model=ckpt["model"])
    name = data.name.replace("/", "_")
    path = (
        Path(args.json)
        if getattr(args, "json", None)
        else Path(args.checkpoint).with_name(f"eval_{name}_{args.split}_K{args.iwae_samples}.json")
    )
    write_json(result, path)
    print(format_sketch_summary(result))
    print(f"wrote {path}")


CHECKPOINT_COMMANDS: dict[str, dict[str, Any]] = {
    "evaluate": {"sketch-rnn": _evaluate_handler, "sketch-rnn-decoder": _evaluate_handler}
}
