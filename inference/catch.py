"""The training objective of RAM playing Catch (Mnih et al. 2014, sec. 4.2): REINFORCE from the
final reward alone, for the glimpse locations *and* the game actions.

The objective plays one vectorised episode of :class:`generative.catch_agent.CatchAgent` in a
:class:`generative.catch_game.CatchEnv` started from the given game states and scores it with
the generic pieces of :mod:`inference.reinforce`.
"""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from generative.catch_agent import CatchEpisode
from generative.catch_game import CatchEnv, CatchState
from inference.reinforce import baseline_loss, reinforce_surrogate, site_log_probs

__all__ = ["CatchObjective"]


class CatchObjective:
    """REINFORCE from the final reward alone (sec. 3.2, Eq. 2) for the location *and* the game
    actions, plus the baseline's squared error:

        loss = −mean_b Σ_t Σ_{u ∈ {a_t, l_t}} (R_b − b_tb) log π(u_tb | s_{1:t})
               + mean_b Σ_t (R_b − b_tb)²

    (``l_T`` is not sampled, so the location sum stops at ``T − 1``; ``a_t`` and ``l_t`` share
    ``b_t``.) ``args`` are the :class:`generative.catch_game.CatchState` fields of new games
    (e.g. from :class:`tasks.catch.training.CatchBatches`).
    Metrics: ``catch_rate`` of the sampled policy and ``baseline_mse`` per step.
    """

    def __call__(
        self, model: nn.Module, guide: nn.Module, args: tuple[Tensor, ...], step: int
    ) -> tuple[Tensor, dict[str, float]]:
        if len(args) != len(CatchState._fields):
            raise ValueError(
                f"CatchObjective: expected args {CatchState._fields}, found {len(args)} tensors"
            )
        state = CatchState(*args)
        c = model.config
        env = CatchEnv(state.ball_row.shape[0], c.screen_size, c.paddle_width)
        env.reset(state)
        trace = poutine.trace(model.model).get_trace(env)
        episode: CatchEpisode = trace.nodes["_RETURN"]["value"]
        steps = episode.actions.shape[0]
        names = [f"a_{t}" for t in range(1, steps + 1)] + [f"l_{t}" for t in range(1, steps)]
        log_probs = site_log_probs(trace, names)
        baselines = torch.cat([episode.baselines, episode.baselines[:-1]])  # b_t for a_t, l_t
        surrogate = reinforce_surrogate(log_probs, episode.reward, baselines)
        b_loss = baseline_loss(episode.reward, episode.baselines)
        metrics = {
            "catch_rate": episode.reward.mean().item(),
            "baseline_mse": b_loss.item() / steps,
        }
        return surrogate + b_loss, metrics
