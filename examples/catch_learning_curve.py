"""The Catch agent's learning curve: the exact greedy catch rate (validation rows of a run's
``metrics.jsonl``) and the share of curriculum games with the retina on the ball, against frames,
beside the paper's "roughly 85%" after 20M frames and the 1/12 of a paddle that ignores the ball.

    python examples/catch_learning_curve.py --metrics RUN/metrics.jsonl \\
        --out examples/figures/ram_catch_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tasks.figures import save_curve  # noqa: E402

FRAMES_PER_GAME = 23  # the screens x_1 … x_23 acted on (24×24 screen)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", required=True, help="metrics.jsonl of a ram-catch run")
    parser.add_argument("--batch-size", type=int, default=64, help="games per step")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.metrics).read_text().splitlines()]
    frames = args.batch_size * FRAMES_PER_GAME / 1e6  # millions per step
    greedy = [
        (r["step"] * frames, r["greedy_catch_rate"]) for r in rows if "greedy_catch_rate" in r
    ]
    taught = [(r["step"] * frames, r["teacher"]) for r in rows if "teacher" in r]
    if not greedy:
        raise SystemExit(f"{args.metrics}: no greedy_catch_rate rows (validation) to plot")
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(*zip(*greedy, strict=True), ".-", label="greedy catch rate (exact, 72 games)")
    if taught:
        ax.plot(*zip(*taught, strict=True), "-", color="0.6", lw=1, label="share of taught games")
    ax.axhline(0.85, color="C3", ls="--", lw=1, label="paper ≈ 0.85 (20M frames)")
    ax.axhline(1 / 12, color="k", ls=":", lw=1, label="chance 1/12")
    ax.set_xlabel("frames (millions)")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    return save_curve(fig, args.out)


if __name__ == "__main__":
    main()
