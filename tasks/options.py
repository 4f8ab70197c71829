"""Typed run options, from which the command line is generated.

An options class is a dataclass whose fields carry their help text, checks and choices
(:func:`option`); :func:`add_options` turns it into ``argparse`` arguments (``--batch-size`` for
``batch_size``, ``--no-pictures`` for a ``pictures: bool = True``), and :func:`options_from`
turns the parsed namespace back into the dataclass. The same classes serve the command line, the
examples and Python callers, so a value is checked in one place (at parse time on the command
line, on construction in Python) before any work starts.
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from inference.checkpoint import RunRecord

T = TypeVar("T")

__all__ = [
    "CheckpointOptions",
    "DataOptions",
    "EvaluateOptions",
    "RunOptions",
    "SplitOptions",
    "add_options",
    "check_options",
    "given_options",
    "option",
    "options_from",
]


# ------------------------------------------------------------------------------ checks
def _number_check(kind: str, ok: Callable[[float], bool]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value is None:
            return
        if isinstance(value, float) and not math.isfinite(value) or not ok(value):
            raise ValueError(f"expected {kind}, found {value!r}")

    check.__doc__ = kind
    return check


positive = _number_check("a number > 0", lambda v: v > 0)
non_negative = _number_check("a number >= 0", lambda v: v >= 0)
probability = _number_check("a number in [0, 1]", lambda v: 0 <= v <= 1)
fraction = _number_check("a number in [0, 1)", lambda v: 0 <= v < 1)


def device_name(value: str) -> None:
    """A torch device that exists on this machine (``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"expected cpu, cuda, cuda:N or mps, found {value!r}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{value!r} was asked for, but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"{value!r}: this machine has {torch.cuda.device_count()} CUDA devices"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("'mps' was asked for, but MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"expected cpu, cuda, cuda:N or mps, found {value!r}")


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    check: Callable[[Any], None] | None = None,
    choices: Sequence[Any] | None = None,
    flag: str | None = None,
    metavar: str | Sequence[str] | None = None,
    nargs: int | None = None,
    aliases: Sequence[str] = (),
    default_text: str | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field with command-line metadata.

    ``check(value)`` raises ``ValueError`` for a bad value; ``flag`` overrides the generated
    option string; ``aliases`` are extra spellings kept for compatibility; ``default_text``
    replaces the printed default; ``cli=False`` keeps the field out of the command line;
    ``nargs`` is the exact number of values of a list field (``metavar`` may then name each).
    """
    meta = dict(
        help=help,
        check=check,
        choices=choices,
        flag=flag,
        metavar=metavar,
        nargs=nargs,
        aliases=tuple(aliases),
        default_text=default_text,
        cli=cli,
    )
    if isinstance(default, list | dict | set):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    return field(default=default, metadata=meta)


def check_options(options: Any) -> None:
    """Run every field's check and choice test; ``ValueError`` names the option."""
    for f in fields(options):
        value = getattr(options, f.name)
        try:
            _check_value(f, value)
        except ValueError as exc:
            raise ValueError(f"--{f.name.replace('_', '-')}: {exc}") from None


def _check_value(f: Any, value: Any) -> None:
    check, choices = f.metadata.get("check"), f.metadata.get("choices")
    values = value if isinstance(value, list | tuple) else [value]
    nargs = f.metadata.get("nargs")
    if nargs is not None and isinstance(value, list | tuple) and len(value) != nargs:
        raise ValueError(f"expected {nargs} values, found {len(value)}")
    for v in values:
        if choices is not None and v is not None and v not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}; found {v!r}")
        if check is not None:
            check(v)


# ------------------------------------------------------------------------------ argparse
def _base_type(annotation: Any) -> tuple[type, bool]:
    """``(element type, is_list)`` of ``int``, ``float | None``, ``list[str]``, …"""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else str
        origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return typing.get_args(hint)[0], True
    return hint, False


def _flag(f: Any, bool_default: bool) -> str:
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    name = f.name.replace("_", "-")
    return f"--no-{name}" if bool_default is True else f"--{name}"


