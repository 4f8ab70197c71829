"""The game of "Catch" (Mnih et al. 2014, sec. 4.2): environment, training and evaluation of RAM.

The paper: "The game is played on a 24 by 24 screen of binary pixels and involves two objects: a
single pixel that represents a ball falling from the top of the screen while bouncing off the
sides of the screen and a two-pixel paddle positioned at the bottom of the screen which the
agent controls with the aim of catching the ball. When the falling pixel reaches the bottom of
the screen the agent either gets a reward of 1 if the paddle overlaps with the ball and a reward
of 0 otherwise. The game then restarts from the beginning." Three game actions: left, right and
do nothing.

Rules where the paper is silent (our choices, each tested in ``tests/test_catch.py``); they
follow the common Torch "Catch" (``rlenvs``) made integer so that every rule is exact:

1. **Start.** The ball is on the top row (row 0) in a uniformly random column; its horizontal
   velocity is uniform on ``{−1, 0, +1}`` columns per step (straight down or at 45°). The paddle
   starts centred: its left pixel is at column ``(size − paddle_width) // 2`` (columns 11–12 of
   24) on the bottom row.
2. **Step** with action ``a ∈ {0 = left, 1 = stay, 2 = right}``: first the paddle moves one
   column (clamped to the screen), then the ball moves one row down and ``v`` columns sideways.
3. **Bounce.** A ball that would leave the screen is reflected off the side wall like a mirror:
   column ``−1`` becomes ``1`` and ``size`` becomes ``size − 2``, and its velocity flips. The
   ball thus touches the wall column for exactly one frame.
4. **End.** The episode ends when the ball reaches the bottom row, after exactly
   ``size − 1 = 23`` steps (the same for every game, so a batch of games ends together).
5. **Reward** 1 on that last step if the ball's column is under the paddle
   (``paddle ≤ column ≤ paddle + paddle_width − 1``), else 0; every earlier reward is 0.
6. **Screen.** Binary ``(B, 1, size, size)``: the ball pixel and the paddle pixels are 1.

Every game is winnable (the paddle can cross the screen in fewer than 23 steps), and the ball's
path does not depend on the actions, so there are only ``3·size = 72`` distinct, equally likely
games (:func:`all_starts`): the paper's "85%" is a property of the policy, not of unseen games,
and the greedy policy's catch rate is computed exactly by playing each once
(:func:`greedy_catch_rate`). The chance reference is the uniformly random paddle, whose catch
rate :func:`random_policy_catch_rate` computes exactly: 2/24 = 1/12, since landing columns are
uniform.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pyro
import pyro.poutine as poutine
import torch
from torch import Tensor, nn

from generative.catch_agent import (
    CATCH_ACTIONS,
    CATCH_AGENT_CONFIGS,
    CatchAgent,
    CatchAgentConfig,
    CatchEpisode,
    GreedyPolicy,
)
from generative.glimpse import glimpse_origins
from guides.empty import EmptyGuide
from inference.reinforce import baseline_loss, reinforce_surrogate, site_log_probs
from inference.trainer import SVITrainer, TrainConfig
from tasks.models import ModelEntry

__all__ = [
    "CHECKPOINT_COMMANDS",
    "MODELS",
    "PAPER_CATCH_RATE",
    "CatchBatches",
    "CatchEnv",
    "CatchObjective",
    "CatchState",
    "CatchTrainJob",
    "all_starts",
    "episode_filmstrip",
    "evaluate_agent",
    "greedy_catch_rate",
    "initial_states",
    "load_agent",
    "move_ball",
    "move_paddle",
    "play",
    "play_episode",
    "random_policy_catch_rate",
    "register_train",
    "render",
    "run_catch_training",
    "save_filmstrip",
]

PAPER_CATCH_RATE = 0.85  # sec. 4.2: "the best agent ... catches the ball roughly 85% of the time"
LEFT, STAY, RIGHT = 0, 1, 2


# ============================================================================ the environment
class CatchState(NamedTuple):
    """The full state of ``B`` games, each field ``(B,)`` int64."""

    ball_row: Tensor
    ball_col: Tensor
    ball_vx: Tensor  # horizontal velocity, −1, 0 or +1 columns per step
    paddle: Tensor  # column of the paddle's left pixel


def _check_geometry(size: int, paddle_width: int) -> None:
    if size < 3:
        raise ValueError(f"size: expected a screen of at least 3×3 pixels, found {size}")
    if not 1 <= paddle_width < size:
        raise ValueError(f"paddle_width: expected 1 … {size - 1} pixels, found {paddle_width}")


def initial_states(
    batch_size: int,
    *,
    size: int = 24,
    paddle_width: int = 2,
    generator: torch.Generator | None = None,
) -> CatchState:
    """Rule 1: new games, ball on the top row in a uniform column with a uniform velocity in
    ``{−1, 0, +1}``, paddle centred."""
    _check_geometry(size, paddle_width)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1 games, found {batch_size}")
    col = torch.randint(size, (batch_size,), generator=generator)
    vx = torch.randint(3, (batch_size,), generator=generator) - 1
    return CatchState(
        ball_row=torch.zeros(batch_size, dtype=torch.int64),
        ball_col=col,
        ball_vx=vx,
        paddle=torch.full((batch_size,), (size - paddle_width) // 2, dtype=torch.int64),
    )


def all_starts(size: int = 24, paddle_width: int = 2) -> CatchState:
    """The ``3·size`` distinct new games (every column × velocity ``−1, 0, +1``), each as likely
    as the others under rule 1."""
    _check_geometry(size, paddle_width)
    cols = torch.arange(size).repeat(3)
    return CatchState(
        ball_row=torch.zeros_like(cols),
        ball_col=cols,
        ball_vx=torch.arange(-1, 2).repeat_interleave(size),
        paddle=torch.full_like(cols, (size - paddle_width) // 2),
    )


def move_paddle(paddle: Tensor, actions: Tensor, *, size: int, paddle_width: int) -> Tensor:
    """Rule 2: ``left``/``stay``/``right`` move the paddle by −1/0/+1, clamped to the screen."""
    return (paddle + actions - 1).clamp(0, size - paddle_width)


def move_ball(row: Tensor, col: Tensor, vx: Tensor, *, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Rules 2–3: one row down and ``vx`` columns sideways, mirrored off the side walls."""
    col = col + vx
    low, high = col < 0, col > size - 1
    col = torch.where(low, -col, torch.where(high, 2 * (size - 1) - col, col))
    vx = torch.where(low | high, -vx, vx)
    return row + 1, col, vx


