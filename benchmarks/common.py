"""What the benchmarks share: the command-line set-up, the timed training step, the interleaved
timing of the sides being compared and the JSON result file."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import torch
from torch import Tensor

__all__ = ["interleaved_medians", "prepare", "step_parser", "timed_step", "write_result"]


def step_parser(
    description: str, *, config: str, steps: int, warmup: int
) -> argparse.ArgumentParser:
    """A parser with ``--config``, ``--batch-size`` (100), ``--steps`` (timed steps per side),
    ``--warmup`` and ``--threads``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=config)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=steps, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--threads", type=int, default=None)
    return parser


def prepare(threads: int | None, seed: int | None = 0) -> None:
    """``--threads`` (if given), Pyro validation off, and ``torch.manual_seed(seed)`` (if given)."""
    if threads:
        torch.set_num_threads(threads)
    pyro.enable_validation(False)
    if seed is not None:
        torch.manual_seed(seed)


def timed_step(
    loss_fn: Callable[[], Tensor], params: list[Tensor], optim: torch.optim.Optimizer, clip: float
) -> float:
    """Wall seconds of one training step: ``loss_fn()``, backward, gradient-norm clipping to
    ``clip`` and ``optim.step()``."""
    start = time.perf_counter()
    optim.zero_grad(set_to_none=True)
    loss_fn().backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    optim.step()
    return time.perf_counter() - start


def interleaved_medians(
    sides: dict[str, Callable[[], float]],
    reps: dict[str, int],
    warmup: int,
    *,
    alternate: bool = False,
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall seconds per call of each side (as the side returns them) and median CPU
    seconds of the process (all threads) per call, after ``warmup`` untimed rounds. The sides
    take turns, so that machine noise hits all alike; with ``alternate`` every other round runs
    them in reverse order. On a shared machine the CPU time is the steadier number with one
    thread."""
    wall: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(warmup + max(reps.values())):
        order = list(reversed(sides)) if alternate and i % 2 else list(sides)
        for name in order:
            if i < warmup + reps[name]:
                c0 = time.process_time()
                t = sides[name]()
                c = time.process_time() - c0
                if i >= warmup:
                    wall[name].append(t)
                    cpu[name].append(c)
    median = statistics.median
    return {k: median(v) for k, v in wall.items()}, {k: median(v) for k, v in cpu.items()}


def write_result(path: str | Path, result: dict) -> None:
    """``result`` as indented JSON at ``path`` (its folder created if need be)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2)
