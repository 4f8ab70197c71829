"""Training throughput of RAM (6 glimpses, 28×28 MNIST): Pyro model + ``RAMObjective`` against a
plain-PyTorch implementation of the same network and loss.

Both sides use the very same ``RAM`` module (same weights), the same batch, Adam and gradient
clipping. The plain side runs the network directly and writes RAM's hybrid loss (sec. 3.2:
cross-entropy + REINFORCE with the 0/1 reward and a learned baseline + the baseline's squared error)
by hand (:func:`benchmarks.references.ram.plain_ram_loss`); the Pyro side traces ``RAM.model`` and
applies :class:`inference.reinforce.RAMObjective`. Both draw their random locations with the same
torch calls, so with equal seeds they compute the same loss (checked in ``tests/test_ram.py``).
Steps alternate between the sides so machine noise hits both alike; the median time per step of each
is reported with images/s and the ratio Pyro / plain, in wall time and in this process's CPU time
(the latter is insensitive to other processes sharing the cores; the 1-minute load average is
recorded).


    OMP_NUM_THREADS=1 python benchmarks/ram_step.py --batch-size 100 --steps 200 --json
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import pyro
import torch

from generative.ram import RAM, ram_config
from guides.ram import RAMGuide
from inference.reinforce import RAMObjective

if __package__ in (None, ""):  # run as a script: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    arithmetic_report,
    interleaved_medians,
    prepare,
    step_parser,
    timed_step,
)
from benchmarks.references.ram import plain_ram_loss  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parents[1] / "examples/results/benchmark_ram_step.json"


def main(argv: list[str] | None = None) -> dict:
    parser = step_parser(__doc__.splitlines()[0], config="mnist_28", steps=100, warmup=10)
    parser.add_argument(
        "--json",
        nargs="?",
        const=str(DEFAULT_JSON),
        default=None,
        help=f"also write the result here (no value: {DEFAULT_JSON})",
    )
    args = parser.parse_args(argv)
    prepare(args.threads)
    ram = RAM(ram_config(args.config))
    guide = RAMGuide(ram)
    params = list(ram.parameters())
    optim = torch.optim.Adam(params, lr=1e-3)
    c = ram.config
    # A fixed batch of MNIST-like inputs (throughput does not depend on the pixel values).
    images = (torch.rand(args.batch_size, c.channels, c.height, c.width) < 0.2).float()
    labels = torch.randint(0, c.num_classes, (args.batch_size,))
    objective = RAMObjective("hybrid")

    losses = {
        "pyro": lambda: objective(ram, guide, (images, labels), 0)[0],
        "plain": lambda: plain_ram_loss(ram, images, labels)[0],
    }
    sides = {k: partial(timed_step, fn, params, optim, 10.0) for k, fn in losses.items()}
    reps = {k: args.steps for k in sides}
    wall, cpu_time = interleaved_medians(sides, reps, args.warmup, alternate=True)
    result = {
        "benchmark": "ram_step",
        "config": args.config,
        "num_glimpses": c.num_glimpses,
        "image_size": [c.height, c.width],
        "batch_size": args.batch_size,
        "steps_per_side": args.steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
    }
    for name, med in wall.items():
        cpu = cpu_time[name]
        result[name] = {
            "median_step_ms": 1000 * med,
            "images_per_second": args.batch_size / med,
            "median_step_cpu_ms": 1000 * cpu,
        }
    result["ratio_pyro_over_plain"] = (
        result["pyro"]["median_step_ms"] / result["plain"]["median_step_ms"]
    )
    # CPU time of this process only: robust to other processes preempting the benchmark
    result["ratio_pyro_over_plain_cpu"] = (
        result["pyro"]["median_step_cpu_ms"] / result["plain"]["median_step_cpu_ms"]
    )
    result.update(arithmetic_report(losses, cpu_time))  # GFLOP/s at the CPU-time medians
    result["load_average_1min"] = os.getloadavg()[0]
    result["target_ratio"] = 1.05
    print(json.dumps(result, indent=2))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
