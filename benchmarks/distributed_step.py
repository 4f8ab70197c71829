"""Data-parallel training throughput on 1, 2, … processes (torchrun, gloo on CPU): examples per
second of the training step, the scaling efficiency ``(throughput_N / N) / throughput_1``, and
the share of the step spent in the gradient all-reduce.

Each world size runs ``--steps`` steps (after ``--warmup``) of the model's own training plan
(its data, batches and objective, as ``pyro-draw train``) with the same global batch, one thread
per process. Measure on an otherwise idle machine: a busy core halves a 2-process run.

    python benchmarks/distributed_step.py --model draw --config mnist --dataset binarized_mnist \\
        --batch-size 64 --nproc 1 2 --json
    python benchmarks/distributed_step.py --model dood --config hours --dataset mnist \\
        --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _worker(args: argparse.Namespace) -> None:
    import torch

    import inference.trainer as trainer_module
    from inference.distributed import init_world
    from inference.trainer import SVITrainer, TrainConfig
    from tasks import families
    from tasks.options import RunOptions

    torch.set_num_threads(1)
    world = init_world("cpu")
    family, spec = families.find_model(args.model)
    run = RunOptions(
        config=args.config,
        dataset=args.dataset,
        batch_size=args.batch_size,
        steps=args.warmup + args.steps,
        out=tempfile.mkdtemp(),
        progress=False,
    )
    options = spec.options()
    if hasattr(options, "num_train"):
        options.num_train = args.num_train
    plan = family.plan(spec, run, options, None)
    torch.manual_seed(0)
    net, guide = spec.build(plan.record.model_config)
    reduce_seconds = [0.0]
    average = trainer_module.average_gradients

    def timed_average(params):
        start = time.perf_counter()
        average(params)
        reduce_seconds[0] += time.perf_counter() - start

    trainer_module.average_gradients = timed_average
    config = TrainConfig(
        steps=args.warmup,
        batch_size=args.batch_size,
        log_every=10**9,
        validate_every=10**9,
        checkpoint_every=10**9,
        checkpoint_seconds=None,
        **plan.train_settings(),
    )
    trainer = SVITrainer(
        net,
        guide,
        plan.batches,
        config,
        out_dir=run.out,
        checkpoint_extra=plan.record.to_dict(),
        progress=False,
        objective=plan.objective(net, guide),
    )
    trainer.fit()  # warm-up
    reduce_seconds[0] = 0.0
    trainer.config.steps = args.warmup + args.steps
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    if world.is_main:
        print(
            "RESULT "
            + json.dumps(
                {
                    "processes": world.size,
                    "seconds_per_step": seconds / args.steps,
                    "examples_per_second": args.steps * args.batch_size / seconds,
                    "allreduce_share": reduce_seconds[0] / seconds,
                }
            )
        )


def _launch(args: argparse.Namespace, nproc: int) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", str(Path(__file__).resolve()), "--worker"]
    for key in ("model", "config", "dataset", "batch_size", "steps", "warmup", "num_train"):
        value = getattr(args, key)
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{nproc} processes failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="draw")
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--dataset", default="binarized_mnist")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", action="store_true", help="write examples/results JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return {}
    rows = [_launch(args, n) for n in args.nproc]
    base = rows[0]["examples_per_second"] / rows[0]["processes"]
    for row in rows:
        row["scaling_efficiency"] = row["examples_per_second"] / row["processes"] / base
        print(
            f"{row['processes']} process(es): {row['examples_per_second']:.1f} examples/s, "
            f"{row['seconds_per_step']:.3f} s/step, efficiency {row['scaling_efficiency']:.2f}, "
            f"all-reduce {100 * row['allreduce_share']:.1f}% of the step"
        )
    result = {
        "model": args.model,
        "config": args.config,
        "dataset": args.dataset,
        "global_batch": args.batch_size,
        "steps": args.steps,
        "threads_per_process": 1,
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "command": "python benchmarks/distributed_step.py " + " ".join(argv or sys.argv[1:]),
    }
    if args.json:
        path = ROOT / "examples" / "results" / f"benchmark_distributed_{args.model}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
