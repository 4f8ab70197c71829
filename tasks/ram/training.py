"""The classifiers' training plan: on-the-fly training images, validation error, test errors.

``ram`` trains with :class:`inference.reinforce.RAMObjective` (``hybrid``: RAM's cross-entropy +
REINFORCE loss, or ``tracegraph``: the variational reading with ``TraceGraph_ELBO``); the others
minimise ``−log p(y | x)`` with the trainer's default ELBO (no latents).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from inference.checkpoint import Checkpoint, RunRecord
from inference.reinforce import RAMObjective
from tasks.data.core import ImageData
from tasks.family import ModelSpec, TrainPlan, TrainReport
from tasks.options import RunOptions
from tasks.ram.data import check_dataset, classification_batches, load_classification_split
from tasks.ram.evaluate import (
    classification_errors,
    evaluate_classifier,
    format_classification_summary,
)
from tasks.ram.models import (
    CLASSIFIER_OBJECTIVE,
    ClassifierOptions,
    RAMOptions,
    classifier_config,
    default_config_name,
)
from tasks.ram.pictures import write_attention_figure

__all__ = ["ClassifierPlan", "RAMPlan", "classifier_plan"]

#: models with an attention figure after training
_ATTENTION_MODELS = ("ram", "dram")


class ClassifierPlan(TrainPlan):
    """Train a classifier of the family on one of :data:`tasks.ram.data.CLASSIFICATION_DATASETS`
    (``dram``, ``fc``, ``convnet``; :class:`RAMPlan` adds RAM's objective and policy)."""

    def __init__(
        self,
        spec: ModelSpec,
        run: RunOptions,
        options: ClassifierOptions,
        resumed: Checkpoint | None,
    ):
        self.spec, self.run, self.options = spec, run, options
        dataset = (resumed.record.dataset if resumed else None) or run.dataset
        dataset = dataset or spec.default_dataset
        check_dataset(dataset)
        self.dataset = dataset
        self.data = dict(data_dir=run.data_dir, download=run.download, seed=run.seed)
        self.batches = classification_batches(
            dataset, run.batch_size, num_train=options.num_train, **self.data
        )
        self.valid = load_classification_split(
            dataset, "valid", num_examples=options.num_valid, **self.data
        )
        self.test: ImageData | None = None
        if resumed is not None:
            self.check_resume(resumed)
            config, config_name = resumed.model_config, resumed.record.config_name
        else:
            config_name = run.config or default_config_name(spec.name, dataset)
            shape = tuple(self.valid.images.shape[1:])
            config = classifier_config(spec.name, config_name, shape, **self.overrides())
        self.record = RunRecord(
            model=spec.name,
            model_config=config,
            config_name=config_name,
            data={
                "dataset": dataset,
                "num_train": options.num_train,
                "train": "generated on the fly from MNIST train[:50000] (ClutteredBatches)",
                "valid_info": self.valid.info,
            },
            objective=self.objective_record(),
        )

    # -- what RAM changes ------------------------------------------------------------------
    def overrides(self) -> dict[str, Any]:
        """Fields of the named configuration the options override."""
        return {}

    def check_resume(self, resumed: Checkpoint) -> None:
        """Refuse options that contradict the resumed checkpoint's configuration."""

    def objective_record(self) -> dict[str, Any]:
        """The objective settings stored in the checkpoint (a resumed run must match them)."""
        return {"mode": CLASSIFIER_OBJECTIVE}

    def mc_samples(self) -> int:
        """Sampled paths averaged for the Monte-Carlo test error (stochastic models only)."""
        return 1

    # -- the plan --------------------------------------------------------------------------
    def train_settings(self) -> dict[str, Any]:
        return {"lr_decay": self.options.lr_decay, "min_lr": self.options.min_lr}

    def validate(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        x, y = self.valid.images, self.valid.labels
        return {"valid_error": evaluate_classifier(model, x, y, device=self.run.device)["error"]}

    def evaluate(self, model: nn.Module, guide: nn.Module, report: TrainReport) -> dict[str, Any]:
        run = self.run
        self.test = load_classification_split(
            self.dataset, "test", num_examples=self.options.eval_examples, **self.data
        )
        errors = classification_errors(
            model, self.test, mc_samples=self.mc_samples(), device=run.device, seed=run.seed
        )
        return {
            "model": self.spec.name,
            "config_name": self.record.config_name,
            "model_config": self.record.model_config,
            "dataset": self.dataset,
            "objective": self.record.objective["mode"],
            "steps": report.step,
            "steps_this_run": report.steps_this_run,
            "batch_size": report.batch_size,
            "train_seconds": report.seconds,
            "parameters": sum(p.numel() for p in model.parameters()),
            "valid_error": self.validate(model, guide)["valid_error"],
            "test": errors,
            "checkpoint": str(report.checkpoint),
        }

    def summary(self, result: dict[str, Any]) -> str:
        return format_classification_summary(result)

    def pictures(self, model: nn.Module, guide: nn.Module, out: Path) -> list[Path]:
        if self.spec.name not in _ATTENTION_MODELS:
            return []
        test = self.test or load_classification_split(
            self.dataset, "test", num_examples=6, **self.data
        )
        n = min(6, len(test))
        images = test.images[:n].to(self.run.device)
        return [write_attention_figure(model, images, test.labels[:n], out / "glimpses.png")]


class RAMPlan(ClassifierPlan):
    """:class:`ClassifierPlan` for RAM: its objective (``--objective``, ``--reinforce-weight``),
    the policy's σ (``--location-std``) and the Monte-Carlo test error (``--mc-samples``)."""

    options: RAMOptions

    def overrides(self) -> dict[str, Any]:
        return {"location_std": self.options.location_std}

    def check_resume(self, resumed: Checkpoint) -> None:
        stored = resumed.model_config.get("location_std")
        asked = self.options.location_std
        if asked is not None and asked != stored:
            raise ValueError(
                f"--location-std: {resumed.path} was trained with location_std={stored}, this "
                f"command asks for {asked}; drop --location-std to continue it"
            )

    def objective_record(self) -> dict[str, Any]:
        # the shape inference.checkpoint.read_checkpoint gives RAM checkpoints written before
        # the run record (a mode string and a top-level reinforce_weight), so they resume
        return {
            "mode": self.options.objective,
            "reinforce_weight": float(self.options.reinforce_weight),
        }

    def mc_samples(self) -> int:
        return self.options.mc_samples

    def objective(self, model: nn.Module, guide: nn.Module) -> RAMObjective:
        return RAMObjective(self.options.objective, reinforce_weight=self.options.reinforce_weight)


def classifier_plan(
    spec: ModelSpec, run: RunOptions, options: ClassifierOptions, resumed: Checkpoint | None
) -> ClassifierPlan:
    """The plan of ``spec``: :class:`RAMPlan` for RAM's options, else :class:`ClassifierPlan`."""
    plan = RAMPlan if isinstance(options, RAMOptions) else ClassifierPlan
    return plan(spec, run, options, resumed)
