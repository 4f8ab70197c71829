"""Catch pictures: the filmstrip of one game with the retina patches the agent sensed, and
``pyro-draw sample`` of a ``ram-catch`` checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from generative.catch_agent import CatchAgent, CatchEpisode
from generative.catch_game import CATCH_ACTIONS, CatchEnv
from generative.glimpse import glimpse_origins
from inference.checkpoint import Checkpoint
from tasks.catch.play import play_episode
from tasks.family import ModelSpec
from tasks.figures import save_image_grid
from tasks.options import CheckpointOptions

__all__ = ["episode_filmstrip", "sample_command", "save_filmstrip"]

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


def sample_command(spec: ModelSpec, checkpoint: Checkpoint, options: CheckpointOptions) -> None:
    """``pyro-draw sample CHECKPOINT``: a PNG filmstrip of one greedy game (start drawn from
    ``--seed``) with the glimpse boxes."""
    agent, _ = spec.restore(checkpoint, options.device)
    out = options.out_dir(checkpoint.path)
    path, reward = save_filmstrip(
        agent, out / f"catch_episode_seed{options.seed}.png", seed=options.seed
    )
    print(f"wrote {path} ({'caught' if reward > 0 else 'missed'})")
