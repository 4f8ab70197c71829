"""DRAW's Pyro training step against a public PyTorch DRAW, side by side in one process.

The public side is ``draw.py`` of kamenbliznashki/generative_models (the fastest public DRAW we
measured). It is not part of this repository: clone it yourself and pass the file::

    git clone https://github.com/kamenbliznashki/generative_models /tmp/gm
    python benchmarks/draw_public.py --reference /tmp/gm/draw.py --threads 1

Only the file's ``DRAW`` class, ``compute_filterbank_matrices`` and ``loss_fn`` are taken (read
with :mod:`ast`), so its script-level imports (torchvision, its ``utils``) are not needed.
Both sides run the Table 3 MNIST network (T = 64, LSTM 256/256, z = 100, read 2×2, write 5×5)
on the same batch of binarised MNIST (batch 100), with Adam and gradient clipping at 10; the steps
alternate so that machine noise hits both alike. Reported: the median seconds per step, the
ratio public/ours, the FLOPs of one step (``torch.utils.flop_counter``), each side's GFLOP/s and
its fraction of this machine's single-thread sgemm peak measured in the same run.
``--flush-denormal`` runs both sides with subnormal floats flushed to zero.
"""

from __future__ import annotations

import argparse
import ast
import sys
from functools import partial
from pathlib import Path

import torch
from pyro.infer import TraceMeanField_ELBO

if __package__ in (None, ""):  # run as a script: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    arithmetic_line,
    arithmetic_report,
    interleaved_medians,
    matmul_share,
    prepare,
    step_parser,
    timed_step,
    write_result,
)
from generative.draw import DrawModel, draw_config  # noqa: E402
from guides.draw import DrawGuide  # noqa: E402
from tasks.data.registry import load_images  # noqa: E402

PUBLIC_NAMES = ("DRAW", "compute_filterbank_matrices", "loss_fn")


def load_public_draw(path: str | Path) -> dict:
    """The definitions ``PUBLIC_NAMES`` of the public ``draw.py``, executed with the modules they
    use (torch, nn, F, D) and nothing else of that file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--reference {path}: no such file (clone the public repository)")
    tree = ast.parse(path.read_text(), filename=str(path))
    keep = [n for n in tree.body if getattr(n, "name", None) in PUBLIC_NAMES]
    missing = set(PUBLIC_NAMES) - {n.name for n in keep}
    if missing:
        raise ValueError(f"--reference {path}: expected definitions {sorted(missing)}, not found")
    namespace = {
        "torch": torch,
        "nn": torch.nn,
        "F": torch.nn.functional,
        "D": torch.distributions,
    }
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


def public_model(namespace: dict, steps: int) -> torch.nn.Module:
    """Their DRAW with the Table 3 MNIST sizes and attention on both sides."""
    args = argparse.Namespace(
        image_dims=(1, 28, 28),
        time_steps=steps,
        z_size=100,
        lstm_size=256,
        read_size=2,
        write_size=5,
        use_read_attn=True,
        use_write_attn=True,
    )
    return namespace["DRAW"](args)


def main(argv: list[str] | None = None) -> dict:
    parser = step_parser(__doc__.splitlines()[0], config="mnist", steps=15, warmup=2)
    parser.add_argument("--reference", required=True, help="the public repository's draw.py")
    parser.add_argument("--flush-denormal", action="store_true")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    public = load_public_draw(args.reference)
    prepare(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        raise SystemExit("--flush-denormal: this CPU does not support flushing subnormals")
    x = load_images("binarized_mnist", "train", num_examples=args.batch_size).images
    model = DrawModel(draw_config(args.config))
    guide = DrawGuide(model)
    ours = list(model.parameters()) + list(guide.parameters())
    theirs_model = public_model(public, model.config.steps)
    theirs = list(theirs_model.parameters())
    elbo = TraceMeanField_ELBO()
    flat = x.view(x.shape[0], -1)

    def ours_loss() -> torch.Tensor:
        return elbo.differentiable_loss(model.model, guide.guide, x) / x.shape[0]

    def theirs_loss() -> torch.Tensor:
        return public["loss_fn"](*theirs_model(flat), flat)  # their loss is the batch mean

    sides = {
        "pyro_draw": partial(timed_step, ours_loss, ours, torch.optim.Adam(ours, 1e-3), 10.0),
        "public": partial(timed_step, theirs_loss, theirs, torch.optim.Adam(theirs, 1e-3), 10.0),
    }
    med, cpu = interleaved_medians(sides, {k: args.steps for k in sides}, args.warmup)
    arithmetic = arithmetic_report({"pyro_draw": ours_loss, "public": theirs_loss}, med)
    flops = arithmetic["flops_per_step"]
    profiles = {
        "pyro_draw": matmul_share(lambda: ours_loss().backward(), flops["pyro_draw"]),
        "public": matmul_share(lambda: theirs_loss().backward(), flops["public"]),
    }
    result = {
        "config": args.config,
        "reference": "kamenbliznashki/generative_models draw.py",
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "flush_denormal": args.flush_denormal,
        "seconds_per_step": med,
        "cpu_seconds_per_step": cpu,
        "ratio_public_over_ours": med["public"] / med["pyro_draw"],
        **arithmetic,
        "profile": profiles,
    }
    print(
        f"DRAW[{args.config}] batch {args.batch_size}, {torch.get_num_threads()} thread(s)"
        f"{', subnormals flushed' if args.flush_denormal else ''}: pyro-draw"
        f" {med['pyro_draw']:.3f} s/step ({arithmetic_line(result, 'pyro_draw')}), public"
        f" {med['public']:.3f} s/step ({arithmetic_line(result, 'public')}); public/ours ="
        f" {result['ratio_public_over_ours']:.3f} (target >= 1.10)"
    )
    for name, p in profiles.items():
        print(
            f"  {name}: matrix products {p['matmul_seconds']:.3f} s at"
            f" {p['matmul_gflops_per_second']:.1f} GFLOP/s, other work {p['other_seconds']:.3f} s,"
            f" {p['aten_calls']} aten calls (one profiled step)"
        )
    if args.json:
        write_result(args.json, result)
    return result


if __name__ == "__main__":
    main()
