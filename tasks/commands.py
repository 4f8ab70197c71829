"""Task commands: top-level ``pyro-draw`` sub-commands that are not tied to one model family.

Each is a :class:`TaskCommand` (name, help, an options dataclass built on
:class:`tasks.options.DataOptions`, and ``run(options)``); :mod:`tasks.cli` generates its parser
with :func:`tasks.options.add_options` and calls :func:`tasks.training.prepare_process` before
``run``; ``arguments(parser)``, if given, adds what a dataclass field cannot be (e.g. an optional
positional argument, whose value reaches the options field of the same name). A new task adds one
line to :data:`TASK_COMMANDS`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks.one_shot import (
    EXEMPLARS_DESCRIPTION,
    EXEMPLARS_HELP,
    ONE_SHOT_DESCRIPTION,
    ONE_SHOT_HELP,
    ExemplarsOptions,
    OneShotOptions,
    add_exemplars_arguments,
    add_one_shot_arguments,
    run_exemplars,
    run_one_shot,
)
from tasks.quality import FID_DESCRIPTION, FID_HELP, FidOptions, add_fid_arguments, run_fid
from tasks.transfer import (
    TRANSFER_DESCRIPTION,
    TRANSFER_HELP,
    TransferOptions,
    add_transfer_arguments,
    run_transfer,
)

__all__ = ["TASK_COMMANDS", "TaskCommand", "find_task_command"]


@dataclass(frozen=True)
class TaskCommand:
    """A top-level command: ``pyro-draw <name> [options]`` runs ``run(options)``."""

    name: str
    help: str
    description: str
    options: type
    run: Callable[[Any], Any]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


TASK_COMMANDS: tuple[TaskCommand, ...] = (
    TaskCommand(
        "one-shot",
        ONE_SHOT_HELP,
        ONE_SHOT_DESCRIPTION,
        OneShotOptions,
        run_one_shot,
        add_one_shot_arguments,
    ),
    TaskCommand(
        "exemplars",
        EXEMPLARS_HELP,
        EXEMPLARS_DESCRIPTION,
        ExemplarsOptions,
        run_exemplars,
        add_exemplars_arguments,
    ),
    TaskCommand("fid", FID_HELP, FID_DESCRIPTION, FidOptions, run_fid, add_fid_arguments),
    TaskCommand(
        "transfer",
        TRANSFER_HELP,
        TRANSFER_DESCRIPTION,
        TransferOptions,
        run_transfer,
        add_transfer_arguments,
    ),
)


def find_task_command(name: str) -> TaskCommand | None:
    """The task command called ``name`` (``None`` if there is none)."""
    return next((command for command in TASK_COMMANDS if command.name == name), None)
