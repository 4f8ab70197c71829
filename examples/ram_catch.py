"""RAM playing "Catch" (Mnih et al. 2014, sec. 4.2) within a CPU budget.

Trains the paper's agent (6×6 retina at 3 scales, 256 LSTM units, 3 game actions) from the
final reward alone with REINFORCE and a learned baseline, through the same train function as
``pyro-draw train ram-catch`` (every option of it applies), then reports its catch rate on
``--eval-games`` new games (greedy and sampled policy) beside the paper's "roughly 85%" (after
20 million frames) and the exact catch rate of a uniformly random paddle (the chance reference,
1/12). Writes ``examples/results/ram_catch.json`` and, in ``--out``, the checkpoint and a
filmstrip of one greedy game with its glimpse boxes (``catch_episode.png``).

    python examples/ram_catch.py --max-seconds 150 --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tasks.catch import FAMILY
from tasks.catch.pictures import save_filmstrip
from tasks.catch.play import PAPER_CATCH_RATE, evaluate_agent
from tasks.cli import add_train_options, parse_train_options
from tasks.families import load_trained
from tasks.options import add_options, option, options_from
from tasks.results import write_json
from tasks.training import train

#: the example's defaults of ``pyro-draw train ram-catch``'s options
DEFAULTS = {
    "steps": 100_000,
    "max_seconds": 150.0,
    "log_every": 25,
    "validate_every": 250,
    "checkpoint_every": 250,
}
EVAL_SEED = 12345  # the games of the reported catch rate and of the filmstrip
QUICK_EVAL_GAMES = 200  # the train function's own evaluation: a quick check


@dataclass
class CatchExampleOptions:
    """What only this example has."""

    results: str = option("examples/results", "folder of ram_catch.json")


def _parse(argv: list[str]):
    spec = FAMILY.model("ram-catch")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    add_options(parser.add_argument_group("example options"), CatchExampleOptions)
    add_train_options(parser, FAMILY, spec, DEFAULTS)
    parser.set_defaults(eval_games=2000)  # the reported catch rate (the greedy one is exact)
    run, options, args = parse_train_options(parser, argv, spec)
    return run, options, options_from(CatchExampleOptions, args)


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    run, options, example = _parse(argv)
    quick = train(FAMILY, "ram-catch", run, replace(options, eval_games=QUICK_EVAL_GAMES))
    out = Path(run.out)
    agent, _, ckpt = load_trained(out / "checkpoint.pt")
    result = evaluate_agent(agent, options.eval_games, seed=EVAL_SEED)
    steps = ckpt.step
    frames_per_game = agent.config.screen_size - 1  # the 23 screens x_1 … x_23 acted on
    result.update(
        experiment="RAM playing Catch (Mnih et al. 2014, sec. 4.2)",
        model_config=ckpt.model_config,
        steps=steps,
        batch_size=run.batch_size,
        games_trained=steps * run.batch_size,
        frames_trained=steps * run.batch_size * frames_per_game,
        paper_frames=20_000_000,
        paper_catch_rate=PAPER_CATCH_RATE,
        train_seconds=quick["train_seconds"],
        threads=torch.get_num_threads(),
        command="python examples/ram_catch.py " + " ".join(argv),
    )
    results = Path(example.results)
    write_json(result, results / "ram_catch.json")
    figure, _ = save_filmstrip(agent, out / "catch_episode.png", seed=EVAL_SEED)
    keys = (
        "catch_rate_greedy",
        "catch_rate_sampled",
        "random_policy_catch_rate",
        "paper_catch_rate",
        "steps",
        "frames_trained",
    )
    print(json.dumps({k: result[k] for k in keys}, indent=1))
    print(f"wrote {results / 'ram_catch.json'} and {figure}")
    return result


if __name__ == "__main__":
    main()
