"""One training step of the Pyro DRAW against a plain-PyTorch loss of the same network.

Both sides use the very same modules (``DrawModel`` + ``DrawGuide``), Adam and gradient clipping;
the plain side computes the paper's loss (Eqs. 9–12: binary cross-entropy of σ(c_T) plus the
analytic KL of Eq. 11) in one forward pass (:func:`benchmarks.references.draw.plain_draw_loss`), the
Pyro side runs ``TraceMeanField_ELBO`` over the model/guide pair. Steps alternate between the two so
that machine noise hits both alike; the median time per step of each is reported with images/s and
the ratio Pyro / plain.


    python benchmarks/draw_step.py --config mnist --batch-size 100 --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch
from pyro.infer import TraceMeanField_ELBO

from generative.draw import DrawModel, draw_config
from guides.draw import DrawGuide

if __package__ in (None, ""):  # run as a script: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.references.draw import plain_draw_loss  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    torch.manual_seed(0)
    model = DrawModel(draw_config(args.config))
    guide = DrawGuide(model)
    params = list(model.parameters()) + list(guide.parameters())
    optim = torch.optim.Adam(params, lr=1e-4)
    c = model.config
    x = (torch.rand(args.batch_size, c.channels, c.height, c.width) < 0.15).float()
    elbo = TraceMeanField_ELBO()

    def step(loss_fn) -> float:
        start = time.perf_counter()
        optim.zero_grad(set_to_none=True)
        loss = loss_fn()
        (loss / args.batch_size).backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optim.step()
        return time.perf_counter() - start

    sides = {
        "pyro": lambda: elbo.differentiable_loss(model.model, guide.guide, x),
        "plain": lambda: plain_draw_loss(model, guide, x),
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(args.warmup + args.steps):
        for name, fn in sides.items():
            t = step(fn)
            if i >= args.warmup:
                times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "config": args.config,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "seconds_per_step": med,
        "images_per_second": {k: args.batch_size / v for k, v in med.items()},
        "ratio_pyro_over_plain": med["pyro"] / med["plain"],
    }
    ips = result["images_per_second"]
    print(
        f"DRAW[{args.config}] batch {args.batch_size}: pyro {ips['pyro']:.0f} img/s,"
        f" plain {ips['plain']:.0f} img/s,"
        f" ratio pyro/plain = {result['ratio_pyro_over_plain']:.3f} (target <= 1.10)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
