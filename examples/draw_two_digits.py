"""DRAW generating two MNIST digits on a 60×60 canvas (Gregor et al. 2015, sec. 4.3, Fig. 8).

Two 28×28 digits at random positions, intensities added and clipped to 1, dynamically binarised.
Table 3 has no row for this task: the config ``mnist_two_digits`` (T=64, 256 units, 100 latents,
12×12 read and write) is our choice. Trains within a wall-time budget, then writes the generation
sequences (does the network draw one digit, then the other?) and a metrics JSON.

    python examples/draw_two_digits.py --minutes 15 --out runs/draw_two_digits
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from inference.trainer import TrainConfig
from tasks.evaluate import write_json
from tasks.train import TrainJob, run_training


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-time budget")
    parser.add_argument("--config", default="mnist_two_digits")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/draw_two_digits")
    parser.add_argument("--results", default="examples/results")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        steps=1_000_000,
        batch_size=args.batch_size,
        lr=args.lr,
        validate_every=500,
        checkpoint_every=250,
        log_every=25,
        max_seconds=args.minutes * 60,
    )
    job = TrainJob(
        model="draw",
        config=args.config,
        dataset="two_digit_mnist",
        out=args.out,
        data_dir=args.data_dir,
        device=args.device,
        iwae_samples=20,
        eval_examples=200,
        num_valid=500,
    )
    result = run_training(job, config)
    steps = result["step"]
    summary = {k: v for k, v in result.items() if k != "per_example"}
    summary.update(
        experiment="DRAW two-digit 60x60 MNIST generation",
        config=args.config,
        steps=steps,
        batch_size=args.batch_size,
        train_minutes_budget=args.minutes,
        threads=torch.get_num_threads(),
        command="python examples/draw_two_digits.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    )
    results = Path(args.results)
    write_json(summary, results / "draw_two_digits.json")
    figures = results.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(args.out) / "generation.png", figures / "draw_two_digits_generation.png")
    return summary


if __name__ == "__main__":
    main()