def render(state: CatchState, *, size: int = 24, paddle_width: int = 2) -> Tensor:
    """Rule 6: the binary screens ``(B, 1, size, size)`` (float32) of ``state``."""
    batch = state.ball_row.shape[0]
    screen = torch.zeros(batch, 1, size, size)
    index = torch.arange(batch)
    screen[index, 0, state.ball_row, state.ball_col] = 1.0
    cols = state.paddle[:, None] + torch.arange(paddle_width)
    screen[index[:, None], 0, size - 1, cols] = 1.0
    return screen


class CatchEnv:
    """``batch_size`` games of Catch played in lockstep (rules in the module docstring).

    ``reset()`` starts new games drawn with ``generator`` (or sets a given :class:`CatchState`);
    ``step(actions)`` takes ``(B,)`` actions in ``{0 = left, 1 = stay, 2 = right}`` and returns
    ``(screen (B, 1, size, size), reward (B,), done (B,) bool)``. Every episode lasts exactly
    ``episode_length = size − 1`` steps.
    """

    def __init__(
        self,
        batch_size: int,
        size: int = 24,
        paddle_width: int = 2,
        generator: torch.Generator | None = None,
    ):
        _check_geometry(size, paddle_width)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1 games, found {batch_size}")
        self.batch_size, self.size, self.paddle_width = batch_size, size, paddle_width
        self.episode_length = size - 1
        self.generator = generator
        self.state: CatchState | None = None
        self._done = False

    @property
    def done(self) -> bool:
        """Whether the current episode is over (or none was started)."""
        return self.state is None or self._done

    @property
    def remaining_steps(self) -> int:
        """Steps until the ball reaches the bottom row (``episode_length`` after ``reset()``)."""
        if self.state is None:
            raise RuntimeError("CatchEnv: call reset() first")
        return int(self.size - 1 - self.state.ball_row[0])

    def reset(self, state: CatchState | None = None) -> Tensor:
        """Start new games (drawn with the generator, or ``state``); returns the screens."""
        if state is None:
            state = initial_states(
                self.batch_size,
                size=self.size,
                paddle_width=self.paddle_width,
                generator=self.generator,
            )
        else:
            state = self._checked_state(state)
        self.state = state
        self._done = bool((state.ball_row >= self.size - 1).all())
        return self.observe()

    def _checked_state(self, state: CatchState) -> CatchState:
        state = CatchState(*(torch.as_tensor(v, dtype=torch.int64).cpu() for v in state))
        for name, value in zip(CatchState._fields, state, strict=True):
            if value.shape != (self.batch_size,):
                raise ValueError(
                    f"state.{name}: expected shape ({self.batch_size},), found {tuple(value.shape)}"
                )
        checks = {
            "ball_row": (0, self.size - 1),
            "ball_col": (0, self.size - 1),
            "ball_vx": (-1, 1),
            "paddle": (0, self.size - self.paddle_width),
        }
        for name, (lo, hi) in checks.items():
            value = getattr(state, name)
            if ((value < lo) | (value > hi)).any():
                raise ValueError(
                    f"state.{name}: expected values in [{lo}, {hi}], found "
                    f"{value.min().item()} … {value.max().item()}"
                )
        rows = state.ball_row
        if (rows != rows[0]).any():
            raise ValueError("state.ball_row: the games of a batch must play in lockstep")
        return state

    def observe(self) -> Tensor:
        """The current screens ``(B, 1, size, size)``."""
        if self.state is None:
            raise RuntimeError("CatchEnv: call reset() before observe()")
        return render(self.state, size=self.size, paddle_width=self.paddle_width)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rules 2–5: move paddle then ball; returns ``(screen, reward, done)``."""
        if self.state is None:
            raise RuntimeError("CatchEnv: call reset() before step()")
        if self._done:
            raise RuntimeError("CatchEnv: the episode is over; call reset()")
        actions = torch.as_tensor(actions).detach().cpu()
        if actions.shape != (self.batch_size,) or actions.is_floating_point():
            raise ValueError(
                f"actions: expected ({self.batch_size},) integers, found {actions.dtype} "
                f"{tuple(actions.shape)}"
            )
        if ((actions < 0) | (actions > 2)).any():
            raise ValueError(f"actions: expected values in {{0, 1, 2}} = {CATCH_ACTIONS}")
        s = self.state
        paddle = move_paddle(
            s.paddle, actions.long(), size=self.size, paddle_width=self.paddle_width
        )
        row, col, vx = move_ball(s.ball_row, s.ball_col, s.ball_vx, size=self.size)
        self.state = CatchState(row, col, vx, paddle)
        done = row >= self.size - 1
        caught = done & (col >= paddle) & (col <= paddle + self.paddle_width - 1)
        self._done = bool(done.all())
        return self.observe(), caught.to(torch.float32), done


def random_policy_catch_rate(size: int = 24, paddle_width: int = 2) -> float:
    """The exact catch rate of the uniformly random paddle (the chance reference).

    The ball's landing column is a function of its start alone (rules 1–4), and the random
    paddle is a Markov chain on its ``size − paddle_width + 1`` positions (uniform −1/0/+1
    moves, clamped), so the rate is the average over the ``3·size`` starts of the chain's
    probability to cover the landing column after ``size − 1`` steps. The landing column is
    uniform (the bounce maps start columns one-to-one onto landing columns), so this equals
    ``paddle_width / size`` = 1/12 — as for any policy that ignores the ball.
    """
    _check_geometry(size, paddle_width)
    positions = size - paddle_width + 1
    transition = torch.zeros(positions, positions, dtype=torch.float64)
    for p in range(positions):
        for move in (-1, 0, 1):
            transition[p, min(max(p + move, 0), positions - 1)] += 1 / 3
    occupancy = torch.zeros(positions, dtype=torch.float64)
    occupancy[(size - paddle_width) // 2] = 1.0
    occupancy = occupancy @ torch.linalg.matrix_power(transition, size - 1)
    row, cols, vx, _ = all_starts(size, paddle_width)
    for _ in range(size - 1):
        row, cols, vx = move_ball(row, cols, vx, size=size)
    left = torch.arange(positions)
    covers = (cols[:, None] >= left) & (cols[:, None] <= left + paddle_width - 1)  # (starts, P)
    return float((covers.to(torch.float64) @ occupancy).mean())


# ============================================================================ playing
def play_episode(
    agent: CatchAgent, env: CatchEnv, *, greedy: bool = True
) -> tuple[CatchEpisode, poutine.Trace]:
    """One episode of every game in ``env`` (reset first); ``greedy`` plays the policy's mode.
    Returns the episode and the Pyro trace of the agent's program."""
    with torch.no_grad(), pyro.validation_enabled(False):
        model = GreedyPolicy()(agent.model) if greedy else agent.model
        trace = poutine.trace(model).get_trace(env)
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


