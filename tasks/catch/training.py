"""Catch's training plan: new games per step, REINFORCE from the final reward, catch rates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from generative.catch_agent import CatchAgentConfig
from generative.catch_game import check_geometry, initial_states
from inference.catch import CatchObjective
from inference.checkpoint import Checkpoint, RunRecord
from tasks.catch.models import CatchOptions, agent_config
from tasks.catch.pictures import save_filmstrip
from tasks.catch.play import evaluate_agent, format_catch_summary, greedy_catch_rate
from tasks.family import ModelSpec, TrainPlan, TrainReport
from tasks.options import RunOptions

__all__ = ["CatchBatches", "CatchPlan"]


class CatchBatches:
    """The training "batches": the start states of ``batch_size`` new games per step, drawn
    from a generator seeded by ``(seed, step)`` so that a resumed run plays the same games.

    With a curriculum (``teacher_frames`` or ``teacher_anneal_frames`` > 0; not in the paper)
    each batch also holds a ``(B,)`` teacher mask: game ``b`` is played with the retina on the
    ball with probability :meth:`teacher_probability` — 1 for the first ``teacher_frames``
    frames, then falling linearly to 0 over ``teacher_anneal_frames`` frames — so the core
    and action networks first learn to catch a ball they see, and the location policy then
    gets a reward that depends on where it looks.
    """

    def __init__(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        size: int = 24,
        paddle_width: int = 2,
        teacher_frames: int = 0,
        teacher_anneal_frames: int = 0,
    ):
        check_geometry(size, paddle_width)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1 games, found {batch_size}")
        if teacher_frames < 0 or teacher_anneal_frames < 0:
            raise ValueError(
                f"teacher_frames, teacher_anneal_frames: expected >= 0, found {teacher_frames}, "
                f"{teacher_anneal_frames}"
            )
        self.batch_size, self.seed = batch_size, seed
        self.size, self.paddle_width = size, paddle_width
        self.teacher_frames, self.teacher_anneal_frames = teacher_frames, teacher_anneal_frames
        self.frames_per_step = batch_size * (size - 1)

    def teacher_probability(self, step: int) -> float:
        """The share of games played with the retina on the ball at ``step``."""
        frames = step * self.frames_per_step
        if frames < self.teacher_frames:
            return 1.0
        if self.teacher_anneal_frames == 0:
            return 0.0
        return max(0.0, 1.0 - (frames - self.teacher_frames) / self.teacher_anneal_frames)

    def batch(self, step: int) -> tuple[Tensor, ...]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        games = tuple(
            initial_states(
                self.batch_size,
                size=self.size,
                paddle_width=self.paddle_width,
                generator=generator,
            )
        )
        if self.teacher_frames == 0 and self.teacher_anneal_frames == 0:
            return games
        teacher = torch.rand(self.batch_size, generator=generator) < self.teacher_probability(step)
        return (*games, teacher)


def _check_resume(resumed: Checkpoint, options: CatchOptions) -> None:
    """A resumed run keeps the policy's σ and the learning-rate groups it was trained with."""
    stored_std = resumed.model_config.get("location_std")
    if options.location_std is not None and options.location_std != stored_std:
        raise ValueError(
            f"--location-std: {resumed.path} was trained with location_std={stored_std}, this "
            f"command asks for {options.location_std}; drop --location-std to continue it"
        )
    groups = resumed.payload.get("train_config", {}).get("lr_groups", {})
    if groups != options.lr_groups():
        raise ValueError(
            f"--location-lr: {resumed.path} was trained with learning-rate groups {groups}, "
            f"found {options.lr_groups()}; resume with the same --location-lr"
        )


class CatchPlan(TrainPlan):
    """Train the Catch agent (sec. 4.2) with :class:`inference.catch.CatchObjective`, validate
    with the exact greedy catch rate, and evaluate it on ``eval_games`` new games.

    ``best.pt`` keeps the checkpoint of the highest greedy catch rate. The game has only 72
    distinct starts, so that validation *is* the test: report the final checkpoint, and the
    best one only as the (optimistic) peak."""

    best = ("greedy_catch_rate", "max")

    def __init__(
        self, spec: ModelSpec, run: RunOptions, options: CatchOptions, resumed: Checkpoint | None
    ):
        self.run, self.options = run, options
        if resumed is not None:
            _check_resume(resumed, options)
            config, config_name = resumed.model_config, resumed.record.config_name
        else:
            config_name = run.config or spec.default_config
            config = agent_config(config_name, location_std=options.location_std)
        self.record = RunRecord(model=spec.name, model_config=config, config_name=config_name)
        self.config = c = CatchAgentConfig.from_dict(config)
        self.batches = CatchBatches(
            run.batch_size,
            seed=run.seed,
            size=c.screen_size,
            paddle_width=c.paddle_width,
            teacher_frames=options.teacher_frames,
            teacher_anneal_frames=options.teacher_anneal_frames,
        )

    def train_settings(self) -> dict[str, Any]:
        return {"lr_decay": self.options.lr_decay, "min_lr": self.options.min_lr}

    def lr_groups(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        return self.options.lr_groups()

    def objective(self, model: nn.Module, guide: nn.Module) -> CatchObjective:
        return CatchObjective(
            location_penalty=self.options.location_penalty,
            teacher_imitation=self.options.teacher_imitation,
            teacher_schedule=self.batches.teacher_probability,
            teacher_noise=self.options.teacher_noise,
        )

    def validate(self, model: nn.Module, guide: nn.Module) -> dict[str, float]:
        return {"greedy_catch_rate": greedy_catch_rate(model)}

    def evaluate(self, model: nn.Module, guide: nn.Module, report: TrainReport) -> dict[str, Any]:
        eval_seed = 2**31 - 1 - self.run.seed  # not a training stream
        result = evaluate_agent(model, self.options.eval_games, seed=eval_seed)
        result.update(
            checkpoint=str(report.checkpoint),
            step=report.step,
            frames=report.step * report.batch_size * (self.config.screen_size - 1),
            train_seconds=report.seconds,
        )
        return result

    def summary(self, result: dict[str, Any]) -> str:
        return format_catch_summary(result)

    def pictures(self, model: nn.Module, guide: nn.Module, out: Path) -> list[Path]:
        path, _ = save_filmstrip(model, out / "catch_episode.png", seed=self.run.seed)
        return [path]
