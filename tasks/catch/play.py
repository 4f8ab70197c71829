"""Playing Catch with a trained agent: episodes, exact and sampled catch rates, the summary."""

from __future__ import annotations

from typing import Any

import pyro
import pyro.poutine as poutine
import torch

from generative.catch_agent import CatchAgent, CatchEpisode, GreedyPolicy
from generative.catch_game import CatchEnv, all_starts, random_policy_catch_rate

__all__ = [
    "PAPER_CATCH_RATE",
    "evaluate_agent",
    "format_catch_summary",
    "greedy_catch_rate",
    "play",
    "play_episode",
]

PAPER_CATCH_RATE = 0.85  # sec. 4.2: "the best agent ... catches the ball roughly 85% of the time"


def play_episode(
    agent: CatchAgent, env: CatchEnv, *, greedy: bool = True, ball_centred: bool = False
) -> tuple[CatchEpisode, poutine.Trace]:
    """One episode of every game in ``env`` (reset first); ``greedy`` plays the policy's mode;
    ``ball_centred`` puts the retina on the ball at every step (the curriculum's teacher, a
    sanity baseline). Returns the episode and the Pyro trace of the agent's program."""
    teacher = torch.ones(env.batch_size, dtype=torch.bool) if ball_centred else None
    with torch.no_grad(), pyro.validation_enabled(False):
        model = GreedyPolicy()(agent.model) if greedy else agent.model
        trace = poutine.trace(model).get_trace(env, teacher)
    return trace.nodes["_RETURN"]["value"], trace


def play(
    agent: CatchAgent,
    num_games: int,
    seed: int,
    greedy: bool = True,
    *,
    batch_size: int = 500,
) -> float:
    """The catch rate of ``agent`` over ``num_games`` games started from ``seed``.

    ``greedy=True`` plays the most probable action and the mean location; ``False`` samples
    the policy (from a torch RNG forked and seeded with ``seed``, leaving the global one as
    it was). Deterministic given ``seed``.
    """
    if num_games < 1:
        raise ValueError(f"num_games: expected >= 1, found {num_games}")
    c = agent.config
    generator = torch.Generator().manual_seed(seed)
    caught, was_training = 0.0, agent.training
    agent.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, num_games, batch_size):
                n = min(batch_size, num_games - start)
                env = CatchEnv(n, c.screen_size, c.paddle_width, generator=generator)
                env.reset()
                episode, _ = play_episode(agent, env, greedy=greedy)
                caught += episode.reward.sum().item()
    finally:
        agent.train(was_training)
    return caught / num_games


def greedy_catch_rate(agent: CatchAgent, *, ball_centred: bool = False) -> float:
    """The *exact* catch rate of the greedy policy: it is deterministic and there are only
    ``3·size`` equally likely games (:func:`all_starts`), so play each once. ``ball_centred``:
    with the retina on the ball (:func:`play_episode`)."""
    c = agent.config
    starts = all_starts(c.screen_size, c.paddle_width)
    env = CatchEnv(len(starts.ball_col), c.screen_size, c.paddle_width)
    env.reset(starts)
    was_training = agent.training
    agent.eval()
    try:
        episode, _ = play_episode(agent, env, greedy=True, ball_centred=ball_centred)
    finally:
        agent.train(was_training)
    return episode.reward.mean().item()


def evaluate_agent(agent: CatchAgent, num_games: int, seed: int) -> dict[str, Any]:
    """The exact greedy catch rate, the sampled policy's over ``num_games`` games (with its
    binomial standard error), the exact random-paddle rate and the paper's."""
    c = agent.config
    sampled = play(agent, num_games, seed, greedy=False)
    return {
        "catch_rate_greedy": greedy_catch_rate(agent),
        "catch_rate_greedy_ball_centred": greedy_catch_rate(agent, ball_centred=True),
        "greedy_games": 3 * c.screen_size,
        "catch_rate_sampled": sampled,
        "catch_rate_sampled_stderr": (sampled * (1 - sampled) / num_games) ** 0.5,
        "num_games": num_games,
        "seed": seed,
        "random_policy_catch_rate": random_policy_catch_rate(c.screen_size, c.paddle_width),
        "paper_catch_rate": PAPER_CATCH_RATE,
    }


def format_catch_summary(result: dict[str, Any]) -> str:
    """The printed line of an :func:`evaluate_agent` result."""
    return (
        f"catch rate: greedy {result['catch_rate_greedy']:.3f} (exact, all "
        f"{result['greedy_games']} games; with the retina on the ball "
        f"{result.get('catch_rate_greedy_ball_centred', float('nan')):.3f}), sampled "
        f"{result['catch_rate_sampled']:.3f} ± "
        f"{result['catch_rate_sampled_stderr']:.3f} ({result['num_games']} games); random paddle "
        f"{result['random_policy_catch_rate']:.3f}, paper ≈ {result['paper_catch_rate']:.2f}"
    )
