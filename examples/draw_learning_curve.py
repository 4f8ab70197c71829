"""DRAW's learning curve on binarized MNIST: validation ELBO (from a run's ``metrics.jsonl``) and
the test IWAE bounds (the result JSONs of ``examples/draw_mnist.py`` at each resume) against
epochs, beside the paper's 80.97 nats (Gregor et al. 2015, Table 2).

    python examples/draw_learning_curve.py --metrics runs/draw_mnist/metrics.jsonl \\
        --points examples/results/draw_mnist_mnist.json --out examples/figures/draw_mnist_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tasks.figures import save_curve  # noqa: E402

TRAIN_IMAGES = 50_000  # binarized MNIST training split


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", required=True, help="metrics.jsonl of the run")
    parser.add_argument("--points", required=True, help="result JSON with a 'curve' list")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.metrics).read_text().splitlines()]
    valid = [
        (r["step"] * args.batch_size / TRAIN_IMAGES, -r["valid_elbo"])
        for r in rows
        if "valid_elbo" in r
    ]
    curve = json.loads(Path(args.points).read_text())["curve"]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(*zip(*valid, strict=True), ".-", label="−ELBO, validation (1 sample)")
    ax.errorbar(
        [p["epochs"] for p in curve],
        [p["nll"] for p in curve],
        yerr=[p["stderr"] for p in curve],
        fmt="o",
        label="NLL ≤ (IWAE K=200, test)",
    )
    ax.axhline(80.97, color="k", ls="--", lw=1, label="paper: DRAW ≤ 80.97")
    ax.set(xlabel="epochs", ylabel="nats", ylim=(75, 140), title="DRAW (Table 3 MNIST model)")
    ax.legend(fontsize=8)
    return save_curve(fig, args.out)


if __name__ == "__main__":
    main()
