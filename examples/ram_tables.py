"""Reproduce rows of RAM's Tables 1–2 (Mnih et al. 2014) and DRAW's Table 1 (Gregor et al. 2015)
within a CPU budget.

Each row trains one classifier on its dataset (training images generated on the fly), then
measures the error on the fixed test set (all 10,000 images unless ``--eval-examples``) and
writes ``examples/results/ram_<row>.json`` with the paper's number beside ours. RAM rows report
the error with one sampled glimpse path per image (headline, first glimpse random as in the
paper), along the policy mean, and with the class probabilities averaged over ``--mc-samples``
sampled paths.

    python examples/ram_tables.py --row 1a --minutes 60
    python examples/ram_tables.py --row dram_8 --minutes 120
    python examples/ram_tables.py --list
    python examples/ram_tables.py --row all --steps 20 --eval-examples 200   # smoke test
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from inference.trainer import TrainConfig
from tasks.evaluate import write_json
from tasks.ram import ClassifierJob, run_classification


@dataclass(frozen=True)
class Row:
    model: str
    config: str
    dataset: str
    paper_error: float  # percent
    source: str


ROWS: dict[str, Row] = {
    # not in the paper: a small RAM (4 glimpses of 8x8, narrow layers) for quick comparisons
    "small": Row("ram", "small", "mnist", math.nan, "small RAM on 28x28 MNIST (no paper number)"),
    # RAM Table 1a: 28x28 MNIST
    "1a": Row("ram", "mnist_28", "mnist", 1.29, "RAM Table 1a: RAM, 6 glimpses, 8x8, 1 scale"),
    "1a_fc256": Row("fc", "fc_256", "mnist", 1.35, "RAM Table 1a: FC, 2 layers (256 hiddens)"),
    # RAM Table 1b: 60x60 translated MNIST
    "1b": Row(
        "ram",
        "translated_60",
        "mnist_translated_60",
        1.84,
        "RAM Table 1b: RAM, 8 glimpses, 12x12, 3 scales",
    ),
    "1b_fc64": Row(
        "fc", "fc_64", "mnist_translated_60", 7.56, "RAM Table 1b: FC, 2 layers (64 hiddens)"
    ),
    "1b_fc256": Row(
        "fc", "fc_256", "mnist_translated_60", 3.7, "RAM Table 1b: FC, 2 layers (256 hiddens)"
    ),
    "1b_conv": Row(
        "convnet", "conv_256", "mnist_translated_60", 2.31, "RAM Table 1b: Convolutional, 2 layers"
    ),
    # RAM Table 2a: 60x60 cluttered translated MNIST (4 pieces of clutter)
    "2a": Row(
        "ram",
        "cluttered_60",
        "mnist_cluttered_60",
        5.23,
        "RAM Table 2a: RAM, 8 glimpses, 12x12, 3 scales",
    ),
    "2a_fc64": Row(
        "fc", "fc_64", "mnist_cluttered_60", 28.96, "RAM Table 2a: FC, 2 layers (64 hiddens)"
    ),
    "2a_fc256": Row(
        "fc", "fc_256", "mnist_cluttered_60", 13.2, "RAM Table 2a: FC, 2 layers (256 hiddens)"
    ),
    "2a_conv": Row(
        "convnet", "conv_256", "mnist_cluttered_60", 7.83, "RAM Table 2a: Convolutional, 2 layers"
    ),
    # RAM Table 2b / DRAW Table 1: 100x100 cluttered translated MNIST (8 pieces of clutter)
    "2b": Row(
        "ram",
        "cluttered_100",
        "mnist_cluttered_100",
        10.83,
        "RAM Table 2b: RAM, 8 glimpses, 12x12, 4 scales",
    ),
    "2b_conv": Row(
        "convnet",
        "conv_86",
        "mnist_cluttered_100",
        16.51,
        "RAM Table 2b: Convolutional, 2 layers (DRAW Table 1 lists 14.35% for it)",
    ),
    "dram_4": Row(
        "dram",
        "cluttered_100_4",
        "mnist_cluttered_100",
        4.18,
        "DRAW Table 1: Differentiable RAM, 4 glimpses, 12x12",
    ),
    "dram_8": Row(
        "dram",
        "cluttered_100",
        "mnist_cluttered_100",
        3.36,
        "DRAW Table 1: Differentiable RAM, 8 glimpses, 12x12",
    ),
}


def run_row(name: str, args: argparse.Namespace, argv: list[str]) -> dict:
    row = ROWS[name]
    out = Path(args.out or "runs/ram_tables") / name
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_decay=args.lr_decay,
        min_lr=args.min_lr,
        seed=args.seed,
        validate_every=args.validate_every,
        checkpoint_every=args.validate_every,
        log_every=50,
        max_seconds=None if args.minutes is None else args.minutes * 60,
    )
    job = ClassifierJob(
        model=row.model,
        config=row.config,
        dataset=row.dataset,
        out=str(out),
        objective=args.objective,
        num_train=args.num_train,
        num_valid=args.num_valid,
        eval_examples=args.eval_examples,
        mc_samples=args.mc_samples,
        resume=str(out / "checkpoint.pt") if args.resume else None,
        device=args.device,
        data_dir=args.data_dir,
        progress=not args.no_progress,
    )
    result = run_classification(job, config)
    ours = 100 * result["test"]["error"]
    result.update(
        row=name,
        experiment=row.source,
        paper_error_percent=row.paper_error,
        error_percent=ours,
        error_stderr_percent=100 * result["test"]["error_stderr"],
        threads=torch.get_num_threads(),
        budget={"steps": args.steps, "minutes": args.minutes},
        command="python examples/ram_tables.py " + " ".join(argv),
    )
    results = Path(args.results)
    write_json(result, results / f"ram_{name}.json")
    figure = out / "glimpses.png"
    if figure.is_file():
        figures = results.parent / "figures"
        figures.mkdir(parents=True, exist_ok=True)
        shutil.copy(figure, figures / f"ram_{name}_glimpses.png")
    print(f"[{name}] {row.source}: ours {ours:.2f}% vs paper {row.paper_error:.2f}%")
    return result


def compare_objectives(name: str, args: argparse.Namespace, argv: list[str]) -> dict:
    """Train RAM row ``name`` with each objective (hybrid, tracegraph) for the same steps and
    seeds; write ``ram_objectives_<row>.json`` with the test errors side by side."""
    row = ROWS[name]
    if row.model != "ram":
        raise SystemExit(f"--compare-objectives needs a RAM row, {name!r} is {row.model}")
    runs = []
    for seed in range(args.seed, args.seed + args.compare_seeds):
        for objective in ("hybrid", "tracegraph"):
            sub = argparse.Namespace(**{**vars(args), "objective": objective, "seed": seed})
            sub.out = str(
                Path(args.out or "runs/ram_tables") / f"objectives_{name}_{objective}_{seed}"
            )
            sub.results = str(Path(args.out or "runs/ram_tables") / "objective_results")
            result = run_row(name, sub, argv)
            runs.append(
                {
                    "objective": objective,
                    "seed": seed,
                    "steps": result["steps"],
                    "train_seconds": result["train_seconds"],
                    "error_percent": result["error_percent"],
                    "error_mean_path_percent": 100 * result["test"]["error_mean_path"],
                    "error_mc_percent": 100 * result["test"]["error_mc"],
                    "num_examples": result["test"]["num_examples"],
                }
            )
    summary = {
        "row": name,
        "experiment": f"{row.source}: hybrid (0/1 reward) vs tracegraph (log-likelihood reward)",
        "config": row.config,
        "num_train": args.num_train,
        "batch_size": args.batch_size,
        "runs": runs,
        "command": "python examples/ram_tables.py " + " ".join(argv),
    }
    for objective in ("hybrid", "tracegraph"):
        errors = [r["error_percent"] for r in runs if r["objective"] == objective]
        summary[f"mean_error_percent_{objective}"] = sum(errors) / len(errors)
    write_json(summary, Path(args.results) / f"ram_objectives_{name}.json")
    print(
        f"[{name}] equal steps: hybrid {summary['mean_error_percent_hybrid']:.2f}% vs "
        f"tracegraph {summary['mean_error_percent_tracegraph']:.2f}% (mean over seeds)"
    )
    return summary


def main(argv: list[str] | None = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--row", nargs="+", default=["1a"], help=f"rows to run ({', '.join(ROWS)} or all)"
    )
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--steps", type=int, default=1_000_000, help="upper bound on steps")
    parser.add_argument("--minutes", type=float, default=None, help="training wall-time budget")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0, help="lr factor per step")
    parser.add_argument("--min-lr", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objective", default="hybrid", choices=["hybrid", "tracegraph"])
    parser.add_argument("--validate-every", type=int, default=1000)
    parser.add_argument("--num-valid", type=int, default=1000)
    parser.add_argument(
        "--eval-examples", type=int, default=None, help="test images (default: all 10000)"
    )
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument(
        "--num-train", type=int, default=None, help="train on a seeded subset of the digits"
    )
    parser.add_argument(
        "--compare-objectives",
        action="store_true",
        help="train each RAM row with both objectives (equal steps) and compare",
    )
    parser.add_argument("--compare-seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resume", action="store_true", help="continue from runs/.../checkpoint")
    parser.add_argument("--out", default=None, help="run folder (default: runs/ram_tables)")
    parser.add_argument("--results", default="examples/results")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, row in ROWS.items():
            print(
                f"{name:10s} {row.model:8s} {row.config:16s} {row.dataset:22s} "
                f"{row.paper_error:6.2f}%  {row.source}"
            )
        return []
    rows = list(ROWS) if args.row == ["all"] else args.row
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)} or all")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compare_objectives:
        return [compare_objectives(name, args, argv) for name in rows]
    return [run_row(name, args, argv) for name in rows]


if __name__ == "__main__":
    main()