def greedy_catch_rate(agent: CatchAgent) -> float:
    """The *exact* catch rate of the greedy policy: it is deterministic and there are only
    ``3·size`` equally likely games (:func:`all_starts`), so play each once."""
    c = agent.config
    starts = all_starts(c.screen_size, c.paddle_width)
    env = CatchEnv(len(starts.ball_col), c.screen_size, c.paddle_width)
    env.reset(starts)
    was_training = agent.training
    agent.eval()
    try:
        episode, _ = play_episode(agent, env, greedy=True)
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
        "greedy_games": 3 * c.screen_size,
        "catch_rate_sampled": sampled,
        "catch_rate_sampled_stderr": (sampled * (1 - sampled) / num_games) ** 0.5,
        "num_games": num_games,
        "seed": seed,
        "random_policy_catch_rate": random_policy_catch_rate(c.screen_size, c.paddle_width),
        "paper_catch_rate": PAPER_CATCH_RATE,
    }


# ============================================================================ training
class CatchBatches:
    """The training "batches": the start states of ``batch_size`` new games per step, drawn
    from a generator seeded by ``(seed, step)`` so that a resumed run plays the same games."""

    def __init__(self, batch_size: int, *, seed: int = 0, size: int = 24, paddle_width: int = 2):
        _check_geometry(size, paddle_width)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1 games, found {batch_size}")
        self.batch_size, self.seed = batch_size, seed
        self.size, self.paddle_width = size, paddle_width

    def batch(self, step: int) -> tuple[Tensor, ...]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return tuple(
            initial_states(
                self.batch_size,
                size=self.size,
                paddle_width=self.paddle_width,
                generator=generator,
            )
        )


