"""RAM playing "Catch" (Mnih et al. 2014, sec. 3 and sec. 4.2) as a Pyro program.

At every step ``t = 1 … T`` of a game (``T`` = the steps left in the environment, the episode
length for a new game)::

    g_t = f_g(x_t, l_{t-1})                  glimpse network (sec. 3.1, sec. 4; generative.glimpse)
    h_t = f_h(h_{t-1}, g_t)                  core: an LSTM of 256 units (sec. 4.2)
    a_t ~ p(· | f_a(h_t)) = Categorical(softmax(Linear(h_t)))    game action (sec. 4.2)
    l_t ~ p(· | f_l(h_t)) = N(f_l(h_t), σ² I)                    next glimpse location (sec. 4)
    b_t = Linear(h_t)                        learned baseline of Eq. 2 (sec. 3.2)
    x_{t+1}, r_{t+1} = environment(a_t)

The game actions are ``0 = left, 1 = stay, 2 = right`` (sec. 4.2: "left, right, and do
nothing"). The agent is trained from the final reward alone with REINFORCE (Eq. 2) for *both*
the location and the game actions (:class:`inference.catch.CatchObjective`); the game itself is
:mod:`generative.catch_game`.

Sample sites, inside ``pyro.plate("games", B)`` and ``pyro.markov``: ``"a_{t}"`` for
``t = 1 … T`` and ``"l_{t}"`` for ``t = 1 … T − 1`` (1-based as in the paper). Each carries
``infer={"baseline": {"baseline_value": b_t}}`` (the convention of
:func:`inference.reinforce.site_baselines` and Pyro's ``TraceGraph_ELBO``).

Choices the paper leaves open (documented, tested where testable):

* ``l_0 = (0, 0)``, the screen centre: the first glimpse is not chosen by the policy. With the
  paper's retina (6×6 at 3 scales) its coarsest patch then covers the whole 24×24 screen.
* ``l_T`` is not sampled: after the last game action the episode is over and the location would
  never be used, so its score-function term would only add variance.
* ``h_0 = c_0 = 0``.
* The baseline ``b_t = Linear(h_t)`` reads a *detached* ``h_t``: its squared-error loss trains
  only the baseline, and Eq. 2's gradient of the policy is unchanged (``b_t`` may depend on
  ``s_{1:t}`` through ``h_t`` but must not feed back into the policy's parameters).
* The location policy's mean is ``tanh(Linear(h_t))`` (see :class:`generative.glimpse.
  LocationNetwork`), its standard deviation fixed; sampled locations are clipped to ``[-1, 1]²``
  before sensing and the log-probability is that of the unclipped sample. Both sample sites are
  non-reparameterised (``has_rsample = False``; the location's Gaussian is
  :class:`generative.distributions.ScoreNormal`): REINFORCE is the only gradient of the policy.
* ``f_l`` reads a *detached* ``h_t`` (``detach_location_input=True``, as in the classification
  RAM of :mod:`generative.ram` and the common reproductions): the location term of Eq. 2 then
  trains ``f_l`` alone, and the core and glimpse networks learn from the game-action term. The
  location score ``(l − μ)/σ²`` is large for the small σ a glimpse needs (σ = 0.11: ×83) and
  otherwise swamps the action signal in the shared core. Measured on an 8×8 screen with a full
  view (one 8×8 scale, 64 units, Adam 3·10⁻³, 64 games per step, 700 steps, seed 0): greedy
  catch rate 0.30 without the detach, 0.64 with it (chance 0.25).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from torch import Tensor, nn

from generative.catch_game import CATCH_ACTIONS
from generative.config import ConfigDict
from generative.distributions import ScoreNormal
from generative.glimpse import (
    DEFAULT_LOCATION_STD,
    GlimpseNetwork,
    LocationNetwork,
    clip_locations,
)

__all__ = [
    "CATCH_ACTIONS",
    "CATCH_AGENT_CONFIGS",
    "CatchAgent",
    "CatchAgentConfig",
    "CatchEpisode",
    "GameEnvironment",
    "GreedyPolicy",
]


@dataclass(frozen=True)
class CatchAgentConfig(ConfigDict):
    """Hyper-parameters of the Catch agent (sec. 4.2) and of the game it plays."""

    label = "Catch agent config"

    screen_size: int = 24  # the game: a 24×24 screen ...
    paddle_width: int = 2  # ... and a two-pixel paddle (sec. 4.2)
    glimpse_size: int = 6  # "a 6 by 6 retina ..."
    scales: int = 3  # "... at three scales"
    glimpse_hidden: int = 128  # h_g (sec. 4)
    location_hidden: int = 128  # h_l (sec. 4)
    glimpse_output: int = 256  # g (sec. 4)
    core_size: int = 256  # "a core network of 256 LSTM units"
    num_actions: int = 3  # left, stay, right
    location_std: float = DEFAULT_LOCATION_STD  # not reported (found by random search)
    squash_locations: bool = True  # tanh on the location mean (generative.glimpse)
    detach_location_input: bool = True  # f_l reads a detached h_t (see the module docstring)


CATCH_AGENT_CONFIGS: dict[str, CatchAgentConfig] = {
    # Sec. 4.2: 6×6 retina at 3 scales, 256 LSTM units, 3 game actions.
    "paper": CatchAgentConfig(),
    # Not from the paper, a sanity baseline: one 48×48 patch, so the whole 24×24 screen is in
    # view at full resolution wherever the retina is; the location is then irrelevant.
    "full_view": CatchAgentConfig(glimpse_size=48, scales=1),
}


class GameEnvironment(Protocol):
    """What the agent needs of a vectorised game (e.g. :class:`generative.catch_game.CatchEnv`)."""

    batch_size: int
    size: int

    @property
    def done(self) -> bool: ...

    @property
    def remaining_steps(self) -> int: ...

    def observe(self) -> Tensor: ...

    def ball_locations(self) -> Tensor: ...

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]: ...


class CatchEpisode(NamedTuple):
    """What :meth:`CatchAgent.model` returns: one episode of ``B`` games of ``T`` steps."""

    reward: Tensor  # R = Σ_t r_t, (B,)
    baselines: Tensor  # b_t, (T, B)
    actions: Tensor  # a_t, (T, B) int64
    locations: Tensor  # the clipped l_{t-1} sensed at step t, (T, B, 2)
    screens: Tensor  # x_1 … x_{T+1}, (T + 1, B, 1, H, W)
    location_logits: Tensor  # Linear(h_t) of f_l before the squashing tanh, (T − 1, B, 2)
    balls: Tensor  # the ball's location in x_t (GameEnvironment.ball_locations), (T, B, 2)
    core_states: Tensor  # h_t for t = 1 … T − 1, not detached (T − 1, B, core_size)


class GreedyPolicy(Messenger):
    """Play the policy's mode: every unobserved sample site takes ``fn.mode`` instead of a draw
    (the most probable game action, the mean location). Log-probabilities are still those of
    the policy at the chosen values."""

    def _pyro_sample(self, msg: dict) -> None:
        if isinstance(msg["fn"], _Subsample):  # a plate's index site, not a decision
            return
        if not msg["is_observed"] and msg["value"] is None:
            msg["value"] = msg["fn"].mode


class CatchAgent(nn.Module):
    """RAM for Catch (sec. 4.2): glimpse network, LSTM core, location, action and baseline
    networks. :meth:`model` plays one vectorised episode as a Pyro program."""

    def __init__(self, config: CatchAgentConfig | None = None):
        super().__init__()
        config = config or CatchAgentConfig()
        if config.num_actions != len(CATCH_ACTIONS):
            raise ValueError(
                f"num_actions: Catch has {len(CATCH_ACTIONS)} game actions {CATCH_ACTIONS}, "
                f"found {config.num_actions}"
            )
        self.config = config
        self.glimpse = GlimpseNetwork(
            1,
            config.glimpse_size,
            config.scales,
            glimpse_hidden=config.glimpse_hidden,
            location_hidden=config.location_hidden,
            output_size=config.glimpse_output,
        )
        self.core = nn.LSTMCell(config.glimpse_output, config.core_size)
        self.locator = LocationNetwork(
            config.core_size, std=config.location_std, squash=config.squash_locations
        )
        self.actor = nn.Linear(config.core_size, config.num_actions)
        self.baseline = nn.Linear(config.core_size, 1)

    # -- the networks of sec. 3.1 -----------------------------------------------------------
    def initial_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The core's initial LSTM state ``(h_0, c_0) = (0, 0)``."""
        zeros = self.actor.weight.new_zeros(batch_size, self.config.core_size)
        return zeros, zeros.clone()

    def core_step(
        self, screen: Tensor, location: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Sec. 3.1: ``h_t = f_h(h_{t-1}, g_t)`` with ``g_t = f_g(x_t, l_{t-1})``; returns the
        LSTM's ``(h_t, c_t)``."""
        return self.core(self.glimpse(screen, location), state)

    def action_distribution(self, h: Tensor) -> dist.Categorical:
        """Sec. 4.2: ``a_t ~ p(· | f_a(h_t))``, "a linear softmax" over the game actions."""
        return dist.Categorical(logits=self.actor(h))

    def location_logits(self, h: Tensor) -> Tensor:
        """``Linear(h_t)`` of ``f_l`` ``(B, 2)`` (of a detached ``h_t`` by default), before the
        squashing ``tanh`` (what the objective's location penalty keeps near 0)."""
        return self.locator.linear(h.detach() if self.config.detach_location_input else h)

    def location_mean(self, h: Tensor) -> Tensor:
        """Sec. 4: the policy mean ``f_l(h_t)`` ``(B, 2)`` (of a detached ``h_t`` by default)."""
        return self.locator.squashed(self.location_logits(h))

    def location_distribution(self, h: Tensor, logits: Tensor | None = None) -> dist.Distribution:
        """Sec. 4: ``l_t ~ N(f_l(h_t), σ² I)``, non-reparameterised (trained by REINFORCE):
        :func:`generative.glimpse.location_distribution` with a
        :class:`generative.distributions.ScoreNormal`, which keeps ``has_rsample = False`` through
        Pyro's plate broadcasting. ``logits``: :meth:`location_logits` already computed."""
        mean = self.locator.squashed(self.location_logits(h) if logits is None else logits)
        return ScoreNormal(mean, mean.new_tensor(self.locator.std)).to_event(1)

    def value(self, h: Tensor) -> Tensor:
        """Sec. 3.2: the baseline ``b_t ≈ E[R | s_{1:t}]`` from the detached state ``h_t``."""
        return self.baseline(h.detach()).squeeze(-1)

    # -- the Pyro program -------------------------------------------------------------------
    def model(
        self, env: GameEnvironment, teacher: Tensor | None = None, teacher_noise: float = 0.0
    ) -> CatchEpisode:
        """Play every game in ``env`` (reset, not finished) to its end, sampling ``"a_{t}"`` and
        ``"l_{t}"`` at each step (``T = env.remaining_steps``). Returns a :class:`CatchEpisode`.

        ``teacher`` ``(B,)`` bool (not in the paper; the curriculum of
        :class:`inference.catch.CatchObjective`): in those games the retina is put on the ball
        (``env.ball_locations()``) at every step instead of at the policy's location, whose
        ``"l_{t}"`` sites are still sampled but masked out (log-probability 0), so the location
        policy learns only from the games it steers. ``teacher_noise`` (location units) puts the
        taught retina at the ball plus ``N(0, teacher_noise²)`` per coordinate (clipped), so the
        core also learns to find a ball it is not centred on."""
        pyro.module("ram_catch", self)
        c = self.config
        if env.size != c.screen_size:
            raise ValueError(
                f"env.size: the agent was built for a {c.screen_size}×{c.screen_size} screen, "
                f"found {env.size}"
            )
        if env.done:
            raise ValueError("env: the episode is over; reset the environment before playing")
        batch, steps = env.batch_size, env.remaining_steps
        param = self.actor.weight
        state = self.initial_state(batch)
        if teacher is not None:
            teacher = torch.as_tensor(teacher, dtype=torch.bool, device=param.device)
            if teacher.shape != (batch,):
                raise ValueError(
                    f"teacher: expected a ({batch},) bool mask, found {tuple(teacher.shape)}"
                )
        location = param.new_zeros(batch, 2)  # l_0: the screen centre
        screen = env.observe().to(param)
        reward = param.new_zeros(batch)
        screens, locations, actions, baselines, logits, balls = [screen], [], [], [], [], []
        states = []
        with pyro.plate("games", batch):
            for t in pyro.markov(range(1, steps + 1)):
                ball = env.ball_locations().to(param)
                balls.append(ball)
                if teacher is not None:  # the retina on the ball of x_t
                    taught = ball
                    if teacher_noise > 0:
                        taught = clip_locations(ball + teacher_noise * torch.randn_like(ball))
                    location = torch.where(teacher[:, None], taught, location)
                state = self.core_step(screen, location, state)
                h = state[0]
                b = self.value(h)
                infer = {"baseline": {"baseline_value": b}}
                action = pyro.sample(f"a_{t}", self.action_distribution(h), infer=infer)
                locations.append(location)
                if t < steps:
                    logit = self.location_logits(h)
                    steered = nullcontext() if teacher is None else poutine.mask(mask=~teacher)
                    with steered:
                        sampled = pyro.sample(
                            f"l_{t}", self.location_distribution(h, logit), infer=infer
                        )
                    location = clip_locations(sampled.detach())
                    logits.append(logit)
                    states.append(h)
                screen, r, _ = env.step(action)
                screen = screen.to(param)
                reward = reward + r.to(param)
                screens.append(screen)
                actions.append(action)
                baselines.append(b)
        if not env.done:
            raise RuntimeError(f"env: the episode did not end after remaining_steps={steps} steps")
        return CatchEpisode(
            reward=reward,
            baselines=torch.stack(baselines),
            actions=torch.stack(actions),
            locations=torch.stack(locations),
            screens=torch.stack(screens),
            location_logits=torch.stack(logits) if logits else param.new_zeros(0, batch, 2),
            balls=torch.stack(balls),
            core_states=torch.stack(states) if states else param.new_zeros(0, batch, c.core_size),
        )

    def forward(self, env: GameEnvironment) -> CatchEpisode:
        return self.model(env)
