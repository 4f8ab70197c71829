"""Reproduce DRAW's binarized-MNIST result (Gregor et al. 2015, Table 2) within a CPU budget.

Trains the Table 3 "MNIST Model" (T=64, 256 LSTM units, 100 latents, 2×2 read, 5×5 write) or
"DRAW without attention" on the fixed binarization of Larochelle & Murray, then estimates the
test negative log-likelihood with IWAE (K ≥ 200) through the generic evaluation task, and writes
the metrics JSON and pictures. Paper: DRAW ≤ 80.97 nats, without attention ≤ 87.40 nats.

    python examples/draw_mnist.py --config mnist --minutes 50 --out runs/draw_mnist
    python examples/draw_mnist.py --config mnist_no_attention --minutes 50 --out runs/draw_mnist_na
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from inference.trainer import TrainConfig
from tasks.data import load_images
from tasks.evaluate import evaluate_split, format_summary, write_json
from tasks.models import load_trained
from tasks.train import TrainJob, run_training

PAPER_NLL = {"mnist": 80.97, "mnist_no_attention": 87.40}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mnist", choices=sorted(PAPER_NLL))
    parser.add_argument("--minutes", type=float, default=50.0, help="training wall-time budget")
    parser.add_argument("--steps", type=int, default=1_000_000, help="upper bound on steps")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--iwae-samples", type=int, default=200)
    parser.add_argument(
        "--eval-examples",
        type=int,
        default=1000,
        help="test images for IWAE (fixed random subset; 10000 = all)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--results", default="examples/results")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out or f"runs/draw_{args.config}")
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        validate_every=500,
        checkpoint_every=500,
        log_every=50,
        max_seconds=args.minutes * 60,
    )
    job = TrainJob(
        model="draw",
        config=args.config,
        dataset="binarized_mnist",
        out=str(out),
        data_dir=args.data_dir,
        resume=args.resume,
        device=args.device,
        iwae_samples=2,
        eval_examples=100,
        progress=True,
    )
    start = time.perf_counter()
    run_training(job, config)  # also writes pictures and a quick K=2 check
    train_seconds = time.perf_counter() - start

    model, guide, ckpt = load_trained(out / "checkpoint.pt", device=args.device)
    test = load_images("binarized_mnist", "test", data_dir=args.data_dir)
    result = evaluate_split(
        model.model,
        guide.guide,
        test,
        num_examples=args.eval_examples,
        num_particles=args.iwae_samples,
        device=args.device,
    )
    result.update(
        experiment=f"DRAW binarized MNIST ({args.config})",
        config=args.config,
        model_config=ckpt["model_config"],
        dataset="binarized_mnist",
        split="test",
        binarization=test.binarization,
        steps=ckpt["step"],
        epochs=ckpt["step"] * args.batch_size / 50_000,
        train_minutes=train_seconds / 60,
        threads=torch.get_num_threads(),
        paper_nll_upper_bound=PAPER_NLL[args.config],
        command="python examples/draw_mnist.py " + " ".join(sys.argv[1:] if argv is None else argv),
    )
    results = Path(args.results)
    summary = {k: v for k, v in result.items() if k != "per_example"}
    write_json(summary, results / f"draw_mnist_{args.config}.json")
    write_json(result, out / "eval_iwae.json")
    figures = results.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name in ("generation", "nearest"):
        shutil.copy(out / f"{name}.png", figures / f"draw_mnist_{args.config}_{name}.png")
    print(format_summary(result))
    print(json.dumps({k: summary[k] for k in ("nll", "elbo", "steps", "epochs")}, indent=1))
    return result


if __name__ == "__main__":
    main()