class CatchObjective:
    """REINFORCE from the final reward alone (sec. 3.2, Eq. 2) for the location *and* the game
    actions, plus the baseline's squared error:

        loss = −mean_b Σ_t Σ_{u ∈ {a_t, l_t}} (R_b − b_tb) log π(u_tb | s_{1:t})
               + mean_b Σ_t (R_b − b_tb)²

    (``l_T`` is not sampled, so the location sum stops at ``T − 1``; ``a_t`` and ``l_t`` share
    ``b_t``.) ``args`` are the :class:`CatchState` fields of new games (from
    :class:`CatchBatches`).
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
        baselines = torch.cat([episode.baselines, episode.baselines[:-1]])  # b_t for a_t and l_t
        surrogate = reinforce_surrogate(log_probs, episode.reward, baselines)
        b_loss = baseline_loss(episode.reward, episode.baselines)
        metrics = {
            "catch_rate": episode.reward.mean().item(),
            "baseline_mse": b_loss.item() / steps,
        }
        return surrogate + b_loss, metrics


def _build(config: dict) -> tuple[nn.Module, nn.Module]:
    return CatchAgent(CatchAgentConfig.from_dict(config)), EmptyGuide()


MODELS: dict[str, ModelEntry] = {"ram-catch": ModelEntry(_build, sorted(CATCH_AGENT_CONFIGS))}


@dataclass
class CatchTrainJob:
    config: str = "paper"
    out: str = "runs/ram_catch"
    resume: str | None = None
    location_std: float | None = None  # override the config's σ
    eval_games: int = 1000  # games for the sampled policy's catch rate
    device: str = "cpu"
    progress: bool = True


def run_catch_training(job: CatchTrainJob, train_config: TrainConfig) -> dict[str, Any]:
    """Train (or resume) the Catch agent with :class:`CatchObjective`; then evaluate it on
    ``eval_games`` new games and write ``eval.json`` next to the checkpoint."""
    from inference.checkpoint import load_checkpoint

    if job.resume:
        previous = load_checkpoint(job.resume, expected_model="ram-catch")
        config = previous["model_config"]
        groups = previous.get("train_config", {}).get("lr_groups", {})
        if groups != train_config.lr_groups:
            raise ValueError(
                f"--location-lr: {job.resume} was trained with learning-rate groups {groups}, "
                f"found {train_config.lr_groups}; resume with the same --location-lr"
            )
    else:
        if job.config not in CATCH_AGENT_CONFIGS:
            raise ValueError(
                f"--config: unknown Catch agent config {job.config!r}; "
                f"choose one of {sorted(CATCH_AGENT_CONFIGS)}"
            )
        config = CATCH_AGENT_CONFIGS[job.config].to_dict()
        if job.location_std is not None:
            if job.location_std <= 0:
                raise ValueError(f"--location-std: expected > 0, found {job.location_std}")
            config["location_std"] = job.location_std
    agent, guide = _build(config)
    agent.to(job.device)
    c = agent.config
    batches = CatchBatches(
        train_config.batch_size,
        seed=train_config.seed,
        size=c.screen_size,
        paddle_width=c.paddle_width,
    )
    eval_seed = 2**31 - 1 - train_config.seed  # not a training stream

    def validate() -> dict[str, float]:
        return {"greedy_catch_rate": greedy_catch_rate(agent)}

    extra = {"model": "ram-catch", "model_config": config, "config_name": job.config}
    trainer = SVITrainer(
        agent,
        guide,
        batches,
        train_config,
        out_dir=job.out,
        checkpoint_extra=extra,
        validate=validate,
        device=job.device,
        progress=job.progress,
        objective=CatchObjective(),
    )
    run = trainer.run(job.resume)
    agent.eval()
    result = evaluate_agent(agent, job.eval_games, seed=eval_seed)
    result.update(
        checkpoint=str(trainer.checkpoint_path),
        step=trainer.state.step,
        frames=trainer.state.step * train_config.batch_size * (c.screen_size - 1),
        train_seconds=run.seconds,
    )
    path = Path(job.out) / "eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(_summary(result))
    return result


def _summary(result: dict[str, Any]) -> str:
    return (
        f"catch rate: greedy {result['catch_rate_greedy']:.3f} (exact, all "
        f"{result['greedy_games']} games), sampled {result['catch_rate_sampled']:.3f} ± "
        f"{result['catch_rate_sampled_stderr']:.3f} ({result['num_games']} games); random paddle "
        f"{result['random_policy_catch_rate']:.3f}, paper ≈ {result['paper_catch_rate']:.2f}"
    )


# ============================================================================ pictures
_SCALE_COLOURS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.2, 0.5, 1.0))  # finest → coarsest


def episode_filmstrip(
    episode: CatchEpisode, game: int = 0, *, glimpse_size: int, scales: int, zoom: int = 4
) -> Tensor:
    """RGB frames ``(T + 1, 3, zoom·size, zoom·size)`` of one game: the screens ``x_1 … x_{T+1}``
    (white on black) with, on frame ``t ≤ T``, the outlines of the retina patches around the
    glimpse location ``l_{t-1}`` it sensed (red: finest 6×6, green, blue: coarsest; clipped to
    the screen). The last frame shows where the ball landed."""
    if zoom < 2:
        raise ValueError(f"zoom: expected >= 2 (an outline needs room), found {zoom}")
    screens = episode.screens[:, game, 0].detach().cpu().float()  # (T + 1, H, W)
    frames_n, size = screens.shape[0], screens.shape[-1]
    frames = screens.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2)
    frames = frames[:, None].repeat(1, 3, 1, 1)
    origins = glimpse_origins(
        episode.locations[:, game].detach().cpu(), size, size, size=glimpse_size, scales=scales
    )  # (T, scales, 2) = (row, col)
    side = zoom * size
    for t in range(frames_n - 1):
        for k in reversed(range(min(scales, len(_SCALE_COLOURS)))):
            width = glimpse_size * 2**k
            r0, c0 = (int(v) * zoom for v in origins[t, k])
            r1, c1 = r0 + width * zoom - 1, c0 + width * zoom - 1
            colour = torch.tensor(_SCALE_COLOURS[k])[:, None]
            rows = torch.arange(max(r0, 0), min(r1, side - 1) + 1)
            cols = torch.arange(max(c0, 0), min(c1, side - 1) + 1)
            for r in (r0, r1):
                if 0 <= r < side and len(cols):
                    frames[t, :, r, cols] = colour
            for col in (c0, c1):
                if 0 <= col < side and len(rows):
                    frames[t, :, rows, col] = colour
    return frames


def save_filmstrip(
    agent: CatchAgent, path: str | Path, *, seed: int = 0, greedy: bool = True, ncols: int = 8
) -> tuple[Path, float]:
    """Play one game (start drawn from ``seed``) and save its filmstrip as a PNG grid titled with
    the step and the action taken. Returns the path and the game's reward."""
    from tasks.figures import save_image_grid

    c = agent.config
    env = CatchEnv(1, c.screen_size, c.paddle_width, generator=torch.Generator().manual_seed(seed))
    env.reset()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        episode, _ = play_episode(agent, env, greedy=greedy)
    frames = episode_filmstrip(episode, 0, glimpse_size=c.glimpse_size, scales=c.scales)
    reward = float(episode.reward[0])
    titles = [f"t={t + 1} {CATCH_ACTIONS[int(a)]}" for t, a in enumerate(episode.actions[:, 0])]
    titles.append("caught" if reward > 0 else "missed")
    return save_image_grid(frames, path, ncols=ncols, titles=titles), reward


