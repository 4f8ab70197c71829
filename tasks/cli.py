"""The ``pyro-draw`` command line, generated from the families' typed options.

* ``pyro-draw train <model> …`` — one sub-command per registered model (``pyro-draw train``
  alone trains the small DRAW on glyphs, the quickstart), through :func:`tasks.training.train`;
* ``pyro-draw evaluate|sample|reconstruct|interpolate|complete|strokes CHECKPOINT …`` — the
  checkpoint is read once and the command of its model's family runs; an option that the model's
  command does not take is an error, not silently ignored;
* ``pyro-draw one-shot [CHECKPOINT] …``, ``pyro-draw exemplars CHECKPOINT …`` — the task
  commands of :mod:`tasks.commands` (not tied to a model family), each with its own options class
  (and positional arguments).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from inference.checkpoint import CheckpointError, read_checkpoint
from inference.distributed import init_world, leave_world
from inference.trainer import NonFiniteLossError, TrainingInterrupted
from tasks import families
from tasks.commands import TASK_COMMANDS, TaskCommand, find_task_command
from tasks.data import DataError
from tasks.family import Family, ModelSpec
from tasks.options import (
    CheckpointOptions,
    RunOptions,
    add_options,
    field_default,
    field_names,
    given_options,
    options_from,
)
from tasks.training import prepare_process, train

__all__ = ["add_train_options", "build_parser", "main", "parse_train_options"]

CHECKPOINT_COMMAND_HELP = {
    "evaluate": "evaluate a checkpoint (IWAE log-likelihood and ELBO; test error for classifiers)",
    "sample": "samples and pictures from a checkpoint",
    "reconstruct": "reconstructions of data by a checkpoint",
    "interpolate": "latent-space interpolations between data examples",
    "complete": "completions of partial examples",
    "strokes": "k-means clusters, silhouette and t-SNE of the inferred strokes (DooD Fig. 5)",
}
_NOT_OPTIONS = frozenset({"command", "model", "checkpoint"})


def add_train_options(
    parser: argparse.ArgumentParser,
    family: Family,
    spec: ModelSpec,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """The options of ``pyro-draw train <spec.name>`` (common, then the model's own) on
    ``parser``; ``defaults`` override the family's (examples use this with their budgets)."""
    clash = field_names(spec.options) & field_names(RunOptions)
    if clash:
        raise RuntimeError(f"{spec.name}: options {sorted(clash)} clash with the common ones")
    add_options(
        parser.add_argument_group("common options"),
        RunOptions,
        defaults={**family.defaults(spec), **(defaults or {})},
        choices={"config": spec.configs, "dataset": family.datasets or None},
        lists=("dataset",) if family.multiple_datasets else (),
        skip=() if family.datasets else ("dataset",),
        default_texts={
            **({"config": "chosen for the dataset"} if spec.default_config is None else {}),
            **family.default_texts,
        },
    )
    add_options(parser.add_argument_group(f"{spec.name} options"), spec.options)


def parse_train_options(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, spec: ModelSpec
) -> tuple[RunOptions, Any, argparse.Namespace]:
    """``(run options, model options, namespace)`` of a parser built with
    :func:`add_train_options`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    run = options_from(RunOptions, args, given=given_options(parser, argv))
    return run, options_from(spec.options, args), args


def _add_train_parser(sub: argparse._SubParsersAction, family: Family, spec: ModelSpec) -> None:
    p = sub.add_parser(
        spec.name,
        help=spec.help,
        description=f"Train {spec.name}: {spec.help}.",
        allow_abbrev=False,
    )
    add_train_options(p, family, spec)


def _option_classes(command: str) -> list[tuple[str, type]]:
    """``(model, options class)`` of every model that has ``command``."""
    found = []
    for family in families.FAMILIES:
        for spec in family.models:
            cmd = family.command(command, spec.name)
            if cmd is not None:
                found.append((spec.name, cmd.options))
    return found


def _add_checkpoint_parser(sub: argparse._SubParsersAction, command: str) -> None:
    p = sub.add_parser(
        command,
        help=CHECKPOINT_COMMAND_HELP[command],
        description=f"{CHECKPOINT_COMMAND_HELP[command][0].upper()}"
        f"{CHECKPOINT_COMMAND_HELP[command][1:]}. Options apply to the "
        "models named after them; defaults are the model's own.",
        allow_abbrev=False,
    )
    p.add_argument("checkpoint", help="a checkpoint.pt written by `pyro-draw train`")
    classes = _option_classes(command)
    users: dict[str, list[str]] = {}
    defaults: dict[str, set[str]] = {}
    checks: dict[str, set[str]] = {}
    for model, cls in classes:
        for f in fields(cls):
            users.setdefault(f.name, []).append(model)
            defaults.setdefault(f.name, set()).add(repr(field_default(f)))
            checks.setdefault(f.name, set()).add(repr(_checks(f)))
    # an option that models check differently is checked by the checkpoint model's own class
    unchecked = {name for name, found in checks.items() if len(found) > 1}
    add_options(p, CheckpointOptions, suppress=True)
    done = set(field_names(CheckpointOptions))
    for _, cls in classes:
        texts = {
            name: "the model's own" for name in field_names(cls) - done if len(defaults[name]) > 1
        }
        notes = {
            name: f"[{', '.join(users[name])}]"
            for name in field_names(cls) - done
            if len(users[name]) < len(classes)
        }
        add_options(
            p,
            cls,
            suppress=True,
            skip=done,
            default_texts=texts,
            notes=notes,
            unchecked=unchecked,
        )
        done |= field_names(cls)


def _checks(f: Any) -> tuple[Any, ...]:
    """What a field's parse-time check depends on (its check function and choices)."""
    return (
        f.metadata.get("check"),
        tuple(f.metadata.get("choices") or ()),
        f.metadata.get("nargs"),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-draw",
        description="Sequential drawing models as Pyro model/guide pairs: train them with SVI, "
        "estimate IWAE log-likelihoods, and draw samples.",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train",
        help="train a model (no model name: the small DRAW quickstart on glyphs)",
        description="Train a model; `pyro-draw train <model> --help` lists its options. "
        "`pyro-draw train [options]` alone is `pyro-draw train draw [options]`, the quickstart "
        "(see `pyro-draw train draw --help`).",
        allow_abbrev=False,
    )
    train_sub = t.add_subparsers(dest="model", required=True, metavar="model")
    for family in families.FAMILIES:
        for spec in family.models:
            _add_train_parser(train_sub, family, spec)
    for command in CHECKPOINT_COMMAND_HELP:
        _add_checkpoint_parser(sub, command)
    for task in TASK_COMMANDS:
        p = sub.add_parser(
            task.name, help=task.help, description=task.description, allow_abbrev=False
        )
        if task.arguments is not None:
            task.arguments(p)
        add_options(p, task.options)
    return parser


def _train(args: argparse.Namespace, given: frozenset[str]) -> None:
    family, spec = families.find_model(args.model)
    run = options_from(RunOptions, args, given=given)
    train(family, spec.name, run, options_from(spec.options, args))


def _run_checkpoint_command(args: argparse.Namespace) -> None:
    checkpoint = read_checkpoint(args.checkpoint, map_location="cpu")
    try:
        family, spec = families.find_model(checkpoint.model)
        command = family.command(args.command, spec.name)
    except ValueError:
        command = None
    if command is None:
        supported = ", ".join(m for m, _ in _option_classes(args.command)) or "none"
        raise ValueError(
            f"`{args.command}` is not available for {checkpoint.model!r} checkpoints "
            f"({checkpoint.path}); models supporting it: {supported}"
        )
    given = {k for k in vars(args) if k not in _NOT_OPTIONS}
    foreign = sorted(given - field_names(command.options))
    if foreign:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in foreign)
        raise ValueError(
            f"{flags} does not apply to `{args.command}` of {spec.name!r} checkpoints "
            f"({checkpoint.path}); see `pyro-draw {args.command} --help`"
        )
    options = options_from(command.options, {k: getattr(args, k) for k in given})
    prepare_process(options)
    command.run(spec, checkpoint, options)


