"""DooD's differentiable renderer (appendix B.1, Eqs. 10–14): the official dense rasteriser vs ours.

Reference ("dense"): the official implementation (``Bezier._raster_base`` of
github.com/yichao-liang/DooD and its normalisation), as
:func:`benchmarks.references.renderer.dense_render` — the same operations on tensors of the same
shapes, so the cost is the same. Ours: :func:`generative.bezier.render_strokes` +
:func:`generative.bezier.compose_canvas` (separable Gaussian: ``Σ_n`` as an ``(H × S) @ (S × W)``
matmul per stroke, fused backward, Eqs. 12–13 as one scalar multiply). Also timed: the same
separable computation through generic autograd ops ("separable_autograd"), to show what the
hand-written backward adds.

Both run forward + backward on the same inputs in the same process, alternating, and the median
is reported as strokes/s (one stroke = one ``H × W`` image of one Bézier curve). A second
measurement times the renderer work of one DooD training step: the guide's ``K`` canvas updates
(``B`` strokes each, no gradient) plus the likelihood's ``B × K`` strokes with gradient.
Agreement is checked on the timed inputs (forward, float32) and on gradients (float64, a small
batch, against the dense reference with the max *not* detached, i.e. Eq. 12 as written; the
difference to the official detached max is reported too).

    OMP_NUM_THREADS=1 python benchmarks/renderer.py --json examples/results/benchmark_renderer.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

if __package__ in (None, ""):  # run as a script: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import interleaved_medians, write_result  # noqa: E402
from benchmarks.references.renderer import (  # noqa: E402
    Inputs,
    dense_render,
    make_inputs,
    ours_render,
    separable_autograd_render,
)

RENDERERS: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "dense": dense_render,
    "ours": ours_render,
    "separable_autograd": separable_autograd_render,
}


def _leaves(inputs: Inputs) -> Inputs:
    return Inputs(*(t.detach().clone().requires_grad_() for t in inputs))


def forward_backward(name: str, inputs: Inputs, height: int, width: int, points: int) -> float:
    """Seconds for one forward + backward of the whole batch."""
    leaves = _leaves(inputs)
    weights = torch.linspace(0.5, 1.5, height * width).reshape(height, width)
    start = time.perf_counter()
    _, canvas = RENDERERS[name](leaves, height, width, points)
    (canvas * weights).sum().backward()
    return time.perf_counter() - start


def training_step_work(name: str, inputs: Inputs, height: int, width: int, points: int) -> float:
    """Seconds for the renderer work of one DooD step: ``K`` no-grad canvas updates of ``B``
    strokes (the guide) and one forward + backward of all ``B × K`` strokes (the likelihood)."""
    cp, sigma, omega0, omega1 = inputs
    start = time.perf_counter()
    with torch.no_grad():
        for k in range(cp.shape[1]):
            sl = slice(k, k + 1)
            step = Inputs(cp[:, sl], sigma[:, sl], omega0[:, sl], omega1)
            RENDERERS[name](step, height, width, points)
    elapsed = time.perf_counter() - start
    return elapsed + forward_backward(name, inputs, height, width, points)


def agreement(height: int, width: int, points: int, num_control: int, inputs: Inputs) -> dict:
    """Forward agreement on the timed inputs; gradient agreement in float64 on 4 × 6 strokes."""
    with torch.no_grad():
        strokes_d, canvas_d = dense_render(inputs, height, width, points)
        strokes_o, canvas_o = ours_render(inputs, height, width, points)
    out = {
        "forward_float32_max_abs_diff_strokes": (strokes_d - strokes_o).abs().max().item(),
        "forward_float32_max_abs_diff_canvas": (canvas_d - canvas_o).abs().max().item(),
    }
    small = make_inputs(4, 6, num_control, seed=1, dtype=torch.float64)
    weights = torch.rand(height, width, generator=torch.Generator().manual_seed(2)).double()

    def grads(fn: Callable, **kw) -> list[Tensor]:
        leaves = _leaves(small)
        (fn(leaves, height, width, points, **kw)[1] * weights).sum().backward()
        return [t.grad for t in leaves]

    g_ours = grads(ours_render)
    g_exact = grads(dense_render, detach_max=False)
    g_official = grads(dense_render, detach_max=True)
    names = ("control_points", "sigma", "omega0", "omega1")

    def rel(a: list[Tensor], b: list[Tensor]) -> dict[str, float]:
        return {
            n: ((x - y).norm() / y.norm().clamp_min(1e-300)).item()
            for n, x, y in zip(names, a, b, strict=True)
        }

    out["grad_float64_rel_err_vs_dense_eq12"] = rel(g_ours, g_exact)
    out["grad_float64_rel_diff_vs_official_detached_max"] = rel(g_ours, g_official)
    out["all_control_points_get_gradient"] = bool((g_ours[0].abs().sum(-1) > 0).all())
    out["sigma_gets_gradient"] = bool((g_ours[1].abs() > 0).all())
    out["output_in_unit_interval"] = bool(
        (strokes_o.min() >= 0)
        & (strokes_o.max() <= 1)
        & (canvas_o.min() >= 0)
        & (canvas_o.max() <= 1)
    )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--strokes", type=int, default=6)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--points", type=int, default=100, help="S, curve samples (Eq. 10)")
    parser.add_argument(
        "--control-points", type=int, default=4, help="J (DooDConfig: 4; official code: 5)"
    )
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions of the dense side")
    parser.add_argument("--fast-reps", type=int, default=30, help="timed repetitions of ours")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size, points = args.size, args.points
    inputs = make_inputs(args.batch_size, args.strokes, args.control_points)
    names = list(RENDERERS)
    reps = {"dense": args.reps, "ours": args.fast_reps, "separable_autograd": args.fast_reps}
    sides = {n: partial(forward_backward, n, inputs, size, size, points) for n in names}
    fwd_bwd, _ = interleaved_medians(sides, reps, args.warmup)
    sides = {n: partial(training_step_work, n, inputs, size, size, points) for n in names}
    step, _ = interleaved_medians(sides, reps, args.warmup)
    n_strokes = args.batch_size * args.strokes
    result = {
        "config": {
            "batch_size": args.batch_size,
            "strokes": args.strokes,
            "height": size,
            "width": size,
            "curve_points_S": points,
            "control_points_J": args.control_points,
            "dtype": "float32",
            "threads": torch.get_num_threads(),
            "timed_reps": reps,
        },
        "forward_backward_seconds": fwd_bwd,
        "forward_backward_strokes_per_second": {k: n_strokes / v for k, v in fwd_bwd.items()},
        "speedup_forward_backward_dense_over_ours": fwd_bwd["dense"] / fwd_bwd["ours"],
        "training_step_renderer_seconds": step,
        "speedup_training_step_dense_over_ours": step["dense"] / step["ours"],
        "agreement": agreement(size, size, points, args.control_points, inputs),
    }
    sps = result["forward_backward_strokes_per_second"]
    print(
        f"renderer B={args.batch_size} K={args.strokes} {size}x{size} S={points} "
        f"J={args.control_points}, {torch.get_num_threads()} thread(s), forward+backward:"
    )
    for name in names:
        print(f"  {name:>18}: {sps[name]:10.0f} strokes/s  ({fwd_bwd[name] * 1e3:9.1f} ms)")
    print(f"  speed-up dense/ours: {result['speedup_forward_backward_dense_over_ours']:.1f}x")
    print(
        "renderer work of one training step (K no-grad canvas updates + likelihood fwd/bwd): "
        + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in step.items())
        + f"; speed-up dense/ours {result['speedup_training_step_dense_over_ours']:.1f}x"
    )
    agree = result["agreement"]
    print(
        "agreement: forward max |Δ| strokes "
        f"{agree['forward_float32_max_abs_diff_strokes']:.2e}, canvas "
        f"{agree['forward_float32_max_abs_diff_canvas']:.2e}; gradient rel. error vs Eq. 12 "
        + ", ".join(f"{k} {v:.1e}" for k, v in agree["grad_float64_rel_err_vs_dense_eq12"].items())
    )
    worst = max(agree["grad_float64_rel_err_vs_dense_eq12"].values())
    ok = (
        agree["forward_float32_max_abs_diff_canvas"] < 1e-4
        and agree["forward_float32_max_abs_diff_strokes"] < 1e-4
        and worst < 1e-8
        and agree["all_control_points_get_gradient"]
        and agree["sigma_gets_gradient"]
        and agree["output_in_unit_interval"]
    )
    result["agreement_ok"] = ok
    if not math.isfinite(worst) or not ok:
        print("AGREEMENT CHECK FAILED")
    if args.json:
        write_result(args.json, result)
    return result


if __name__ == "__main__":
    main()
