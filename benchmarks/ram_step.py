"""Training throughput of RAM (6 glimpses, 28×28 MNIST): Pyro model + ``RAMObjective`` against a
plain-PyTorch implementation of the same network and loss.

Both sides use the very same ``RAM`` module (same weights), the same batch, Adam and gradient
clipping. The plain side runs the network directly and writes RAM's hybrid loss (sec. 3.2:
cross-entropy + REINFORCE with the 0/1 reward and a learned baseline + the baseline's squared
error) by hand; the Pyro side traces ``RAM.model`` and applies
:class:`inference.reinforce.RAMObjective`. Both draw their random locations with the same torch
calls, so with equal seeds they compute the same loss (checked in ``tests/test_ram.py``). Steps
alternate between the sides so machine noise hits both alike; the median time per step of each is
reported with images/s and the ratio Pyro / plain, in wall time and in this process's CPU time
(the latter is insensitive to other processes sharing the cores; the 1-minute load average is
recorded).

    OMP_NUM_THREADS=1 python benchmarks/ram_step.py --batch-size 100 --steps 200 --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import pyro
import torch
import torch.nn.functional as F
from torch import Tensor

from generative.glimpse import clip_locations
from generative.ram import RAM, RAMGuide, ram_config
from inference.reinforce import RAMObjective

DEFAULT_JSON = Path(__file__).resolve().parents[1] / "examples/results/benchmark_ram_step.json"


def plain_ram_loss(ram: RAM, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
    """RAM's hybrid loss per example, in plain PyTorch (no Pyro), for ``ram``'s weights.

    Locations are drawn exactly as the Pyro model draws them: ``l_0`` uniform on ``[−1, 1]²``
    (``low + rand·(high − low)``), then ``l_t = torch.normal(f_l(h_t), σ)`` without gradient.
    """
    c = ram.config
    batch = images.shape[0]
    h, cell = ram.initial_state(batch, images)
    state = (h, cell)
    log_probs, baselines = [], []
    for t in range(c.num_glimpses):
        baselines.append(ram.baseline_net(state[0].detach()).squeeze(-1))
        if t == 0:
            low, high = images.new_full((batch, 2), -1.0), images.new_full((batch, 2), 1.0)
            loc = low + torch.rand(batch, 2, dtype=images.dtype) * (high - low)
            log_probs.append(images.new_full((batch,), -2 * math.log(2.0)))  # log 1/area
        else:
            mean = ram.location_mean(state[0])
            with torch.no_grad():
                loc = torch.normal(mean, c.location_std)
            std = c.location_std
            lp = -((loc - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)
            log_probs.append(lp.sum(-1))
        state = ram.core(state, ram.glimpse_net(images, clip_locations(loc)))
    logits = ram.action_net(state[0])
    cross_entropy = F.cross_entropy(logits, labels)
    reward = (logits.argmax(-1) == labels).to(images.dtype)
    lp = torch.stack(log_probs)  # (T, B)
    b = torch.stack(baselines)  # (T, B)
    advantage = (reward - b).detach()
    reinforce = -(advantage * lp).sum(0).mean()
    baseline_mse = (reward - b).pow(2).sum(0).mean()
    loss = cross_entropy + reinforce + baseline_mse
    return loss, {"accuracy": reward.mean().item(), "cross_entropy": cross_entropy.item()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mnist_28")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--json",
        nargs="?",
        const=str(DEFAULT_JSON),
        default=None,
        help=f"also write the result here (no value: {DEFAULT_JSON})",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    torch.manual_seed(0)
    ram = RAM(ram_config(args.config))
    guide = RAMGuide(ram)
    params = list(ram.parameters())
    optim = torch.optim.Adam(params, lr=1e-3)
    c = ram.config
    # A fixed batch of MNIST-like inputs (throughput does not depend on the pixel values).
    images = (torch.rand(args.batch_size, c.channels, c.height, c.width) < 0.2).float()
    labels = torch.randint(0, c.num_classes, (args.batch_size,))
    objective = RAMObjective("hybrid")

    def step(loss_fn) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        optim.zero_grad(set_to_none=True)
        loss, _ = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optim.step()
        return time.perf_counter() - start, time.process_time() - cpu

    sides = {
        "pyro": lambda: objective(ram, guide, (images, labels), 0),
        "plain": lambda: plain_ram_loss(ram, images, labels),
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    cpu_times: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(args.warmup + args.steps):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for name in order:
            elapsed, cpu = step(sides[name])
            if i >= args.warmup:
                times[name].append(elapsed)
                cpu_times[name].append(cpu)
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
    for name, ts in times.items():
        med, cpu = statistics.median(ts), statistics.median(cpu_times[name])
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
    result["load_average_1min"] = os.getloadavg()[0]
    result["target_ratio"] = 1.10
    print(json.dumps(result, indent=2))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
