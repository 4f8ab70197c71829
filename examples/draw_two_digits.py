"""DRAW generating two MNIST digits on a 60×60 canvas (Gregor et al. 2015, sec. 4.3, Fig. 8).

Two 28×28 digits at random positions, intensities added and clipped to 1, dynamically binarised.
Table 3 has no row for this task: the config ``mnist_two_digits`` (T=64, 256 units, 100 latents,
12×12 read and write) is our choice. Trains within a wall-time budget, then writes the generation
sequences (does the network draw one digit, then the other?) and a metrics JSON. Every option of
``pyro-draw train draw`` applies; ``--minutes`` sets ``--max-seconds``.

    python examples/draw_two_digits.py --minutes 15 --out runs/draw_two_digits
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch

from tasks.cli import add_train_options, parse_train_options
from tasks.draw import FAMILY
from tasks.results import write_json
from tasks.training import train

DEFAULTS = {
    "config": "mnist_two_digits",
    "dataset": "two_digit_mnist",
    "out": "runs/draw_two_digits",
    "steps": 1_000_000,
    "batch_size": 50,
    "validate_every": 500,
    "checkpoint_every": 250,
    "log_every": 25,
}


def main(argv: list[str] | None = None) -> dict:
    spec = FAMILY.model("draw")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--results", default="examples/results", help="folder of the JSON")
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-time budget")
    add_train_options(parser, FAMILY, spec, DEFAULTS)
    parser.set_defaults(iwae_samples=20, eval_examples=200, num_valid=500)
    run, options, args = parse_train_options(parser, argv, spec)
    run = replace(run, max_seconds=run.max_seconds or args.minutes * 60)
    result = train(FAMILY, "draw", run, options)
    summary = {k: v for k, v in result.items() if k != "per_example"}
    summary.update(
        experiment="DRAW two-digit 60x60 MNIST generation",
        config=run.config,
        steps=result["step"],
        batch_size=run.batch_size,
        train_minutes_budget=run.max_seconds / 60,
        threads=torch.get_num_threads(),
        command="python examples/draw_two_digits.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    )
    results = Path(args.results)
    write_json(summary, results / "draw_two_digits.json")
    figures = results.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(run.out) / "generation.png", figures / "draw_two_digits_generation.png")
    return summary


if __name__ == "__main__":
    main()