# ============================================================================ command line
def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    """``pyro-draw train ram-catch``: RAM playing Catch (sec. 4.2)."""
    from tasks.cli_common import add_common_train_arguments

    p = train_subparsers.add_parser(
        "ram-catch",
        help="RAM playing Catch from the final reward alone (Mnih et al. 2014, sec. 4.2)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_common_train_arguments(
        p,
        steps=2000,
        batch_size=64,
        lr=1e-3,
        clip_norm=10.0,
        out="runs/ram_catch",
        validate_every=250,
        checkpoint_every=250,
    )
    p.add_argument("--config", default="paper", choices=sorted(CATCH_AGENT_CONFIGS))
    p.add_argument(
        "--location-std",
        type=float,
        default=None,
        help="standard deviation of the location policy (default: the config's)",
    )
    p.add_argument(
        "--location-lr",
        type=float,
        default=None,
        help="learning rate of the location network f_l (default: --lr)",
    )
    p.add_argument(
        "--eval-games",
        type=int,
        default=1000,
        help="games for the sampled policy's final catch rate (the greedy one is exact)",
    )
    p.set_defaults(handler=_train_handler)


def _train_handler(args: argparse.Namespace) -> None:
    from tasks.cli_common import train_config_from_args

    job = CatchTrainJob(
        config=args.config,
        out=args.out,
        resume=args.resume,
        location_std=args.location_std,
        eval_games=args.eval_games,
        device=args.device,
        progress=not args.no_progress,
    )
    groups = {} if args.location_lr is None else {"model.locator.": args.location_lr}
    run_catch_training(job, train_config_from_args(args, lr_groups=groups))


