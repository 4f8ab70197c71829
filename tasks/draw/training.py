"""DRAW's training plan: images by name, dynamic binarisation, the ELBO, test IWAE, pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from inference.checkpoint import Checkpoint, RunRecord
from inference.trainer import mean_elbo
from tasks.data import load_images
from tasks.data.batches import ImageBatches
from tasks.draw.models import DrawOptions, fitted_config
from tasks.draw.pictures import write_pictures
from tasks.evaluate import evaluate_split, format_summary
from tasks.family import ModelSpec, TrainPlan, TrainReport
from tasks.options import RunOptions

__all__ = ["DrawPlan"]


class DrawPlan(TrainPlan):
    """Train DRAW on an image dataset (appendix-free: the paper's Eqs. 9–12 ELBO)."""

    def __init__(
        self, spec: ModelSpec, run: RunOptions, options: DrawOptions, resumed: Checkpoint | None
    ):
        self.run, self.options = run, options
        load = dict(data_dir=run.data_dir, download=run.download, seed=run.seed)
        self.dataset = dataset = resumed.record.dataset if resumed else run.dataset
        self.load = load
        self.train = load_images(dataset, "train", num_examples=options.num_train, **load)
        valid = load_images(dataset, "valid", num_examples=options.num_valid, **load)
        self.valid_x = valid.images.to(run.device)
        if resumed:
            config, config_name = resumed.model_config, resumed.record.config_name
        else:
            config_name = run.config or spec.default_config
            config = fitted_config(config_name, tuple(self.train.images.shape[1:]))
        self.record = RunRecord(
            model=spec.name,
            model_config=config,
            config_name=config_name,
            data={
                "dataset": dataset,
                "binarization": self.train.binarization,
                "info": self.train.info,
            },
        )
        self.batches = ImageBatches(
            self.train.images,
            run.batch_size,
            seed=run.seed,
            dynamic_binarization=self.train.binarization == "dynamic",
        )

    def train_settings(self) -> dict[str, Any]:
        return {"elbo": self.options.elbo, "num_particles": self.options.num_particles}

    def validate(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        return {"valid_elbo": mean_elbo(model, guide, self.valid_x, device=self.run.device)}

    def evaluate(self, model: nn.Module, guide: nn.Module, report: TrainReport) -> dict[str, Any]:
        run = self.run
        test = load_images(self.dataset, "test", **self.load)
        return evaluate_split(
            model.model,
            guide.guide,
            test,
            num_examples=self.options.eval_examples,
            seed=run.seed,
            num_particles=self.options.iwae_samples,
            device=run.device,
            progress=run.progress,
        )

    def summary(self, result: dict[str, Any]) -> str:
        return format_summary(result)

    def pictures(self, model: nn.Module, guide: nn.Module, out: Path) -> list[Path]:
        return write_pictures(model, out, reference=self.train.images, seed=self.run.seed)
