"""The ``pyro-draw`` command line.

* ``pyro-draw train <model> …`` — one sub-command per model (``pyro-draw train`` alone trains the
  small DRAW on glyphs, the quickstart);
* ``pyro-draw evaluate|sample|reconstruct|interpolate|complete CHECKPOINT …`` — dispatched on
  the model name stored in the checkpoint.

Model families plug in through :mod:`tasks.cli_common`'s conventions (``register_train``,
``CHECKPOINT_COMMANDS``, ``EXTRA_ARGUMENTS``) listed in :data:`CLI_FAMILIES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from inference.checkpoint import CheckpointError, load_checkpoint
from inference.trainer import ELBOS, NonFiniteLossError
from tasks.cli_common import add_common_train_arguments, add_data_options, train_config_from_args
from tasks.data import DATASET_NAMES, DataError
from tasks.models import config_names

# Modules contributing commands, besides DRAW's (defined here).
CLI_FAMILIES: tuple[str, ...] = (
    "tasks.sketch_rnn",
    "tasks.sketch_tasks",
    "tasks.ram",
    "tasks.catch",
    "tasks.dood",
)

CHECKPOINT_COMMAND_HELP = {
    "evaluate": "evaluate a checkpoint (IWAE log-likelihood and ELBO; test error for classifiers)",
    "sample": "samples and pictures from a checkpoint",
    "reconstruct": "reconstructions of data by a checkpoint",
    "interpolate": "latent-space interpolations between data examples",
    "complete": "completions of partial examples",
}

Handler = Callable[[argparse.Namespace], None]


def _families() -> list[ModuleType]:
    return [importlib.import_module(name) for name in CLI_FAMILIES]


def _add_draw_train_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "draw",
        help="DRAW (default: a small DRAW on glyphs, about two minutes on 2 CPU cores)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_common_train_arguments(t)
    t.add_argument(
        "--config",
        default="small",
        help=f"named configuration: {', '.join(config_names('draw'))}",
    )
    t.add_argument("--dataset", default="glyphs", choices=DATASET_NAMES)
    t.add_argument(
        "--elbo",
        default="meanfield",
        choices=sorted(ELBOS),
        help="meanfield: analytic KL (TraceMeanField_ELBO); trace: Monte-Carlo KL",
    )
    t.add_argument("--num-particles", type=int, default=1)
    t.add_argument("--num-train", type=int, default=None, help="use only this many training images")
    t.add_argument(
        "--iwae-samples", type=int, default=50, help="K for the final test IWAE estimate"
    )
    t.add_argument(
        "--eval-examples",
        type=int,
        default=500,
        help="test images for the final evaluation (a fixed random subset)",
    )
    t.add_argument("--no-pictures", action="store_true")
    t.set_defaults(handler=_train_draw)


def _add_checkpoint_parser(
    sub: argparse._SubParsersAction, command: str, extras: list[Callable]
) -> None:
    p = sub.add_parser(
        command,
        help=CHECKPOINT_COMMAND_HELP[command],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help="samples / examples to draw (default: the model family's own)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        default=None,
        help="sampling temperature(s) (default: the model's own)",
    )
    p.add_argument("--dataset", default=None, help="default: the dataset it was trained on")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument(
        "--num-examples",
        type=int,
        default=None,
        help="evaluate a fixed random subset of this size (default: all)",
    )
    p.add_argument("--iwae-samples", type=int, default=200, help="importance samples K")
    p.add_argument("--batch-size", type=int, default=100)
    if command == "evaluate":
        p.add_argument(
            "--chunk-size",
            type=int,
            default=None,
            help="particles per chunk (default: bounded by memory)",
        )
        p.add_argument(
            "--json", default=None, help="write the results here (default: next to the checkpoint)"
        )
    if command == "sample":
        p.add_argument("--num-sequences", type=int, default=8)
        p.add_argument(
            "--no-nearest",
            action="store_true",
            help="skip the nearest-training-image figure (needs the training data)",
        )
    for extra in extras:
        extra(p)
    add_data_options(p)
    p.set_defaults(handler=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-draw",
        description="Sequential drawing models as Pyro model/guide pairs: train them with SVI, "
        "estimate IWAE log-likelihoods, and draw samples.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train",
        help="train a model (no model name: the small DRAW quickstart on glyphs)",
        description="Train a model; `pyro-draw train <model> --help` lists its options.",
    )
    train_sub = t.add_subparsers(dest="model", required=True, metavar="model")
    _add_draw_train_parser(train_sub)
    families = _families()
    for family in families:
        if hasattr(family, "register_train"):
            family.register_train(train_sub)
    for command in CHECKPOINT_COMMAND_HELP:
        extras = [
            f.EXTRA_ARGUMENTS[command]
            for f in families
            if command in getattr(f, "EXTRA_ARGUMENTS", {})
        ]
        _add_checkpoint_parser(sub, command, extras)
    return parser


def checkpoint_handlers() -> dict[str, dict[str, Handler]]:
    """``{command: {model name: handler}}`` over DRAW and every family."""
    handlers: dict[str, dict[str, Handler]] = {
        "evaluate": {"draw": _evaluate_draw},
        "sample": {"draw": _sample_draw},
    }
    for family in _families():
        for command, by_model in getattr(family, "CHECKPOINT_COMMANDS", {}).items():
            for model, fn in by_model.items():
                if model in handlers.setdefault(command, {}):
                    raise RuntimeError(f"two handlers for `{command}` of model {model!r}")
                handlers[command][model] = fn
    return handlers


def _train_draw(args: argparse.Namespace) -> None:
    from tasks.train import TrainJob, run_training

    job = TrainJob(
        model="draw",
        config=args.config,
        dataset=args.dataset,
        out=args.out,
        data_dir=args.data_dir,
        download=args.download,
        num_train=args.num_train,
        resume=args.resume,
        device=args.device,
        iwae_samples=args.iwae_samples,
        eval_examples=args.eval_examples,
        pictures=not args.no_pictures,
        progress=not args.no_progress,
    )
    run_training(job, train_config_from_args(args))


def _evaluate_draw(args: argparse.Namespace) -> None:
    import pyro

    from tasks.data import load_images
    from tasks.evaluate import evaluate_split, format_summary, write_json
    from tasks.models import load_trained

    pyro.enable_validation(False)
    model, guide, ckpt = load_trained(args.checkpoint, device=args.device)
    dataset = args.dataset or ckpt["data"]["dataset"]
    data = load_images(dataset, args.split, data_dir=args.data_dir, download=args.download)
    result = evaluate_split(
        model.model,
        guide.guide,
        data,
        num_examples=args.num_examples,
        seed=args.seed,
        num_particles=args.iwae_samples,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        device=args.device,
        progress=not args.no_progress,
    )
    result.update(checkpoint=str(args.checkpoint), step=ckpt["step"])
    path = (
        Path(args.json)
        if args.json
        else Path(args.checkpoint).with_name(
            f"eval_{dataset}_{args.split}_K{args.iwae_samples}.json"
        )
    )
    write_json(result, path)
    print(format_summary(result))
    print(f"wrote {path}")


def _sample_draw(args: argparse.Namespace) -> None:
    from tasks.data import load_images
    from tasks.models import load_trained
    from tasks.sample import write_pictures

    model, _, ckpt = load_trained(args.checkpoint, device=args.device)
    reference = None
    if not args.no_nearest:
        reference = load_images(
            ckpt["data"]["dataset"], "train", data_dir=args.data_dir, download=args.download
        ).images
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    for path in write_pictures(
        model,
        out,
        reference=reference,
        num_samples=args.num_samples or 50,
        num_sequences=args.num_sequences,
        seed=args.seed,
    ):
        print(f"wrote {path}")


def _dispatch_checkpoint(args: argparse.Namespace) -> None:
    model = load_checkpoint(args.checkpoint, map_location="cpu")["model"]
    by_model = checkpoint_handlers().get(args.command, {})
    if model not in by_model:
        supported = ", ".join(sorted(by_model)) or "none"
        raise ValueError(
            f"`{args.command}` is not available for {model!r} checkpoints "
            f"({args.checkpoint}); models supporting it: {supported}"
        )
    by_model[model](args)


def _default_train_model(argv: list[str]) -> list[str]:
    """``pyro-draw train [options]`` (no model name) means ``pyro-draw train draw [options]``."""
    if argv and argv[0] == "train" and (len(argv) == 1 or argv[1].startswith("-")):
        if len(argv) == 1 or argv[1] not in ("-h", "--help"):
            return ["train", "draw", *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = _default_train_model(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            args.handler(args)
        else:
            _dispatch_checkpoint(args)
    except (DataError, CheckpointError, NonFiniteLossError, ValueError) as exc:
        print(f"pyro-draw {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
