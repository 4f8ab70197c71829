"""A stochastic-variational-inference trainer for any Pyro model/guide pair.

The objective is any Pyro ELBO (``TraceMeanField_ELBO`` for analytic KL, ``Trace_ELBO`` for
Monte-Carlo KL, or a custom one) through its ``differentiable_loss``; the optimiser is
``torch.optim.Adam`` over the model's and guide's ``nn.Module`` parameters with global-norm
gradient clipping. Owning the optimiser (instead of ``pyro.infer.SVI``) is what makes resuming
exact: its state, the step count and the RNG state all go into the checkpoint.

Mini-batches come from a :class:`BatchSource`, a deterministic function of the step number, so
that a resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyro
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch import Tensor, nn
from tqdm.auto import tqdm

from inference.checkpoint import load_checkpoint, save_checkpoint
from inference.distributed import (
    ShardedBatches,
    any_rank,
    average_gradients,
    broadcast_parameters,
    reduce_floats,
    shard_noise,
    world,
)
from inference.events import EventWriter, add_record

ELBOS: dict[str, Callable[[], pyro.infer.ELBO]] = {
    "meanfield": TraceMeanField_ELBO,  # analytic KL where available
    "trace": Trace_ELBO,  # Monte-Carlo KL
}


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss or gradient; nothing was saved from that step."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT arrived: the current step was finished and a checkpoint written."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number


class BatchSource(Protocol):
    """Mini-batches as a deterministic function of the global step."""

    batch_size: int

    def batch(self, step: int) -> tuple[Tensor, ...]: ...


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 100
    lr: float = 1e-3
    clip_norm: float | None = 10.0  # global gradient-norm clipping; None disables it
    # element-wise clipping of each gradient to [-clip_value, clip_value] (tf.clip_by_value, as
    # the sketch-rnn reference code clips); applied before clip_norm; None disables it
    clip_value: float | None = None
    elbo: str = "meanfield"  # key of ELBOS
    num_particles: int = 1
    seed: int = 0
    log_every: int = 10
    validate_every: int = 500
    checkpoint_every: int = 500
    pyro_validation: bool = False  # Pyro's argument checks roughly double per-site overhead
    max_seconds: float | None = None  # stop early (with a checkpoint) after this wall time
    # also checkpoint once this much wall time has passed since the last one (None: steps only)
    checkpoint_seconds: float | None = 600.0
    # parameter-name prefix ("model.", "guide.", "objective." + module path) -> learning rate;
    # the longest matching prefix wins, other parameters use ``lr``
    lr_groups: dict[str, float] = field(default_factory=dict)
    lr_decay: float = 1.0  # lr at step t = max(min_lr, lr * lr_decay**t), for every group
    min_lr: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)


@dataclass
class TrainRun:
    """What one :meth:`SVITrainer.run` did: optimisation steps taken and wall time (seconds)."""

    steps: int
    seconds: float


Objective = Callable[[nn.Module, nn.Module, tuple[Tensor, ...], int], tuple[Tensor, dict]]
"""``objective(model, guide, args, step) -> (loss, metrics)``: the differentiable scalar loss
per example (already averaged over the batch) and float metrics to log and show."""


class ELBOObjective:
    """The default objective: ``−ELBO / B`` of a Pyro ELBO's ``differentiable_loss``."""

    def __init__(self, elbo: pyro.infer.ELBO):
        self.elbo = elbo

    def __call__(
        self, model: nn.Module, guide: nn.Module, args: tuple[Tensor, ...], step: int
    ) -> tuple[Tensor, dict[str, float]]:
        loss = self.elbo.differentiable_loss(model.model, guide.guide, *args) / args[0].shape[0]
        return loss, {"elbo": -loss.item()}


def _named_parameters(
    model: nn.Module, guide: nn.Module, objective: object
) -> list[tuple[str, nn.Parameter]]:
    """Unique parameters, named ``model.*``, ``guide.*``, ``objective.*`` (first name wins)."""
    seen: dict[int, tuple[str, nn.Parameter]] = {}
    parts = [("model", model), ("guide", guide)]
    if isinstance(objective, nn.Module):
        parts.append(("objective", objective))
    for prefix, module in parts:
        for name, p in module.named_parameters():
            seen.setdefault(id(p), (f"{prefix}.{name}", p))
    return list(seen.values())


