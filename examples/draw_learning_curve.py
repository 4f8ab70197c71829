"""DRAW's learning curves on binarized MNIST: for each run, the validation −ELBO (its
``metrics.jsonl``) and the test NLL bounds (the ``curve`` of the result JSON that
``examples/draw_mnist.py`` extends at each resume) against epochs, beside the paper's bound for
that run's config (Gregor et al. 2015, Table 2: 80.97 nats with attention, 87.40 without).

    python examples/draw_learning_curve.py \\
        --run attention=runs/draw_mnist/metrics.jsonl \\
        --points attention=examples/results/draw_mnist_mnist.json \\
        --run "no attention=runs/draw_mnist_na/metrics.jsonl" \\
        --points "no attention=examples/results/draw_mnist_mnist_no_attention.json" \\
        --out examples/figures/draw_mnist_curve.png

``--x steps`` plots against optimisation steps instead, for runs without a fixed training set
(the two-digit 60×60 task draws new pairs every step); ``--title`` and ``--ylim`` set the rest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tasks.figures import labelled_file, metric_rows, save_curve  # noqa: E402

TRAIN_IMAGES = 50_000  # binarized MNIST training split


def nll_points(result: Path) -> tuple[list[dict], float | None, int]:
    """The ``curve`` points (epochs, steps, nll, stderr) of a ``draw_mnist.py`` result JSON, the
    paper's bound and the IWAE K it records; a JSON without ``curve`` (``draw_two_digits.py``'s)
    is one point, its final evaluation."""
    summary = json.loads(result.read_text())
    curve = summary.get("curve")
    if curve is None:
        if "nll" not in summary or not {"epochs", "steps"} & set(summary):
            raise SystemExit(f"{result}: expected 'curve', or 'nll' with 'epochs' or 'steps'")
        point = {key: summary.get(key) for key in ("epochs", "steps", "nll")}
        curve = [{**point, "stderr": summary.get("log_likelihood_stderr", 0.0)}]
    return curve, summary.get("paper_nll_upper_bound"), summary.get("iwae_samples", 200)


def _x(point: dict, axis: str, result: Path) -> float:
    if point.get(axis) is None:
        raise SystemExit(f"{result}: a test point has no {axis!r}; use --x with what it records")
    return point[axis]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=labelled_file, action="append", required=True,
                        metavar="LABEL=METRICS", help="a run's metrics.jsonl")  # fmt: skip
    parser.add_argument("--points", type=labelled_file, action="append", default=[],
                        metavar="LABEL=JSON", help="its draw_mnist.py result JSON")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--ylim", type=float, nargs=2, default=(75.0, 140.0))
    parser.add_argument("--x", choices=("epochs", "steps"), default="epochs",
                        help=f"x axis: epochs of {TRAIN_IMAGES:,} images, or steps")  # fmt: skip
    parser.add_argument("--title", default="DRAW, binarized MNIST")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    runs = dict(args.run)
    unknown = sorted(set(dict(args.points)) - set(runs))
    if unknown:
        parser.error(f"--points {unknown[0]}=…: no --run with that label (have {sorted(runs)})")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    bounds: dict[float, str] = {}
    scale = args.batch_size / TRAIN_IMAGES if args.x == "epochs" else 1.0  # x per step
    for index, (label, metrics) in enumerate(runs.items()):
        colour = f"C{index}"
        valid = metric_rows(metrics, "valid_elbo")
        ax.plot([r["step"] * scale for r in valid], [-r["valid_elbo"] for r in valid], ".-",
                color=colour, ms=3, lw=1, label=f"{label}: −ELBO, validation")  # fmt: skip
        for name, result in args.points:
            if name != label:
                continue
            curve, bound, k = nll_points(result)
            ax.errorbar([_x(p, args.x, result) for p in curve], [p["nll"] for p in curve],
                        yerr=[p["stderr"] for p in curve], fmt="o", color=colour,
                        mec="k", label=f"{label}: NLL ≤ (IWAE K={k}, test)")  # fmt: skip
            if bound is not None:
                bounds.setdefault(bound, colour)
    for bound, colour in bounds.items():
        ax.axhline(bound, color=colour, ls="--", lw=1, label=f"paper ≤ {bound}")
    ax.set(xlabel=args.x, ylabel="nats", ylim=tuple(args.ylim), title=args.title)
    ax.legend(fontsize=7)
    return save_curve(fig, args.out)


if __name__ == "__main__":
    main()
