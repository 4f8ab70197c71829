"""One training step of the Pyro sketch-rnn against a plain-PyTorch loss of the same network.

Both sides use the very same modules (``SketchRNN`` + ``SketchRNNGuide``), the same batch (real
aaron_sheep sketches padded to ``N_max``), Adam and gradient clipping 1.0. The Pyro side runs the
annealed objective of appendix Eq. 4 (:class:`inference.annealing.AnnealedKLObjective`: guide trace,
replayed model trace, ``StrokeSequence.log_prob``, analytic KL); the plain side computes the same
loss directly (:func:`benchmarks.references.sketch_rnn.plain_sketch_rnn_loss`: Eq. 2 for ``z``, the
decoder, Eq. 9 with the mixture functions of :mod:`generative.strokes`, appendix Eq. 2 for the KL).
Steps alternate between the two so that machine noise hits both alike; the median time per step of
each is reported with sequences/s and the ratio Pyro / plain (target ≤ 1.10). Before timing, both
losses are computed once on the same noise in eval mode and their difference is reported.


``--cells`` times the decoder alone (forward + backward over the same batch) for each cell type
at the given config's sizes: the fused plain LSTM, the per-step plain LSTM (recurrent dropout on),
the layer-norm LSTM and the HyperLSTM.

    python benchmarks/sketch_rnn_step.py --config paper --batch-size 20 --max-length 60 \\
        --steps 4 --cells --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from generative.sketch_rnn import SketchRNN
from generative.sketch_rnn_config import sketch_rnn_config
from guides.sketch_rnn import SketchRNNGuide
from inference.annealing import AnnealedKLObjective
from tasks.data.batches import StrokeBatches
from tasks.data.strokes import load_strokes

if __package__ in (None, ""):  # run as a script: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    arithmetic_line,
    arithmetic_report,
    interleaved_medians,
    prepare,
    timed_step,
)
from benchmarks.references.sketch_rnn import plain_sketch_rnn_loss  # noqa: E402


def cell_speeds(config, x5: Tensor, warmup: int, steps: int) -> dict[str, float]:
    """Seconds per decoder forward + backward for each cell (median)."""
    variants = {
        "lstm_fused": replace(config, cell="lstm", recurrent_dropout=0.0),
        "lstm_per_step": replace(config, cell="lstm", recurrent_dropout=0.1),
        "layer_norm": replace(config, cell="layer_norm", recurrent_dropout=0.1),
        "hyper": replace(config, cell="hyper", recurrent_dropout=0.1),
    }
    out = {}
    for name, cfg in variants.items():
        torch.manual_seed(0)
        model = SketchRNN(cfg).train()
        z = torch.randn(x5.shape[0], cfg.z_dim) if cfg.conditional else None
        times = []
        for i in range(warmup + steps):
            start = time.perf_counter()
            model.zero_grad(set_to_none=True)
            model.decoder_outputs(x5[:, :-1], z).square().mean().backward()
            if i >= warmup:
                times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
        print(f"  decoder {name}: {out[name]:.3f} s per forward+backward")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=250, help="N_max (aaron_sheep: 250)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cells", action="store_true", help="also time each decoder cell")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--json",
        nargs="?",
        const="examples/results/benchmark_sketch_rnn.json",
        default=None,
        help="also write the result here (no value: examples/results/benchmark_sketch_rnn.json)",
    )
    args = parser.parse_args(argv)
    prepare(args.threads, seed=None)
    data = load_strokes("aaron_sheep", "train", data_dir=args.data_dir, max_length=args.max_length)
    x5, lengths = StrokeBatches(data, args.batch_size, max_length=args.max_length).batch(0)
    config = sketch_rnn_config(
        args.config, max_length=args.max_length, scale_factor=data.scale_factor
    )
    torch.manual_seed(0)
    model = SketchRNN(config)
    guide = SketchRNNGuide(model)
    objective = AnnealedKLObjective()
    params = list(model.parameters()) + list(guide.parameters())
    optim = torch.optim.Adam(params, lr=1e-4)
    step = 1000

    # same noise, no dropout: the two losses must agree
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        pyro_loss, _ = objective(model, guide, (x5, lengths), step)
        torch.manual_seed(1)
        plain_loss = plain_sketch_rnn_loss(model, guide, x5, lengths, objective, step)
    difference = abs(pyro_loss.item() - plain_loss.item())
    model.train()

    losses = {
        "pyro": lambda: objective(model, guide, (x5, lengths), step)[0],
        "plain": lambda: plain_sketch_rnn_loss(model, guide, x5, lengths, objective, step),
    }
    sides = {k: partial(timed_step, fn, params, optim, 1.0) for k, fn in losses.items()}
    reps = {k: args.steps for k in sides}
    med, _ = interleaved_medians(sides, reps, args.warmup, alternate=True)
    result = {
        "config": args.config,
        "model_config": config.to_dict(),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": torch.get_num_threads(),
        "timed_steps_per_side": args.steps,
        "seconds_per_step": med,
        "sequences_per_second": {k: args.batch_size / v for k, v in med.items()},
        "ratio_pyro_over_plain": med["pyro"] / med["plain"],
        **arithmetic_report(losses, med),
        "loss_difference_same_noise": difference,
        "command": "python benchmarks/sketch_rnn_step.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    }
    seq = result["sequences_per_second"]
    print(
        f"sketch-rnn[{args.config}] batch {args.batch_size}, N_max {args.max_length}: "
        f"pyro {med['pyro']:.3f} s/step ({seq['pyro']:.1f} seq/s), plain {med['plain']:.3f} "
        f"s/step ({seq['plain']:.1f} seq/s), ratio pyro/plain = "
        f"{result['ratio_pyro_over_plain']:.3f} (target <= 1.10); |loss difference| "
        f"{difference:.2e}; pyro {arithmetic_line(result, 'pyro')}"
    )
    if args.cells:
        result["decoder_seconds_per_forward_backward"] = cell_speeds(
            config, x5, args.warmup, args.steps
        )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
