"""Argument helpers shared by the ``pyro-draw`` sub-commands of every model family.

A family module (e.g. :mod:`tasks.sketch_rnn`) contributes to the command line through three
optional names:

* ``register_train(train_subparsers)`` adds one ``pyro-draw train <model>`` parser per model it
  trains, built with :func:`add_common_train_arguments`, and sets ``handler=fn(args)``;
* ``CHECKPOINT_COMMANDS``: ``{command: {model name: fn(args)}}`` for the checkpoint commands
  (``evaluate``, ``sample``, ``reconstruct``, ``interpolate``, ``complete``), dispatched on the
  model name stored in the checkpoint;
* ``EXTRA_ARGUMENTS``: ``{command: fn(parser)}`` adding family-specific options to them.
"""

from __future__ import annotations

import argparse

from inference.trainer import TrainConfig


def add_data_options(p: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--download``, ``--device``, ``--no-progress``."""
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


def add_common_train_arguments(
    p: argparse.ArgumentParser,
    *,
    steps: int = 600,
    batch_size: int = 100,
    lr: float = 1e-3,
    clip_norm: float = 10.0,
    out: str = "runs/quickstart",
    validate_every: int = 200,
    checkpoint_every: int = 200,
) -> None:
    """Options every training command has (optimisation, checkpoints, data location)."""
    p.add_argument("--out", default=out, help="output folder")
    p.add_argument("--steps", type=int, default=steps, help="optimisation steps")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    p.add_argument(
        "--clip-norm", type=float, default=clip_norm, help="gradient-norm clip (<= 0: off)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validate-every", type=int, default=validate_every)
    p.add_argument("--checkpoint-every", type=int, default=checkpoint_every)
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop (with a checkpoint) after this much training wall time",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue exactly from this checkpoint (same optimiser state, step, RNG)",
    )
    p.add_argument(
        "--pyro-validation", action="store_true", help="enable Pyro's argument validation (slower)"
    )
    add_data_options(p)


def train_config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of the common options (plus ``overrides``)."""
    values = dict(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        clip_norm=args.clip_norm if args.clip_norm > 0 else None,
        seed=args.seed,
        validate_every=args.validate_every,
        checkpoint_every=args.checkpoint_every,
        max_seconds=args.max_seconds,
        pyro_validation=args.pyro_validation,
    )
    for name in ("elbo", "num_particles"):
        if hasattr(args, name):
            values[name] = getattr(args, name)
    values.update(overrides)
    return TrainConfig(**values)