def _run_task_command(task: TaskCommand, args: argparse.Namespace) -> None:
    options = options_from(task.options, args)
    prepare_process(options)
    task.run(options)


def _default_train_model(argv: list[str]) -> list[str]:
    """``pyro-draw train [options]`` (no model name) means ``pyro-draw train draw [options]``."""
    if argv and argv[0] == "train" and (len(argv) == 1 or argv[1].startswith("-")):
        if len(argv) == 1 or argv[1] not in ("-h", "--help"):
            return ["train", "draw", *argv[1:]]
    return argv


def _launch_torchrun(argv: list[str], nproc: int) -> int:
    """``pyro-draw train … --nproc N``: the same command on ``N`` processes under torchrun
    (``python -m torch.distributed.run --standalone``, a free local port).

    SIGTERM sent to this process is passed on to torchrun, which passes it to its workers: they
    finish the step and write their checkpoint, as a single-process run does."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", "-m", "tasks.cli", *rest]
    print("launching: " + " ".join(command[1:]), file=sys.stderr)
    child = subprocess.Popen(command)
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    argv = _default_train_model(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(argv, args.nproc)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command not in ("train", "evaluate"):
        print(
            f"pyro-draw {args.command}: error: only `train` and `evaluate` run under torchrun "
            "(one process does the rest)",
            file=sys.stderr,
        )
        return 2
    device = getattr(args, "device", None) or "cpu"
    if args.command == "evaluate" and not init_world(device).is_main:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  rank 0 reports; the others compute
    task = find_task_command(args.command)
    try:
        if args.command == "train":
            _train(args, given_options(parser, argv))
        elif task is not None:
            _run_task_command(task, args)
        else:
            _run_checkpoint_command(args)
    except TrainingInterrupted as exc:
        print(f"pyro-draw {args.command}: stopped: {exc}", file=sys.stderr)
        return 128 + exc.signal_number
    except (DataError, CheckpointError, NonFiniteLossError, ValueError) as exc:
        print(f"pyro-draw {args.command}: error: {exc}", file=sys.stderr)
        return 1
    leave_world()  # under torchrun: every rank waits for rank 0's report before it exits
    return 0


if __name__ == "__main__":
    sys.exit(main())
