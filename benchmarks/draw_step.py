"""One training step of the Pyro DRAW against a plain-PyTorch loss of the same network.

Both sides use the very same modules (``DrawModel`` + ``DrawGuide``), Adam and gradient clipping;
the plain side computes the paper's loss (Eqs. 9–12: binary cross-entropy of σ(c_T) plus the
analytic KL of Eq. 11) in one forward pass (:func:`benchmarks.references.draw.plain_draw_loss`), the
Pyro side runs ``TraceMeanField_ELBO`` over the model/guide pair. Steps alternate between the two so
that machine noise hits both alike; the median time per step of each is reported with images/s and
the ratio Pyro / plain. A third side runs the Pyro step under the trainer's
:class:`inference.distributed.ShardNoise` sampling, to show what it costs.


    python benchmarks/draw_step.py --config mnist --batch-size 100 --steps 20
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch
from pyro.infer import TraceMeanField_ELBO

from generative.draw import DrawModel, draw_config
from guides.draw import DrawGuide
from inference.distributed import shard_noise

if __package__ in (None, ""):  # run as a script: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    arithmetic_line,
    arithmetic_report,
    interleaved_medians,
    prepare,
    step_parser,
    timed_step,
    write_result,
)
from benchmarks.references.draw import plain_draw_loss  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = step_parser(__doc__.splitlines()[0], config="mnist", steps=20, warmup=3)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    prepare(args.threads)
    model = DrawModel(draw_config(args.config))
    guide = DrawGuide(model)
    params = list(model.parameters()) + list(guide.parameters())
    optim = torch.optim.Adam(params, lr=1e-4)
    c = model.config
    x = (torch.rand(args.batch_size, c.channels, c.height, c.width) < 0.15).float()
    elbo = TraceMeanField_ELBO()

    def trainer_noise() -> torch.Tensor:  # the trainer's sampling: ShardNoise around the ELBO
        with shard_noise(0, 0):
            return elbo.differentiable_loss(model.model, guide.guide, x) / args.batch_size

    losses = {
        "pyro": lambda: elbo.differentiable_loss(model.model, guide.guide, x) / args.batch_size,
        "plain": lambda: plain_draw_loss(model, guide, x) / args.batch_size,
        "pyro_shard_noise": trainer_noise,
    }
    sides = {k: partial(timed_step, fn, params, optim, 10.0) for k, fn in losses.items()}
    med, _ = interleaved_medians(sides, {k: args.steps for k in sides}, args.warmup)
    result = {
        "config": args.config,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "seconds_per_step": med,
        "images_per_second": {k: args.batch_size / v for k, v in med.items()},
        "ratio_pyro_over_plain": med["pyro"] / med["plain"],
        "ratio_shard_noise_over_pyro": med["pyro_shard_noise"] / med["pyro"],
        **arithmetic_report(losses, med),
    }
    ips = result["images_per_second"]
    print(
        f"DRAW[{args.config}] batch {args.batch_size}: pyro {ips['pyro']:.0f} img/s,"
        f" plain {ips['plain']:.0f} img/s,"
        f" ratio pyro/plain = {result['ratio_pyro_over_plain']:.3f} (target <= 1.10);"
        f" the trainer's ShardNoise sampling / Pyro's = "
        f"{result['ratio_shard_noise_over_pyro']:.3f}; pyro {arithmetic_line(result, 'pyro')}"
    )
    if args.json:
        write_result(args.json, result)
    return result


if __name__ == "__main__":
    main()
