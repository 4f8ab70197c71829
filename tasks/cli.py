"""The ``pyro-draw`` command line: ``train``, ``evaluate`` and ``sample``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference.checkpoint import CheckpointError
from inference.trainer import ELBOS, NonFiniteLossError, TrainConfig
from tasks.data import DATASET_NAMES, DataError
from tasks.models import MODELS, config_names


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="dataset folder (default: $PYRO_DRAW_DATA_DIR, else ../shared/data, "
        "else ~/.cache/pyro-draw)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="download missing files from their official location (sha256-checked)",
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-draw",
        description="Sequential drawing models as Pyro model/guide pairs: train them with SVI, "
        "estimate IWAE log-likelihoods, and draw samples.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train a model with SVI (defaults: a small DRAW on glyphs, "
        "about a minute on 2 CPU cores)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("model", nargs="?", default="draw", choices=sorted(MODELS))
    t.add_argument(
        "--config",
        default="small",
        help=f"named configuration; draw: {', '.join(config_names('draw'))}",
    )
    t.add_argument("--dataset", default="glyphs", choices=DATASET_NAMES)
    t.add_argument("--out", default="runs/quickstart", help="output folder")
    t.add_argument("--steps", type=int, default=600, help="optimisation steps")
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    t.add_argument(
        "--clip-norm", type=float, default=10.0, help="global gradient-norm clip (<= 0 disables)"
    )
    t.add_argument(
        "--elbo",
        default="meanfield",
        choices=sorted(ELBOS),
        help="meanfield: analytic KL (TraceMeanField_ELBO); trace: Monte-Carlo KL",
    )
    t.add_argument("--num-particles", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--num-train", type=int, default=None, help="use only this many training images")
    t.add_argument("--validate-every", type=int, default=200)
    t.add_argument("--checkpoint-every", type=int, default=200)
    t.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue exactly from this checkpoint (same optimiser state, step, RNG)",
    )
    t.add_argument(
        "--iwae-samples", type=int, default=50, help="K for the final test IWAE estimate"
    )
    t.add_argument(
        "--eval-examples",
        type=int,
        default=500,
        help="test images for the final evaluation (a fixed random subset)",
    )
    t.add_argument(
        "--pyro-validation", action="store_true", help="enable Pyro's argument validation (slower)"
    )
    t.add_argument("--no-pictures", action="store_true")
    _add_data_options(t)

    e = sub.add_parser(
        "evaluate",
        help="IWAE log-likelihood and ELBO of a checkpoint",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e.add_argument("checkpoint")
    e.add_argument("--dataset", default=None, help="default: the dataset it was trained on")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--iwae-samples", type=int, default=200, help="importance samples K")
    e.add_argument(
        "--num-examples",
        type=int,
        default=None,
        help="evaluate a fixed random subset of this size (default: all)",
    )
    e.add_argument("--batch-size", type=int, default=100)
    e.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="particles per chunk (default: bounded by memory)",
    )
    e.add_argument("--seed", type=int, default=0)
    e.add_argument(
        "--json", default=None, help="write the results here (default: next to the checkpoint)"
    )
    _add_data_options(e)

    s = sub.add_parser(
        "sample",
        help="samples, generation sequences, nearest training images",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s.add_argument("checkpoint")
    s.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    s.add_argument("--num-samples", type=int, default=50)
    s.add_argument("--num-sequences", type=int, default=8)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--no-nearest",
        action="store_true",
        help="skip the nearest-training-image figure (needs the training data)",
    )
    _add_data_options(s)
    return parser


def _train(args: argparse.Namespace) -> None:
    from tasks.train import TrainJob, run_training

    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        clip_norm=args.clip_norm if args.clip_norm > 0 else None,
        elbo=args.elbo,
        num_particles=args.num_particles,
        seed=args.seed,
        validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every,
        pyro_validation=args.pyro_validation,
    )
    job = TrainJob(
        model=args.model,
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
    run_training(job, config)


def _evaluate(args: argparse.Namespace) -> None:
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


def _sample(args: argparse.Namespace) -> None:
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
        num_samples=args.num_samples,
        num_sequences=args.num_sequences,
        seed=args.seed,
    ):
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": _train, "evaluate": _evaluate, "sample": _sample}
    try:
        handlers[args.command](args)
    except (DataError, CheckpointError, NonFiniteLossError, ValueError) as exc:
        print(f"pyro-draw {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