def load_agent(path: str | Path) -> tuple[CatchAgent, dict[str, Any]]:
    """The trained agent (eval mode, CPU) and the checkpoint dict of a ``ram-catch`` checkpoint."""
    from inference.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, expected_model="ram-catch")
    agent, _ = _build(ckpt["model_config"])
    agent.load_state_dict(ckpt["model_state"])
    return agent.eval(), ckpt


def _load_agent(args: argparse.Namespace) -> tuple[CatchAgent, dict]:
    return load_agent(args.checkpoint)


def _evaluate_handler(args: argparse.Namespace) -> None:
    """``pyro-draw evaluate CKPT``: catch rates over ``--num-examples`` games (default 1000)."""
    agent, ckpt = _load_agent(args)
    num_games = args.num_examples or 1000
    if num_games < 1:
        raise ValueError(f"--num-examples: expected >= 1 games, found {num_games}")
    result = evaluate_agent(agent, num_games, seed=args.seed)
    result.update(checkpoint=str(args.checkpoint), step=ckpt["step"])
    json_path = getattr(args, "json", None)
    path = Path(json_path) if json_path else Path(args.checkpoint).with_name("eval_catch.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(_summary(result))
    print(f"wrote {path}")


def _sample_handler(args: argparse.Namespace) -> None:
    """``pyro-draw sample CKPT``: a PNG filmstrip of one greedy episode with the glimpse boxes."""
    agent, _ = _load_agent(args)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent
    path, reward = save_filmstrip(agent, out / f"catch_episode_seed{args.seed}.png", seed=args.seed)
    print(f"wrote {path} ({'caught' if reward > 0 else 'missed'})")


CHECKPOINT_COMMANDS: dict[str, dict[str, Callable[[argparse.Namespace], None]]] = {
    "evaluate": {"ram-catch": _evaluate_handler},
    "sample": {"ram-catch": _sample_handler},
}
