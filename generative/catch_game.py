"""The game of "Catch" (Mnih et al. 2014, sec. 4.2): the vectorised environment the agent plays.

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
(:func:`tasks.catch.play.greedy_catch_rate`). The chance reference is the uniformly random
paddle, whose catch rate :func:`random_policy_catch_rate` computes exactly: 2/24 = 1/12, since
landing columns are uniform.

The agent (:mod:`generative.catch_agent`) plays a :class:`CatchEnv` as a Pyro program; its
training objective is :class:`inference.catch.CatchObjective`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "CATCH_ACTIONS",
    "LEFT",
    "RIGHT",
    "STAY",
    "CatchEnv",
    "CatchState",
    "all_starts",
    "check_geometry",
    "initial_states",
    "move_ball",
    "move_paddle",
    "random_policy_catch_rate",
    "render",
]

CATCH_ACTIONS: tuple[str, ...] = ("left", "stay", "right")
LEFT, STAY, RIGHT = 0, 1, 2


class CatchState(NamedTuple):
    """The full state of ``B`` games, each field ``(B,)`` int64."""

    ball_row: Tensor
    ball_col: Tensor
    ball_vx: Tensor  # horizontal velocity, −1, 0 or +1 columns per step
    paddle: Tensor  # column of the paddle's left pixel


def check_geometry(size: int, paddle_width: int) -> None:
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
    check_geometry(size, paddle_width)
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
    check_geometry(size, paddle_width)
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
        check_geometry(size, paddle_width)
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

    def ball_locations(self) -> Tensor:
        """The ball's pixel centre in glimpse coordinates ``(B, 2)`` ``(x, y)`` in ``[-1, 1]``
        (the inverse of :func:`generative.glimpse.glimpse_centres`: ``l = (2c + 1)/size − 1``),
        where a retina centred on the ball would sit (the teacher of the Catch curriculum)."""
        if self.state is None:
            raise RuntimeError("CatchEnv: call reset() before ball_locations()")
        pixels = torch.stack([self.state.ball_col, self.state.ball_row], dim=-1).float()
        return (2 * pixels + 1) / self.size - 1

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
    check_geometry(size, paddle_width)
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
