"""Throughput of IWAE evaluation (K importance samples per image) for DRAW and DooD.

For each model: images/s and GFLOP/s of :func:`inference.iwae.importance_log_weights` at K = 200
on a batch of test images, with the pass size chosen automatically (the default a user gets) and,
with ``--rows``, at fixed rows per pass; the FLOPs of a pass are counted by
``torch.utils.flop_counter`` (matrix products and convolutions), and set against this machine's
single-thread sgemm peak measured in the same run, with the share of time spent in matrix
products (one profiled pass). Untrained weights: the work of a pass does not depend on them
(DooD renders every stroke slot, drawn or not).

    python benchmarks/iwae_throughput.py --threads 1 --models draw:mnist dood:hours dood:dood
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pyro
import torch
from pyro import poutine
from torch.utils.flop_counter import FlopCounterMode

if __package__ in (None, ""):  # run as a script: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import matmul_share, prepare, sgemm_peak_gflops, write_result  # noqa: E402
from generative.dood_config import dood_config  # noqa: E402
from generative.draw import draw_config  # noqa: E402
from inference.iwae import importance_log_weights  # noqa: E402
from tasks.data.registry import load_images  # noqa: E402
from tasks.dood.models import build_dood  # noqa: E402
from tasks.draw.models import build_draw  # noqa: E402

DATASETS = {"draw": "binarized_mnist", "dood": "mnist50"}


def build(spec: str) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """``family:config`` → model, guide and the dataset its images come from."""
    family, _, config = spec.partition(":")
    if family == "draw":
        model, guide = build_draw(draw_config(config or "mnist").to_dict())
    elif family == "dood":
        model, guide = build_dood(dood_config(config or "hours").to_dict())
    else:
        raise SystemExit(f"--models {spec}: expected draw:<config> or dood:<config>")
    return model.eval(), guide.eval(), DATASETS[family]


def forward_pass(model: torch.nn.Module, guide: torch.nn.Module, x: torch.Tensor) -> None:
    """One guide pass and the replayed model on ``x``: the work of a chunk."""
    trace = poutine.trace(guide.guide).get_trace(x)
    poutine.replay(model.model, trace=trace)(x)


def pass_flops(model: torch.nn.Module, guide: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of :func:`forward_pass` (counted with autograd on: the counter's module hooks need
    it; the count is the same)."""
    counter = FlopCounterMode(display=False)
    with counter:
        forward_pass(model, guide, x)
    return counter.get_total_flops()


def measure(model, guide, x: torch.Tensor, k: int, rows: int | None, reps: int) -> float:
    """Best seconds of ``reps`` IWAE evaluations of ``x`` at ``k`` samples."""
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        importance_log_weights(model.model, guide.guide, x, num_particles=k, max_rows=rows)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["draw:mnist", "dood:hours"])
    parser.add_argument("--iwae-samples", type=int, default=200)
    parser.add_argument("--images", type=int, default=10, help="test images per evaluation")
    parser.add_argument("--rows", type=int, nargs="*", default=[], help="also these pass sizes")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    prepare(args.threads)
    peak = sgemm_peak_gflops()
    result: dict = {
        "iwae_samples": args.iwae_samples,
        "threads": torch.get_num_threads(),
        "sgemm_peak_gflops": peak,
        "models": {},
    }
    with pyro.validation_enabled(False):
        for spec in args.models:
            model, guide, dataset = build(spec)
            x = load_images(dataset, "test", num_examples=args.images).images
            per_row = pass_flops(model, guide, x[:1])
            k = args.iwae_samples
            entry = {"dataset": dataset, "flops_per_row": per_row, "sizes": {}}
            for rows in [None, *args.rows]:
                seconds = measure(model, guide, x, k, rows, args.reps)
                gflops = per_row * k * x.shape[0] / seconds / 1e9
                entry["sizes"]["auto" if rows is None else str(rows)] = {
                    "images_per_second": x.shape[0] / seconds,
                    "gflops_per_second": gflops,
                    "fraction_of_sgemm_peak": gflops / peak,
                }
                print(
                    f"{spec} K={k} rows/pass {rows or 'auto'}: {x.shape[0] / seconds:.2f} img/s,"
                    f" {gflops:.1f} GFLOP/s ({gflops / peak:.0%} of sgemm peak {peak:.0f})",
                    flush=True,
                )
            xr = x.repeat(max(1, 1024 // x.shape[0]), 1, 1, 1)
            entry["profile_1024_rows"] = matmul_share(
                lambda xr=xr, m=model, g=guide: _no_grad_pass(m, g, xr), per_row * xr.shape[0]
            )
            p = entry["profile_1024_rows"]
            print(
                f"  one pass of {xr.shape[0]} rows: matrix products and convolutions"
                f" {p['matmul_seconds']:.3f} s at"
                f" {p['matmul_gflops_per_second']:.1f} GFLOP/s, other {p['other_seconds']:.3f} s,"
                f" {p['aten_calls']} aten calls"
            )
            result["models"][spec] = entry
    if args.json:
        write_result(args.json, result)
    return result


@torch.no_grad()
def _no_grad_pass(model, guide, x: torch.Tensor) -> None:
    forward_pass(model, guide, x)


if __name__ == "__main__":
    main()
