"""DooD's and AIR's training plan: grey images at the model's size, the ELBO with β and NVIL or
the enumerated stroke count (after the config's warm-up), test IWAE and stroke counts.

``run.lr`` is the base learning rate (without ``--lr``: appendix C's 1e-4, or for the CPU configs
:data:`tasks.dood.models.CONFIG_LR`); :func:`nvil_lr_groups` adds ``--baseline-lr`` for the NVIL
baseline and ``--stop-lr`` for the guide's stop network where given. Without ``--config`` the
configuration is :func:`tasks.dood.models.default_config_name` of the dataset (``minutes`` on
glyphs). The Omniglot initialisation (the guide's stop network outputs ``σ(10)`` at first) and
Fig. 4's Gaussian likelihood for Omniglot-trained AIR are applied when training on ``omniglot``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from inference.checkpoint import Checkpoint, RunRecord
from inference.trainer import Objective
from tasks.data.batches import ImageBatches
from tasks.data.core import ImageData
from tasks.dood.data import canonical_dataset, load_dood_images
from tasks.dood.evaluate import evaluate_dood, format_dood_summary, validation_metrics
from tasks.dood.models import (
    BASE_LR,
    CONFIG_LR,
    DEFAULT_CONFIG,
    DooDOptions,
    default_config_name,
    model_config,
    nvil_lr_groups,
    stop_objective,
)
from tasks.dood.pictures import write_dood_pictures
from tasks.family import ModelSpec, TrainPlan, TrainReport
from tasks.options import RunOptions

__all__ = ["DooDPlan", "objective_record"]


def objective_record(config: dict[str, Any], options: DooDOptions) -> dict[str, Any]:
    """The objective settings of a run: ``{"stop": …, "beta": …}`` (the shape DooD checkpoints
    have always stored), the options' where given, else the model config's."""
    return {
        "stop": options.stop if options.stop is not None else config["stop_mode"],
        "beta": float(options.beta) if options.beta is not None else config["beta"],
    }


def _resumed_config(resumed: Checkpoint, options: DooDOptions) -> dict[str, Any]:
    """The checkpoint's model config; a model option that would change it is refused."""
    config = resumed.model_config
    size = options.image_size
    if size is not None and (config["height"], config["width"]) != (size, size):
        raise ValueError(
            f"--resume: {resumed.path} holds a {config['height']}x{config['width']} model, this "
            f"command asks for --image-size {size}; drop --image-size to continue it"
        )
    changed = sorted(k for k, v in options.config_overrides.items() if config.get(k) != v)
    if changed:
        raise ValueError(f"--resume: config_overrides would change {changed} of {resumed.path}")
    return config


class DooDPlan(TrainPlan):
    """Train DooD, AIR or Difference-AIR on a DooD dataset (sec. 2.3, appendix C)."""

    def __init__(
        self, spec: ModelSpec, run: RunOptions, options: DooDOptions, resumed: Checkpoint | None
    ):
        self.spec, self.run, self.options = spec, run, options
        self.dataset = canonical_dataset(resumed.record.dataset if resumed else run.dataset)
        if resumed is not None:
            config = _resumed_config(resumed, options)
            config_name = resumed.record.config_name or run.config or DEFAULT_CONFIG[spec.name]
        else:
            config_name = run.config or default_config_name(spec.name, self.dataset)
            config = model_config(
                spec.name,
                config_name,
                dataset=self.dataset,
                image_size=options.image_size,
                stop=options.stop,
                beta=options.beta,
                overrides=options.config_overrides,
            )
        size = int(config["height"])
        self.load = dict(size=size, seed=run.seed, data_dir=run.data_dir, download=run.download)
        train = load_dood_images(self.dataset, "train", num_examples=options.num_train, **self.load)
        valid = load_dood_images(self.dataset, "valid", num_examples=options.num_valid, **self.load)
        self.valid_images = valid.images
        self.test: ImageData | None = None
        self.record = RunRecord(
            model=spec.name,
            model_config=config,
            config_name=config_name,
            data={
                "dataset": self.dataset,
                "size": size,
                "num_train": len(train),
                "info": train.info,
            },
            objective=objective_record(config, options),
        )
        self.batches = ImageBatches(train.images, run.batch_size, seed=run.seed)
        self.resumed_lr = resumed.payload.get("train_config", {}).get("lr") if resumed else None

    def train_settings(self) -> dict[str, Any]:
        """Without ``--lr`` (``run.lr`` None): a resumed run's own base lr, else the CPU
        configs' (:data:`CONFIG_LR`), else appendix C's 1e-4."""
        if self.run.lr is not None:
            return {}
        if self.resumed_lr is not None:
            return {"lr": self.resumed_lr}
        return {"lr": CONFIG_LR.get((self.spec.name, self.record.config_name or ""), BASE_LR)}

    def lr_groups(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        return nvil_lr_groups(guide, self.options.stop_lr, self.options.baseline_lr)

    def objective(self, model: nn.Module, guide: nn.Module) -> Objective:
        return stop_objective(self.record.model_config)

    def validate(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        return validation_metrics(model, guide, self.valid_images, seed=self.run.seed)

    def _test_data(self) -> ImageData:
        if self.test is None:
            num = self.options.eval_examples
            self.test = load_dood_images(self.dataset, "test", num_examples=num, **self.load)
        return self.test

    def evaluate(self, model: nn.Module, guide: nn.Module, report: TrainReport) -> dict[str, Any]:
        run, config = self.run, self.record.model_config
        result = evaluate_dood(
            model,
            guide,
            self._test_data(),
            iwae_samples=self.options.iwae_samples,
            batch_size=self.options.eval_batch_size,
            seed=run.seed,
            device=run.device,
            progress=run.progress,
        )
        result.update(
            model=self.spec.name,
            config_name=self.record.config_name,
            model_config=config,
            stop=config["stop_mode"],
            beta=config["beta"],
            learning_rates=report.learning_rates,
            steps=report.step,
            steps_this_run=report.steps_this_run,
            batch_size=report.batch_size,
            train_seconds=report.seconds,
            threads=torch.get_num_threads(),
            parameters=sum(p.numel() for p in [*model.parameters(), *guide.parameters()]),
            checkpoint=str(report.checkpoint),
            **validation_metrics(model, guide, self.valid_images, seed=run.seed),
        )
        return result

    def summary(self, result: dict[str, Any]) -> str:
        return format_dood_summary(result)

    def pictures(self, model: nn.Module, guide: nn.Module, out: Path) -> list[Path]:
        return write_dood_pictures(model, guide, self._test_data(), out, seed=self.run.seed)
