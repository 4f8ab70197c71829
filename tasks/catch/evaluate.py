"""``pyro-draw evaluate`` of a ``ram-catch`` checkpoint: catch rates on new games."""

from __future__ import annotations

from dataclasses import dataclass

from inference.checkpoint import Checkpoint
from tasks.catch.play import evaluate_agent, format_catch_summary
from tasks.family import ModelSpec
from tasks.options import CheckpointOptions, option, positive
from tasks.results import write_json

__all__ = ["CatchEvaluateOptions", "evaluate_command"]


@dataclass
class CatchEvaluateOptions(CheckpointOptions):
    """Options of ``pyro-draw evaluate`` for Catch agents."""

    num_examples: int = option(
        1000,
        "games for the sampled policy's catch rate (the greedy one is exact over all games)",
        check=positive,
    )
    json: str | None = option(
        None, "write the results here", default_text="eval_catch.json next to the checkpoint"
    )


def evaluate_command(
    spec: ModelSpec, checkpoint: Checkpoint, options: CatchEvaluateOptions
) -> None:
    """``pyro-draw evaluate CHECKPOINT``: the exact greedy catch rate and the sampled policy's
    over ``--num-examples`` games started from ``--seed``."""
    agent, _ = spec.restore(checkpoint, options.device)
    result = evaluate_agent(agent, options.num_examples, seed=options.seed)
    result.update(checkpoint=str(checkpoint.path), step=checkpoint.step)
    path = checkpoint.path.with_name("eval_catch.json") if options.json is None else options.json
    write_json(result, path)
    print(format_catch_summary(result))
    print(f"wrote {path}")