def _help(f: Any, default: Any, shown: str | None) -> str:
    text = f.metadata.get("help", "")
    shown = shown or f.metadata.get("default_text")
    if shown is None and default is not None and default is not MISSING:
        if isinstance(default, bool):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
    return f"{text} (default: {shown})" if shown else text


def _parser_type(f: Any, kind: type, check: bool = True) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, found {text!r}") from None
        if not check:
            return value
        try:
            _check_value(f, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    convert.__name__ = kind.__name__
    return convert


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    defaults: Mapping[str, Any] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    suppress: bool = False,
    skip: Iterable[str] = (),
    lists: Iterable[str] = (),
    default_texts: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
    unchecked: Iterable[str] = (),
) -> None:
    """Add one argument per field of the dataclass ``cls``.

    ``defaults``/``choices`` override the fields' own (a family's defaults); with ``suppress``
    an option that is not given is absent from the namespace (used where the defaults depend on
    the checkpoint's model). ``lists`` names fields that take several values here;
    ``default_texts`` replaces printed defaults and ``notes`` are appended to help texts;
    ``unchecked`` fields only get their type converted at parse time (a checkpoint command's
    option that models check differently: the model's options class checks it on construction).
    """
    unchecked = set(unchecked)
    defaults, choices, skip = dict(defaults or {}), dict(choices or {}), set(skip)
    default_texts, notes, lists = dict(default_texts or {}), dict(notes or {}), set(lists)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        default = defaults.get(f.name, field_default(f))
        kind, is_list = _base_type(hints[f.name])
        is_list = is_list or f.name in lists
        meta_choices = choices.get(f.name, f.metadata.get("choices"))
        if f.name in unchecked:
            meta_choices = None
        help_text = _help(f, default, default_texts.get(f.name))
        if f.name in notes:
            help_text = f"{help_text} {notes[f.name]}"
        kwargs: dict[str, Any] = dict(dest=f.name, help=help_text)
        if suppress:
            kwargs["default"] = argparse.SUPPRESS
        else:
            kwargs["default"] = default
        if kind is bool:
            kwargs["action"] = "store_false" if default is True else "store_true"
        else:
            kwargs["type"] = _parser_type(f, kind, check=f.name not in unchecked)
            if meta_choices is not None:
                kwargs["choices"] = meta_choices
            if is_list:
                kwargs["nargs"] = f.metadata.get("nargs") or "+"
            if f.metadata.get("metavar"):
                kwargs["metavar"] = f.metadata["metavar"]
        parser.add_argument(
            _flag(f, default if kind is bool else None), *f.metadata.get("aliases", ()), **kwargs
        )


