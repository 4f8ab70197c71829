"""sketch-rnn's learning curves: validation L_R (Eq. 9) and L_KL (Eq. 10) against training steps
for one or more runs (their ``metrics.jsonl``), beside L_R = 0 (the paper's Table 1 values at
convergence are all negative) and the KL_min floor; dashed, where the run logged it, L_R as the
reference code's evaluation model computes it (pen term over the N_s sketch rows).

    python examples/sketch_rnn_learning_curve.py --run medium=runs/medium/metrics.jsonl \\
        --run small=runs/small/metrics.jsonl --out examples/figures/sketch_rnn_sheep_curve.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tasks.figures import labelled_file, metric_rows, save_curve  # noqa: E402


def validation_curve(metrics: Path) -> list[dict[str, float]]:
    """The validation records (L_R, L_KL, loss, and where logged ``valid_L_R_n_s``, the
    reference evaluation's reading of L_R) of a run's ``metrics.jsonl`` in step order."""
    keys = ("step", "valid_L_R", "valid_L_KL", "valid_loss", "valid_L_R_n_s")
    return [{k: row[k] for k in keys if k in row} for row in metric_rows(metrics, "valid_L_R")]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=labelled_file, action="append", required=True, metavar="LABEL=PATH"
    )
    parser.add_argument("--kl-min", type=float, default=0.2, help="the KL floor drawn")
    parser.add_argument("--title", default="sketch-rnn on aaron_sheep (validation)")
    parser.add_argument("--out", required=True, help="picture file")
    args = parser.parse_args(argv)
    curves = {label: validation_curve(path) for label, path in args.run}
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    for label, curve in curves.items():
        steps = [r["step"] for r in curve]
        (line,) = left.plot(steps, [r["valid_L_R"] for r in curve], ".-", label=label)
        n_s = [(r["step"], r["valid_L_R_n_s"]) for r in curve if "valid_L_R_n_s" in r]
        if n_s:  # same colour, dashed: pen term over the N_s sketch rows (magenta's eval)
            n_s_steps, n_s_values = zip(*n_s, strict=True)
            left.plot(n_s_steps, n_s_values, "--", color=line.get_color(), label=f"{label}, N_s")
        right.plot(steps, [r["valid_L_KL"] for r in curve], ".-", label=label)
    left.axhline(0.0, color="k", ls="--", lw=1, label="L_R = 0 (paper: < 0)")
    right.axhline(args.kl_min, color="k", ls=":", lw=1, label=f"KL_min = {args.kl_min}")
    left.set(xlabel="training steps (batch 100)", ylabel="L_R (Eq. 9)")
    right.set(xlabel="training steps (batch 100)", ylabel="L_KL (Eq. 10)")
    for ax in (left, right):
        ax.legend(fontsize=8)
    fig.suptitle(args.title, fontsize=10)
    return save_curve(fig, args.out)


if __name__ == "__main__":
    main()
