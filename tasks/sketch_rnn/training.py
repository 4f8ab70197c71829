"""sketch-rnn's training plan: stroke data by name, the annealed KL loss, validation, test.

Data by name (:func:`tasks.data.strokes.load_strokes`), padded to ``N_max`` = the longest sketch
of the train/valid/test splits (as the reference code; sketches longer than ``--max-length`` are
dropped first), offsets divided by the training split's scale factor (stored in the model
config), magenta's augmentation (the offset scaling of appendix sec. 3 with magenta's 0.15, and
point dropping; ``--random-scale 0.1 --drop-points 0`` is the paper's), the annealed loss of
appendix Eq. 4 (:class:`inference.annealing.AnnealedKLObjective`), validation with the
unannealed Eq. 3 (the train function keeps the best checkpoint as ``best.pt``), the reference
code's learning-rate decay, and a final test evaluation
(:func:`tasks.sketch_rnn.evaluate.evaluate_sketch_split`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from generative.sketch_rnn_config import sketch_rnn_config
from inference.checkpoint import Checkpoint, RunRecord
from tasks.data.batches import StrokeBatches
from tasks.family import ModelSpec, TrainPlan, TrainReport
from tasks.options import RunOptions
from tasks.sketch_rnn.data import dataset_name, load_sketch_splits, subset
from tasks.sketch_rnn.evaluate import evaluate_sketch_split, format_sketch_summary, sketch_losses
from tasks.sketch_rnn.models import SketchDecoderOptions
from tasks.sketch_rnn.pictures import write_training_pictures

__all__ = ["SketchPlan"]


class SketchPlan(TrainPlan):
    """Train ``sketch-rnn`` or ``sketch-rnn-decoder`` on stroke data (appendix Eqs. 3–4)."""

    best = ("valid_loss", "min")

    def __init__(
        self,
        spec: ModelSpec,
        run: RunOptions,
        options: SketchDecoderOptions,
        resumed: Checkpoint | None,
    ):
        self.run, self.options, self.spec = run, options, spec
        self.annealed = options.objective(resumed.record.objective if resumed else None)
        if resumed is not None:
            config, config_name = resumed.model_config, resumed.record.config_name
            data = {**resumed.record.data, **self._augmentation(options)}
            self.splits = self._splits(
                data["dataset"], config["max_length"], data.get("classes"), config["scale_factor"]
            )
        else:
            config_name = run.config or spec.default_config
            dataset = dataset_name(run.dataset or spec.default_dataset)
            self.splits = self._splits(dataset, options.max_length, options.classes, None)
            config = self._fitted_config(config_name)
            data = {
                "dataset": dataset,
                "classes": options.classes,
                "max_length_cap": options.max_length,
                "info": {s: d.info for s, d in self.splits.items()},
                **self._augmentation(options),
            }
        self.record = RunRecord(
            model=spec.name,
            model_config=config,
            config_name=config_name,
            data=data,
            objective=self.annealed.config(),
        )
        self.batches = StrokeBatches(
            self.splits["train"],
            run.batch_size,
            max_length=config["max_length"],
            seed=run.seed,
            augment=options.augment,
            random_scale=options.random_scale,
            drop_prob=options.drop_points,
        )
        self.valid = subset(self.splits["valid"], options.valid_examples, run.seed)
        self.best_valid_loss = math.inf

    @staticmethod
    def _augmentation(options: SketchDecoderOptions) -> dict[str, Any]:
        return {
            "augment": options.augment,
            "random_scale": options.random_scale if options.augment else 0.0,
            "drop_points": options.drop_points if options.augment else 0.0,
        }

    def _splits(self, dataset: Any, max_length: int, classes: Any, scale_factor: Any) -> dict:
        load = dict(data_dir=self.run.data_dir, download=self.run.download)
        return load_sketch_splits(
            dataset, max_length=max_length, classes=classes, scale_factor=scale_factor, **load
        )

    def _fitted_config(self, name: str) -> dict[str, Any]:
        """The named configuration with ``N_max`` and the training scale factor of the data."""
        n_max = max(int(d.lengths.max()) for d in self.splits.values())
        return sketch_rnn_config(
            name,
            **{**self.options.config_overrides, "max_length": n_max},
            scale_factor=self.splits["train"].scale_factor,
        ).to_dict()

    def train_settings(self) -> dict[str, Any]:
        return {"lr_decay": self.options.lr_decay, "min_lr": self.options.min_lr}

    def objective(self, model: nn.Module, guide: nn.Module) -> Any:
        return self.annealed

    def validate(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        """The unannealed loss of appendix Eq. 3 on the validation subset (and ``L_R`` read as
        the reference code's evaluation model reads it, pen term over the ``N_s`` rows)."""
        torch.manual_seed(self.run.seed)  # the same z noise at every validation
        losses = sketch_losses(model, guide, self.valid, device=self.run.device)
        w_kl = self.annealed.w_kl
        metrics = {
            "valid_L_R": float(losses["L_R"].mean()),
            "valid_L_R_n_s": float(losses["L_R_n_s"].mean()),  # the reference eval's reading
            "valid_L_KL": float(losses["L_KL"].mean()),
            "valid_loss": float((losses["L_R"] + w_kl * losses["L_KL"]).mean()),
        }
        self.best_valid_loss = min(self.best_valid_loss, metrics["valid_loss"])
        return metrics

    def evaluate(self, model: nn.Module, guide: nn.Module, report: TrainReport) -> dict[str, Any]:
        result = evaluate_sketch_split(
            model,
            guide,
            self.splits["test"],
            w_kl=self.annealed.w_kl,
            num_examples=self.options.eval_examples,
            iwae_samples=self.options.iwae_samples,
            seed=self.run.seed,
            device=self.run.device,
            progress=self.run.progress,
        )
        result.update(
            model=self.spec.name,
            config_name=self.record.config_name,
            checkpoint=str(report.checkpoint),
            step=report.step,
            train_seconds=report.seconds,
            objective=self.record.objective,
            best_valid_loss=self.best_valid_loss,
        )
        return result

    def summary(self, result: dict[str, Any]) -> str:
        return format_sketch_summary(result)

    def pictures(self, model: nn.Module, guide: nn.Module, out: Path) -> list[Path]:
        return write_training_pictures(model, guide, self.splits["test"], out, seed=self.run.seed)
