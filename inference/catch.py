"""The training objective of RAM playing Catch (Mnih et al. 2014, sec. 4.2): REINFORCE from the
final reward alone, for the glimpse locations *and* the game actions.

The objective plays one vectorised episode of :class:`generative.catch_agent.CatchAgent` in a
:class:`generative.catch_game.CatchEnv` started from the given game states and scores it with
the generic pieces of :mod:`inference.reinforce`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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
               + λ · mean_{t,b} ‖Linear(h_tb)‖²          (location_penalty λ; the paper: 0)
               + κ p(step) · mean_{t,b} ‖f_l(h_tb) − ball_{t+1,b}‖²  (teacher_imitation κ)

    (``l_T`` is not sampled, so the location sum stops at ``T − 1``; ``a_t`` and ``l_t`` share
    ``b_t``.) The last term is not in the paper: it pulls the location mean's pre-``tanh``
    value towards 0, a restoring force against the random walk that otherwise carries a
    weakly-rewarded mean into the saturated screen edge, where the retina sees nothing. The
    third (not in the paper either; :func:`imitation_loss`) lets the location policy learn
    where the curriculum's teacher would look, weighted by the teacher's share ``p(step)``
    (``teacher_schedule``), so that it ends with the curriculum and the rest is REINFORCE.

    ``args`` are the :class:`generative.catch_game.CatchState` fields of new games, optionally
    followed by a ``(B,)`` bool teacher mask (the curriculum of
    :class:`tasks.catch.training.CatchBatches`: the retina on the ball in those games, their
    location terms masked out; see :meth:`generative.catch_agent.CatchAgent.model`).
    Metrics: ``catch_rate`` of the sampled policy, ``baseline_mse`` per step, the teacher's
    share ``teacher``, and the drift of the steered games' location means: ``location_abs``
    (mean ``|μ|``) and ``location_saturated`` (share of ``|μ| > 0.9``).
    """

    def __init__(
        self,
        location_penalty: float = 0.0,
        teacher_imitation: float = 0.0,
        teacher_schedule: Callable[[int], float] | None = None,
        teacher_noise: float = 0.0,
    ):
        for name, value in (
            ("location_penalty", location_penalty),
            ("teacher_imitation", teacher_imitation),
        ):
            if not value >= 0:
                raise ValueError(f"{name}: expected >= 0, found {value}")
        self.location_penalty = float(location_penalty)
        self.teacher_imitation = float(teacher_imitation)
        self.teacher_schedule = teacher_schedule
        if not teacher_noise >= 0:
            raise ValueError(f"teacher_noise: expected >= 0, found {teacher_noise}")
        self.teacher_noise = float(teacher_noise)

    def imitation_weight(self, step: int) -> float:
        """``κ`` times the teacher's share of the games at ``step`` (it ends with the
        curriculum; ``κ`` itself without a schedule)."""
        share = 1.0 if self.teacher_schedule is None else self.teacher_schedule(step)
        return self.teacher_imitation * share

    def __call__(
        self, model: nn.Module, guide: nn.Module, args: tuple[Tensor, ...], step: int
    ) -> tuple[Tensor, dict[str, float]]:
        fields = len(CatchState._fields)
        if len(args) not in (fields, fields + 1):
            raise ValueError(
                f"CatchObjective: expected args {CatchState._fields} (and optionally a teacher "
                f"mask), found {len(args)} tensors"
            )
        state = CatchState(*args[:fields])
        teacher = args[fields].bool() if len(args) > fields else None
        c = model.config
        env = CatchEnv(state.ball_row.shape[0], c.screen_size, c.paddle_width)
        env.reset(state)
        trace = poutine.trace(model.model).get_trace(env, teacher, self.teacher_noise)
        episode: CatchEpisode = trace.nodes["_RETURN"]["value"]
        steps = episode.actions.shape[0]
        names = [f"a_{t}" for t in range(1, steps + 1)] + [f"l_{t}" for t in range(1, steps)]
        log_probs = site_log_probs(trace, names)
        baselines = torch.cat([episode.baselines, episode.baselines[:-1]])  # b_t for a_t, l_t
        surrogate = reinforce_surrogate(log_probs, episode.reward, baselines)
        b_loss = baseline_loss(episode.reward, episode.baselines)
        loss = surrogate + b_loss
        logits = episode.location_logits
        if self.location_penalty > 0 and logits.numel():
            loss = loss + self.location_penalty * logits.pow(2).sum(-1).mean()
        weight = self.imitation_weight(step)
        if weight > 0 and logits.numel():
            loss = loss + weight * imitation_loss(model, episode)
        metrics = {
            "catch_rate": episode.reward.mean().item(),
            "baseline_mse": b_loss.item() / steps,
            **location_drift(model, logits, teacher),
        }
        return loss, metrics


def imitation_loss(model: nn.Module, episode: CatchEpisode) -> Tensor:
    """Mean over games and steps of ``‖f_l(h_t) − ball_{t+1}‖²``: the location policy's mean
    regressed onto where the teacher would put the retina next (the ball in ``x_{t+1}``), in
    every game — the teacher's and the policy's own (as DAgger labels the states the learner
    visits). The regression reads ``h_t`` *without* the detach of the location policy, so it
    also trains the glimpse network and the core to tell where the ball is from what the retina
    sees (off the ball: the coarse scales), which the game-action reward alone barely does."""
    mean = model.locator(episode.core_states)  # (T - 1, B, 2)
    return (mean - episode.balls[1:].detach()).pow(2).sum(-1).mean()


def location_drift(model: nn.Module, logits: Tensor, teacher: Tensor | None) -> dict[str, float]:
    """``teacher`` (its share of the games) and, over the games the policy steers, the mean
    ``|μ|`` of the location means (``location_abs``) and the share of ``|μ| > 0.9``
    (``location_saturated``): the drift towards the screen edge, logged every step."""
    with torch.no_grad():
        mean = model.locator.squashed(logits).abs()  # (T - 1, B, 2)
        share = 0.0 if teacher is None else teacher.float().mean().item()
        if teacher is not None:
            mean = mean[:, ~teacher.to(mean.device)]
        if not mean.numel():  # every game taught: nothing steered (same keys on every rank)
            return {"teacher": share, "location_abs": math.nan, "location_saturated": math.nan}
        return {
            "teacher": share,
            "location_abs": mean.mean().item(),
            "location_saturated": (mean > 0.9).float().mean().item(),
        }