def _param_groups(named: list[tuple[str, nn.Parameter]], lr: float, lr_groups: dict[str, float]):
    """One optimiser group per distinct learning rate (longest matching prefix wins)."""
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in named:
        matches = [k for k in lr_groups if name.startswith(k)]
        rate = lr_groups[max(matches, key=len)] if matches else lr
        groups.setdefault(rate, []).append(p)
    unused = [k for k in lr_groups if not any(n.startswith(k) for n, _ in named)]
    if unused:
        raise ValueError(f"lr_groups prefixes {unused} match no parameter name")
    return [{"params": ps, "lr": rate, "base_lr": rate} for rate, ps in groups.items()]


class SVITrainer:
    """Train ``model``/``guide`` (``nn.Module`` s with Pyro ``model``/``guide`` methods).

    ``checkpoint_extra`` is stored in every checkpoint (model name and configuration, data
    provenance) so that evaluation and sampling can rebuild everything from the file alone.
    ``validate`` maps the model/guide to a dict of validation metrics. ``events``
    (:func:`inference.events.open_event_writer`) also receives every logged record as
    TensorBoard scalars.
    """

    def __init__(
        self,
        model: nn.Module,
        guide: nn.Module,
        batches: BatchSource,
        config: TrainConfig,
        *,
        out_dir: str | Path,
        checkpoint_extra: dict[str, Any],
        validate: Callable[[], dict[str, float]] | None = None,
        device: str | torch.device = "cpu",
        progress: bool = True,
        objective: Objective | None = None,
        events: EventWriter | None = None,
    ):
        self.world, self.events = world(), events
        if self.world.distributed:
            batches = ShardedBatches(batches, self.world)
        self.model, self.guide, self.batches, self.config = model, guide, batches, config
        self.out_dir = Path(out_dir)
        self.checkpoint_path = self.out_dir / "checkpoint.pt"
        self.metrics_path = self.out_dir / "metrics.jsonl"
        self.extra, self.validate, self.device, self.progress = (
            checkpoint_extra,
            validate,
            torch.device(device),
            progress,
        )
        if objective is None:
            if config.elbo not in ELBOS:
                raise ValueError(f"unknown ELBO {config.elbo!r}; choose one of {sorted(ELBOS)}")
            objective = ELBOObjective(ELBOS[config.elbo](num_particles=config.num_particles))
        self.objective = objective
        if isinstance(objective, nn.Module):
            objective.to(self.device)
        named = _named_parameters(model, guide, objective)
        self.params = [p for _, p in named]
        self.optimizer = torch.optim.Adam(_param_groups(named, config.lr, config.lr_groups))
        self.state = TrainState()
        torch.manual_seed(config.seed)
        pyro.set_rng_seed(config.seed)

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {
            **self.extra,
            "train_config": self.config.to_dict(),
            "model_state": self.model.state_dict(),
            "guide_state": self.guide.state_dict(),
            **self._objective_state(),
            "optimizer_state": self.optimizer.state_dict(),
            "step": self.state.step,
            "rng_state": torch.get_rng_state(),
        }

    def _objective_state(self) -> dict[str, Any]:
        if isinstance(self.objective, nn.Module):
            return {"objective_state": self.objective.state_dict()}
        return {}

    def save(self) -> Path:
        """Write the checkpoint (rank 0 only under ``torchrun``; every rank holds the same)."""
        if not self.world.is_main:
            return self.checkpoint_path
        return save_checkpoint(self.checkpoint(), self.checkpoint_path)

    def resume(self, path: str | Path) -> None:
        """Restore parameters, optimiser, step and RNG so training continues exactly."""
        data = load_checkpoint(path, expected_model=self.extra.get("model"))
        if data["model_config"] != self.extra.get("model_config"):
            raise ValueError(
                f"{path}: model configuration {data['model_config']} differs from the one being "
                f"trained {self.extra.get('model_config')}"
            )
        self.model.load_state_dict(data["model_state"])
        self.guide.load_state_dict(data["guide_state"])
        if isinstance(self.objective, nn.Module):
            if "objective_state" not in data:
                raise ValueError(f"{path}: the checkpoint has no objective state to resume from")
            self.objective.load_state_dict(data["objective_state"])
        saved_groups = len(data["optimizer_state"]["param_groups"])
        if saved_groups != len(self.optimizer.param_groups):
            raise ValueError(
                f"{path}: the checkpoint's optimiser has {saved_groups} learning-rate groups, this "
                f"run has {len(self.optimizer.param_groups)}; resume with the same --lr and "
                "learning-rate groups it was trained with"
            )
        self.optimizer.load_state_dict(data["optimizer_state"])
        self.state.step = int(data["step"])
        torch.set_rng_state(data["rng_state"])
        self._drop_metrics_after(self.state.step)

    def _drop_metrics_after(self, step: int) -> None:
        """Remove the rows of ``metrics.jsonl`` past ``step`` (a resumed run replays them),
        atomically."""
        if not self.world.is_main or not self.metrics_path.exists():
            return
        lines = self.metrics_path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
        if len(kept) == len(lines):
            return
        tmp = self.metrics_path.with_name(self.metrics_path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, self.metrics_path)

    # -- training --------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        if not self.world.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self.metrics_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        self.state.history.append(record)
        if self.events is not None:
            add_record(self.events, record)

    def _set_learning_rates(self) -> None:
        cfg = self.config
        if cfg.lr_decay == 1.0:
            return
        factor = cfg.lr_decay**self.state.step
        for group in self.optimizer.param_groups:
            group["lr"] = max(cfg.min_lr, group["base_lr"] * factor)

    def _kept(self) -> str:
        if self.checkpoint_path.exists():
            return f"The last good checkpoint ({self.checkpoint_path}) was left intact."
        return f"No checkpoint had been written yet ({self.checkpoint_path} does not exist)."

    def train_step(self, args: tuple[Tensor, ...]) -> tuple[float, dict[str, float]]:
        """One optimisation step on the per-example loss; returns that loss and the metrics
        (their means over the ranks under ``torchrun``).

        The sample sites draw their noise through :class:`inference.distributed.ShardNoise`
        from a generator of ``(seed, step)``, so a step's noise per example does not depend on
        the number of processes; gradients are averaged over the ranks before clipping."""
        args = tuple(a.to(self.device) for a in args)
        self._set_learning_rates()
        self.optimizer.zero_grad(set_to_none=True)
        with shard_noise(self.config.seed, self.state.step, self.device):
            loss, metrics = self.objective(self.model, self.guide, args, self.state.step)
        (non_finite,) = any_rank(not bool(torch.isfinite(loss)))
        if non_finite:
            raise NonFiniteLossError(
                f"step {self.state.step}: the loss is {loss.item()}"
                f"{'' if self.world.size == 1 else f' on rank {self.world.rank}'} (non-finite on "
                f"at least one rank); training stopped. {self._kept()} Try a lower --lr or "
                "gradient clipping (--clip-norm or --clip-value)."
            )
        loss.backward()
        average_gradients(self.params)
        if self.config.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.params, self.config.clip_value)
        if self.config.clip_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.clip_norm)
            if not torch.isfinite(norm):
                raise NonFiniteLossError(
                    f"step {self.state.step}: the gradient norm is {norm.item()}; training "
                    f"stopped. {self._kept()}"
                )
        self.optimizer.step()
        values = reduce_floats({"loss": loss.item(), **metrics})
        return values.pop("loss"), values

    def run(self, resume: str | Path | None = None) -> TrainRun:
        """What a training task does: resume from ``resume`` (a checkpoint path) if given,
        :meth:`fit`, and report where the checkpoint is; returns the steps and wall time of
        this run."""
        if resume:
            self.resume(resume)
        start_step, start = self.state.step, time.perf_counter()
        self.fit()
        seconds = time.perf_counter() - start
        if self.world.is_main:
            print(f"checkpoint: {self.checkpoint_path}")
        return TrainRun(steps=self.state.step - start_step, seconds=seconds)

    def fit(self) -> TrainState:
        """Train until ``config.steps``, logging, validating and checkpointing periodically."""
        cfg = self.config
        with pyro.validation_enabled(cfg.pyro_validation):
            return self._fit()

    def _synchronise(self) -> None:
        """Every rank starts from rank 0's parameters and objective buffers."""
        tensors = [*self.params, *self.model.buffers(), *self.guide.buffers()]
        if isinstance(self.objective, nn.Module):
            tensors += list(self.objective.buffers())
        broadcast_parameters(tensors)

    def _fit(self) -> TrainState:
        cfg = self.config
        self.model.train()
        self.guide.train()
        self._synchronise()
        bar = tqdm(
            total=cfg.steps,
            initial=self.state.step,
            disable=not self.progress or not self.world.is_main,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # keep CI logs short
        )
        smooth: dict[str, float] = {}
        start = last_save = time.perf_counter()
        stop = _StopSignals()
        try:
            while self.state.step < cfg.steps:
                loss, metrics = self.train_step(self.batches.batch(self.state.step))
                self.state.step += 1
                for key, value in {"loss": loss, **metrics}.items():
                    old = smooth.get(key, math.nan)
                    smooth[key] = value if math.isnan(old) else 0.95 * old + 0.05 * value
                bar.update(1)
                bar.set_postfix(
                    {k: f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}" for k, v in smooth.items()},
                    refresh=False,
                )
                step = self.state.step
                if step % cfg.log_every == 0 or step == cfg.steps:
                    self._log(
                        {
                            "step": step,
                            "loss": loss,
                            **metrics,
                            **{f"{k}_smoothed": v for k, v in smooth.items()},
                            "seconds": time.perf_counter() - start,
                        }
                    )
                if (
                    self.validate is not None
                    and self.world.is_main
                    and (step % cfg.validate_every == 0 or step == cfg.steps)
                ):
                    metrics = self._validate()
                    self._log({"step": step, **metrics})
                    bar.write(
                        f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
                    )
                now = time.perf_counter()
                out_of_time, save_due, stopping = any_rank(
                    cfg.max_seconds is not None and now - start > cfg.max_seconds,
                    cfg.checkpoint_seconds is not None and now - last_save > cfg.checkpoint_seconds,
                    bool(stop.received),
                )
                if stopping and not stop.received:  # another rank was signalled
                    stop.received = signal.SIGTERM
                if (
                    step % cfg.checkpoint_every == 0
                    or step == cfg.steps
                    or out_of_time
                    or save_due
                    or stop.received
                ):
                    self.save()
                    last_save = time.perf_counter()
                if stop.received:
                    raise TrainingInterrupted(
                        f"{stop.name} at step {step}: the step was finished and the checkpoint "
                        f"written to {self.checkpoint_path}; continue with --resume "
                        f"{self.checkpoint_path}",
                        stop.received,
                    )
                if out_of_time:
                    bar.write(f"time budget of {cfg.max_seconds:.0f} s reached at step {step}")
                    break
        finally:
            stop.restore()
            bar.close()
        return self.state

    def _validate(self) -> dict[str, float]:
        self.model.eval()
        self.guide.eval()
        rng = torch.get_rng_state()  # validation must not shift the training noise
        try:
            with torch.no_grad():
                return self.validate()
        finally:
            torch.set_rng_state(rng)
            self.model.train()
            self.guide.train()


class _StopSignals:
    """While training, SIGTERM and SIGINT only set :attr:`received` (the signal's number), so
    that the step in progress ends and a checkpoint is written before the run stops (what
    cluster pre-emption expects); a second signal stops at once. Installed in the main thread
    only; :meth:`restore` puts the previous handlers back."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = 0
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name

    def _handle(self, number: int, frame: Any) -> None:
        if self.received:  # a second signal: stop now, without the checkpoint
            self.restore()
            raise KeyboardInterrupt(f"{signal.Signals(number).name} received twice")
        self.received = number

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


def mean_elbo(
    model: nn.Module,
    guide: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 500,
    elbo: str = "meanfield",
    device: str | torch.device = "cpu",
) -> float:
    """The ELBO per example (nats) of ``images``, one sample of ``z`` per image."""
    objective = ELBOS[elbo]()
    total = 0.0
    with torch.no_grad():
        for chunk in images.split(batch_size):
            total -= objective.differentiable_loss(
                model.model, guide.guide, chunk.to(device)
            ).item()
    return total / len(images)
