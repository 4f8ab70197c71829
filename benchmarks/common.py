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

__all__ = [
    "arithmetic_line",
    "arithmetic_report",
    "interleaved_medians",
    "matmul_share",
    "prepare",
    "sgemm_peak_gflops",
    "step_flops",
    "step_parser",
    "timed_step",
    "write_result",
]


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


def step_flops(loss_fn: Callable[[], Tensor]) -> int:
    """Floating-point operations of ``loss_fn()`` and its backward, by
    :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions; the
    element-wise work is not counted, as in every FLOP figure of the literature)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        loss_fn().backward()
    return counter.get_total_flops()


#: The operations FlopCounterMode counts: matrix products and convolutions (forward and backward).
MATMUL_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::addbmm",
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
    "aten::_slow_conv2d_forward",
    "aten::_slow_conv2d_backward",
)


def matmul_share(run: Callable[[], object], flops: int) -> dict[str, float]:
    """Profile one ``run()`` (e.g. a loss and its backward) doing ``flops`` FLOPs: the seconds
    spent in matrix products and convolutions (``MATMUL_OPS``) and elsewhere, their own GFLOP/s
    and the number of aten calls, which says how much of the time is per-operation overhead or
    element-wise work rather than counted arithmetic."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / 1e6
    return {
        "matmul_seconds": matmul,
        "other_seconds": total - matmul,
        "matmul_gflops_per_second": flops / matmul / 1e9,
        "aten_calls": sum(e.count for e in events if e.key.startswith("aten::")),
    }


def sgemm_peak_gflops(size: int = 1024, reps: int = 20) -> float:
    """This machine's float32 matrix-product peak at the current thread count: the best of
    ``reps`` products of two ``size × size`` matrices, in GFLOP/s. The reference for the
    fraction-of-peak figures, measured in the same run as the step it is compared with."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def arithmetic_report(
    loss_fns: dict[str, Callable[[], Tensor]], seconds: dict[str, float]
) -> dict[str, dict[str, float]]:
    """For each side: the FLOPs of a step (:func:`step_flops`), its GFLOP/s at ``seconds`` per
    step and the fraction of this machine's sgemm peak (:func:`sgemm_peak_gflops`, measured
    now), under ``"flops_per_step"``, ``"gflops_per_second"``, ``"fraction_of_sgemm_peak"``,
    with the peak under ``"sgemm_peak_gflops"``."""
    peak = sgemm_peak_gflops()
    flops = {k: step_flops(fn) for k, fn in loss_fns.items()}
    gflops = {k: flops[k] / seconds[k] / 1e9 for k in loss_fns}
    return {
        "flops_per_step": flops,
        "gflops_per_second": gflops,
        "fraction_of_sgemm_peak": {k: v / peak for k, v in gflops.items()},
        "sgemm_peak_gflops": peak,
    }


def arithmetic_line(report: dict, side: str) -> str:
    """``"41.1 GFLOP/s, 21% of sgemm peak 196"`` for ``side`` of :func:`arithmetic_report`."""
    g, peak = report["gflops_per_second"][side], report["sgemm_peak_gflops"]
    return f"{g:.1f} GFLOP/s, {g / peak:.0%} of sgemm peak {peak:.0f}"


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