def field_default(f: Any) -> Any:
    """The default value of a dataclass field (``MISSING`` if it has none)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def options_from(
    cls: type[T], namespace: argparse.Namespace | Mapping[str, Any], **extra: Any
) -> T:
    """The dataclass ``cls`` from the parsed values that are its fields (others are ignored);
    fields absent from ``namespace`` keep their defaults."""
    values = vars(namespace) if isinstance(namespace, argparse.Namespace) else dict(namespace)
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in values.items() if k in names}
    kwargs.update({k: v for k, v in extra.items() if k in names})
    return cls(**kwargs)


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> frozenset[str]:
    """The destinations of the options written out in ``argv`` (``--x v`` or ``--x=v``)."""
    written = {token.split("=", 1)[0] for token in argv if token.startswith("-")}
    given: set[str] = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif written.intersection(action.option_strings):
                given.add(action.dest)
    return frozenset(given)


def field_names(cls: type) -> frozenset[str]:
    """The command-line fields of an options class."""
    return frozenset(f.name for f in fields(cls) if f.metadata.get("cli", True))


# ------------------------------------------------------------------------------ the options
@dataclass
class DataOptions:
    """Where data comes from, where work runs, and how it reports."""

    data_dir: str | None = option(
        None,
        "dataset folder",
        default_text="$PYRO_DRAW_DATA_DIR, else ../shared/data, else ~/.cache/pyro-draw",
    )
    download: bool = option(
        False, "download missing files from their official location (sha256-checked)"
    )
    device: str = option("cpu", "torch device: cpu, cuda, cuda:N or mps", check=device_name)
    threads: int | None = option(
        None,
        "torch intra-op threads (1 is fastest when another busy process shares the cores)",
        check=positive,
        default_text="torch's own choice",
    )
    seed: int = option(0, "random seed: the same command and seed give the same result")
    progress: bool = option(True, "hide progress bars")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass
class RunOptions(DataOptions):
    """Options of every ``pyro-draw train <model>`` command (optimisation, checkpoints, data)."""

    config: str | None = option(None, "named configuration")
    dataset: str | list[str] | None = option(None, "dataset name")
    out: str = option("runs/quickstart", "output folder")
    steps: int = option(600, "optimisation steps", check=positive)
    batch_size: int = option(100, "examples per step", check=positive)
    lr: float | None = option(
        1e-3, "Adam learning rate (None: the training plan's choice)", check=positive
    )
    clip_norm: float = option(10.0, "global gradient-norm clip (0: off)", check=non_negative)
    clip_value: float = option(
        0.0, "clip each gradient element to [-v, v] before --clip-norm (0: off)", check=non_negative
    )
    log_every: int = option(10, "steps between records in metrics.jsonl", check=positive)
    validate_every: int = option(200, "steps between validations", check=positive)
    checkpoint_every: int = option(200, "steps between checkpoints", check=positive)
    checkpoint_minutes: float = option(
        10.0, "also checkpoint after this many minutes since the last one", check=positive
    )
    max_seconds: float | None = option(
        None, "stop (with a checkpoint) after this much training wall time", check=positive
    )
    resume: str | None = option(
        None,
        "continue exactly from this checkpoint (same optimiser state, step, RNG)",
        metavar="CHECKPOINT",
    )
    overwrite: bool = option(
        False, "replace the run already in --out (its checkpoint, metrics.jsonl and results)"
    )
    nproc: int = option(
        1,
        "train data-parallel on this many processes (launches torchrun; --batch-size is global)",
        check=positive,
    )
    tensorboard: str | None = option(
        None,
        "also write TensorBoard events (scalars, pictures) here; needs pyro-draw[tensorboard]",
        metavar="DIR",
    )
    pyro_validation: bool = option(False, "enable Pyro's argument validation (slower)")
    pictures: bool = option(True, "skip the pictures")
    #: the options written out on the command line (to tell "--config small" from the default)
    given: frozenset[str] = option(frozenset(), cli=False)


@dataclass
class CheckpointOptions(DataOptions):
    """Options of every checkpoint command (``evaluate``, ``sample``, …)."""

    out: str | None = option(None, "output folder", default_text="next to the checkpoint")

    def out_dir(self, checkpoint: Path, subfolder: str | None = None) -> Path:
        """``--out``, else the checkpoint's folder (or ``subfolder`` of it)."""
        if self.out:
            return Path(self.out)
        return checkpoint.parent / subfolder if subfolder else checkpoint.parent


@dataclass
class SplitOptions(CheckpointOptions):
    """Options of the checkpoint commands that read a split of a dataset."""

    dataset: str | None = option(None, "dataset name", default_text="the dataset it was trained on")
    split: str = option("test", "data split", choices=("train", "valid", "test"))

    def dataset_of(self, record: RunRecord) -> Any:
        """``--dataset``, else the dataset the checkpoint was trained on."""
        return self.dataset or record.dataset


@dataclass
class EvaluateOptions(SplitOptions):
    """Options of ``pyro-draw evaluate``: which data, how many examples, where the JSON goes."""

    num_examples: int | None = option(
        None, "evaluate a fixed random subset of this size", check=positive, default_text="all"
    )
    batch_size: int = option(100, "examples per evaluation batch", check=positive)
    json: str | None = option(None, "write the results here", default_text="next to the checkpoint")

    def json_path(self, checkpoint: Path, name: str) -> Path:
        """``--json``, else ``name`` next to the checkpoint."""
        return Path(self.json) if self.json else checkpoint.with_name(name)
