"""The one train function every family goes through.

resume or named config → data → build → batches → objective → :class:`SVITrainer` → evaluate →
``eval.json`` → summary → pictures. The family supplies the :class:`tasks.family.TrainPlan`;
everything else (seeding, threads, checks against a resumed checkpoint, the checkpoint's run
record, the best checkpoint, the result file) is written here once.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyro
import torch

from inference.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from inference.distributed import init_world
from inference.events import add_pictures, open_event_writer
from inference.trainer import SVITrainer, TrainConfig
from tasks.family import Family, ModelSpec, TrainPlan, TrainReport
from tasks.options import RunOptions
from tasks.results import write_json

__all__ = ["prepare_process", "train"]


def prepare_process(options: Any) -> None:
    """Threads and seeds first, before anything is built, so a command is reproducible."""
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    pyro.set_rng_seed(options.seed)  # seeds random, numpy and torch
    pyro.clear_param_store()


def _check_resume(run: RunOptions, spec: ModelSpec, resumed: Checkpoint) -> None:
    record = resumed.record
    if "config" in run.given and run.config != record.config_name:
        raise ValueError(
            f"--resume: {resumed.path} was trained with --config {record.config_name}, this "
            f"command asks for --config {run.config}; drop --config to continue it"
        )
    if "dataset" in run.given and _same_dataset(run.dataset, record.dataset) is False:
        raise ValueError(
            f"--resume: {resumed.path} was trained on --dataset {record.dataset}, this command "
            f"asks for --dataset {run.dataset}; drop --dataset to continue it"
        )
    _check_resumed_clipping(run, resumed)


def _check_resumed_clipping(run: RunOptions, resumed: Checkpoint) -> None:
    """Refuse to change a run's gradient clipping through a default: a clip the command does not
    give must be the one the checkpoint was trained with (a default changes between versions,
    e.g. sketch-rnn's from the global norm to the reference code's element-wise clip)."""
    trained = resumed.payload.get("train_config", {})
    if not trained:
        return
    for name, flag in (("clip_norm", "--clip-norm"), ("clip_value", "--clip-value")):
        stored = float(trained.get(name) or 0.0)  # None (off) and absent (older runs): 0
        asked = float(getattr(run, name))
        if name not in run.given and stored != asked:
            raise ValueError(
                f"--resume: {resumed.path} was trained with {flag} {stored:g}, this command's "
                f"default is {flag} {asked:g}; pass {flag} {stored:g} to continue it as trained "
                f"(or {flag} {asked:g} to change it)"
            )


def _claim_out_dir(run: RunOptions) -> None:
    """Refuse, before any work, to train into a folder that holds a run unless asked to
    continue it (``--resume``) or replace it (``--overwrite``: its ``metrics.jsonl`` then starts
    anew once the run is built)."""
    out = Path(run.out)
    existing = out / "checkpoint.pt"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} is a file, expected a folder for the run")
    if run.resume or not existing.exists():
        return
    if not run.overwrite:
        raise ValueError(
            f"--out: {out} already holds a run ({existing}); continue it with --resume "
            f"{existing}, choose another --out, or pass --overwrite to replace it"
        )


def _same_dataset(asked: Any, stored: Any) -> bool:
    as_list = lambda v: [v] if isinstance(v, str) else list(v or [])  # noqa: E731
    return as_list(asked) == as_list(stored)


def _train_config(run: RunOptions, plan: TrainPlan, lr_groups: dict[str, float]) -> TrainConfig:
    """The trainer's settings: the run options, then the plan's (which may set e.g. ``lr``)."""
    settings: dict[str, Any] = dict(
        steps=run.steps,
        batch_size=run.batch_size,
        lr=run.lr if run.lr is not None else TrainConfig.lr,
        clip_norm=run.clip_norm if run.clip_norm > 0 else None,
        clip_value=run.clip_value if run.clip_value > 0 else None,
        seed=run.seed,
        log_every=run.log_every,
        validate_every=run.validate_every,
        checkpoint_every=run.checkpoint_every,
        max_seconds=run.max_seconds,
        checkpoint_seconds=60.0 * run.checkpoint_minutes,
        pyro_validation=run.pyro_validation,
        lr_groups=lr_groups,
    )
    return TrainConfig(**{**settings, **plan.train_settings()})


class _BestCheckpoint:
    """Validation wrapper that also writes ``best.pt`` when ``plan.best`` improves."""

    def __init__(self, plan: TrainPlan, model: Any, guide: Any, out: Path):
        self.plan, self.model, self.guide, self.out = plan, model, guide, out
        self.trainer: SVITrainer | None = None
        self.value = math.inf if plan.best is None or plan.best[1] == "min" else -math.inf

    def __call__(self) -> dict[str, float]:
        metrics = self.plan.validate(self.model, self.guide) or {}
        if self.plan.best is not None and self.trainer is not None:
            name, direction = self.plan.best
            value = metrics[name]
            if (value < self.value) if direction == "min" else (value > self.value):
                self.value = value
                save_checkpoint(self.trainer.checkpoint(), self.out / "best.pt")
        return metrics


def train(family: Family, model: str, run: RunOptions, options: Any) -> dict[str, Any]:
    """Train (or resume) ``model`` of ``family``; returns the final evaluation (also written to
    ``<out>/eval.json``) after printing its summary and writing the pictures.

    Under ``torchrun`` every rank trains on its share of each global batch
    (:mod:`inference.distributed`) and rank 0 alone writes checkpoints, metrics, the evaluation
    and the pictures; the final evaluation is shared out over the ranks (every rank returns
    it)."""
    spec = family.model(model)
    if not isinstance(options, spec.options):
        raise TypeError(
            f"{model}: expected {spec.options.__name__}, found {type(options).__name__}"
        )
    _claim_out_dir(run)
    world = init_world(run.device)  # a process group when launched by torchrun
    events = open_event_writer(run.tensorboard) if run.tensorboard and world.is_main else None
    prepare_process(run)
    resumed = read_checkpoint(run.resume, expected_model=model) if run.resume else None
    if resumed is not None:
        _check_resume(run, spec, resumed)
    plan = family.plan(spec, run, options, resumed)
    if resumed is not None and resumed.record.objective != plan.record.objective:
        raise ValueError(
            f"--resume: {resumed.path} was trained with the objective settings "
            f"{resumed.record.objective}, this command asks for {plan.record.objective}; resume "
            "with the options it was trained with"
        )
    net, guide = spec.build(plan.record.model_config)
    net.to(run.device)
    guide.to(run.device)
    out = Path(run.out)
    if run.overwrite and not run.resume and world.is_main:  # a fresh run: metrics start anew
        (out / "metrics.jsonl").unlink(missing_ok=True)
    validate = _BestCheckpoint(plan, net, guide, out)
    has_validation = type(plan).validate is not TrainPlan.validate
    trainer = SVITrainer(
        net,
        guide,
        plan.batches,
        _train_config(run, plan, plan.lr_groups(net, guide)),
        out_dir=out,
        checkpoint_extra=plan.record.to_dict(),
        validate=validate if has_validation else None,
        device=run.device,
        progress=run.progress,
        objective=plan.objective(net, guide),
        events=events,
    )
    validate.trainer = trainer
    done = trainer.run(run.resume)
    net.eval()
    guide.eval()
    report = TrainReport(
        checkpoint=trainer.checkpoint_path,
        step=trainer.state.step,
        steps_this_run=done.steps,
        seconds=done.seconds,
        batch_size=run.batch_size,
        learning_rates={"base": trainer.config.lr, **trainer.config.lr_groups},
    )
    result = plan.evaluate(net, guide, report)  # every rank: IWAE shards its examples
    result.setdefault("checkpoint", str(report.checkpoint))
    result.setdefault("step", report.step)
    if not world.is_main:  # rank 0 writes, reports and draws
        return result
    write_json(result, out / "eval.json")
    print(plan.summary(result))
    if run.pictures:
        pictures = plan.pictures(net, guide, out)
        for path in pictures:
            print(f"wrote {path}")
        if events is not None:
            add_pictures(events, pictures, report.step)
    if events is not None:
        events.close()
        print(f"TensorBoard events: {run.tensorboard} (tensorboard --logdir {run.tensorboard})")
    return result
