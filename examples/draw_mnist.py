"""Reproduce DRAW's binarized-MNIST result (Gregor et al. 2015, Table 2) within a CPU budget.

Trains the Table 3 "MNIST Model" (T=64, 256 LSTM units, 100 latents, 2×2 read, 5×5 write) or
"DRAW without attention" on the fixed binarization of Larochelle & Murray, then estimates the
test negative log-likelihood with IWAE (K = 200) through the generic evaluation task, and writes
the metrics JSON and pictures. Paper: DRAW ≤ 80.97 nats, without attention ≤ 87.40 nats. Every
option of ``pyro-draw train draw`` applies; ``--minutes`` sets ``--max-seconds``.

    python examples/draw_mnist.py --config mnist --minutes 50 --out runs/draw_mnist
    python examples/draw_mnist.py --config mnist_no_attention --minutes 50 --out runs/draw_mnist_na
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from tasks.cli import add_train_options, parse_train_options
from tasks.draw import FAMILY
from tasks.results import write_json
from tasks.training import train

PAPER_NLL = {"mnist": 80.97, "mnist_read_start": 80.97, "mnist_no_attention": 87.40}
DEFAULTS = {
    "config": "mnist",
    "dataset": "binarized_mnist",
    "steps": 1_000_000,
    "validate_every": 500,
    "checkpoint_every": 500,
    "log_every": 50,
}


def _parse(argv: list[str] | None):
    spec = FAMILY.model("draw")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--minutes", type=float, default=50.0, help="training wall-time budget")
    parser.add_argument("--results", default="examples/results", help="folder of the JSON")
    add_train_options(parser, FAMILY, spec, DEFAULTS)
    # the final test IWAE: K = 200 on a fixed random 1000-image subset (10000 = all)
    parser.set_defaults(iwae_samples=200, eval_examples=1000)
    run, options, args = parse_train_options(parser, argv, spec)
    if run.config not in PAPER_NLL:
        parser.error(f"--config: expected one of {sorted(PAPER_NLL)}, found {run.config!r}")
    out = run.out if "out" in run.given else f"runs/draw_{run.config}"
    return replace(run, out=out, max_seconds=run.max_seconds or args.minutes * 60), options, args


def _curve(path: Path, run, summary: dict) -> list[dict]:
    """The test-NLL points of this run so far: those of ``path`` when this call resumes the run
    that wrote it (same config and steps before this one), then this call's point."""
    point = {key: summary[key] for key in ("epochs", "steps", "nll", "train_minutes", "command")}
    point["stderr"] = summary["log_likelihood_stderr"]
    earlier: list[dict] = []
    if run.resume and path.exists():
        before = json.loads(path.read_text())
        same_run = before.get("config") == run.config and before.get("steps", 0) < point["steps"]
        if same_run:
            earlier = before.get("curve") or [
                {key: before[key] for key in point if key in before}
                | {"stderr": before.get("log_likelihood_stderr")}
            ]
    return [*earlier, point]


def main(argv: list[str] | None = None) -> dict:
    run, options, args = _parse(argv)
    start = time.perf_counter()
    result = train(FAMILY, "draw", run, options)  # the test IWAE, eval.json and pictures
    train_seconds = time.perf_counter() - start
    out = Path(run.out)
    steps = result["step"]
    result.update(
        experiment=f"DRAW binarized MNIST ({run.config})",
        config=run.config,
        steps=steps,
        epochs=steps * run.batch_size / 50_000,
        train_minutes=train_seconds / 60,
        threads=torch.get_num_threads(),
        paper_nll_upper_bound=PAPER_NLL[run.config],
        command="python examples/draw_mnist.py " + " ".join(sys.argv[1:] if argv is None else argv),
    )
    results = Path(args.results)
    summary = {k: v for k, v in result.items() if k != "per_example"}
    summary["curve"] = _curve(results / f"draw_mnist_{run.config}.json", run, summary)
    write_json(summary, results / f"draw_mnist_{run.config}.json")
    write_json(result, out / "eval_iwae.json")
    figures = results.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name in ("generation", "nearest"):  # absent with --no-pictures
        if (out / f"{name}.png").exists():
            shutil.copy(out / f"{name}.png", figures / f"draw_mnist_{run.config}_{name}.png")
    print(json.dumps({k: summary[k] for k in ("nll", "elbo", "steps", "epochs")}, indent=1))
    return result


if __name__ == "__main__":
    main()
