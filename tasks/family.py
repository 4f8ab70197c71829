"""The family contract: what a model family gives the one train function and the command line.

A family (``tasks/<family>/``) is a :class:`Family`: its models (:class:`ModelSpec`: a registry
name, a builder from a config dict, named configurations, its own training options), the
datasets it trains on, its default optimisation settings, a :class:`TrainPlan` per run (data,
batches, objective, validation, test evaluation, summary, pictures) and its checkpoint commands
(:class:`Command`). :mod:`tasks.families` lists the families; :func:`tasks.training.train` and
:mod:`tasks.cli` are written once against this contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inference.checkpoint import Checkpoint, CheckpointError, RunRecord
from inference.trainer import BatchSource, Objective
from tasks.options import CheckpointOptions, RunOptions

__all__ = ["Command", "Family", "ModelSpec", "TrainPlan", "TrainReport"]


@dataclass(frozen=True)
class ModelSpec:
    """One trainable model: ``build(config dict) -> (model, guide)`` and its named configs.

    ``options`` is the dataclass of the options only this model takes (``pyro-draw train
    <name> --help`` shows them after the common ones); ``default_config`` ``None`` means the
    family picks it from the dataset.
    """

    name: str
    help: str
    build: Callable[[dict[str, Any]], tuple[nn.Module, nn.Module]]
    configs: Sequence[str]
    default_config: str | None
    options: type
    default_dataset: str | None = None

    def restore(
        self, checkpoint: Checkpoint, device: str | torch.device = "cpu"
    ) -> tuple[nn.Module, nn.Module]:
        """The model and guide of ``checkpoint``, with its weights, on ``device``, in eval mode."""
        if checkpoint.model != self.name:
            raise ValueError(
                f"{checkpoint.path} holds a {checkpoint.model!r} model, not {self.name!r}"
            )
        where = f"checkpoint {checkpoint.path} ({self.name!r} model)"
        try:
            model, guide = self.build(checkpoint.model_config)
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{where}: its model_config does not build a {self.name!r} model ({exc}); "
                "written by another version of pyro-draw?"
            ) from None
        _load_state(model, checkpoint.payload["model_state"], f"{where}: model_state")
        _load_state(guide, checkpoint.payload["guide_state"], f"{where}: guide_state")
        return model.to(device).eval(), guide.to(device).eval()


def _load_state(module: nn.Module, state: dict[str, Any], where: str) -> None:
    """``module.load_state_dict(state)``, its mismatch said briefly (``CheckpointError``)."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as exc:
        own = module.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [
            f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
            for k, v in own.items()
            if k in state and hasattr(state[k], "shape") and state[k].shape != v.shape
        ]
        parts = [
            f"{label} {_few(names)}"
            for label, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shapes", shapes),
            )
            if names
        ]
        detail = "; ".join(parts) or type(exc).__name__
        raise CheckpointError(
            f"{where} does not fit the model its config builds ({detail}): from another model "
            "or version"
        ) from None


def _few(names: list[str], count: int = 3) -> str:
    shown = ", ".join(names[:count])
    return f"{shown} (+{len(names) - count} more)" if len(names) > count else shown


@dataclass(frozen=True)
class TrainReport:
    """What the trainer did, for the final result: the checkpoint, the step it reached, the
    steps and wall time of this run and the optimisation settings."""

    checkpoint: Path
    step: int
    steps_this_run: int
    seconds: float
    batch_size: int
    learning_rates: dict[str, float]


class TrainPlan:
    """One training run of a family, as the train function asks for it.

    A family subclasses this and sets :attr:`record` (model config, named config, data
    provenance, objective settings) and :attr:`batches` in its constructor; the methods with
    defaults are optional.
    """

    record: RunRecord
    batches: BatchSource
    #: a validation metric and "min"/"max": keep the best checkpoint as ``best.pt``
    best: tuple[str, str] | None = None

    def train_settings(self) -> dict[str, Any]:
        """Extra :class:`inference.trainer.TrainConfig` fields (``lr_decay``, ``elbo``, …)."""
        return {}

    def lr_groups(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        """Parameter-name prefix → learning rate for the parameters that use their own."""
        return {}

    def objective(self, model: nn.Module, guide: nn.Module) -> Objective | None:
        """The training objective (``None``: the ELBO of ``train_settings()["elbo"]``)."""
        return None

    def validate(self, model: nn.Module, guide: nn.Module) -> dict[str, float] | None:
        """Validation metrics (``None``: no validation)."""
        return None

    def evaluate(self, model: nn.Module, guide: nn.Module, report: TrainReport) -> dict[str, Any]:
        """The final test evaluation written to ``eval.json``."""
        raise NotImplementedError

    def summary(self, result: dict[str, Any]) -> str:
        """The printed line(s) of the final result."""
        raise NotImplementedError

    def pictures(self, model: nn.Module, guide: nn.Module, out: Path) -> list[Path]:
        """Pictures written after training."""
        return []


#: ``plan(spec, run options, model options, resumed checkpoint or None) -> TrainPlan``
PlanFactory = Callable[[ModelSpec, RunOptions, Any, Checkpoint | None], TrainPlan]


@dataclass(frozen=True)
class Command:
    """A checkpoint command of a family: ``run(spec, checkpoint, options)`` with its options
    dataclass (a subclass of :class:`tasks.options.CheckpointOptions`)."""

    run: Callable[[ModelSpec, Checkpoint, Any], None]
    options: type = CheckpointOptions
    models: Sequence[str] | None = None  # None: every model of the family


@dataclass(frozen=True)
class Family:
    """A model family: its models, data, defaults, training plan and checkpoint commands."""

    name: str
    models: Sequence[ModelSpec]
    plan: PlanFactory
    datasets: Sequence[str] = ()
    #: defaults of the common run options for this family (``steps``, ``lr``, ``out``, …)
    run_defaults: Mapping[str, Any] = field(default_factory=dict)
    #: per-model overrides of ``run_defaults`` (``{"sketch-rnn": {"out": "runs/sketch-rnn"}}``)
    model_run_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: help texts of run-option defaults that the plan chooses (``{"lr": "the config's"}``)
    default_texts: Mapping[str, str] = field(default_factory=dict)
    #: whether ``--dataset`` takes several names (concatenated)
    multiple_datasets: bool = False
    #: command name → its :class:`Command`, or several whose ``models`` split the family's
    #: models (when they take different options, e.g. RAM's ``evaluate --location-samples``)
    commands: Mapping[str, Command | Sequence[Command]] = field(default_factory=dict)

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise ValueError(
            f"family {self.name!r} has no model {name!r}; it has {[m.name for m in self.models]}"
        )

    def defaults(self, spec: ModelSpec) -> dict[str, Any]:
        """The run-option defaults of ``spec``'s training command."""
        return {
            "config": spec.default_config,
            "dataset": spec.default_dataset,
            **self.run_defaults,
            **self.model_run_defaults.get(spec.name, {}),
        }

    def command(self, name: str, model: str) -> Command | None:
        """The command ``name`` of ``model`` (``None`` if the model has none)."""
        found = self.commands.get(name, ())
        for command in (found,) if isinstance(found, Command) else found:
            if command.models is None or model in command.models:
                return command
        return None
