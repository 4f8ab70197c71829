"""Reproduce rows of RAM's Tables 1–2 (Mnih et al. 2014) and DRAW's Table 1 (Gregor et al. 2015)
within a CPU budget.

Each row trains one classifier on its dataset (training images generated on the fly) through
the same train function as ``pyro-draw train ram|dram|fc|convnet``, then measures the error on the
fixed test set (all 10,000 images unless ``--eval-examples``) and writes
``examples/results/ram_<row>.json`` with the paper's number beside ours. RAM rows report the
error with one sampled glimpse path per image (headline, first glimpse random as in the paper),
along the policy mean, and with the class probabilities averaged over ``--mc-samples`` sampled
paths. Every option of ``pyro-draw train ram`` applies except ``--config``/``--dataset`` (the
row's) and ``--resume`` (here a flag: continue each row from its own checkpoint); ``--minutes``
sets ``--max-seconds``; without ``--checkpoint-every`` checkpoints follow ``--validate-every``.

    python examples/ram_tables.py --row 1a --minutes 60
    python examples/ram_tables.py --row dram_8 --minutes 120
    python examples/ram_tables.py --list
    python examples/ram_tables.py --row all --steps 20 --eval-examples 200   # smoke test
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from tasks.options import (
    RunOptions,
    add_options,
    given_options,
    option,
    options_from,
    positive,
)
from tasks.ram import FAMILY
from tasks.ram.models import RAMOptions
from tasks.results import write_json
from tasks.training import train


@dataclass(frozen=True)
class Row:
    model: str
    config: str
    dataset: str
    paper_error: float  # percent
    source: str


def _rows_60x60(
    table: str, ram_config: str, dataset: str, errors: tuple[float, float, float, float]
) -> dict[str, Row]:
    """The four rows of RAM Table 1b or 2a (60x60 images): RAM with 8 glimpses of 12x12 at 3
    scales, the FC networks with 64 and 256 hiddens and the convnet, with the paper's
    ``errors`` in that order."""
    ram, fc64, fc256, conv = errors
    name = f"RAM Table {table}"
    return {
        table: Row("ram", ram_config, dataset, ram, f"{name}: RAM, 8 glimpses, 12x12, 3 scales"),
        f"{table}_fc64": Row("fc", "fc_64", dataset, fc64, f"{name}: FC, 2 layers (64 hiddens)"),
        f"{table}_fc256": Row(
            "fc", "fc_256", dataset, fc256, f"{name}: FC, 2 layers (256 hiddens)"
        ),
        f"{table}_conv": Row(
            "convnet", "conv_256", dataset, conv, f"{name}: Convolutional, 2 layers"
        ),
    }


ROWS: dict[str, Row] = {
    # not in the paper: a small RAM (4 glimpses of 8x8, narrow layers) for quick comparisons
    "small": Row("ram", "small", "mnist", math.nan, "small RAM on 28x28 MNIST (no paper number)"),
    # RAM Table 1a: 28x28 MNIST
    "1a": Row("ram", "mnist_28", "mnist", 1.29, "RAM Table 1a: RAM, 6 glimpses, 8x8, 1 scale"),
    "1a_fc256": Row("fc", "fc_256", "mnist", 1.35, "RAM Table 1a: FC, 2 layers (256 hiddens)"),
    # RAM Table 1b: 60x60 translated MNIST
    **_rows_60x60("1b", "translated_60", "mnist_translated_60", (1.84, 7.56, 3.7, 2.31)),
    # RAM Table 2a: 60x60 cluttered translated MNIST (4 pieces of clutter)
    **_rows_60x60("2a", "cluttered_60", "mnist_cluttered_60", (5.23, 28.96, 13.2, 7.83)),
    # RAM Table 2b / DRAW Table 1: 100x100 cluttered translated MNIST (8 pieces of clutter)
    "2b": Row(
        "ram",
        "cluttered_100",
        "mnist_cluttered_100",
        10.83,
        "RAM Table 2b: RAM, 8 glimpses, 12x12, 4 scales",
    ),
    "2b_conv": Row(
        "convnet",
        "conv_86",
        "mnist_cluttered_100",
        16.51,
        "RAM Table 2b: Convolutional, 2 layers (DRAW Table 1 lists 14.35% for it)",
    ),
    "dram_4": Row(
        "dram",
        "cluttered_100_4",
        "mnist_cluttered_100",
        4.18,
        "DRAW Table 1: Differentiable RAM, 4 glimpses, 12x12",
    ),
    "dram_8": Row(
        "dram",
        "cluttered_100",
        "mnist_cluttered_100",
        3.36,
        "DRAW Table 1: Differentiable RAM, 8 glimpses, 12x12",
    ),
}


#: the example's defaults of the common training options
DEFAULTS = {
    "out": "runs/ram_tables",
    "steps": 1_000_000,
    "batch_size": 64,
    "lr": 1e-3,
    "validate_every": 1000,
    "checkpoint_every": 1000,
    "log_every": 50,
}


@dataclass
class TablesOptions:
    """What only this example has: the rows, the budget in minutes, the objective comparison."""

    row: list[str] = option(["1a"], f"rows to run ({', '.join(ROWS)} or all)")
    list_rows: bool = option(False, "list the rows and exit", flag="--list")
    minutes: float | None = option(None, "training wall-time budget", check=positive)
    compare_objectives: bool = option(
        False, "train each RAM row with both objectives (equal steps) and compare"
    )
    compare_seeds: int = option(2, "seeds of --compare-objectives", check=positive)
    continue_rows: bool = option(
        False, "continue each row from <out>/<row>/checkpoint.pt", flag="--resume"
    )
    results: str = option("examples/results", "folder of the JSON results")


@dataclass
class Setup:
    """The parsed command line: common run options, the model options (RAM's, a superset of
    the other classifiers'), the example's own and the command line itself."""

    run: RunOptions
    model: RAMOptions
    tables: TablesOptions
    argv: list[str]


def run_row(name: str, setup: Setup) -> dict:
    row, tables = ROWS[name], setup.tables
    out = Path(setup.run.out) / name
    max_seconds = setup.run.max_seconds if tables.minutes is None else tables.minutes * 60
    run = replace(
        setup.run,
        config=row.config,
        dataset=row.dataset,
        out=str(out),
        resume=str(out / "checkpoint.pt") if tables.continue_rows else None,
        max_seconds=max_seconds,
        given=setup.run.given | {"config", "dataset"},  # a resumed row must be that row
    )
    spec = FAMILY.model(row.model)
    result = train(FAMILY, row.model, run, options_from(spec.options, asdict(setup.model)))
    ours = 100 * result["test"]["error"]
    result.update(
        row=name,
        experiment=row.source,
        paper_error_percent=row.paper_error,
        error_percent=ours,
        error_stderr_percent=100 * result["test"]["error_stderr"],
        threads=torch.get_num_threads(),
        budget={"steps": run.steps, "minutes": tables.minutes},
        command="python examples/ram_tables.py " + " ".join(setup.argv),
    )
    results = Path(tables.results)
    write_json(result, results / f"ram_{name}.json")
    figure = out / "glimpses.png"
    if figure.is_file():
        figures = results.parent / "figures"
        figures.mkdir(parents=True, exist_ok=True)
        shutil.copy(figure, figures / f"ram_{name}_glimpses.png")
    print(f"[{name}] {row.source}: ours {ours:.2f}% vs paper {row.paper_error:.2f}%")
    return result


def _objective_run(name: str, setup: Setup, objective: str, seed: int) -> dict:
    base = Path(setup.run.out)
    sub = Setup(
        run=replace(setup.run, seed=seed, out=str(base / f"objectives_{name}_{objective}_{seed}")),
        model=replace(setup.model, objective=objective),
        tables=replace(setup.tables, results=str(base / "objective_results")),
        argv=setup.argv,
    )
    result = run_row(name, sub)
    return {
        "objective": objective,
        "seed": seed,
        "steps": result["steps"],
        "train_seconds": result["train_seconds"],
        "error_percent": result["error_percent"],
        "error_mean_path_percent": 100 * result["test"]["error_mean_path"],
        "error_mc_percent": 100 * result["test"]["error_mc"],
        "num_examples": result["test"]["num_examples"],
    }


def compare_objectives(name: str, setup: Setup) -> dict:
    """Train RAM row ``name`` with each objective (hybrid, tracegraph) for the same steps and
    seeds; write ``ram_objectives_<row>.json`` with the test errors side by side."""
    row = ROWS[name]
    if row.model != "ram":
        raise SystemExit(f"--compare-objectives needs a RAM row, {name!r} is {row.model}")
    first = setup.run.seed
    runs = [
        _objective_run(name, setup, objective, seed)
        for seed in range(first, first + setup.tables.compare_seeds)
        for objective in ("hybrid", "tracegraph")
    ]
    summary = {
        "row": name,
        "experiment": f"{row.source}: hybrid (0/1 reward) vs tracegraph (log-likelihood reward)",
        "config": row.config,
        "num_train": setup.model.num_train,
        "batch_size": setup.run.batch_size,
        "runs": runs,
        "command": "python examples/ram_tables.py " + " ".join(setup.argv),
    }
    for objective in ("hybrid", "tracegraph"):
        errors = [r["error_percent"] for r in runs if r["objective"] == objective]
        summary[f"mean_error_percent_{objective}"] = sum(errors) / len(errors)
    write_json(summary, Path(setup.tables.results) / f"ram_objectives_{name}.json")
    print(
        f"[{name}] equal steps: hybrid {summary['mean_error_percent_hybrid']:.2f}% vs "
        f"tracegraph {summary['mean_error_percent_tracegraph']:.2f}% (mean over seeds)"
    )
    return summary


def _parse(argv: list[str]) -> tuple[argparse.ArgumentParser, Setup]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_options(parser.add_argument_group("rows"), TablesOptions)
    add_options(
        parser.add_argument_group("common options"),
        RunOptions,
        defaults=DEFAULTS,
        skip=("config", "dataset", "resume"),
        default_texts={"checkpoint_every": "--validate-every"},
    )
    add_options(parser.add_argument_group("model options (RAM's apply to RAM rows)"), RAMOptions)
    args = parser.parse_args(argv)
    run = options_from(RunOptions, args, given=given_options(parser, argv))
    if "checkpoint_every" not in run.given:
        run = replace(run, checkpoint_every=run.validate_every)
    return parser, Setup(
        run, options_from(RAMOptions, args), options_from(TablesOptions, args), argv
    )


def main(argv: list[str] | None = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, setup = _parse(argv)
    if setup.tables.list_rows:
        for name, row in ROWS.items():
            print(
                f"{name:10s} {row.model:8s} {row.config:16s} {row.dataset:22s} "
                f"{row.paper_error:6.2f}%  {row.source}"
            )
        return []
    rows = list(ROWS) if setup.tables.row == ["all"] else setup.tables.row
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)} or all")
    if setup.tables.compare_objectives:
        return [compare_objectives(name, setup) for name in rows]
    return [run_row(name, setup) for name in rows]


if __name__ == "__main__":
    main()
